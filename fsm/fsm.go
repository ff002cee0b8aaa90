package fsm

import (
	"fmt"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/skiffhq/skiff/state"
	"github.com/skiffhq/skiff/structs"
)

// FSM applies raft log entries to a state store. Raft calls Apply,
// Snapshot and Restore from its own goroutines, one at a time; State may
// be called from any goroutine.
type FSM struct {
	state  atomic.Pointer[state.Store]
	logger hclog.Logger
	// JobRefs, when set and true, makes a snapshot write allocations with
	// a reference to their job version instead of a copy of the job
	// (servers of older builds cannot read it). Set it before raft starts.
	JobRefs func() bool
}

var _ raft.BatchingFSM = (*FSM)(nil)

// New returns an FSM over an empty store.
func New(logger hclog.Logger) *FSM {
	f := &FSM{logger: logger.Named("fsm")}
	f.state.Store(state.New())
	return f
}

// State returns the current store. After a snapshot restore it is a new
// store, and the old one's AbandonCh is closed.
func (f *FSM) State() *state.Store { return f.state.Load() }

// Apply applies one committed entry. It returns nil or an error for the
// caller of raft.Apply; it panics on an entry it must not skip but cannot
// decode, because skipping it would make this server diverge.
func (f *FSM) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies committed entries in one store transaction (raft
// calls it with what has been committed since the last call). Each entry is
// applied as if alone, so the state is the same however raft batched them.
// If an entry fails, its partial writes must not stay (applied alone, they
// would not), so the batch is dropped and each entry is applied in its own
// transaction instead.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	results, ok := f.applyLogs(logs)
	if ok || len(logs) == 1 {
		return results
	}
	for i := range logs {
		r, _ := f.applyLogs(logs[i : i+1])
		results[i] = r[0]
	}
	return results
}

// applyLogs applies logs in one batch and commits it, or aborts it and
// reports false when an entry failed.
func (f *FSM) applyLogs(logs []*raft.Log) ([]any, bool) {
	b := f.State().Batch()
	results := make([]any, len(logs))
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		res := f.applyOne(b, l)
		results[i] = res
		if err, isErr := res.(error); isErr && err != nil {
			b.Abort()
			return results, false
		}
	}
	if err := b.Commit(); err != nil {
		return results, false
	}
	return results, true
}

func (f *FSM) applyOne(b *state.Batch, l *raft.Log) any {
	if len(l.Data) == 0 {
		return nil
	}
	t, body, release, err := structs.DecodeEntry(l.Data)
	if err != nil {
		panic(fmt.Errorf("raft log entry %d: %w; this server's raft log is damaged: move the raft directory of its "+
			"data_dir aside and restart it so that it copies the state from the leader (in a multi-server cluster), "+
			"or restore a saved snapshot with \"skiff operator snapshot restore\"", l.Index, err))
	}
	defer release()
	ignorable := t&structs.IgnoreUnknownTypeFlag != 0
	t &^= structs.IgnoreUnknownTypeFlag
	apply, ok := appliers[t]
	if !ok {
		if ignorable {
			f.logger.Warn("skipping log entry of unknown ignorable type", "type", t, "index", l.Index)
			return nil
		}
		panic(fmt.Errorf("raft log entry %d has unknown type %d; this server is older than the cluster's log: upgrade it", l.Index, t))
	}
	return apply(b, l.Index, body)
}

// applier applies the body of one entry through a batch. It owns what it
// decodes, so the batch keeps those objects without copying them.
type applier func(b *state.Batch, index uint64, body []byte) any

var appliers = map[structs.MessageType]applier{
	structs.JobRegisterRequestType:   applyJobRegister,
	structs.JobDeregisterRequestType: applyJobDeregister,
	structs.EvalUpdateRequestType:    applyEvalUpdate,

	structs.NodeRegisterRequestType:      applyNodeRegister,
	structs.NodeUpdateStatusRequestType:  applyNodeUpdateStatus,
	structs.NodeDeregisterRequestType:    applyNodeDeregister,
	structs.ApplyPlanResultsRequestType:  applyPlanResults,
	structs.AllocClientUpdateRequestType: applyAllocClientUpdate,
	structs.NodeUpdateEligibilityType:    applyNodeEligibility,
	structs.NodeUpdateDrainType:          applyNodeDrain,
	structs.AllocDesiredTransitionType:   applyAllocDesiredTransition,
	structs.DeploymentUpdateRequestType:  applyDeploymentUpdate,
	structs.NoopRequestType:              func(*state.Batch, uint64, []byte) any { return nil },
}

// decode decodes a body or panics: a committed entry that does not decode
// is a bug or corruption, and applying the rest of the log without it
// would diverge from the other servers.
func decode(index uint64, body []byte, out any) {
	if err := structs.Decode(body, out); err != nil {
		panic(fmt.Errorf("decode raft log entry %d (%T): %w", index, out, err))
	}
}

