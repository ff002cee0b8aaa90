package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/rpc"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/hashicorp/serf/serf"

	"github.com/skiffhq/skiff/fsm"
	skiffrpc "github.com/skiffhq/skiff/rpc"
	"github.com/skiffhq/skiff/scheduler"
	"github.com/skiffhq/skiff/state"
	"github.com/skiffhq/skiff/structs"
)

// Server is one Skiff server: a raft voter, a gossip member, and the RPC
// endpoints. New starts it; Shutdown stops it. Its methods are safe for
// concurrent use.
type Server struct {
	config *Config
	logger hclog.Logger
	nodeID string

	fsm       *fsm.FSM
	raft      *raft.Raft
	raftStore *raftboltdb.BoltStore
	snapshots *raft.FileSnapshotStore
	transport *raft.NetworkTransport
	leaderCh  chan bool

	listener  *skiffrpc.Listener
	rpcServer *rpc.Server
	pool      *skiffrpc.Pool

	serf        *serf.Serf
	serfEventCh chan serf.Event
	features    featureGate // which raft entry forms every server reads
	batcher     batcher     // writes waiting to be committed together
	stubs       *stubCache  // job list entries, kept while their job and summary stay; its own allocation: its cleanups must not reach the Server
	// reconcileCh wakes the leader's member reconciliation.
	reconcileCh chan struct{}

	broker  *evalBroker
	blocked *blockedEvals
	// nodeCache is the schedulers' candidate-node cache for nodeCacheOf,
	// the store it was filled from (a restore replaces the store).
	nodeCacheMu sync.Mutex
	nodeCache   *scheduler.NodeCache
	nodeCacheOf *state.Store

	evalsProcessed atomic.Uint64 // by this server's workers, for tests and metrics
	// failedSince is when the leader first saw each server failed in
	// gossip; used by the leader's reconcile loop only.
	failedSince map[raft.ServerID]time.Time
	// planTerm is the context of the current term of leadership while the
	// plan applier runs; submitters give up when it ends.
	planTerm  atomic.Pointer[context.Context]
	planQueue chan *pendingPlan

	heartbeats heartbeats
	liveness   liveness
	// deploymentMu serialises the leader's read-decide-commit of a
	// deployment: the watcher against an operator's fail or pause.
	deploymentMu sync.Mutex
	cluster      atomic.Pointer[clusterSnapshot] // cached for heartbeat replies

	isLeader atomic.Bool
	// consistentReads is set once a new leader has applied every entry of
	// earlier terms (a barrier), so its state can answer linearizable reads.
	consistentReads atomic.Bool
	bootstrapped    atomic.Bool
	lease           *readLease // for linearizable reads on the leader

	shutdownCtx    context.Context
	shutdownCancel context.CancelFunc
	shutdownOnce   sync.Once
	wg             sync.WaitGroup
}

