package server

import (
	"github.com/hashicorp/go-memdb"

	"github.com/skiffhq/skiff/state"
	"github.com/skiffhq/skiff/structs"
)

// Eval reads evaluations.
type Eval struct{ srv *Server }

// GetEval returns one evaluation, nil if absent.
func (e *Eval) GetEval(args *structs.EvalSpecificRequest, reply *structs.SingleEvalResponse) error {
	if done, err := e.srv.forward("Eval.GetEval", args, args, reply); done {
		return err
	}
	return e.srv.blockingQuery("Eval.GetEval", &args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, snap *state.Snapshot) (uint64, error) {
		ev, err := snap.EvalByID(ws, args.EvalID)
		if err != nil {
			return 0, err
		}
		reply.Eval = ev
		if ev != nil {
			return ev.ModifyIndex, nil
		}
		return snap.MaxIndex(state.TableEvals)
	})
}

// List lists evaluations by ID prefix.
func (e *Eval) List(args *structs.GenericRequest, reply *structs.EvalListResponse) error {
	if done, err := e.srv.forward("Eval.List", args, args, reply); done {
		return err
	}
	return e.srv.blockingQuery("Eval.List", &args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, snap *state.Snapshot) (uint64, error) {
		evals, err := snap.EvalsByIDPrefix(ws, namespaceOf(args.Namespace), args.Prefix)
		if err != nil {
			return 0, err
		}
		reply.Evaluations = evals
		return snap.MaxIndex(state.TableEvals)
	})
}

// Allocations lists the allocations an evaluation made.
func (e *Eval) Allocations(args *structs.EvalSpecificRequest, reply *structs.JobAllocationsResponse) error {
	if done, err := e.srv.forward("Eval.Allocations", args, args, reply); done {
		return err
	}
	return e.srv.blockingQuery("Eval.Allocations", &args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, snap *state.Snapshot) (uint64, error) {
		allocs, err := snap.AllocsByEval(ws, args.EvalID)
		if err != nil {
			return 0, err
		}
		reply.Allocations = stubs(allocs)
		return snap.MaxIndex(state.TableAllocs)
	})
}

func stubs(allocs []*structs.Allocation) []*structs.AllocListStub {
	out := make([]*structs.AllocListStub, 0, len(allocs))
	for _, a := range allocs {
		out = append(out, a.Stub())
	}
	return out
}

// The request and reply types of these endpoints live in structs, whose
// msgpack codecs are generated: a type declared here that embedded
// structs.QueryOptions would inherit its generated encoder and lose its
// own fields on the wire.
type (
	AllocSpecificRequest = structs.AllocSpecificRequest
	SingleAllocResponse  = structs.SingleAllocResponse
	NodeSpecificRequest  = structs.NodeSpecificRequest
	SingleNodeResponse   = structs.SingleNodeResponse
	NodeListResponse     = structs.NodeListResponse
)

// Alloc reads allocations.
type Alloc struct{ srv *Server }

// GetAlloc returns one allocation.
func (a *Alloc) GetAlloc(args *AllocSpecificRequest, reply *SingleAllocResponse) error {
	if done, err := a.srv.forward("Alloc.GetAlloc", args, args, reply); done {
		return err
	}
	return a.srv.blockingQuery("Alloc.GetAlloc", &args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, snap *state.Snapshot) (uint64, error) {
		al, err := snap.AllocByID(ws, args.AllocID)
		if err != nil {
			return 0, err
		}
		reply.Alloc = al
		if al != nil {
			return al.ModifyIndex, nil
		}
		return snap.MaxIndex(state.TableAllocs)
	})
}

// List lists allocations by ID prefix.
func (a *Alloc) List(args *structs.GenericRequest, reply *structs.JobAllocationsResponse) error {
	if done, err := a.srv.forward("Alloc.List", args, args, reply); done {
		return err
	}
	return a.srv.blockingQuery("Alloc.List", &args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, snap *state.Snapshot) (uint64, error) {
		allocs, err := snap.AllocsByIDPrefix(ws, namespaceOf(args.Namespace), args.Prefix)
		if err != nil {
			return 0, err
		}
		reply.Allocations = stubs(allocs)
		return snap.MaxIndex(state.TableAllocs)
	})
}

// Node reads nodes. Clients register through it in a later version.
type Node struct{ srv *Server }

// GetNode returns one node.
func (n *Node) GetNode(args *NodeSpecificRequest, reply *SingleNodeResponse) error {
	if done, err := n.srv.forward("Node.GetNode", args, args, reply); done {
		return err
	}
	return n.srv.blockingQuery("Node.GetNode", &args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, snap *state.Snapshot) (uint64, error) {
		node, err := snap.NodeByID(ws, args.NodeID)
		if err != nil {
			return 0, err
		}
		reply.Node = node
		if node != nil {
			return node.ModifyIndex, nil
		}
		return snap.MaxIndex(state.TableNodes)
	})
}

// List lists nodes by ID prefix.
func (n *Node) List(args *structs.GenericRequest, reply *NodeListResponse) error {
	if done, err := n.srv.forward("Node.List", args, args, reply); done {
		return err
	}
	return n.srv.blockingQuery("Node.List", &args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, snap *state.Snapshot) (uint64, error) {
		nodes, err := snap.NodesByIDPrefix(ws, args.Prefix)
		if err != nil {
			return 0, err
		}
		reply.Nodes = make([]*structs.NodeListStub, 0, len(nodes))
		for _, node := range nodes {
			reply.Nodes = append(reply.Nodes, node.Stub())
		}
		return snap.MaxIndex(state.TableNodes)
	})
}

// GetAllocs returns the allocations placed on one node, in full (as
// Nomad's /v1/node/:id/allocations does).
func (n *Node) GetAllocs(args *NodeSpecificRequest, reply *structs.AllocsGetResponse) error {
	if done, err := n.srv.forward("Node.GetAllocs", args, args, reply); done {
		return err
	}
	return n.srv.blockingQuery("Node.GetAllocs", &args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, snap *state.Snapshot) (uint64, error) {
		allocs, err := snap.AllocsByNode(ws, args.NodeID)
		if err != nil {
			return 0, err
		}
		reply.Allocs = allocs
		return snap.MaxIndex(state.TableAllocs)
	})
}