// RegisterResult is the FSM's answer to a job registration.
type RegisterResult struct {
	JobModifyIndex uint64
}

// applyJobRegister registers a job. With EnforceIndex the check is made
// here, against the state the entry is applied to, so that of concurrent
// check-and-set registrations exactly one wins.
func applyJobRegister(b *state.Batch, index uint64, body []byte) any {
	var req structs.JobRegisterRequest
	decode(index, body, &req)
	job := req.Job
	if req.EnforceIndex {
		cur, err := b.JobByID(job.Namespace, job.ID)
		if err != nil {
			return fmt.Errorf("register job %q: %w", job.ID, err)
		}
		have := uint64(0)
		if cur != nil {
			have = cur.JobModifyIndex
		}
		if have != req.JobModifyIndex {
			if req.JobModifyIndex == 0 {
				return fmt.Errorf("%w: job %q already exists (job modify index %d); run without -check-index or pass that index", structs.ErrIndexMismatch, job.ID, have)
			}
			return fmt.Errorf("%w: job %q has job modify index %d, not %d: someone else changed it; inspect it and retry", structs.ErrIndexMismatch, job.ID, have, req.JobModifyIndex)
		}
	}
	job.SubmitTime = req.SubmitTime
	if err := b.UpsertJob(index, job); err != nil {
		return fmt.Errorf("register job %q: %w", job.ID, err)
	}
	if req.Eval != nil {
		if err := b.UpsertEvals(index, []*structs.Evaluation{req.Eval}); err != nil {
			return fmt.Errorf("register job %q: create evaluation: %w", job.ID, err)
		}
	}
	stored, err := b.JobByID(job.Namespace, job.ID)
	if err != nil || stored == nil {
		return fmt.Errorf("register job %q: read back: %v", job.ID, err)
	}
	return &RegisterResult{JobModifyIndex: stored.JobModifyIndex}
}

func applyJobDeregister(b *state.Batch, index uint64, body []byte) any {
	var req structs.JobDeregisterRequest
	decode(index, body, &req)
	if req.Purge {
		if err := b.DeleteJob(index, req.Namespace, req.JobID); err != nil {
			return fmt.Errorf("purge job %q: %w", req.JobID, err)
		}
	} else if err := b.StopJob(index, req.Namespace, req.JobID); err != nil {
		return err
	}
	if req.Eval != nil {
		if err := b.UpsertEvals(index, []*structs.Evaluation{req.Eval}); err != nil {
			return fmt.Errorf("deregister job %q: create evaluation: %w", req.JobID, err)
		}
	}
	return nil
}

func applyEvalUpdate(b *state.Batch, index uint64, body []byte) any {
	var req structs.EvalUpdateRequest
	decode(index, body, &req)
	if err := b.UpsertEvals(index, req.Evals); err != nil {
		return fmt.Errorf("update evaluations: %w", err)
	}
	return nil
}

// applyNodeRegister registers a node. The secret check is made here too,
// so that of two machines registering one node ID at once only the first
// gets it.
func applyNodeRegister(b *state.Batch, index uint64, body []byte) any {
	var req structs.NodeRegisterRequest
	decode(index, body, &req)
	cur, err := b.NodeByID(req.Node.ID)
	if err != nil {
		return fmt.Errorf("register node %s: %w", req.Node.ID, err)
	}
	if cur != nil && cur.SecretID != req.Node.SecretID {
		return fmt.Errorf("%w: node %s is registered with another secret ID", structs.ErrNodeSecret, req.Node.ID)
	}
	if err := b.UpsertNode(index, req.Node); err != nil {
		return fmt.Errorf("register node %s: %w", req.Node.ID, err)
	}
	if len(req.Evals) > 0 {
		if err := b.UpsertEvals(index, req.Evals); err != nil {
			return fmt.Errorf("register node %s: create evaluations: %w", req.Node.ID, err)
		}
	}
	return nil
}

func applyNodeUpdateStatus(b *state.Batch, index uint64, body []byte) any {
	var req structs.NodeUpdateStatusRequest
	decode(index, body, &req)
	if err := b.UpdateNodeStatus(index, req.NodeID, req.Status, req.UpdatedAt); err != nil {
		return fmt.Errorf("update status of node %s: %w", req.NodeID, err)
	}
	if len(req.Evals) > 0 {
		if err := b.UpsertEvals(index, req.Evals); err != nil {
			return fmt.Errorf("update status of node %s: create evaluations: %w", req.NodeID, err)
		}
	}
	return nil
}

func applyNodeEligibility(b *state.Batch, index uint64, body []byte) any {
	var req structs.NodeUpdateEligibilityRequest
	decode(index, body, &req)
	if err := b.UpdateNodeEligibility(index, req.NodeID, req.Eligibility); err != nil {
		return err
	}
	if len(req.Evals) > 0 {
		if err := b.UpsertEvals(index, req.Evals); err != nil {
			return fmt.Errorf("update eligibility of node %s: create evaluations: %w", req.NodeID, err)
		}
	}
	return nil
}

