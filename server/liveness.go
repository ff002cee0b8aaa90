package server

import (
	"net"
	"sync"

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

// liveness is the leader's view of each node's newest liveness connection.
type liveness struct {
	mu    sync.Mutex
	nodes map[string]livenessMark // guarded by mu
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
	s.reportLiveness(*hello, true)
	skiffrpc.WaitLivenessEnd(conn)
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
