package structs

// Plan is what the scheduler wants changed for one evaluation: allocations
// to stop and allocations to place (or update in place), grouped by node.
// The leader's plan applier re-checks every node against the newest state
// and commits what still fits.
type Plan struct {
	EvalID    string
	Priority  int
	AllAtOnce bool // all of it or nothing
	Job       *Job // the job version the placements belong to

	// NodeUpdate holds allocations to stop or evict, by node ID; each copy
	// has its new DesiredStatus, DesiredDescription and ClientStatus set.
	NodeUpdate map[string][]*Allocation
	// NodeAllocation holds new allocations and in-place updates, by node ID.
	NodeAllocation map[string][]*Allocation

	Deployment *Deployment
	// SnapshotIndex is the state index the scheduler planned against.
	SnapshotIndex uint64
}

// AppendStoppedAlloc adds a stop of alloc to the plan.
func (p *Plan) AppendStoppedAlloc(alloc *Allocation, desc, clientStatus string) {
	c := alloc.Copy()
	c.DesiredStatus = AllocDesiredStatusStop
	c.DesiredDescription = desc
	if clientStatus != "" {
		c.ClientStatus = clientStatus
	}
	if p.NodeUpdate == nil {
		p.NodeUpdate = map[string][]*Allocation{}
	}
	p.NodeUpdate[alloc.NodeID] = append(p.NodeUpdate[alloc.NodeID], c)
}

// AppendAlloc adds a placement (or in-place update) to the plan.
func (p *Plan) AppendAlloc(alloc *Allocation) {
	if p.NodeAllocation == nil {
		p.NodeAllocation = map[string][]*Allocation{}
	}
	p.NodeAllocation[alloc.NodeID] = append(p.NodeAllocation[alloc.NodeID], alloc)
}

// IsNoOp reports whether the plan changes nothing.
func (p *Plan) IsNoOp() bool {
	return len(p.NodeUpdate) == 0 && len(p.NodeAllocation) == 0 && p.Deployment == nil
}

// PlanResult is what the plan applier committed of a plan.
type PlanResult struct {
	NodeUpdate     map[string][]*Allocation
	NodeAllocation map[string][]*Allocation
	Deployment     *Deployment
	// RefreshIndex is set when some nodes were refused: the scheduler must
	// plan again against a snapshot at least this new.
	RefreshIndex uint64
	// AllocIndex is the raft index at which the result was committed.
	AllocIndex uint64
}

// FullCommit reports whether every node of the plan was committed, with
// the counts of allocations planned and committed.
func (r *PlanResult) FullCommit(p *Plan) (bool, int, int) {
	expected, actual := 0, 0
	for node, allocs := range p.NodeAllocation {
		expected += len(allocs)
		actual += len(r.NodeAllocation[node])
	}
	return expected == actual, expected, actual
}

// ApplyPlanResultsRequest is the raft entry of a committed plan: the
// allocations it stops and the ones it places or updates, and the
// evaluation's status (set in the same entry when the plan is its last).
type ApplyPlanResultsRequest struct {
	Allocs     []*Allocation
	Deployment *Deployment
	EvalID     string
	WriteRequest
}

// EvalUpdateRequest upserts evaluations (status changes, follow-ups).
type EvalUpdateRequest struct {
	Evals []*Evaluation
	WriteRequest
}
