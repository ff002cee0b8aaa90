package structs

import (
	"slices"
	"time"
)

// Allocation desired statuses: what the servers want.
const (
	AllocDesiredStatusRun   = "run"
	AllocDesiredStatusStop  = "stop"
	AllocDesiredStatusEvict = "evict"
)

// Allocation client statuses: what the client reports.
const (
	AllocClientStatusPending  = "pending"
	AllocClientStatusRunning  = "running"
	AllocClientStatusComplete = "complete"
	AllocClientStatusFailed   = "failed"
	AllocClientStatusLost     = "lost"
	AllocClientStatusUnknown  = "unknown"
)

// Allocation is one instance of a task group placed on a node.
type Allocation struct {
	ID                 string
	Namespace          string
	EvalID             string
	Name               string
	NodeID             string
	NodeName           string
	JobID              string
	Job                *Job
	TaskGroup          string
	AllocatedResources *AllocatedResources
	Metrics            *AllocMetric
	DesiredStatus      string
	DesiredDescription string
	ClientStatus       string
	ClientDescription  string
	TaskStates         map[string]*TaskState
	DeploymentID       string
	DesiredTransition  DesiredTransition
	DeploymentStatus   *AllocDeploymentStatus
	PreviousAllocation string
	NextAllocation     string
	FollowupEvalID     string
	RescheduleTracker  *RescheduleTracker
	CreateIndex        uint64
	ModifyIndex        uint64
	AllocModifyIndex   uint64
	CreateTime         int64
	ModifyTime         int64
}

// TerminalStatus reports whether the allocation is done or told to stop.
func (a *Allocation) TerminalStatus() bool {
	switch a.DesiredStatus {
	case AllocDesiredStatusStop, AllocDesiredStatusEvict:
		return true
	}
	return a.ClientTerminalStatus()
}

// ClientTerminalStatus reports whether the client says the allocation ended.
func (a *Allocation) ClientTerminalStatus() bool {
	switch a.ClientStatus {
	case AllocClientStatusComplete, AllocClientStatusFailed, AllocClientStatusLost:
		return true
	}
	return false
}

// AllocatedResources is what the scheduler gave an allocation.
type AllocatedResources struct {
	Tasks  map[string]*AllocatedTaskResources
	Shared AllocatedSharedResources
}

// AllocatedTaskResources is what one task was given.
type AllocatedTaskResources struct {
	Cpu      AllocatedCpuResources
	Memory   AllocatedMemoryResources
	Networks []*NetworkResource
}

// AllocatedCpuResources is CPU in MHz.
type AllocatedCpuResources struct{ CpuShares int64 }

// AllocatedMemoryResources is memory in MB.
type AllocatedMemoryResources struct {
	MemoryMB    int64
	MemoryMaxMB int64
}

// AllocatedSharedResources is shared by the tasks of the allocation.
type AllocatedSharedResources struct {
	DiskMB   int64
	Networks []*NetworkResource
	Ports    []AllocatedPortMapping
}

// AllocatedPortMapping is one port given to an allocation.
type AllocatedPortMapping struct {
	Label  string
	Value  int
	To     int
	HostIP string
}

// TaskState is the client's view of one task.
type TaskState struct {
	State       string
	Failed      bool
	Restarts    uint64
	LastRestart time.Time
	StartedAt   time.Time
	FinishedAt  time.Time
	Events      []*TaskEvent
}

// TaskEvent is one step in a task's life.
type TaskEvent struct {
	Type           string
	Time           int64
	Message        string
	DisplayMessage string
	Details        map[string]string
	ExitCode       int
	Signal         int
}

// AllocDeploymentStatus is the health of an allocation within a deployment.
type AllocDeploymentStatus struct {
	Healthy     *bool
	Timestamp   time.Time
	Canary      bool
	ModifyIndex uint64
}

// RescheduleTracker records the reschedule history of an allocation.
type RescheduleTracker struct {
	Events []*RescheduleEvent
}

