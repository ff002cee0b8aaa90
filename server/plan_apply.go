package server

import (
	"context"
	"fmt"
	"maps"
	"sort"

	"github.com/skiffhq/skiff/state"
	"github.com/skiffhq/skiff/structs"
)

// pendingPlan is a plan waiting for the leader's plan applier.
type pendingPlan struct {
	plan   *structs.Plan
	token  string // the evaluation's broker token; "" in tests that bypass the broker
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
//
// Verifying a plan and committing it overlap: while plan N is being
// committed through raft, plan N+1 is verified against the newest state
// plus the allocations of every plan still in flight (an overlay, by
// allocation ID), so it cannot take space N took. The worker of a plan is
// answered once its plan is committed.
func (s *Server) planApplier(ctx context.Context) {
	var inflight []*planCommit
	// One submitter hands the verified plans to raft in the order they
	// were verified (plan N+1 was checked against N's allocations), without
	// waiting for each commit, so that raft writes the plans waiting for
	// it with one fsync; one waiter answers them in the same order.
	commits := make(chan pendingCommit, maxPlansInFlight)
	submitted := make(chan submittedCommit, maxPlansInFlight)
	committed := make(chan struct{})
	go func() {
		defer close(submitted)
		for pc := range commits {
			if ctx.Err() != nil {
				// The term ended: a plan verified in it must not commit
				// in a later term of this server, which may not have seen
				// what another leader placed in between.
				submitted <- submittedCommit{pc, nil, errNotApplied}
				continue
			}
			a, err := s.raftSubmit(structs.ApplyPlanResultsRequestType, pc.c.req)
			submitted <- submittedCommit{pc, a, err}
		}
	}()
	go func() {
		defer close(committed)
		for sc := range submitted {
			s.finishCommit(sc.c, sc.p, sc.applying, sc.err)
		}
	}()
	defer func() {
		close(commits)
		<-committed
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-s.planQueue:
			inflight = pruneCommits(inflight)
			for len(inflight) >= maxPlansInFlight {
				<-inflight[0].done
				inflight = pruneCommits(inflight)
			}
			// A plan whose evaluation was handed to another worker since
			// (nack timeout, or a new leader's broker) must not commit.
			if p.token != "" {
				if err := s.broker.OutstandingReset(p.plan.EvalID, p.token); err != nil {
					p.result <- planOutcome{nil, fmt.Errorf("plan of evaluation %s refused: %w", p.plan.EvalID, err)}
					continue
				}
			}
			c, res, err := s.verifyPlan(p.plan, inflight)
			if err != nil || c == nil {
				p.result <- planOutcome{res, err}
				continue
			}
			inflight = append(inflight, c)
			commits <- pendingCommit{c, p}
		}
	}
}

// maxPlansInFlight bounds the plans verified and not yet committed.
const maxPlansInFlight = 4

type pendingCommit struct {
	c *planCommit
	p *pendingPlan
}

// submittedCommit is a plan handed to raft (or that failed to be).
type submittedCommit struct {
	pendingCommit
	applying *raftApplying
	err      error
}

// planCommit is a verified plan being committed through raft.
type planCommit struct {
	req    *structs.ApplyPlanResultsRequest
	result *structs.PlanResult
	byNode map[string][]*structs.Allocation // what it writes, for the overlay
	snap   *state.Snapshot
	done   chan struct{} // closed once committed (or failed)
	index  uint64        // raft index of the commit; set before done closes
}

// pruneCommits drops the commits that finished: the state now holds them.
func pruneCommits(cs []*planCommit) []*planCommit {
	out := cs[:0]
	for _, c := range cs {
		select {
		case <-c.done:
		default:
			out = append(out, c)
		}
	}
	return out
}

