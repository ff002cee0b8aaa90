package server

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/skiffhq/skiff/state"
	"github.com/skiffhq/skiff/structs"
)

// The RPCs client agents call: the blocking pull of their allocations, the
// fetch of changed ones, and status updates. Each is authenticated by the
// node's secret ID.

// maxAllocUpdates bounds one UpdateAlloc call; clients batch below it.
const maxAllocUpdates = 1024

// nodeWithSecret returns the node if secretID is its secret.
func (s *Server) nodeWithSecret(snap *state.Snapshot, nodeID, secretID string) (*structs.Node, error) {
	node, err := snap.NodeByID(nil, nodeID)
	if err != nil {
		return nil, err
	}
	if node == nil {
		return nil, fmt.Errorf("node %s %w; register it first", nodeID, structs.ErrNotFound)
	}
	if node.SecretID != secretID {
		return nil, fmt.Errorf("%w: wrong secret ID for node %s", structs.ErrNodeSecret, nodeID)
	}
	return node, nil
}

// GetClientAllocs answers a client's blocking pull: the IDs and
// AllocModifyIndex of every allocation on its node. The index it returns
// rises only when one of the node's own allocations changes, so a pull
// wakes for its node, not for every write to the cluster.
func (n *Node) GetClientAllocs(args *structs.NodeClientAllocsRequest, reply *structs.NodeClientAllocsResponse) error {
	if done, err := n.srv.forward("Node.GetClientAllocs", args, args, reply); done {
		return err
	}
	if _, err := n.srv.nodeWithSecret(n.srv.fsm.State().Snapshot(), args.NodeID, args.SecretID); err != nil {
		return err
	}
	return n.srv.blockingQuery("Node.GetClientAllocs", &args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, snap *state.Snapshot) (uint64, error) {
		allocs, err := snap.AllocsByNode(ws, args.NodeID)
		if err != nil {
			return 0, err
		}
		reply.Allocs = make(map[string]uint64, len(allocs))
		var idx uint64
		for _, a := range allocs {
			reply.Allocs[a.ID] = a.AllocModifyIndex
			idx = max(idx, a.ModifyIndex)
		}
		if idx == 0 {
			// No allocations: answer with the node's own index, which
			// any later placement on it exceeds.
			node, err := snap.NodeByID(ws, args.NodeID)
			if err != nil {
				return 0, err
			}
			if node != nil {
				idx = node.ModifyIndex
			}
		}
		return idx, nil
	})
}

// GetAllocs returns allocations by ID. A client passes the index its pull
// returned, minus one, as MinQueryIndex, so a follower answers only once
// it has applied what the pull reported.
func (a *Alloc) GetAllocs(args *structs.AllocsGetRequest, reply *structs.AllocsGetResponse) error {
	if done, err := a.srv.forward("Alloc.GetAllocs", args, args, reply); done {
		return err
	}
	if len(args.AllocIDs) > maxAllocUpdates {
		return fmt.Errorf("%w: %d allocation IDs asked for; ask for at most %d at a time", ErrBadRequest, len(args.AllocIDs), maxAllocUpdates)
	}
	return a.srv.blockingQuery("Alloc.GetAllocs", &args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, snap *state.Snapshot) (uint64, error) {
		reply.Allocs = reply.Allocs[:0]
		for _, id := range args.AllocIDs {
			al, err := snap.AllocByID(ws, id)
			if err != nil {
				return 0, err
			}
			if al != nil {
				reply.Allocs = append(reply.Allocs, al)
			}
		}
		return snap.MaxIndex(state.TableAllocs)
	})
}

// UpdateAlloc records a client's allocation status updates in one raft
// entry, with a rescheduling evaluation per job whose allocation failed.
func (n *Node) UpdateAlloc(args *structs.AllocUpdateRequest, reply *structs.GenericResponse) error {
	return n.srv.write("Node.UpdateAlloc", args, reply, func() error { return n.updateAlloc(args, reply) })
}

func (n *Node) updateAlloc(args *structs.AllocUpdateRequest, reply *structs.GenericResponse) error {
	switch {
	case len(args.Alloc) == 0:
		return fmt.Errorf("%w: no allocation updates", ErrBadRequest)
	case len(args.Alloc) > maxAllocUpdates:
		return fmt.Errorf("%w: %d allocation updates in one call; send at most %d", ErrBadRequest, len(args.Alloc), maxAllocUpdates)
	}
	snap := n.srv.fsm.State().Snapshot()
	node, err := n.srv.nodeWithSecret(snap, args.NodeID, args.SecretID)
	if err != nil {
		return err
	}
	now := time.Now().UnixNano()
	args.Evals = nil
	seen := map[structs.NamespacedID]bool{}
	freed := false
	for _, u := range args.Alloc {
		switch u.ClientStatus {
		case "", structs.AllocClientStatusPending, structs.AllocClientStatusRunning,
			structs.AllocClientStatusComplete, structs.AllocClientStatusFailed:
		default:
			return fmt.Errorf("%w: allocation %s: client status %q is not one of pending, running, complete, failed", ErrBadRequest, u.ID, u.ClientStatus)
		}
		stored, err := snap.AllocByID(nil, u.ID)
		if err != nil {
			return err
		}
		if stored == nil {
			continue // garbage collected; the FSM skips it too
		}
		if stored.NodeID != args.NodeID {
			return fmt.Errorf("%w: allocation %s is not on node %s", ErrBadRequest, u.ID, args.NodeID)
		}
		u.ModifyTime = now
		if !stored.ClientTerminalStatus() && (u.ClientStatus == structs.AllocClientStatusComplete || u.ClientStatus == structs.AllocClientStatusFailed) {
			freed = true
		}
		if stored.DesiredStatus != structs.AllocDesiredStatusRun || stored.Job == nil {
			continue
		}
		// A failed allocation may be rescheduled; one the servers held
		// unknown (its node was out of touch) and its client reports
		// again may now have a replacement to settle with.
		trigger := ""
		switch {
		case u.ClientStatus == structs.AllocClientStatusFailed && stored.ClientStatus != structs.AllocClientStatusFailed:
			trigger = structs.EvalTriggerReschedule
		case stored.ClientStatus == structs.AllocClientStatusUnknown && u.ClientStatus != "":
			trigger = structs.EvalTriggerReconnect
		default:
			continue
		}
		job := stored.Job
		if job.Type != structs.JobTypeService && job.Type != structs.JobTypeBatch {
			continue
		}
		key := job.NamespacedID()
		if seen[key] {
			continue
		}
		seen[key] = true
		ev := jobEval(job, trigger)
		ev.NodeID = args.NodeID
		args.Evals = append(args.Evals, ev)
	}
	index, err := n.srv.raftApply(structs.AllocClientUpdateRequestType, args)
	if err != nil {
		return err
	}
	n.srv.enqueueEvals(index, args.Evals...)
	if freed {
		n.srv.blocked.Unblock(node.FeasibilityClass(), index)
	}
	reply.Index = index
	return nil
}