// RescheduleEvent is one reschedule.
type RescheduleEvent struct {
	RescheduleTime int64
	PrevAllocID    string
	PrevNodeID     string
	Delay          time.Duration
}

// AllocMetric explains a placement: how many nodes were looked at and
// why each was set aside. Once stored it is read-only: allocations
// share it, and decoded ones share their Counts (see metrics.go).
//
// On the wire (msgpack) it is an array, its fields in this order, not a
// map keyed by field name: every placement keeps one, and their names
// were a third of the bytes of an allocation in raft entries and
// snapshots. Add fields at the end only; never reorder or remove one
// (TestAllocMetricFieldOrder). Maps written before still decode.
type AllocMetric struct {
	_struct            struct{} `codec:",toarray"` // tells the codec: an array
	NodesEvaluated     int
	NodesFiltered      int
	NodesInPool        int
	NodesAvailable     Counts
	ClassFiltered      Counts
	ConstraintFiltered Counts
	NodesExhausted     int
	ClassExhausted     Counts
	DimensionExhausted Counts
	ScoreMetaData      ScoreMetas
	AllocationTime     time.Duration
	CoalescedFailures  int
}

// NodeScoreMeta is the scores of one candidate node.
type NodeScoreMeta struct {
	NodeID    string
	Scores    ScoreSet
	NormScore float64
}

// AllocListStub is an allocation's entry in a listing.
type AllocListStub struct {
	ID                 string
	EvalID             string
	Name               string
	Namespace          string
	NodeID             string
	NodeName           string
	JobID              string
	JobType            string
	JobVersion         uint64
	TaskGroup          string
	DesiredStatus      string
	DesiredDescription string
	ClientStatus       string
	ClientDescription  string
	TaskStates         map[string]*TaskState
	DeploymentStatus   *AllocDeploymentStatus
	FollowupEvalID     string
	CreateIndex        uint64
	ModifyIndex        uint64
	CreateTime         int64
	ModifyTime         int64
}

// Stub returns the allocation's list entry.
func (a *Allocation) Stub() *AllocListStub {
	s := &AllocListStub{
		ID: a.ID, EvalID: a.EvalID, Name: a.Name, Namespace: a.Namespace,
		NodeID: a.NodeID, NodeName: a.NodeName, JobID: a.JobID, TaskGroup: a.TaskGroup,
		DesiredStatus: a.DesiredStatus, DesiredDescription: a.DesiredDescription,
		ClientStatus: a.ClientStatus, ClientDescription: a.ClientDescription,
		TaskStates: a.TaskStates, DeploymentStatus: a.DeploymentStatus,
		FollowupEvalID: a.FollowupEvalID, CreateIndex: a.CreateIndex,
		ModifyIndex: a.ModifyIndex, CreateTime: a.CreateTime, ModifyTime: a.ModifyTime,
	}
	if a.Job != nil {
		s.JobType, s.JobVersion = a.Job.Type, a.Job.Version
	}
	return s
}

// DesiredTransition is what the servers want to happen to an allocation
// beyond its desired status: Migrate marks one the drainer lets leave a
// draining node (max_parallel at a time); the scheduler then replaces it.
type DesiredTransition struct {
	Migrate *bool
}

// ShouldMigrate reports whether the allocation is marked to migrate.
func (d DesiredTransition) ShouldMigrate() bool { return d.Migrate != nil && *d.Migrate }

// TaskNames returns the names of the allocation's tasks, sorted: from its
// job's task group, else from the task states its client reported.
func (a *Allocation) TaskNames() []string {
	var names []string
	if a.Job != nil {
		if tg := a.Job.LookupTaskGroup(a.TaskGroup); tg != nil {
			for _, t := range tg.Tasks {
				names = append(names, t.Name)
			}
		}
	}
	if len(names) == 0 {
		for n := range a.TaskStates {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}