// finishCommit waits for the commit of a verified plan handed to raft
// (err: it could not be) and answers its worker.
//
// It closes c.done before it answers: a worker's next plan must not find
// this one still in flight (verifyPlan would count it as pending, and a
// placement that reuses one of its IDs would then be verified differently
// depending on the timing).
func (s *Server) finishCommit(c *planCommit, p *pendingPlan, a *raftApplying, err error) {
	var index uint64
	if err == nil {
		index, _, err = a.wait()
	}
	if err != nil {
		close(c.done)
		p.result <- planOutcome{nil, fmt.Errorf("commit plan of evaluation %s: %w", c.req.EvalID, err)}
		return
	}
	c.index = index
	c.result.AllocIndex = index
	if c.result.RefreshIndex != 0 {
		// The worker plans again on state that holds this commit too, or
		// it would place again what was just placed.
		c.result.RefreshIndex = max(c.result.RefreshIndex, index)
	}
	for id, stops := range c.result.NodeUpdate {
		if len(stops) > 0 {
			s.unblockNode(c.snap, id, index)
		}
	}
	close(c.done)
	p.result <- planOutcome{c.result, nil}
}

// submitPlan hands a plan to the applier of the current term of
// leadership and waits for its outcome. It fails at once when this server
// is not leading, and when the term ends before the applier took the plan.
func (s *Server) submitPlan(ctx context.Context, plan *structs.Plan, token string) (*structs.PlanResult, error) {
	term := s.planTerm.Load()
	if term == nil || (*term).Err() != nil {
		return nil, fmt.Errorf("%w: this server's plan applier is not running", structs.ErrNoLeader)
	}
	p := &pendingPlan{plan: plan, token: token, result: make(chan planOutcome, 1)}
	select {
	case s.planQueue <- p:
	case <-(*term).Done():
		return nil, fmt.Errorf("%w: leadership ended before the plan was applied", structs.ErrNoLeader)
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

// verifyPlan checks every node of the plan against the newest state plus
// the plans still in flight. It returns the commit to make, or nil and
// the result when there is nothing to commit.
func (s *Server) verifyPlan(plan *structs.Plan, inflight []*planCommit) (*planCommit, *structs.PlanResult, error) {
	snap := s.fsm.State().Snapshot()
	// Plans in flight count with their placements only: the space their
	// stops free is used once they are committed.
	overlay := map[string][]*structs.Allocation{}
	for _, c := range inflight {
		for node, allocs := range c.byNode {
			for _, a := range allocs {
				if !a.TerminalStatus() {
					overlay[node] = append(overlay[node], a)
				}
			}
		}
	}
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
		ok, reason, err := nodeFits(snap, plan, id, overlay[id])
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			s.logger.Debug("plan refused on a node", "eval_id", plan.EvalID, "node_id", id, "reason", reason)
			refused = true
			if plan.AllAtOnce {
				result.NodeUpdate, result.NodeAllocation = nil, nil
				plan = &structs.Plan{EvalID: plan.EvalID, Job: plan.Job} // nothing of it commits, its deployment neither
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
		// The worker plans again on state that includes what refused it,
		// in flight plans included.
		idx, err := snap.LatestIndex()
		if err != nil {
			return nil, nil, err
		}
		for _, c := range inflight {
			<-c.done
			idx = max(idx, c.index)
		}
		result.RefreshIndex = idx
	}
	req := &structs.ApplyPlanResultsRequest{EvalID: plan.EvalID, Deployment: plan.Deployment, Job: plan.Job}
	byNode := map[string][]*structs.Allocation{}
	for _, id := range ids {
		for _, a := range append(append([]*structs.Allocation(nil), result.NodeUpdate[id]...), result.NodeAllocation[id]...) {
			req.Allocs = append(req.Allocs, withoutJob(a))
		}
		byNode[id] = append(append([]*structs.Allocation(nil), result.NodeUpdate[id]...), result.NodeAllocation[id]...)
	}
	if len(req.Allocs) == 0 && req.Deployment == nil {
		return nil, result, nil
	}
	return &planCommit{req: req, result: result, byNode: byNode, snap: snap, done: make(chan struct{})}, result, nil
}

// unblockNode wakes the blocked evaluations that could use capacity that
// appeared on a node at index.
func (s *Server) unblockNode(snap *state.Snapshot, nodeID string, index uint64) {
	node, err := snap.NodeByID(nil, nodeID)
	if err != nil || node == nil {
		return
	}
	if n := s.blocked.Unblock(node.FeasibilityClass(), index); n > 0 {
		s.logger.Debug("capacity appeared; woke blocked evaluations", "node_id", nodeID, "evals", n)
	}
}

// nodeFits checks one node of a plan against the newest state: the node
// must exist, and be ready for new allocations, and everything that will
// run there must fit.
//
// pending are the allocations of plans still being committed on the node;
// they count as stored (by ID, over the stored copy).
func nodeFits(snap *state.Snapshot, plan *structs.Plan, nodeID string, pending []*structs.Allocation) (bool, string, error) {
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
	// Start from what the stored live allocations use (one lookup), then
	// replace the allocations the in-flight plans and this plan change by
	// their final versions: pending, then this plan's stops, then its
	// placements and in-place updates.
	usage, err := snap.NodeUsage(nodeID)
	if err != nil {
		return false, "", err
	}
	cpu, mem, disk := usage.CPU, usage.MemoryMB, usage.DiskMB
	ports := maps.Clone(usage.Ports)
	if ports == nil {
		ports = map[int]int{}
	}
	final := map[string]*structs.Allocation{}
	var order []string
	set := func(a *structs.Allocation) {
		if _, seen := final[a.ID]; !seen {
			order = append(order, a.ID)
		}
		final[a.ID] = a
	}
	isPending := map[string]bool{}
	for _, a := range pending {
		isPending[a.ID] = true
		set(a)
	}
	for _, a := range plan.NodeUpdate[nodeID] {
		set(a)
	}
	isPlacing := map[string]bool{}
	for _, a := range placing {
		isPlacing[a.ID] = true
		set(a)
	}
	change := func(a *structs.Allocation, sign int64) {
		c, m, d, ps := structs.AllocUsage(a)
		cpu, mem, disk = cpu+sign*c, mem+sign*m, disk+sign*d
		for _, p := range ps {
			ports[p] += int(sign)
		}
	}
	newOnes := false
	for _, id := range order {
		// A placement of this plan, not in flight, that was never stored
		// (no CreateIndex: the scheduler made it) cannot be in the store,
		// so it is not looked up: at a million allocations the lookups
		// were a third of this check. Were one stored after all, its use
		// would count twice: at worst a refusal, never an overcommit.
		var stored *structs.Allocation
		if !isPlacing[id] || isPending[id] || final[id].CreateIndex != 0 {
			if stored, err = snap.AllocByID(nil, id); err != nil {
				return false, "", err
			}
		}
		onNode := stored != nil && stored.NodeID == nodeID
		if onNode && !stored.TerminalStatus() {
			change(stored, -1)
		}
		if isPlacing[id] && !onNode && !isPending[id] {
			newOnes = true
		}
		if a := final[id]; !a.TerminalStatus() {
			change(a, +1)
		}
	}
	if newOnes && !node.Ready() {
		return false, fmt.Sprintf("node is %s (eligibility %s)", node.Status, node.SchedulingEligibility), nil
	}
	if dim := node.Exhausted(&structs.NodeUsage{CPU: cpu, MemoryMB: mem, DiskMB: disk, Ports: ports}); dim != "" {
		return false, "exhausted on " + dim, nil
	}
	return true, "", nil
}

// withoutJob returns a shallow copy of a without its Job, for the raft
// entry (see ApplyPlanResultsRequest).
func withoutJob(a *structs.Allocation) *structs.Allocation {
	if a.Job == nil {
		return a
	}
	c := *a
	c.Job = nil
	return &c
}
