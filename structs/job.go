package structs

import (
	"bytes"
	"sync/atomic"
	"time"
)

// Job types.
const (
	JobTypeService  = "service"
	JobTypeBatch    = "batch"
	JobTypeSystem   = "system"
	JobTypeSysBatch = "sysbatch"
)

// Job statuses, derived by the state store from the job's allocations and
// evaluations.
const (
	JobStatusPending = "pending"
	JobStatusRunning = "running"
	JobStatusDead    = "dead"
)

// Defaults a job receives when a field is left out.
const (
	DefaultRegion    = "global"
	DefaultNamespace = "default"
	DefaultNodePool  = "default"
	DefaultPriority  = 50
	MinPriority      = 1
	MaxPriority      = 100
	// MaxJobIDLength bounds job IDs, which appear in paths and keys.
	MaxJobIDLength = 128
)

// AllNamespaces, given as the namespace of a query, stands for every
// namespace; no job may have it as its own.
const AllNamespaces = "*"

// Job is the unit users submit: one or more task groups and how to run them.
type Job struct {
	Region      string
	Namespace   string
	ID          string
	Name        string
	Type        string
	Priority    int
	AllAtOnce   bool
	Datacenters []string
	NodePool    string

	Constraints []*Constraint
	Affinities  []*Affinity
	Spreads     []*Spread
	TaskGroups  []*TaskGroup

	// Update, Reschedule and Migrate at job level are defaults that
	// Canonicalize merges into every group that does not set its own.
	Update     *UpdateStrategy   `json:",omitempty"`
	Reschedule *ReschedulePolicy `json:",omitempty"`
	Migrate    *MigrateStrategy  `json:",omitempty"`

	Periodic         *PeriodicConfig         `json:",omitempty"`
	ParameterizedJob *ParameterizedJobConfig `json:",omitempty"`
	Meta             map[string]string

	// Fields set by the servers, not by job files.
	Stop              bool
	ParentID          string
	Dispatched        bool
	Payload           []byte
	Status            string
	StatusDescription string
	Stable            bool
	Version           uint64
	SubmitTime        int64
	CreateIndex       uint64
	ModifyIndex       uint64
	JobModifyIndex    uint64
}

// NamespacedID identifies a job within the cluster.
type NamespacedID struct {
	Namespace string
	ID        string
}

// NamespacedID returns the job's namespace and ID.
func (j *Job) NamespacedID() NamespacedID { return NamespacedID{j.Namespace, j.ID} }

// LookupTaskGroup returns the group of that name, or nil.
func (j *Job) LookupTaskGroup(name string) *TaskGroup {
	for _, tg := range j.TaskGroups {
		if tg.Name == name {
			return tg
		}
	}
	return nil
}

// TaskGroup is a set of tasks placed together on one node, Count times.
type TaskGroup struct {
	Name             string
	Count            int
	Constraints      []*Constraint
	Affinities       []*Affinity
	Spreads          []*Spread
	Tasks            []*Task
	Volumes          map[string]*VolumeRequest
	RestartPolicy    *RestartPolicy
	ReschedulePolicy *ReschedulePolicy
	Disconnect       *DisconnectStrategy `json:",omitempty"`
	EphemeralDisk    *EphemeralDisk
	Update           *UpdateStrategy `json:",omitempty"`
	Migrate          *MigrateStrategy
	Networks         []*NetworkResource
	Services         []*Service
	Scaling          *ScalingPolicy `json:",omitempty"`
	Meta             map[string]string
	ShutdownDelay    *time.Duration `json:",omitempty"`
	MaxRunDuration   *time.Duration `json:",omitempty"`
}

