package structs

import "time"

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
	// Allocs are sent without their Job: Job (the plan's) is sent once and
	// the FSM gives it to the allocations that run, sharing the stored
	// job version when it is the same, so a plan of a hundred allocations
	// neither carries nor stores a hundred copies of its job.
	Allocs     []*Allocation
	Job        *Job
	Deployment *Deployment
	EvalID     string
	WriteRequest
}

// EvalUpdateRequest upserts evaluations (status changes, follow-ups).
type EvalUpdateRequest struct {
	Evals []*Evaluation
	WriteRequest
}

// JobPlanRequest asks what registering Job would change, without
// changing anything.
type JobPlanRequest struct {
	Job  *Job
	Diff bool
	WriteRequest
}

// JobPlanResponse is the scheduler's dry run of a register.
type JobPlanResponse struct {
	// JobModifyIndex is the job's current modify index (0 if new): pass it
	// to a check-and-set register so it applies only if nothing changed.
	JobModifyIndex uint64
	// Diff is what registering the job would change in its spec (asked
	// for with JobPlanRequest.Diff).
	Diff           *JobDiff
	Annotations    *PlanAnnotations
	FailedTGAllocs map[string]*AllocMetric
	CreatedEvals   []*Evaluation
	Warnings       string
	WriteMeta
}

// PlanAnnotations explain a plan per task group.
type PlanAnnotations struct {
	DesiredTGUpdates map[string]*DesiredUpdates
}

// DesiredUpdates counts what a plan would do to one group's allocations.
type DesiredUpdates struct {
	Ignore            uint64
	Place             uint64
	Migrate           uint64
	Stop              uint64
	InPlaceUpdate     uint64
	DestructiveUpdate uint64
	Canary            uint64
	Preemptions       uint64
}

// Changes reports whether the update would start, stop or replace an
// allocation.
func (d *DesiredUpdates) Changes() bool {
	return d.Place+d.Migrate+d.Stop+d.DestructiveUpdate+d.Canary+d.Preemptions > 0
}

// EvalDequeueRequest is a scheduler worker's long poll for an evaluation,
// answered by the leader's broker.
type EvalDequeueRequest struct {
	Schedulers []string
	Timeout    time.Duration
	WriteRequest
}

// EvalDequeueResponse carries an evaluation to schedule, or none when the
// timeout passed. WaitIndex is the index the worker's state must reach
// before it schedules (the evaluation's own).
type EvalDequeueResponse struct {
	Eval      *Evaluation
	Token     string
	WaitIndex uint64
	WriteMeta
}

// EvalAckRequest acks or nacks a dequeued evaluation.
type EvalAckRequest struct {
	EvalID string
	Token  string
	WriteRequest
}

// PlanSubmitRequest hands a worker's plan to the leader's plan applier.
type PlanSubmitRequest struct {
	Plan      *Plan
	EvalToken string
	WriteRequest
}

// PlanSubmitResponse is the applier's verdict.
type PlanSubmitResponse struct {
	Result *PlanResult
	WriteMeta
}
