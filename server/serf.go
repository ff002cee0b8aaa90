package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	"github.com/hashicorp/serf/serf"

	"github.com/skiffhq/skiff/structs"
)

// Gossip tags every server carries.
const (
	tagRole      = "role"
	tagRoleValue = "skiff-server"
	tagRegion    = "region"
	tagDC        = "dc"
	tagID        = "id"
	tagRPCAddr   = "rpc_addr"
	tagExpect    = "expect"
	tagVersion   = "build"
)

// Version is the server build version gossiped to peers.
var Version = "0.1.0-dev"

func (s *Server) setupSerf() error {
	conf := serf.DefaultConfig()
	conf.Init()
	conf.NodeName = s.config.NodeName + "." + s.config.Region
	conf.Tags = map[string]string{
		tagRole:    tagRoleValue,
		tagRegion:  s.config.Region,
		tagDC:      s.config.Datacenter,
		tagID:      s.nodeID,
		tagRPCAddr: s.RPCAddr(),
		tagVersion: Version,

		tagLogFeatures: advertisedLogFeatures,
	}
	if s.config.BootstrapExpect > 0 {
		conf.Tags[tagExpect] = strconv.Itoa(s.config.BootstrapExpect)
	}
	conf.EventCh = s.serfEventCh
	serfDir := filepath.Join(s.config.DataDir, "serf")
	if err := os.MkdirAll(serfDir, 0o700); err != nil {
		return fmt.Errorf("create gossip dir: %w", err)
	}
	conf.SnapshotPath = filepath.Join(serfDir, "local.snapshot")
	conf.RejoinAfterLeave = false
	conf.LeavePropagateDelay = 1 * time.Second
	stdLog := s.config.Logger.Named("serf").StandardLogger(nil)
	conf.Logger = stdLog

	ml := memberlist.DefaultLANConfig()
	if s.config.GossipProfile == "local" {
		ml = memberlist.DefaultLocalConfig()
	}
	ml.BindAddr = s.config.SerfBindAddr
	if ml.BindAddr == "" {
		ml.BindAddr = "127.0.0.1"
	}
	ml.BindPort = s.config.SerfBindPort
	ml.AdvertiseAddr = s.config.SerfAdvertiseAddr
	ml.AdvertisePort = s.config.SerfAdvertisePort
	ml.Logger = stdLog
	ml.LogOutput = nil
	conf.MemberlistConfig = ml
	conf.ReconnectTimeout = 24 * time.Hour
	conf.TombstoneTimeout = 24 * time.Hour

	sf, err := serf.Create(conf)
	if err != nil {
		return fmt.Errorf("start gossip on %s:%d: %w", ml.BindAddr, ml.BindPort, err)
	}
	s.serf = sf
	return nil
}

// serfEventLoop reacts to membership changes: before raft is bootstrapped
// it counts servers toward bootstrap_expect; on the leader it wakes the
// member reconciliation.
func (s *Server) serfEventLoop() {
	// Until raft is bootstrapped, also retry on a timer: the last join event
	// may have come while a peer's RPC port was not answering yet.
	retry := time.NewTicker(s.config.RetryInterval)
	defer retry.Stop()
	for {
		select {
		case <-s.shutdownCtx.Done():
			return
		case <-retry.C:
			if s.config.BootstrapExpect > 1 && !s.bootstrapped.Load() {
				s.maybeBootstrap()
			}
		case e := <-s.serfEventCh:
			me, ok := e.(serf.MemberEvent)
			if !ok {
				continue
			}
			if me.EventType() == serf.EventMemberJoin && s.config.BootstrapExpect > 1 {
				s.maybeBootstrap()
			}
			select {
			case s.reconcileCh <- struct{}{}:
			default:
			}
		}
	}
}

// retryJoin joins the configured gossip addresses, retrying until one
// answers or the server shuts down.
func (s *Server) retryJoin() {
	for attempt := 1; ; attempt++ {
		n, err := s.serf.Join(s.config.RetryJoin, true)
		if err == nil || n > 0 {
			s.logger.Info("joined gossip pool", "contacted", n)
			return
		}
		if attempt == 1 || attempt%10 == 0 {
			s.logger.Warn("cannot join gossip pool yet; retrying", "addresses", s.config.RetryJoin, "attempt", attempt, "error", err)
		}
		select {
		case <-s.shutdownCtx.Done():
			return
		case <-time.After(s.config.RetryInterval):
		}
	}
}

