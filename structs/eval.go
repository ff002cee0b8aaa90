package structs

import "time"

// Evaluation statuses.
const (
	EvalStatusPending  = "pending"
	EvalStatusBlocked  = "blocked"
	EvalStatusComplete = "complete"
	EvalStatusFailed   = "failed"
	EvalStatusCanceled = "canceled"
)

// What triggered an evaluation.
const (
	EvalTriggerJobRegister   = "job-register"
	EvalTriggerJobDeregister = "job-deregister"
	EvalTriggerNodeUpdate    = "node-update"
	EvalTriggerNodeDrain     = "node-drain"
	EvalTriggerScaling       = "job-scaling"
	EvalTriggerAllocStop     = "alloc-stop"
	EvalTriggerRetryFailed   = "failed-follow-up"
	EvalTriggerReschedule    = "alloc-failure"
	EvalTriggerQueuedAllocs  = "queued-allocs"
	EvalTriggerDeployment    = "deployment-watcher"
	// EvalTriggerRollingUpdate: the next batch of a system job's rolling
	// update, due a stagger after the last.
	EvalTriggerRollingUpdate = "rolling-update"
	// EvalTriggerMaxDisconnectTimeout: an unknown allocation's
	// disconnect.lost_after ends.
	EvalTriggerMaxDisconnectTimeout = "max-disconnect-timeout"
	// EvalTriggerReconnect: the client of an unknown allocation reports
	// it again.
	EvalTriggerReconnect = "reconnect"
)

// Evaluation asks the scheduler to bring a job's allocations in line with
// its spec, after something changed.
type Evaluation struct {
	ID                string
	Namespace         string
	Priority          int
	Type              string
	TriggeredBy       string
	JobID             string
	JobModifyIndex    uint64
	NodeID            string
	NodeModifyIndex   uint64
	DeploymentID      string
	Status            string
	StatusDescription string
	Wait              time.Duration
	WaitUntil         time.Time
	NextEval          string
	PreviousEval      string
	BlockedEval       string
	FailedTGAllocs    map[string]*AllocMetric
	ClassEligibility  map[string]bool // computed class -> feasible (blocked evals)
	// EscapedComputedClass is set on a blocked evaluation whose job has a
	// constraint on node-unique values: any new capacity wakes it.
	EscapedComputedClass bool
	QueuedAllocations    map[string]int
	SnapshotIndex        uint64
	CreateIndex          uint64
	ModifyIndex          uint64
	CreateTime           int64
	ModifyTime           int64
}

// TerminalStatus reports whether the evaluation is finished.
func (e *Evaluation) TerminalStatus() bool {
	switch e.Status {
	case EvalStatusComplete, EvalStatusFailed, EvalStatusCanceled:
		return true
	}
	return false
}
