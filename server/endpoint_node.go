package server

import (
	"fmt"
	"time"

	"github.com/skiffhq/skiff/structs"
)

// Register registers or re-registers a client node and starts its
// heartbeat timer. A node ID already registered with another secret is
// refused, so one machine cannot take over another's identity.
func (n *Node) Register(args *structs.NodeRegisterRequest, reply *structs.NodeUpdateResponse) error {
	return n.srv.write("Node.Register", args, reply, func() error { return n.register(args, reply) })
}

func (n *Node) register(args *structs.NodeRegisterRequest, reply *structs.NodeUpdateResponse) error {
	node := args.Node
	switch {
	case node == nil:
		return fmt.Errorf("%w: the request has no Node", ErrBadRequest)
	case len(node.ID) != 36:
		return fmt.Errorf("%w: node ID %q is not a UUID", ErrBadRequest, node.ID)
	case node.SecretID == "":
		return fmt.Errorf("%w: node %s has no secret ID", ErrBadRequest, node.ID)
	case node.Datacenter == "":
		return fmt.Errorf("%w: node %s has no datacenter", ErrBadRequest, node.ID)
	}
	// The secret check is made by the FSM, where the write is applied.
	if node.Status == "" {
		node.Status = structs.NodeStatusReady
	}
	if node.SchedulingEligibility == "" {
		node.SchedulingEligibility = structs.NodeSchedulingEligible
	}
	if node.NodePool == "" {
		node.NodePool = structs.DefaultNodePool
	}
	node.StatusUpdatedAt = time.Now().Unix()
	node.ComputeClass()
	prev, err := n.srv.fsm.State().NodeByID(nil, node.ID)
	if err != nil {
		return err
	}
	// A node that is new or comes back ready may take system jobs.
	becameReady := node.Status == structs.NodeStatusReady && (prev == nil || prev.Status != structs.NodeStatusReady)
	args.Evals = nil
	if becameReady {
		if args.Evals, err = n.srv.nodeEvals(node.ID); err != nil {
			return err
		}
	}
	var wake *structs.Node
	if becameReady || prev == nil || prev.ComputedClass != node.ComputedClass {
		wake = node
	}
	c, err := n.srv.commitNodeChange(structs.NodeRegisterRequestType, args, args.Evals, wake)
	if err != nil {
		return err
	}
	reply.EvalIDs, reply.EvalCreateIndex = c.evalIDs, c.evalIndex
	n.srv.fillNodeReply(reply, node.ID, c.index)
	return nil
}

// UpdateStatus changes a node's status; clients call it with their
// current status as their heartbeat, which resets the node's TTL without
// a raft write when nothing changed.
func (n *Node) UpdateStatus(args *structs.NodeUpdateStatusRequest, reply *structs.NodeUpdateResponse) error {
	return n.srv.write("Node.UpdateStatus", args, reply, func() error { return n.updateStatus(args, reply) })
}

func (n *Node) updateStatus(args *structs.NodeUpdateStatusRequest, reply *structs.NodeUpdateResponse) error {
	switch args.Status {
	case structs.NodeStatusInit, structs.NodeStatusReady, structs.NodeStatusDown:
	default:
		return fmt.Errorf("%w: node status %q is not one of initializing, ready, down", ErrBadRequest, args.Status)
	}
	node, err := n.srv.nodeWithSecret(n.srv.fsm.State().Snapshot(), args.NodeID, args.SecretID)
	if err != nil {
		return err
	}
	index := node.ModifyIndex
	if node.Status != args.Status {
		args.UpdatedAt = time.Now().Unix()
		args.Evals = nil
		toReady := args.Status == structs.NodeStatusReady && node.Status != structs.NodeStatusReady
		if args.Status == structs.NodeStatusDown || toReady {
			if args.Evals, err = n.srv.nodeEvals(args.NodeID); err != nil {
				return err
			}
		}
		var wake *structs.Node
		if args.Status == structs.NodeStatusReady {
			wake = node
		}
		c, err := n.srv.commitNodeChange(structs.NodeUpdateStatusRequestType, args, args.Evals, wake)
		if err != nil {
			return err
		}
		index = c.index
		reply.EvalIDs, reply.EvalCreateIndex = c.evalIDs, c.evalIndex
	}
	if args.Status == structs.NodeStatusDown {
		n.srv.forgetHeartbeat(args.NodeID)
		reply.Index = index
		return nil
	}
	n.srv.fillNodeReply(reply, args.NodeID, index)
	return nil
}