// LookupTask returns the task of that name, or nil.
func (tg *TaskGroup) LookupTask(name string) *Task {
	for _, t := range tg.Tasks {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// Task is one container (or process) of a group.
type Task struct {
	Name          string
	Driver        string
	User          string
	Lifecycle     *TaskLifecycle `json:",omitempty"`
	Config        map[string]any
	Constraints   []*Constraint
	Affinities    []*Affinity
	Env           map[string]string
	Services      []*Service
	Resources     *Resources
	RestartPolicy *RestartPolicy
	Meta          map[string]string
	KillTimeout   time.Duration
	KillSignal    string
	ShutdownDelay time.Duration
	LogConfig     *LogConfig
	Templates     []*Template
	VolumeMounts  []*VolumeMount
	Leader        bool
	Kind          string `json:",omitempty"`
}

// Constraint operators (Operand values). An empty Operand means "=".
const (
	ConstraintDistinctHosts     = "distinct_hosts"
	ConstraintDistinctProperty  = "distinct_property"
	ConstraintRegex             = "regexp"
	ConstraintVersion           = "version"
	ConstraintSemver            = "semver"
	ConstraintSetContains       = "set_contains"
	ConstraintSetContainsAll    = "set_contains_all"
	ConstraintSetContainsAny    = "set_contains_any"
	ConstraintAttributeIsSet    = "is_set"
	ConstraintAttributeIsNotSet = "is_not_set"
)

// ConstraintOperands lists every operand Skiff understands.
var ConstraintOperands = []string{
	"=", "==", "is", "!=", "not", "<", "<=", ">", ">=",
	ConstraintDistinctHosts, ConstraintDistinctProperty, ConstraintRegex,
	ConstraintVersion, ConstraintSemver, ConstraintSetContains,
	ConstraintSetContainsAll, ConstraintSetContainsAny,
	ConstraintAttributeIsSet, ConstraintAttributeIsNotSet,
}

// Constraint restricts the nodes a job, group or task may be placed on.
// LTarget is usually an interpolation such as ${attr.kernel.name}.
type Constraint struct {
	LTarget string
	RTarget string
	Operand string
}

// Affinity expresses a weighted preference for nodes, -100..100.
type Affinity struct {
	LTarget string
	RTarget string
	Operand string
	Weight  int8
}

// Spread spreads allocations over the values of a node attribute.
type Spread struct {
	Attribute    string
	Weight       int8
	SpreadTarget []*SpreadTarget
}

// SpreadTarget is the share of allocations wanted for one attribute value.
type SpreadTarget struct {
	Value   string
	Percent uint8
}

// Update health-check modes.
const (
	UpdateHealthCheckChecks     = "checks"
	UpdateHealthCheckTaskStates = "task_states"
	UpdateHealthCheckManual     = "manual"
)

// UpdateStrategy governs rolling updates and canaries of a group.
type UpdateStrategy struct {
	Stagger          time.Duration
	MaxParallel      int
	HealthCheck      string
	MinHealthyTime   time.Duration
	HealthyDeadline  time.Duration
	ProgressDeadline time.Duration
	Canary           int
	AutoRevert       bool
	AutoPromote      bool
}

// Rolls reports whether the group's changes go through deployments (an
// update block with max_parallel > 0).
func (tg *TaskGroup) Rolls() bool { return tg.Update != nil && tg.Update.MaxParallel > 0 }

// Restart modes.
const (
	RestartModeFail  = "fail"
	RestartModeDelay = "delay"
)

// RestartPolicy governs restarts of a failed task on its node.
type RestartPolicy struct {
	Interval        time.Duration
	Attempts        int
	Delay           time.Duration
	Mode            string
	RenderTemplates bool
}

// Reschedule delay functions.
var RescheduleDelayFunctions = []string{"constant", "exponential", "fibonacci"}

// ReschedulePolicy governs replacing failed allocations on other nodes.
type ReschedulePolicy struct {
	Attempts      int
	Interval      time.Duration
	Delay         time.Duration
	DelayFunction string
	MaxDelay      time.Duration
	Unlimited     bool
}

// MigrateStrategy governs how allocations leave a draining node.
type MigrateStrategy struct {
	MaxParallel     int
	HealthCheck     string
	MinHealthyTime  time.Duration
	HealthyDeadline time.Duration
}

// Disconnect reconcile strategies.
var DisconnectReconcileOptions = []string{"best_score", "keep_original", "keep_replacement", "longest_running"}

// DisconnectStrategy governs allocations on clients that lose contact.
type DisconnectStrategy struct {
	LostAfter         time.Duration
	StopOnClientAfter *time.Duration `json:",omitempty"`
	Replace           *bool          `json:",omitempty"`
	Reconcile         string
}

// EphemeralDisk is the scratch disk of an allocation.
type EphemeralDisk struct {
	Sticky  bool
	Migrate bool
	SizeMB  int
}

// VolumeRequest asks for a volume that tasks of the group may mount.
type VolumeRequest struct {
	Name     string
	Type     string
	Source   string
	ReadOnly bool
	PerAlloc bool
}

// VolumeMount mounts a group volume into a task.
type VolumeMount struct {
	Volume          string
	Destination     string
	ReadOnly        bool
	PropagationMode string
}

// NetworkResource asks for a network mode and ports.
type NetworkResource struct {
	Mode          string
	Device        string
	CIDR          string
	IP            string
	Hostname      string
	ReservedPorts []Port
	DynamicPorts  []Port
	MBits         int
}

// Port is a labelled port: Value is the static host port (0 for dynamic),
// To the port inside the task's network namespace.
type Port struct {
	Label       string
	Value       int
	To          int
	HostNetwork string
}

// Resources a task asks for. CPU is in MHz, memory and disk in MB.
type Resources struct {
	CPU         int
	Cores       int
	MemoryMB    int
	MemoryMaxMB int
	DiskMB      int
	Networks    []*NetworkResource
}

// TaskLifecycle places a task before, after or beside the main tasks.
type TaskLifecycle struct {
	Hook    string
	Sidecar bool
}

// Lifecycle hooks.
const (
	LifecycleHookPrestart  = "prestart"
	LifecycleHookPoststart = "poststart"
	LifecycleHookPoststop  = "poststop"
)

// LogConfig bounds a task's rotated log files.
type LogConfig struct {
	MaxFiles      int
	MaxFileSizeMB int
	Disabled      bool
}

// Template renders a file into the task's directory.
type Template struct {
	SourcePath   string
	DestPath     string
	EmbeddedTmpl string
	ChangeMode   string
	ChangeSignal string
	Splay        time.Duration
	Perms        string
	LeftDelim    string
	RightDelim   string
	Envvars      bool
	Once         bool
}

// Service registers a task or group in Skiff's service catalogue.
type Service struct {
	Name        string
	Tags        []string
	CanaryTags  []string
	PortLabel   string
	AddressMode string
	Address     string
	TaskName    string
	Provider    string
	Checks      []*ServiceCheck
	Meta        map[string]string
	OnUpdate    string
}

// ServiceCheck is a health check of a service.
type ServiceCheck struct {
	Name                   string
	Type                   string
	Command                string
	Args                   []string
	Path                   string
	Protocol               string
	PortLabel              string
	Method                 string
	Interval               time.Duration
	Timeout                time.Duration
	InitialStatus          string
	TaskName               string
	SuccessBeforePassing   int
	FailuresBeforeCritical int
	Header                 map[string][]string
}

// PeriodicConfig launches a batch job on a cron schedule.
type PeriodicConfig struct {
	Enabled         bool
	Spec            string
	SpecType        string
	ProhibitOverlap bool
	TimeZone        string
}

// ParameterizedJobConfig makes a job a template for dispatched jobs.
type ParameterizedJobConfig struct {
	Payload      string
	MetaRequired []string
	MetaOptional []string
}

// ScalingPolicy bounds the count of a group and configures autoscaling.
type ScalingPolicy struct {
	ID      string
	Type    string
	Min     int64
	Max     int64
	Enabled bool
	Policy  map[string]any
}

// JobListStub is the summary of a job in a listing.
type JobListStub struct {
	ID                string
	ParentID          string
	Name              string
	Namespace         string
	Datacenters       []string
	NodePool          string
	Type              string
	Priority          int
	Periodic          bool
	ParameterizedJob  bool
	Stop              bool
	Status            string
	StatusDescription string
	JobSummary        *JobSummary
	CreateIndex       uint64
	ModifyIndex       uint64
	JobModifyIndex    uint64
	SubmitTime        int64
	Meta              map[string]string `json:",omitempty"`

	// memo holds its reader's encoding of the stub (SetMemo); nil but
	// for stubs made to be shared (KeepMemo). Not sent.
	memo *atomic.Pointer[[]byte]
}

// KeepMemo makes s keep an encoding that a reader sets (SetMemo), and
// returns s. For stubs a server hands to many lists while its job and
// summary stay the same (stubs are never changed once made); a stub
// decoded from the wire is read once and keeps none.
func (s *JobListStub) KeepMemo() *JobListStub {
	s.memo = new(atomic.Pointer[[]byte])
	return s
}

// Memo returns what SetMemo kept, or nil.
func (s *JobListStub) Memo() []byte {
	if s.memo == nil {
		return nil
	}
	if b := s.memo.Load(); b != nil {
		return *b
	}
	return nil
}

// SetMemo keeps a copy of b, an encoding of the stub, if s keeps one
// (KeepMemo). One kind of encoding per stub: the HTTP agent's JSON.
func (s *JobListStub) SetMemo(b []byte) {
	if s.memo != nil {
		c := bytes.Clone(b)
		s.memo.Store(&c)
	}
}

// Stub returns the job's list entry, with the given summary.
func (j *Job) Stub(summary *JobSummary) *JobListStub {
	return &JobListStub{
		ID: j.ID, ParentID: j.ParentID, Name: j.Name, Namespace: j.Namespace,
		Datacenters: j.Datacenters, NodePool: j.NodePool, Type: j.Type,
		Priority: j.Priority, Periodic: j.Periodic != nil,
		ParameterizedJob: j.ParameterizedJob != nil && !j.Dispatched,
		Stop:             j.Stop, Status: j.Status, StatusDescription: j.StatusDescription,
		JobSummary: summary, CreateIndex: j.CreateIndex, ModifyIndex: j.ModifyIndex,
		JobModifyIndex: j.JobModifyIndex, SubmitTime: j.SubmitTime, Meta: j.Meta,
	}
}

// JobSummary counts a job's allocations by state, per task group.
type JobSummary struct {
	JobID       string
	Namespace   string
	Summary     map[string]TaskGroupSummary
	CreateIndex uint64
	ModifyIndex uint64
}

// TaskGroupSummary counts the allocations of one group by state.
type TaskGroupSummary struct {
	Queued   int
	Complete int
	Failed   int
	Running  int
	Starting int
	Lost     int
	Unknown  int
}