// New starts a server: RPC listener, raft and gossip. It returns once all
// three are up; the raft leader may not be known yet.
func New(cfg *Config) (_ *Server, err error) {
	if cfg.DataDir == "" {
		return nil, errors.New("server needs a data_dir for its raft log")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.NodeName == "" {
		host, _ := os.Hostname()
		cfg.NodeName = host
	}
	if cfg.BootstrapExpect < 0 {
		return nil, fmt.Errorf("bootstrap_expect must be >= 0 (got %d)", cfg.BootstrapExpect)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		stubs:          &stubCache{},
		config:         cfg,
		logger:         cfg.Logger.Named("server"),
		leaderCh:       make(chan bool, 8),
		serfEventCh:    make(chan serf.Event, 256),
		reconcileCh:    make(chan struct{}, 1),
		pool:           skiffrpc.NewPool(5 * time.Second),
		broker:         newEvalBroker(cfg.EvalNackTimeout, cfg.EvalDeliveryLimit),
		planQueue:      make(chan *pendingPlan),
		lease:          newReadLease(cfg.RaftHeartbeatTimeout, cfg.NoReadLease),
		shutdownCtx:    ctx,
		shutdownCancel: cancel,
	}
	s.blocked = newBlockedEvals(s.broker)
	defer func() {
		if err != nil {
			s.Shutdown()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data_dir %s: %w", cfg.DataDir, err)
	}
	if s.nodeID, err = loadNodeID(cfg.DataDir); err != nil {
		return nil, err
	}
	s.logger = s.logger.With("node", cfg.NodeName)
	s.fsm = fsm.New(cfg.Logger)
	s.fsm.JobRefs = s.snapshotJobRefs

	if err := s.setupRPC(); err != nil {
		return nil, err
	}
	if err := s.setupRaft(); err != nil {
		return nil, err
	}
	if err := s.setupSerf(); err != nil {
		return nil, err
	}
	s.features.ready.Store(true) // raft's goroutines may now read s.raft and s.serf
	for range cfg.NumSchedulers {
		s.goFunc(s.worker)
	}
	s.goFunc(s.monitorLeadership)
	s.goFunc(s.serfEventLoop)
	if len(cfg.RetryJoin) > 0 {
		s.goFunc(s.retryJoin)
	}
	return s, nil
}

// goFunc runs f in a goroutine that Shutdown waits for.
func (s *Server) goFunc(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

func (s *Server) setupRPC() error {
	s.rpcServer = rpc.NewServer()
	for name, ep := range s.endpoints() {
		if err := s.rpcServer.RegisterName(name, ep); err != nil {
			return fmt.Errorf("register rpc endpoint %s: %w", name, err)
		}
	}
	ln := s.config.RPCListener
	if ln == nil {
		addr := s.config.RPCAddr
		if addr == nil {
			addr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4647}
		}
		var err error
		if ln, err = net.ListenTCP("tcp", addr); err != nil {
			return fmt.Errorf("listen for rpc on %s: %w", addr, err)
		}
	}
	var adv net.Addr = ln.Addr()
	if s.config.RPCAdvertise != nil {
		adv = s.config.RPCAdvertise
	} else if ta, ok := ln.Addr().(*net.TCPAddr); ok && ta.IP.IsUnspecified() {
		return fmt.Errorf("rpc is bound to %s, which peers cannot dial: set advertise { rpc = \"ip:port\" }", ta)
	}
	s.listener = skiffrpc.NewListener(ln, s.rpcServer, adv, s.config.Logger)
	s.listener.SetLivenessHandler(s.serveLiveness)
	s.goFunc(func() {
		if err := s.listener.Serve(); err != nil {
			s.logger.Error("rpc listener stopped", "error", err)
		}
	})
	return nil
}

// loadNodeID reads data_dir/node-id, creating it on first start.
func loadNodeID(dir string) (string, error) {
	p := filepath.Join(dir, "node-id")
	if b, err := os.ReadFile(p); err == nil {
		id := strings.TrimSpace(string(b))
		if len(id) != 36 {
			return "", fmt.Errorf("%s holds %q, which is not a node ID; delete it to get a new one", p, id)
		}
		return id, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read node ID: %w", err)
	}
	id := structs.GenerateUUID()
	if err := os.WriteFile(p, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write node ID: %w", err)
	}
	return id, nil
}

// NodeID is this server's raft ID.
func (s *Server) NodeID() string { return s.nodeID }

// RPCAddr is the address peers reach this server at.
func (s *Server) RPCAddr() string { return s.listener.RaftLayer().Addr().String() }

// SerfAddr is the gossip address others can join.
func (s *Server) SerfAddr() string {
	m := s.serf.LocalMember()
	return net.JoinHostPort(m.Addr.String(), fmt.Sprint(m.Port))
}

// State returns the current state store (for in-process readers).
func (s *Server) State() *state.Store { return s.fsm.State() }

// IsLeader reports whether this server is the raft leader.
func (s *Server) IsLeader() bool { return s.isLeader.Load() }

// Leader returns the leader's RPC address, "" when none is known.
func (s *Server) Leader() string {
	addr, _ := s.raft.LeaderWithID()
	return string(addr)
}

// Raft exposes raft for the agent's operator endpoints and tests.
func (s *Server) Raft() *raft.Raft { return s.raft }

// RPC calls an endpoint in process, as an HTTP handler does. Forwarding
// to the leader happens inside the endpoint.
func (s *Server) RPC(method string, args, reply any) error {
	return skiffrpc.CallInmem(s.rpcServer, method, args, reply)
}

// Shutdown stops gossip, raft and RPC, and closes the raft log. It does
// not leave the cluster: a restarted server rejoins with its state.
func (s *Server) Shutdown() {
	s.shutdownOnce.Do(func() {
		s.logger.Info("shutting down")
		s.shutdownCancel()
		s.batcher.stopLinger()
		s.clearHeartbeats()
		if s.serf != nil {
			_ = s.serf.Shutdown()
		}
		if s.raft != nil {
			if err := s.raft.Shutdown().Error(); err != nil {
				s.logger.Warn("raft shutdown", "error", err)
			}
		}
		if s.transport != nil {
			_ = s.transport.Close()
		}
		// Calls forwarded to other servers end first, so the handlers that
		// made them return and the listener's Close does not wait for them.
		s.pool.Close()
		if s.listener != nil {
			_ = s.listener.Close()
		}
		s.wg.Wait()
		if s.raftStore != nil {
			_ = s.raftStore.Close()
		}
	})
}

// Leave leaves the gossip pool gracefully, asks the leader to remove this
// server from raft, then shuts down.
func (s *Server) Leave() error {
	if s.IsLeader() {
		// Hand leadership over first so the cluster keeps a leader. The
		// new leader is elected without waiting for the followers' heartbeat
		// timeout, which the read lease relies on: end it first.
		s.lease.end(true)
		if err := s.raft.LeadershipTransfer().Error(); err != nil {
			s.logger.Warn("leadership transfer before leaving failed", "error", err)
		}
	}
	err := s.serf.Leave()
	if !s.IsLeader() {
		s.leaveRaft()
	}
	s.Shutdown()
	return err
}

// leaveRaft asks the leader to remove this server from the raft
// configuration and waits (5 s at most) for the removal to commit. The
// leader also removes a server that gossip says left, but only once its
// gossip learned of the leave: on a loaded machine the leave message can
// come after the failure detector marked the server failed, and a failed
// server stays a voter until dead_server_cleanup. Gossip left first, so
// the leader's reconciliation does not add this server back. A server the
// leader already removed stops hearing from it and knows no leader: then
// there is nobody to ask, and nothing to ask for.
func (s *Server) leaveRaft() {
	addr := s.Leader()
	if addr == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var reply structs.GenericResponse
	err := s.pool.Call(ctx, addr, "Operator.RaftRemovePeer", &structs.RaftPeerRequest{ID: s.nodeID}, &reply)
	switch {
	case err == nil:
		s.logger.Info("removed from raft by the leader before leaving", "index", reply.Index)
	case structs.IsErr(err, structs.ErrNotFound):
		// Already removed: the leader acted on the gossip leave.
	default:
		s.logger.Warn("could not ask the leader to remove this server from raft; it will once gossip tells it this server left"+
			" (if it stays a voter, remove it with: skiff operator raft remove-peer -peer-id "+s.nodeID+")",
			"error", err)
	}
}