// Deregister removes nodes.
func (n *Node) Deregister(args *structs.NodeDeregisterRequest, reply *structs.GenericResponse) error {
	return n.srv.write("Node.Deregister", args, reply, func() error {
		if len(args.NodeIDs) == 0 {
			return fmt.Errorf("%w: no node IDs given", ErrBadRequest)
		}
		index, err := n.srv.raftApply(structs.NodeDeregisterRequestType, args)
		if err != nil {
			return err
		}
		for _, id := range args.NodeIDs {
			n.srv.forgetHeartbeat(id)
		}
		reply.Index = index
		return nil
	})
}

// fillNodeReply restarts the node's heartbeat timer and tells it when to
// beat next and where the servers are.
func (s *Server) fillNodeReply(reply *structs.NodeUpdateResponse, nodeID string, index uint64) {
	view := s.clusterView()
	ttl := s.heartbeatTTL(view.nodes)
	s.resetHeartbeat(nodeID, ttl)
	reply.HeartbeatTTL = ttl
	reply.NodeModifyIndex = index
	reply.Index = index
	reply.LeaderRPCAddr = s.RPCAddr()
	reply.Servers = view.servers
}

// clusterSnapshot is what every heartbeat reply needs: the node count for
// the TTL and the servers' addresses. Heartbeats are the hottest RPC, so
// it is cached for a second rather than read (all nodes, and the raft
// configuration through raft's loop) on every call.
type clusterSnapshot struct {
	at      time.Time
	nodes   int
	servers []string
}

func (s *Server) clusterView() *clusterSnapshot {
	if v := s.cluster.Load(); v != nil && time.Since(v.at) < time.Second {
		return v
	}
	v := &clusterSnapshot{at: time.Now()}
	if nodes, err := s.fsm.State().Nodes(nil); err == nil {
		v.nodes = len(nodes)
	}
	if f := s.raft.GetConfiguration(); f.Error() == nil {
		for _, srv := range f.Configuration().Servers {
			v.servers = append(v.servers, string(srv.Address))
		}
	}
	s.cluster.Store(v)
	return v
}

// UpdateEligibility marks a node eligible or ineligible for new
// placements. A node made eligible again may take system jobs and wakes
// blocked evaluations that could use it.
func (n *Node) UpdateEligibility(args *structs.NodeUpdateEligibilityRequest, reply *structs.NodeEligibilityUpdateResponse) error {
	return n.srv.write("Node.UpdateEligibility", args, reply, func() error {
		switch args.Eligibility {
		case structs.NodeSchedulingEligible, structs.NodeSchedulingIneligible:
		default:
			return fmt.Errorf("%w: eligibility %q is not one of eligible, ineligible", ErrBadRequest, args.Eligibility)
		}
		node, err := n.srv.nodeByID(args.NodeID)
		if err != nil {
			return err
		}
		if node.SchedulingEligibility == args.Eligibility {
			reply.NodeModifyIndex, reply.Index = node.ModifyIndex, node.ModifyIndex
			return nil
		}
		if node.DrainStrategy != nil && args.Eligibility == structs.NodeSchedulingEligible {
			// Stored, it would make the node take placements once its drain ends.
			return fmt.Errorf("%w: node %s is draining, and a drain keeps it ineligible; to make it eligible, end the drain with \"skiff node drain -disable -keep-ineligible=false %s\"",
				ErrBadRequest, node.ID, node.ID)
		}
		args.Evals = nil
		eligible := args.Eligibility == structs.NodeSchedulingEligible
		if eligible {
			if args.Evals, err = n.srv.nodeEvals(args.NodeID); err != nil {
				return err
			}
		}
		var wake *structs.Node
		if eligible {
			wake = node
		}
		c, err := n.srv.commitNodeChange(structs.NodeUpdateEligibilityType, args, args.Evals, wake)
		if err != nil {
			return err
		}
		reply.EvalIDs, reply.EvalCreateIndex = c.evalIDs, c.evalIndex
		reply.NodeModifyIndex, reply.Index = c.index, c.index
		return nil
	})
}

