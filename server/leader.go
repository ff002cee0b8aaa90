package server

import (
	"context"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hashicorp/serf/serf"
)

// barrierTimeout bounds the wait for a new leader to apply the log of
// earlier terms before it serves linearizable reads.
const barrierTimeout = 30 * time.Second

// monitorLeadership runs leader-only work while this server leads: one
// leaderLoop per term of leadership, stopped when leadership is lost.
func (s *Server) monitorLeadership() {
	var stop context.CancelFunc
	var done chan struct{}
	for {
		select {
		case <-s.shutdownCtx.Done():
			if stop != nil {
				stop()
				<-done
			}
			return
		case isLeader := <-s.leaderCh:
			switch {
			case isLeader && stop == nil:
				var ctx context.Context
				ctx, stop = context.WithCancel(s.shutdownCtx)
				done = make(chan struct{})
				// Not until this term's barrier: a flag left over from an
				// earlier term would let reads miss writes of the term between.
				s.consistentReads.Store(false)
				s.lease.end(false)
				s.isLeader.Store(true)
				go func() {
					defer close(done)
					s.leaderLoop(ctx)
				}()
				s.logger.Info("cluster leadership acquired")
			case !isLeader && stop != nil:
				s.isLeader.Store(false)
				s.consistentReads.Store(false)
				s.lease.end(false)
				stop()
				<-done
				// The old loop may have set it after the first Store.
				s.consistentReads.Store(false)
				stop, done = nil, nil
				s.logger.Info("cluster leadership lost")
			}
		}
	}
}

// leaderLoop establishes leadership, then reconciles gossip membership
// with the raft configuration until ctx ends.
func (s *Server) leaderLoop(ctx context.Context) {
	s.failedSince = nil // a new term times dead servers afresh
	// Apply everything of earlier terms before answering linearizable
	// reads from this server's state.
	for {
		err := s.raft.Barrier(barrierTimeout).Error()
		if err == nil {
			break
		}
		s.logger.Error("leader barrier failed; retrying", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	if ctx.Err() != nil {
		return // leadership ended while the barrier ran
	}
	s.consistentReads.Store(true)
	s.initHeartbeats()
	defer s.clearHeartbeats()
	defer s.liveness.clear()
	go s.syncLiveness(ctx)
	scheduling := make(chan struct{})
	go func() { defer close(scheduling); s.runScheduling(ctx) }()
	defer func() { <-scheduling }()

	ticker := time.NewTicker(s.config.ReconcileInterval)
	defer ticker.Stop()
	for {
		s.reconcileMembers()
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-s.reconcileCh:
		}
	}
}

// reconcileMembers makes the raft configuration follow gossip: alive
// servers of this region become voters; servers that left are removed.
// Failed servers stay voters (they may come back); operators remove them
// with "skiff operator raft remove-peer".
func (s *Server) reconcileMembers() {
	future := s.raft.GetConfiguration()
	if err := future.Error(); err != nil {
		s.logger.Error("read raft configuration", "error", err)
		return
	}
	inRaft := map[raft.ServerID]raft.Server{}
	for _, srv := range future.Configuration().Servers {
		inRaft[srv.ID] = srv
	}
	failed := map[raft.ServerID]string{} // raft voters that gossip sees failed
	for _, m := range s.serf.Members() {
		p, ok := parseServer(m)
		if !ok || p.Region != s.config.Region || p.ID == s.nodeID {
			continue
		}
		id := raft.ServerID(p.ID)
		cur, known := inRaft[id]
		if m.Status == serf.StatusFailed && known {
			failed[id] = p.Name
		}
		switch m.Status {
		case serf.StatusAlive:
			if known && string(cur.Address) == p.RPCAddr {
				continue
			}
			if missing := missingFeatures(m.Tags[tagLogFeatures]); !known && len(missing) > 0 {
				s.logger.Warn("not adding server to raft: its build cannot read the raft log and snapshots this cluster writes; "+
					"upgrade it to this server's build or newer", "server", p.Name, "id", p.ID, "build", m.Tags[tagVersion],
					"this_build", Version, "missing_log_features", strings.Join(missing, ","))
				continue
			}
			s.logger.Info("adding server to raft", "server", p.Name, "id", p.ID, "addr", p.RPCAddr)
			if err := s.raft.AddVoter(id, raft.ServerAddress(p.RPCAddr), 0, 0).Error(); err != nil {
				s.logger.Error("add raft voter", "server", p.Name, "error", err)
			}
		case serf.StatusLeft:
			if !known {
				continue
			}
			s.logger.Info("removing server that left from raft", "server", p.Name, "id", p.ID)
			if err := s.raft.RemoveServer(id, 0, 0).Error(); err != nil {
				s.logger.Error("remove raft server", "server", p.Name, "error", err)
			}
		}
	}
	s.removeDeadServers(future.Configuration(), failed)
}

// removeDeadServers removes from raft the voters that gossip has seen
// failed for longer than DeadServerCleanup (autopilot's dead-server
// clean-up), one at a time and only while the voters that stay, alive,
// are a majority of the new configuration: a cluster that lost quorum is
// never shrunk into a smaller one that pretends to have it.
func (s *Server) removeDeadServers(cfg raft.Configuration, failed map[raft.ServerID]string) {
	if s.config.DeadServerCleanup <= 0 {
		return
	}
	if s.failedSince == nil {
		s.failedSince = map[raft.ServerID]time.Time{}
	}
	for id := range s.failedSince {
		if _, still := failed[id]; !still {
			delete(s.failedSince, id) // back, or gone from raft
		}
	}
	now := time.Now()
	voters, alive := 0, 0
	for _, srv := range cfg.Servers {
		if srv.Suffrage != raft.Voter {
			continue
		}
		voters++
		if _, dead := failed[srv.ID]; !dead {
			alive++
		}
	}
	for _, srv := range cfg.Servers {
		name, dead := failed[srv.ID]
		if !dead {
			continue
		}
		since, seen := s.failedSince[srv.ID]
		if !seen {
			s.failedSince[srv.ID] = now
			continue
		}
		if now.Sub(since) < s.config.DeadServerCleanup {
			continue
		}
		after := voters - 1
		if alive < after/2+1 {
			s.logger.Warn("not removing a dead server: the servers left would not be a healthy majority", "server", name, "alive", alive, "voters", voters)
			return
		}
		s.logger.Info("removing a server that has been dead longer than dead_server_cleanup", "server", name, "id", srv.ID, "dead_for", now.Sub(since).Round(time.Second))
		if err := s.raft.RemoveServer(srv.ID, 0, 0).Error(); err != nil {
			s.logger.Error("remove dead raft server", "server", name, "error", err)
			return
		}
		delete(s.failedSince, srv.ID)
		return // one at a time; the next round sees the new configuration
	}
}