func applyNodeDrain(b *state.Batch, index uint64, body []byte) any {
	var req structs.NodeUpdateDrainRequest
	decode(index, body, &req)
	if err := b.UpdateNodeDrain(index, req.NodeID, req.DrainStrategy, req.MarkEligible); err != nil {
		return err
	}
	if len(req.Evals) > 0 {
		if err := b.UpsertEvals(index, req.Evals); err != nil {
			return fmt.Errorf("update drain of node %s: create evaluations: %w", req.NodeID, err)
		}
	}
	return nil
}

func applyAllocDesiredTransition(b *state.Batch, index uint64, body []byte) any {
	var req structs.AllocDesiredTransitionRequest
	decode(index, body, &req)
	if err := b.UpdateAllocsDesiredTransitions(index, req.Allocs); err != nil {
		return err
	}
	if len(req.Evals) > 0 {
		if err := b.UpsertEvals(index, req.Evals); err != nil {
			return fmt.Errorf("desired transitions: create evaluations: %w", err)
		}
	}
	return nil
}

func applyNodeDeregister(b *state.Batch, index uint64, body []byte) any {
	var req structs.NodeDeregisterRequest
	decode(index, body, &req)
	if err := b.DeleteNodes(index, req.NodeIDs); err != nil {
		return fmt.Errorf("deregister nodes: %w", err)
	}
	return nil
}

// applyAllocClientUpdate records what a client reports about its
// allocations, and the evaluations the leader created for failed ones.
func applyAllocClientUpdate(b *state.Batch, index uint64, body []byte) any {
	var req structs.AllocUpdateRequest
	decode(index, body, &req)
	if err := b.UpdateAllocsFromClient(index, req.Alloc); err != nil {
		return fmt.Errorf("update allocations of node %s: %w", req.NodeID, err)
	}
	if len(req.Evals) > 0 {
		if err := b.UpsertEvals(index, req.Evals); err != nil {
			return fmt.Errorf("update allocations of node %s: create evaluations: %w", req.NodeID, err)
		}
	}
	return nil
}

// applyDeploymentUpdate writes a deployment's new state with the job it
// registers (an automatic revert), the health an operator gave its
// allocations, the version it marks stable and its evaluations, in one
// transaction.
func applyDeploymentUpdate(b *state.Batch, index uint64, body []byte) any {
	var req structs.DeploymentUpdateRequest
	decode(index, body, &req)
	d := req.Deployment
	if d != nil {
		if err := b.UpsertDeployment(index, d); err != nil {
			return err
		}
	}
	if req.Job != nil {
		if err := b.UpsertJob(index, req.Job); err != nil {
			return fmt.Errorf("register job %q: %w", req.Job.ID, err)
		}
	}
	if d != nil && len(req.HealthyAllocs)+len(req.UnhealthyAllocs) > 0 {
		if err := b.SetAllocHealth(index, d.ID, req.HealthyAllocs, req.UnhealthyAllocs, req.HealthTime); err != nil {
			return err
		}
	}
	if req.StableVersion != nil && d != nil {
		if err := b.SetJobStable(index, d.Namespace, d.JobID, *req.StableVersion); err != nil {
			return err
		}
	}
	if len(req.Evals) > 0 {
		if err := b.UpsertEvals(index, req.Evals); err != nil {
			return fmt.Errorf("deployment update: create evaluations: %w", err)
		}
	}
	return nil
}

// applyPlanResults writes the allocations of a plan the leader verified.
func applyPlanResults(b *state.Batch, index uint64, body []byte) any {
	var req structs.ApplyPlanResultsRequest
	decode(index, body, &req)
	if req.Job != nil {
		job := req.Job
		// Share the stored row of this job version when it is the same
		// (the job_version row: unlike the jobs row, its status does not
		// change, and a snapshot can refer to it).
		if stored, err := b.JobVersion(job.Namespace, job.ID, job.Version); err == nil && stored != nil &&
			stored.CreateIndex == job.CreateIndex && stored.JobModifyIndex == job.JobModifyIndex {
			job = stored
		}
		for _, a := range req.Allocs {
			// Placements and in-place updates run the plan's job; stops
			// keep the job they ran (the store keeps it when Job is nil).
			if a.Job == nil && a.DesiredStatus == structs.AllocDesiredStatusRun {
				a.Job = job
			}
		}
	}
	if len(req.Allocs) > 0 {
		if err := b.UpsertAllocs(index, req.Allocs); err != nil {
			return fmt.Errorf("apply plan of evaluation %s: %w", req.EvalID, err)
		}
	}
	if req.Deployment != nil {
		if err := b.UpsertPlanDeployment(index, req.Deployment); err != nil {
			return fmt.Errorf("apply plan of evaluation %s: deployment: %w", req.EvalID, err)
		}
	}
	return nil
}
