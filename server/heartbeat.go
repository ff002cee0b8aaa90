package server

import (
	"math/rand/v2"
	"sync"
	"time"

	"github.com/skiffhq/skiff/state"
	"github.com/skiffhq/skiff/structs"
)

// heartbeats holds the leader's timer per client node: a node that does
// not heartbeat within its TTL is marked down (and the jobs with
// allocations on it are re-evaluated). Only the leader keeps timers; a new
// leader starts them all with a grace period, so that clients are not
// marked down en masse while they find it.
type heartbeats struct {
	mu     sync.Mutex
	timers map[string]*time.Timer // node ID -> expiry; guarded by mu
	gen    uint64                 // bumped by clearHeartbeats; guarded by mu
	// running counts expiry callbacks in progress, so clearHeartbeats can
	// wait for them (nothing of a stopped server runs after Shutdown).
	running sync.WaitGroup
}

// heartbeatTTL is the TTL handed to a node: at least MinHeartbeatTTL, and
// long enough that all nodes together send at most MaxHeartbeatsPerSecond,
// plus up to a quarter of jitter so that nodes do not beat in step.
func (s *Server) heartbeatTTL(numNodes int) time.Duration {
	ttl := s.config.MinHeartbeatTTL
	if rate := s.config.MaxHeartbeatsPerSecond; rate > 0 {
		ttl = max(ttl, time.Duration(float64(numNodes)/rate*float64(time.Second)))
	}
	return ttl + time.Duration(rand.Int64N(int64(ttl)/4+1))
}

// resetHeartbeat (re)starts a node's timer on the leader.
func (s *Server) resetHeartbeat(nodeID string, ttl time.Duration) {
	h := &s.heartbeats
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.timers == nil {
		h.timers = map[string]*time.Timer{}
	}
	if t, ok := h.timers[nodeID]; ok {
		t.Reset(ttl)
		return
	}
	gen := h.gen
	h.timers[nodeID] = time.AfterFunc(ttl, func() {
		h.mu.Lock()
		if h.gen != gen {
			h.mu.Unlock()
			return // cleared meanwhile: leadership lost or shutting down
		}
		h.running.Add(1)
		h.mu.Unlock()
		defer h.running.Done()
		s.heartbeatExpired(nodeID)
	})
}

// clearHeartbeats stops every timer (leadership lost, or shutdown).
// Expiries already running are waited for.
func (s *Server) clearHeartbeats() {
	h := &s.heartbeats
	h.mu.Lock()
	h.gen++
	for id, t := range h.timers {
		t.Stop()
		delete(h.timers, id)
	}
	h.mu.Unlock()
	h.running.Wait()
}

func (s *Server) forgetHeartbeat(nodeID string) {
	h := &s.heartbeats
	h.mu.Lock()
	defer h.mu.Unlock()
	if t, ok := h.timers[nodeID]; ok {
		t.Stop()
		delete(h.timers, nodeID)
	}
}

// initHeartbeats starts a timer for every node that is not down, with the
// failover grace on top of its TTL. The leader calls it on taking office.
func (s *Server) initHeartbeats() {
	nodes, err := s.fsm.State().Nodes(nil)
	if err != nil {
		s.logger.Error("read nodes for heartbeat timers", "error", err)
		return
	}
	for _, n := range nodes {
		if n.Status == structs.NodeStatusDown {
			continue
		}
		s.resetHeartbeat(n.ID, s.heartbeatTTL(len(nodes))+s.config.HeartbeatGrace)
	}
}

// heartbeatExpired marks a silent node down through raft, with an
// evaluation for every job that has allocations on it. A node that runs
// allocations of groups with a disconnect block is marked disconnected
// first, and down once the longest of their lost_after has passed.
func (s *Server) heartbeatExpired(nodeID string) {
	s.forgetHeartbeat(nodeID)
	if !s.IsLeader() {
		return
	}
	snap := s.fsm.State().Snapshot()
	node, err := snap.NodeByID(nil, nodeID)
	if err != nil || node == nil || node.Status == structs.NodeStatusDown {
		return
	}
	status := structs.NodeStatusDown
	window, err := disconnectWindow(snap, nodeID)
	if err != nil {
		s.logger.Error("read allocations of a silent node", "node_id", nodeID, "error", err)
	}
	if window > 0 {
		if node.Status != structs.NodeStatusDisconnected {
			status = structs.NodeStatusDisconnected
		} else if left := time.Until(time.Unix(node.StatusUpdatedAt, 0).Add(window)); left > 0 {
			s.resetHeartbeat(nodeID, left) // not yet lost (e.g. timers restarted by a new leader)
			return
		}
	}
	if status == structs.NodeStatusDisconnected {
		s.logger.Warn("node missed its heartbeat; marking it disconnected", "node_id", nodeID, "node", node.Name, "lost_after", window)
	} else {
		s.logger.Warn("node missed its heartbeat; marking it down", "node_id", nodeID, "node", node.Name)
	}
	req := &structs.NodeUpdateStatusRequest{NodeID: nodeID, Status: status, UpdatedAt: time.Now().Unix()}
	req.Evals, err = s.nodeEvals(nodeID)
	if err != nil {
		s.logger.Error("build evaluations for a silent node", "node_id", nodeID, "error", err)
	}
	if _, err := s.commitNodeChange(structs.NodeUpdateStatusRequestType, req, req.Evals, nil); err != nil {
		s.logger.Error("mark node "+status, "node_id", nodeID, "error", err)
		return
	}
	if status == structs.NodeStatusDisconnected {
		s.resetHeartbeat(nodeID, window) // down when the window ends, unless it returns
	}
}

// disconnectWindow is how long a silent node may stay disconnected before
// it is down: the longest lost_after of the groups that have allocations
// on it, or 0 when none tolerates a disconnect.
func disconnectWindow(snap *state.Snapshot, nodeID string) (time.Duration, error) {
	allocs, err := snap.AllocsByNode(nil, nodeID)
	if err != nil {
		return 0, err
	}
	var w time.Duration
	for _, a := range allocs {
		if a.TerminalStatus() || a.DesiredStatus != structs.AllocDesiredStatusRun || a.Job == nil {
			continue
		}
		if tg := a.Job.LookupTaskGroup(a.TaskGroup); tg != nil && tg.Disconnect != nil {
			w = max(w, tg.Disconnect.LostAfter)
		}
	}
	return w, nil
}

// nodeEvals returns one node-update evaluation per job with a
// non-terminal allocation on the node, and one per system job (which may
// now place on, or must leave, the node).
func (s *Server) nodeEvals(nodeID string) ([]*structs.Evaluation, error) {
	snap := s.fsm.State().Snapshot()
	allocs, err := snap.AllocsByNode(nil, nodeID)
	if err != nil {
		return nil, err
	}
	seen := map[structs.NamespacedID]bool{}
	var evals []*structs.Evaluation
	add := func(job *structs.Job) {
		key := job.NamespacedID()
		if seen[key] {
			return
		}
		seen[key] = true
		ev := jobEval(job, structs.EvalTriggerNodeUpdate)
		ev.NodeID = nodeID
		evals = append(evals, ev)
	}
	for _, a := range allocs {
		if a.TerminalStatus() || a.Job == nil {
			continue
		}
		add(a.Job)
	}
	jobs, err := snap.Jobs(nil)
	if err != nil {
		return nil, err
	}
	for _, j := range jobs {
		if !j.Stop && (j.Type == structs.JobTypeSystem || j.Type == structs.JobTypeSysBatch) {
			add(j)
		}
	}
	return evals, nil
}