// Join joins the gossip pool through the given addresses.
func (s *Server) Join(addrs []string) (int, error) { return s.serf.Join(addrs, true) }

// serverParts is what gossip tells about a Skiff server.
type serverParts struct {
	Name    string
	ID      string
	Region  string
	DC      string
	RPCAddr string
	Expect  int
	Status  serf.MemberStatus
}

func parseServer(m serf.Member) (*serverParts, bool) {
	if m.Tags[tagRole] != tagRoleValue {
		return nil, false
	}
	p := &serverParts{
		Name: m.Name, ID: m.Tags[tagID], Region: m.Tags[tagRegion], DC: m.Tags[tagDC],
		RPCAddr: m.Tags[tagRPCAddr], Status: m.Status,
	}
	p.Expect, _ = strconv.Atoi(m.Tags[tagExpect])
	if p.ID == "" || p.RPCAddr == "" {
		return nil, false
	}
	return p, true
}

// maybeBootstrap bootstraps raft once bootstrap_expect servers of this
// region are alive in gossip, none of which already belongs to a raft
// cluster. Every server computes the same configuration, so it does not
// matter which of them bootstraps first.
func (s *Server) maybeBootstrap() {
	if s.bootstrapped.Load() {
		return
	}
	idx, err := s.raftStore.LastIndex()
	if err != nil {
		s.logger.Error("read raft last index", "error", err)
		return
	}
	if idx != 0 {
		s.bootstrapped.Store(true)
		return
	}
	var servers []*serverParts
	for _, m := range s.serf.Members() {
		p, ok := parseServer(m)
		if !ok || p.Region != s.config.Region || m.Status != serf.StatusAlive {
			continue
		}
		if p.Expect != 0 && p.Expect != s.config.BootstrapExpect {
			s.logger.Error("servers disagree on bootstrap_expect; not bootstrapping", "peer", p.Name, "peer_expect", p.Expect, "ours", s.config.BootstrapExpect)
			return
		}
		servers = append(servers, p)
	}
	if len(servers) < s.config.BootstrapExpect {
		s.logger.Info("waiting for servers before bootstrapping", "known", len(servers), "expect", s.config.BootstrapExpect)
		return
	}
	// A server that already has raft peers means the cluster exists:
	// the leader will add us instead.
	for _, p := range servers {
		if p.ID == s.nodeID {
			continue
		}
		var peers []string
		ctx, cancel := context.WithTimeout(s.shutdownCtx, 2*time.Second)
		err := s.pool.Call(ctx, p.RPCAddr, "Status.Peers", &structs.GenericRequest{QueryOptions: structs.QueryOptions{AllowStale: true}}, &peers)
		cancel()
		if err != nil {
			s.logger.Warn("cannot ask a server for its raft peers; will retry on the next gossip event", "peer", p.Name, "error", err)
			return
		}
		if len(peers) > 0 {
			s.logger.Info("a server already has raft peers; waiting to be added by the leader", "peer", p.Name)
			s.bootstrapped.Store(true)
			return
		}
	}
	conf := raft.Configuration{}
	for _, p := range servers {
		conf.Servers = append(conf.Servers, raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.RPCAddr), Suffrage: raft.Voter})
	}
	if err := s.raft.BootstrapCluster(conf).Error(); err != nil && err != raft.ErrCantBootstrap {
		s.logger.Error("bootstrap raft", "error", err)
		return
	}
	s.logger.Info("bootstrapped raft cluster", "servers", len(servers))
	s.bootstrapped.Store(true)
}

// Members lists the servers gossip knows, with their status.
func (s *Server) Members() *structs.ServerMembersResponse {
	resp := &structs.ServerMembersResponse{
		ServerName: s.config.NodeName, ServerRegion: s.config.Region, ServerDC: s.config.Datacenter,
	}
	for _, m := range s.serf.Members() {
		if m.Tags[tagRole] != tagRoleValue {
			continue
		}
		tags := make(map[string]string, len(m.Tags))
		for k, v := range m.Tags {
			tags[k] = v
		}
		resp.Members = append(resp.Members, &structs.ServerMember{
			Name: m.Name, Addr: m.Addr.String(), Port: m.Port, Tags: tags, Status: m.Status.String(),
		})
	}
	return resp
}
