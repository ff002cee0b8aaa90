package server

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/serf/serf"

	skiffrpc "github.com/skiffhq/skiff/rpc"
	"github.com/skiffhq/skiff/structs"
)

// Fast failure detection. Every client holds a liveness connection to one
// server (rpc.ConnLiveness). When it ends, the server tells the leader,
// which gives the node NodeReconnectGrace to show it is alive (a heartbeat,
// or a new liveness connection to any server) before its heartbeat timer
// expires and it is marked down. A client whose process dies is noticed at
// once (its kernel closes the connection); one whose machine or network
// goes silent, within rpc.LivenessKeepAlive (5 s). The heartbeat TTL,
// which stretches with the cluster's size, stays the backstop for a
// client that is alive on the wire but no longer heartbeats.

// liveness is the leader's view of each node's newest liveness connection,
// and (on every server) the connections this server holds.
type liveness struct {
	mu    sync.Mutex
	nodes map[string]livenessMark // guarded by mu; the leader's view
	held  map[string]uint64       // guarded by mu; node ID -> generation held here
}

type livenessMark struct {
	gen  uint64
	lost bool
}

// note records an event and reports whether it is news: an event of an
// older connection than the newest seen, or a "connected" of a connection
// already known to be lost (the two travel separately), changes nothing.
func (l *liveness) note(nodeID string, gen uint64, connected bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.nodes == nil {
		l.nodes = map[string]livenessMark{}
	}
	m, ok := l.nodes[nodeID]
	if ok && (gen < m.gen || gen == m.gen && (m.lost || connected)) {
		return false
	}
	l.nodes[nodeID] = livenessMark{gen: gen, lost: !connected}
	return true
}

func (l *liveness) clear() {
	l.mu.Lock()
	l.nodes = nil
	l.mu.Unlock()
}

// hold records a connection this server holds; release forgets it unless
// a newer one of the node replaced it.
func (l *liveness) hold(nodeID string, gen uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held == nil {
		l.held = map[string]uint64{}
	}
	if gen >= l.held[nodeID] {
		l.held[nodeID] = gen
	}
}

func (l *liveness) release(nodeID string, gen uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[nodeID] == gen {
		delete(l.held, nodeID)
	}
}

func (l *liveness) heldNow() map[string]uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]uint64, len(l.held))
	for k, v := range l.held {
		out[k] = v
	}
	return out
}

// serveLiveness holds one client's liveness connection (any server).
func (s *Server) serveLiveness(conn net.Conn) {
	hello, err := skiffrpc.ReadLivenessHello(conn)
	if err != nil {
		return
	}
	refusal := ""
	if _, err := s.nodeWithSecret(s.fsm.State().Snapshot(), hello.NodeID, hello.SecretID); err != nil {
		refusal = err.Error()
	}
	if err := skiffrpc.AnswerLivenessHello(conn, refusal); err != nil || refusal != "" {
		return
	}
	s.liveness.hold(hello.NodeID, hello.Generation)
	s.reportLiveness(*hello, true)
	_ = skiffrpc.WaitLivenessEnd(conn)
	s.liveness.release(hello.NodeID, hello.Generation)
	if s.shutdownCtx.Err() != nil {
		return // this server is stopping: its clients are not the ones gone
	}
	s.reportLiveness(*hello, false)
}

// reportLiveness tells the leader about a liveness connection, in the
// background: the connection's handler does not wait for the leader.
func (s *Server) reportLiveness(req structs.NodeLivenessRequest, connected bool) {
	req.Connected = connected
	req.Region = s.config.Region
	s.goFunc(func() {
		var reply structs.GenericResponse
		if err := (&Node{srv: s}).Liveness(&req, &reply); err != nil && s.shutdownCtx.Err() == nil {
			s.logger.Debug("report node liveness to the leader", "node_id", req.NodeID, "connected", connected, "error", err)
		}
	})
}

