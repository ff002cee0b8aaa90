package server

import (
	"context"
	"fmt"
	"sort"

	"github.com/skiffhq/skiff/state"
	"github.com/skiffhq/skiff/structs"
)

// pendingPlan is a plan waiting for the leader's plan applier.
type pendingPlan struct {
	plan   *structs.Plan
	result chan planOutcome
}

type planOutcome struct {
	result *structs.PlanResult
	err    error
}

// planApplier re-checks each plan against the newest state and commits
// what still fits. It runs on the leader, one plan at a time, so that two
// workers cannot both fill the same free space (optimistic concurrency:
// workers plan in parallel on snapshots; the applier is the serial point).
func (s *Server) planApplier(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-s.planQueue:
			res, err := s.applyPlan(p.plan)
			p.result <- planOutcome{res, err}
		}
	}
}

// submitPlan hands a plan to the applier and waits for its outcome.
func (s *Server) submitPlan(ctx context.Context, plan *structs.Plan) (*structs.PlanResult, error) {
	p := &pendingPlan{plan: plan, result: make(chan planOutcome, 1)}
	select {
	case s.planQueue <- p:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case o := <-p.result:
		return o.result, o.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// applyPlan verifies every node of the plan and commits the accepted
// part through raft.
func (s *Server) applyPlan(plan *structs.Plan) (*structs.PlanResult, error) {
	snap := s.fsm.State().Snapshot()
	result := &structs.PlanResult{NodeUpdate: map[string][]*structs.Allocation{}, NodeAllocation: map[string][]*structs.Allocation{}}
	nodeIDs := map[string]bool{}
	for id := range plan.NodeUpdate {
		nodeIDs[id] = true
	}
	for id := range plan.NodeAllocation {
		nodeIDs[id] = true
	}
	ids := make([]string, 0, len(nodeIDs))
	for id := range nodeIDs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	refused := false
	for _, id := range ids {
		ok, reason, err := nodeFits(snap, plan, id)
		if err != nil {
			return nil, err
		}
		if !ok {
			s.logger.Debug("plan refused on a node", "eval_id", plan.EvalID, "node_id", id, "reason", reason)
			refused = true
			if plan.AllAtOnce {
				result.NodeUpdate, result.NodeAllocation = nil, nil
				break
			}
			continue
		}
		if u := plan.NodeUpdate[id]; len(u) > 0 {
			result.NodeUpdate[id] = u
		}
		if a := plan.NodeAllocation[id]; len(a) > 0 {
			result.NodeAllocation[id] = a
		}
	}
	if refused {
		idx, err := snap.LatestIndex()
		if err != nil {
			return nil, err
		}
		result.RefreshIndex = idx
	}
	req := &structs.ApplyPlanResultsRequest{EvalID: plan.EvalID, Deployment: plan.Deployment}
	for _, id := range ids {
		req.Allocs = append(req.Allocs, result.NodeUpdate[id]...)
		req.Allocs = append(req.Allocs, result.NodeAllocation[id]...)
	}
	if len(req.Allocs) == 0 && req.Deployment == nil {
		return result, nil
	}
	index, err := s.raftApply(structs.ApplyPlanResultsRequestType, req)
	if err != nil {
		return nil, fmt.Errorf("commit plan of evaluation %s: %w", plan.EvalID, err)
	}
	result.AllocIndex = index
	for id, stops := range result.NodeUpdate {
		if len(stops) > 0 {
			s.unblockNode(snap, id, index)
		}
	}
	return result, nil
}

// unblockNode wakes the blocked evaluations that could use capacity that
// appeared on a node at index.
func (s *Server) unblockNode(snap *state.Snapshot, nodeID string, index uint64) {
	node, err := snap.NodeByID(nil, nodeID)
	if err != nil || node == nil {
		return
	}
	if n := s.blocked.Unblock(classOfNode(node), index); n > 0 {
		s.logger.Debug("capacity appeared; woke blocked evaluations", "node_id", nodeID, "evals", n)
	}
}

// classOfNode is the class blocked evaluations are keyed by (as the
// scheduler records it).
func classOfNode(n *structs.Node) string {
	if n.ComputedClass != "" {
		return n.ComputedClass
	}
	return "class:" + n.NodeClass
}

// nodeFits checks one node of a plan against the newest state: the node
// must exist, and be ready for new allocations, and everything that will
// run there must fit.
func nodeFits(snap *state.Snapshot, plan *structs.Plan, nodeID string) (bool, string, error) {
	placing := plan.NodeAllocation[nodeID]
	if len(placing) == 0 {
		return true, "", nil // stopping always fits
	}
	node, err := snap.NodeByID(nil, nodeID)
	if err != nil {
		return false, "", err
	}
	if node == nil {
		return false, "node is gone", nil
	}
	existing, err := snap.AllocsByNode(nil, nodeID)
	if err != nil {
		return false, "", err
	}
	replaced := map[string]bool{}
	for _, a := range plan.NodeUpdate[nodeID] {
		replaced[a.ID] = true
	}
	for _, a := range placing {
		replaced[a.ID] = true // an in-place update replaces the stored copy
	}
	newOnes := false
	known := map[string]bool{}
	var all []*structs.Allocation
	for _, a := range existing {
		known[a.ID] = true
		if !a.TerminalStatus() && !replaced[a.ID] {
			all = append(all, a)
		}
	}
	for _, a := range placing {
		if !known[a.ID] {
			newOnes = true
		}
		if !a.TerminalStatus() {
			all = append(all, a)
		}
	}
	if newOnes && !node.Ready() {
		return false, fmt.Sprintf("node is %s (eligibility %s)", node.Status, node.SchedulingEligibility), nil
	}
	if ok, dim := structs.AllocsFit(node, all); !ok {
		return false, "exhausted on " + dim, nil
	}
	return true, "", nil
}