// UpdateDrain starts or stops draining a node. Draining makes the node
// ineligible at once; the leader's drainer then moves its allocations at
// the pace of their groups' migrate blocks (see drainer). Stopping a drain
// leaves the node ineligible unless MarkEligible.
func (n *Node) UpdateDrain(args *structs.NodeUpdateDrainRequest, reply *structs.NodeDrainUpdateResponse) error {
	return n.srv.write("Node.UpdateDrain", args, reply, func() error {
		node, err := n.srv.nodeByID(args.NodeID)
		if err != nil {
			return err
		}
		now := time.Now()
		args.Evals = nil
		if ds := args.DrainStrategy; ds != nil {
			ds.StartedAt = now
			ds.ForceDeadline = time.Time{}
			switch {
			case ds.Deadline < 0: // force: everything leaves now
				ds.ForceDeadline = now
			case ds.Deadline > 0:
				ds.ForceDeadline = now.Add(ds.Deadline)
			}
			args.MarkEligible = false
		} else if args.MarkEligible {
			if args.Evals, err = n.srv.nodeEvals(args.NodeID); err != nil {
				return err
			}
		}
		var wake *structs.Node
		if args.DrainStrategy == nil && args.MarkEligible {
			wake = node
		}
		c, err := n.srv.commitNodeChange(structs.NodeUpdateDrainType, args, args.Evals, wake)
		if err != nil {
			return err
		}
		reply.EvalIDs, reply.EvalCreateIndex = c.evalIDs, c.evalIndex
		reply.NodeModifyIndex, reply.Index = c.index, c.index
		return nil
	})
}

// nodeCommit is what commitNodeChange did.
type nodeCommit struct {
	index     uint64   // raft index of the change
	evalIDs   []string // evaluations created with it
	evalIndex uint64   // index they were created at, 0 if none
}

// commitNodeChange commits a node change with the evaluations it creates
// in one raft entry, hands them to the broker, and, when wake is set
// (capacity appeared on that node), wakes the blocked evaluations of its
// class.
func (s *Server) commitNodeChange(t structs.MessageType, msg any, evals []*structs.Evaluation, wake *structs.Node) (*nodeCommit, error) {
	index, err := s.raftApply(t, msg)
	if err != nil {
		return nil, err
	}
	s.enqueueEvals(index, evals...)
	c := &nodeCommit{index: index}
	for _, ev := range evals {
		c.evalIDs = append(c.evalIDs, ev.ID)
	}
	if len(evals) > 0 {
		c.evalIndex = index
	}
	if wake != nil {
		s.blocked.Unblock(wake.FeasibilityClass(), index)
	}
	return c, nil
}

// nodeByID returns a registered node, or an error that says it is not.
func (s *Server) nodeByID(id string) (*structs.Node, error) {
	node, err := s.fsm.State().NodeByID(nil, id)
	if err != nil {
		return nil, err
	}
	if node == nil {
		return nil, fmt.Errorf("node %s %w; check the ID with \"skiff node status\"", id, structs.ErrNotFound)
	}
	return node, nil
}
