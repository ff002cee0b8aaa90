package structs

import (
	"context"
	"errors"
	"time"
)

// Errors callers branch on. They cross the RPC boundary as strings, so
// compare with IsErr, not errors.Is, when they may have come from a peer.
var (
	ErrNoLeader      = errors.New("no cluster leader")
	ErrNotFound      = errors.New("not found")
	ErrIndexMismatch = errors.New("index mismatch")
	// ErrNodeSecret: a node request carried the wrong secret ID.
	ErrNodeSecret = errors.New("bad node secret")
	// ErrOutcomeUnknown: a write may or may not have been applied (the
	// leader lost leadership while committing it, or the connection broke
	// after the request was sent). It is never retried automatically.
	ErrOutcomeUnknown = errors.New("outcome unknown")
	// ErrBadRequest: the caller must change the request; sending it again
	// cannot help (HTTP 400).
	ErrBadRequest = errors.New("bad request")
)

// IsErr reports whether err is, or came over the wire as, target.
func IsErr(err, target error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, target) {
		return true
	}
	return containsString(err.Error(), target.Error())
}

func containsString(s, sub string) bool {
	return len(sub) <= len(s) && (s == sub || indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// QueryOptions are common to every read RPC.
type QueryOptions struct {
	Region        string
	Namespace     string
	AuthToken     string
	Prefix        string
	MinQueryIndex uint64        // block until the result's index exceeds it
	MaxQueryTime  time.Duration // how long to block at most
	AllowStale    bool          // any server may answer from its own state
	Forwarded     bool          // set by a server that forwarded the call

	// ctx is the caller's context, for calls made in process (the HTTP
	// API): a blocking query ends when the caller goes away. It is never
	// encoded.
	ctx context.Context
}

// SetContext attaches the caller's context to an in-process call.
func (q *QueryOptions) SetContext(ctx context.Context) { q.ctx = ctx }

// Context returns the caller's context, or Background.
func (q *QueryOptions) Context() context.Context {
	if q.ctx == nil {
		return context.Background()
	}
	return q.ctx
}

// RequestRegion returns the region the request is for.
func (q *QueryOptions) RequestRegion() string { return q.Region }

// IsRead reports that the request only reads.
func (q *QueryOptions) IsRead() bool { return true }

// IsStale reports whether a follower may answer.
func (q *QueryOptions) IsStale() bool { return q.AllowStale }

// SetForwarded marks the request as forwarded by a server.
func (q *QueryOptions) SetForwarded() { q.Forwarded = true }

// IsForwarded reports whether a server already forwarded the request.
func (q *QueryOptions) IsForwarded() bool { return q.Forwarded }

// QueryMeta is returned with every read.
type QueryMeta struct {
	Index       uint64        // raft index of the data returned
	LastContact time.Duration // time since the answering server heard from the leader
	KnownLeader bool          // whether the answering server knows a leader
}

// WriteRequest is common to every write RPC.
type WriteRequest struct {
	Region    string
	Namespace string
	AuthToken string
	Forwarded bool
}

// RequestRegion returns the region the request is for.
func (w *WriteRequest) RequestRegion() string { return w.Region }

// IsRead reports that the request writes.
func (w *WriteRequest) IsRead() bool { return false }

// IsStale is false: writes always go to the leader.
func (w *WriteRequest) IsStale() bool { return false }

// SetForwarded marks the request as forwarded by a server.
func (w *WriteRequest) SetForwarded() { w.Forwarded = true }

// IsForwarded reports whether a server already forwarded the request.
func (w *WriteRequest) IsForwarded() bool { return w.Forwarded }

// Context is Background: writes are short and must not be cut off midway.
func (w *WriteRequest) Context() context.Context { return context.Background() }

// WriteMeta is returned with every write.
type WriteMeta struct {
	Index uint64 // raft index at which the write was applied
}

// RPCInfo is what the RPC layer needs of every request to route it.
type RPCInfo interface {
	RequestRegion() string
	IsRead() bool
	IsStale() bool
	SetForwarded()
	IsForwarded() bool
	Context() context.Context
}

// JobRegisterRequest registers or updates a job. The leader fills in Eval
// so that the job and its evaluation are one raft entry.
type JobRegisterRequest struct {
	Job            *Job
	EnforceIndex   bool
	JobModifyIndex uint64
	PreserveCounts bool
	Eval           *Evaluation
	SubmitTime     int64
	WriteRequest
}

// JobRegisterResponse answers a register.
type JobRegisterResponse struct {
	EvalID          string
	EvalCreateIndex uint64
	JobModifyIndex  uint64
	Warnings        string
	QueryMeta
}

// JobDeregisterRequest stops (or with Purge removes) a job.
type JobDeregisterRequest struct {
	JobID string
	Purge bool
	Eval  *Evaluation
	WriteRequest
}

// JobDeregisterResponse answers a deregister.
type JobDeregisterResponse struct {
	EvalID          string
	EvalCreateIndex uint64
	JobModifyIndex  uint64
	QueryMeta
}

// JobSpecificRequest reads one job or what belongs to it.
type JobSpecificRequest struct {
	JobID string
	All   bool
	QueryOptions
}

// SingleJobResponse returns one job, nil if there is none.
type SingleJobResponse struct {
	Job *Job
	QueryMeta
}

// JobListRequest lists jobs, optionally by ID prefix.
type JobListRequest struct {
	QueryOptions
}

// JobListResponse lists jobs.
type JobListResponse struct {
	Jobs []*JobListStub
	QueryMeta
}

// JobVersionsResponse lists a job's versions, newest first.
type JobVersionsResponse struct {
	Versions []*Job
	QueryMeta
}

// JobSummaryResponse returns a job's summary.
type JobSummaryResponse struct {
	JobSummary *JobSummary
	QueryMeta
}

// JobAllocationsResponse lists a job's allocations.
type JobAllocationsResponse struct {
	Allocations []*AllocListStub
	QueryMeta
}

// JobEvaluationsResponse lists a job's evaluations.
type JobEvaluationsResponse struct {
	Evaluations []*Evaluation
	QueryMeta
}

// EvalSpecificRequest reads one evaluation.
type EvalSpecificRequest struct {
	EvalID string
	QueryOptions
}

// SingleEvalResponse returns one evaluation, nil if there is none.
type SingleEvalResponse struct {
	Eval *Evaluation
	QueryMeta
}

// EvalListResponse lists evaluations.
type EvalListResponse struct {
	Evaluations []*Evaluation
	QueryMeta
}

// GenericRequest is a read with no arguments of its own.
type GenericRequest struct {
	QueryOptions
}

// GenericResponse answers a write with nothing more to say.
type GenericResponse struct {
	WriteMeta
}

// RaftServer is one member of the raft configuration.
type RaftServer struct {
	ID           string
	Node         string
	Address      string
	Leader       bool
	Voter        bool
	RaftProtocol string
}

// RaftConfigurationResponse is the raft configuration as the leader has it.
type RaftConfigurationResponse struct {
	Servers []*RaftServer
	Index   uint64
}

// RaftPeerRequest removes a raft peer by ID or address.
type RaftPeerRequest struct {
	ID      string
	Address string
	WriteRequest
}

// SnapshotResponse carries a cluster snapshot.
type SnapshotResponse struct {
	Snapshot []byte
	QueryMeta
}

// SnapshotRestoreRequest carries a snapshot to restore.
type SnapshotRestoreRequest struct {
	Snapshot []byte
	WriteRequest
}

// ServerMember is a server as gossip sees it.
type ServerMember struct {
	Name   string
	Addr   string
	Port   uint16
	Tags   map[string]string
	Status string
}

// ServerMembersResponse lists the servers gossip knows.
type ServerMembersResponse struct {
	ServerName   string
	ServerRegion string
	ServerDC     string
	Members      []*ServerMember
}

// NodeRegisterRequest registers (or re-registers) a client node.
type NodeRegisterRequest struct {
	Node *Node
	// Evals are added by the leader when the node is new or becomes ready:
	// one per system job, which may now place on it, and one per job that
	// blocked waiting for capacity is woken separately.
	Evals []*Evaluation
	WriteRequest
}

// NodeUpdateStatusRequest changes a node's status; a client sends its
// current status as its heartbeat. The leader fills in Evals (one per job
// with allocations on a node that goes down) and UpdatedAt.
type NodeUpdateStatusRequest struct {
	NodeID    string
	SecretID  string
	Status    string
	UpdatedAt int64
	Evals     []*Evaluation
	WriteRequest
}

// NodeLivenessRequest is a client's hello on a liveness connection, and
// what the server holding that connection tells the leader when it starts
// (Connected) and when it ends. Generation orders a node's connections:
// the client takes a new, larger one for every connection it opens.
type NodeLivenessRequest struct {
	NodeID     string
	SecretID   string
	Generation uint64
	Connected  bool
	WriteRequest
}

// NodeDeregisterRequest removes nodes.
type NodeDeregisterRequest struct {
	NodeIDs []string
	WriteRequest
}

// NodeUpdateResponse answers a node's register or heartbeat: when to
// heartbeat next, and where the servers are.
type NodeUpdateResponse struct {
	HeartbeatTTL    time.Duration
	EvalIDs         []string
	EvalCreateIndex uint64
	NodeModifyIndex uint64
	LeaderRPCAddr   string
	Servers         []string
	QueryMeta
}

// NodeClientAllocsRequest is a client's blocking pull of its allocations.
// SecretID proves the caller is the node.
type NodeClientAllocsRequest struct {
	NodeID   string
	SecretID string
	QueryOptions
}

// NodeClientAllocsResponse maps each allocation on the node to its
// AllocModifyIndex, so the client fetches only what changed.
type NodeClientAllocsResponse struct {
	Allocs map[string]uint64
	QueryMeta
}

// AllocsGetRequest reads allocations by ID. With MinQueryIndex, the
// answering server first waits until its state reaches that index (so a
// client reading from a follower sees what the pull told it about).
type AllocsGetRequest struct {
	AllocIDs []string
	QueryOptions
}

// AllocsGetResponse returns the allocations found, in request order.
type AllocsGetResponse struct {
	Allocs []*Allocation
	QueryMeta
}

// AllocUpdateRequest carries a client's allocation status updates (client
// status, task states, deployment health), batched. The leader adds Evals
// (rescheduling of failed allocations) to the same raft entry.
type AllocUpdateRequest struct {
	NodeID   string
	SecretID string
	Alloc    []*Allocation
	Evals    []*Evaluation
	WriteRequest
}

// AllocSpecificRequest reads one allocation.
type AllocSpecificRequest struct {
	AllocID string
	QueryOptions
}

// SingleAllocResponse returns one allocation, nil if absent.
type SingleAllocResponse struct {
	Alloc *Allocation
	QueryMeta
}

// NodeSpecificRequest reads one node.
type NodeSpecificRequest struct {
	NodeID string
	QueryOptions
}

// SingleNodeResponse returns one node, nil if absent.
type SingleNodeResponse struct {
	Node *Node
	QueryMeta
}

// NodeListResponse lists nodes.
type NodeListResponse struct {
	Nodes []*NodeListStub
	QueryMeta
}

// NodeUpdateEligibilityRequest marks a node eligible or ineligible for new
// placements (allocations already there keep running). The leader adds
// Evals (system jobs, when the node becomes eligible).
type NodeUpdateEligibilityRequest struct {
	NodeID      string
	Eligibility string
	// UpdatedAt is no longer applied (an eligibility change is not a
	// status change); kept so older raft log entries decode as written.
	UpdatedAt int64
	Evals     []*Evaluation
	WriteRequest
}

// NodeEligibilityUpdateResponse answers an eligibility change.
type NodeEligibilityUpdateResponse struct {
	EvalIDs         []string
	EvalCreateIndex uint64
	NodeModifyIndex uint64
	WriteMeta
}

// NodeUpdateDrainRequest starts (DrainStrategy set) or stops (nil) a
// node's drain. Draining makes the node ineligible; stopping a drain
// leaves it ineligible unless MarkEligible.
type NodeUpdateDrainRequest struct {
	NodeID        string
	DrainStrategy *DrainStrategy
	MarkEligible  bool
	// UpdatedAt is no longer applied (a drain is not a status change);
	// kept so older raft log entries decode as written.
	UpdatedAt int64
	Evals     []*Evaluation
	WriteRequest
}

// NodeDrainUpdateResponse answers a drain change.
type NodeDrainUpdateResponse struct {
	NodeModifyIndex uint64
	EvalIDs         []string
	EvalCreateIndex uint64
	WriteMeta
}

// AllocDesiredTransitionRequest sets desired transitions of allocations
// (the drainer's migrations) with the evaluations that act on them.
type AllocDesiredTransitionRequest struct {
	Allocs map[string]*DesiredTransition
	Evals  []*Evaluation
	WriteRequest
}

// DeploymentUpdateRequest commits a deployment's new state (the leader's
// deployment watcher, or an operator's fail or pause) in one raft entry,
// with what goes with it: a job to register (an automatic revert), the
// job version to mark stable (the deployment succeeded), evaluations.
type DeploymentUpdateRequest struct {
	Deployment *Deployment
	Job        *Job
	// StableVersion, when set, marks that version of the deployment's job
	// stable.
	StableVersion *uint64
	Evals         []*Evaluation
	// HealthyAllocs and UnhealthyAllocs are allocations of the deployment
	// an operator judged (health_check = "manual", or an override), at
	// HealthTime.
	HealthyAllocs   []string
	UnhealthyAllocs []string
	HealthTime      time.Time
	WriteRequest
}

// DeploymentListRequest lists deployments (a job's are listed with
// JobSpecificRequest).
type DeploymentListRequest struct {
	QueryOptions
}

// DeploymentListResponse is a list of deployments, newest first.
type DeploymentListResponse struct {
	Deployments []*Deployment
	QueryMeta
}

// DeploymentSpecificRequest names one deployment.
type DeploymentSpecificRequest struct {
	DeploymentID string
	QueryOptions
}

// SingleDeploymentResponse returns one deployment, nil if there is none.
type SingleDeploymentResponse struct {
	Deployment *Deployment
	QueryMeta
}

// DeploymentFailRequest fails a running or paused deployment.
type DeploymentFailRequest struct {
	DeploymentID string
	WriteRequest
}

// DeploymentPauseRequest pauses or resumes a deployment.
type DeploymentPauseRequest struct {
	DeploymentID string
	Pause        bool
	WriteRequest
}

// DeploymentAllocHealthRequest sets the health of allocations of a
// running or paused deployment by hand, with Nomad's field names.
type DeploymentAllocHealthRequest struct {
	DeploymentID           string
	HealthyAllocationIDs   []string
	UnhealthyAllocationIDs []string
	WriteRequest
}

// DeploymentUpdateResponse answers a change to a deployment.
type DeploymentUpdateResponse struct {
	EvalID                string
	EvalCreateIndex       uint64
	DeploymentModifyIndex uint64
	// RevertedJobVersion is the version registered again, if the change
	// reverted the job.
	RevertedJobVersion *uint64
	QueryMeta
}

// JobRevertRequest registers an earlier version of a job again, as a new
// version. EnforcePriorVersion, when set, must be the job's current
// version.
type JobRevertRequest struct {
	JobID               string
	JobVersion          uint64
	EnforcePriorVersion *uint64
	WriteRequest
}

// DeploymentPromoteRequest promotes the canaries of a deployment: of
// every group with All, else of the named Groups. Every canary of a group
// promoted must be healthy.
type DeploymentPromoteRequest struct {
	DeploymentID string
	All          bool
	Groups       []string
	WriteRequest
}

// LivenessHeldResponse lists the liveness connections a server holds:
// node ID -> the connection's generation. A new leader gathers them from
// every server to learn which nodes lost theirs under the old one.
type LivenessHeldResponse struct {
	Nodes map[string]uint64
	QueryMeta
}