// Liveness is how a server holding a client's liveness connection tells
// the leader it started or ended. It writes nothing to raft: it moves the
// node's heartbeat timer, which only the leader keeps.
func (n *Node) Liveness(args *structs.NodeLivenessRequest, reply *structs.GenericResponse) error {
	return n.srv.write("Node.Liveness", args, reply, func() error {
		node, err := n.srv.nodeWithSecret(n.srv.fsm.State().Snapshot(), args.NodeID, args.SecretID)
		if err != nil {
			return err
		}
		if node.Status == structs.NodeStatusDown || !n.srv.liveness.note(args.NodeID, args.Generation, args.Connected) {
			return nil
		}
		if args.Connected {
			n.srv.resetHeartbeat(args.NodeID, n.srv.heartbeatTTL(n.srv.clusterView().nodes))
			return nil
		}
		n.srv.logger.Info("node lost its connection; marking it down unless it returns",
			"node_id", args.NodeID, "node", node.Name, "grace", n.srv.config.NodeReconnectGrace)
		n.srv.resetHeartbeat(args.NodeID, n.srv.config.NodeReconnectGrace)
		return nil
	})
}

// LivenessHeld answers, from this server alone, which liveness
// connections it holds.
func (st *Status) LivenessHeld(args *structs.GenericRequest, reply *structs.LivenessHeldResponse) error {
	reply.Nodes = st.srv.liveness.heldNow()
	return nil
}

// syncLiveness runs on a new leader. The old leader's view of liveness
// connections is gone, and initHeartbeats gave every node its TTL plus
// the failover grace, so a node that died around the change would wait
// all of that. Once clients whose server went away have had time to
// connect again (settle), the new leader asks every live server which
// connections it holds; a node that announced a liveness connection
// (AttrLiveness) and holds none anywhere gets NodeReconnectGrace, as if
// its connection had just ended. If a live server does not answer, it
// tries again a little later, and after a few tries leaves it to the
// TTL: a node is never cut short on partial knowledge.
func (s *Server) syncLiveness(ctx context.Context) {
	settle := s.config.NodeReconnectGrace + 2*time.Second
	for range 4 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(settle):
		}
		held, ok := s.gatherLiveness(ctx)
		if !ok {
			continue
		}
		nodes, err := s.fsm.State().Nodes(nil)
		if err != nil {
			return
		}
		fresh := time.Now().Add(-settle).Unix()
		for _, n := range nodes {
			if n.Attributes[structs.AttrLiveness] != "1" || held[n.ID] ||
				(n.Status != structs.NodeStatusReady && n.Status != structs.NodeStatusInit) {
				continue
			}
			if n.StatusUpdatedAt > fresh {
				continue // it just registered or came back: it may still be connecting
			}
			s.logger.Info("node holds no liveness connection after the leader change; marking it down unless it returns",
				"node_id", n.ID, "node", n.Name, "grace", s.config.NodeReconnectGrace)
			s.resetHeartbeat(n.ID, s.config.NodeReconnectGrace)
		}
		return
	}
}

// gatherLiveness collects the liveness connections every live server of
// the region holds; false if one of them did not answer.
func (s *Server) gatherLiveness(ctx context.Context) (map[string]bool, bool) {
	held := map[string]bool{}
	for id := range s.liveness.heldNow() {
		held[id] = true
	}
	for _, m := range s.serf.Members() {
		p, ok := parseServer(m)
		if !ok || p.Region != s.config.Region || p.RPCAddr == s.RPCAddr() {
			continue
		}
		if p.Status != serf.StatusAlive {
			continue // dead or gone: its clients have moved on or are gone too
		}
		var reply structs.LivenessHeldResponse
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := s.pool.Call(cctx, p.RPCAddr, "Status.LivenessHeld", &structs.GenericRequest{}, &reply)
		cancel()
		if err != nil {
			s.logger.Debug("ask a server for its liveness connections", "server", p.Name, "error", err)
			return nil, false
		}
		for id := range reply.Nodes {
			held[id] = true
		}
	}
	return held, true
}
