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
// caller of raft.Apply (a BatchResults for a batch entry); it panics on an
// entry it must not skip but cannot decode, because skipping it would make
// this server diverge.
func (f *FSM) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// BatchResults is the FSM's answer to a batch entry
// (structs.BatchEntryType): the answer to each of its entries, in order.
type BatchResults []any

// command is one write of the log: a plain entry, or one entry of a batch
// entry.
type command struct {
	log   int // the entry's position in the logs applied
	sub   int // its position in its batch entry; -1 if not in one
	index uint64
	apply applier
	body  []byte
}

// ApplyBatch applies committed entries in one store transaction (raft
// calls it with what has been committed since the last call). Each
// command (a plain entry, or one entry of a batch entry) is applied as if
// alone, so the state at each raft index is the same however raft batched
// the entries: a command that fails without changing anything is only
// answered with its error. One that fails having changed the state must
// not leave part of its writes, so the transaction is dropped, and each
// entry is applied in a transaction of its own, without the commands that
// fail that way: readers see every raft index whole, never a part of a
// batch entry's writes.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	results := make([]any, len(logs))
	cmds, release := f.commands(logs, results)
	defer release()
	answer := func(c command, r any) {
		if c.sub < 0 {
			results[c.log] = r
		} else {
			results[c.log].(BatchResults)[c.sub] = r
		}
	}
	if _, ok := f.applyCommands(cmds, nil, answer); ok || len(cmds) == 1 {
		return results
	}
	for len(cmds) > 0 {
		n := 1
		for n < len(cmds) && cmds[n].log == cmds[0].log {
			n++
		}
		f.applyEntry(cmds[:n], answer)
		cmds = cmds[n:]
	}
	return results
}

// applyEntry applies the commands of one entry in one transaction,
// leaving out those that fail after changing the state: each such failure
// drops the transaction and starts the entry again without it. A command
// left out changes nothing, as when applied alone, so the others see the
// same state as they would have.
func (f *FSM) applyEntry(cmds []command, answer func(command, any)) {
	skip := map[int]bool{}
	for len(skip) < len(cmds) {
		failed, ok := f.applyCommands(cmds, skip, answer)
		if ok || failed < 0 {
			return
		}
		skip[failed] = true
	}
}

// applyCommands applies cmds, except those at the positions in skip, in
// one transaction and commits it. A command that fails without changing
// anything is answered with its error and the others go on. If one fails
// having changed the state, it aborts the transaction and returns that
// command's position and false; if the commit fails, it answers every
// command with that error and returns -1 and false.
func (f *FSM) applyCommands(cmds []command, skip map[int]bool, answer func(command, any)) (int, bool) {
	if len(cmds) == 0 {
		return 0, true
	}
	b := f.State().Batch()
	for i, c := range cmds {
		if skip[i] {
			continue
		}
		before := b.Changes()
		res := c.apply(b, c.index, c.body)
		answer(c, res)
		if err, isErr := res.(error); isErr && err != nil && b.Changes() != before {
			b.Abort()
			return i, false
		}
	}
	if err := b.Commit(); err != nil {
		f.logger.Error("commit of applied raft entries failed: a bug; their writes are dropped", "index", cmds[0].index, "error", err)
		for i, c := range cmds {
			if !skip[i] {
				answer(c, err)
			}
		}
		return -1, false
	}
	return 0, true
}

// commands decodes logs into the commands they hold, and sets the answer
// of each batch entry to a BatchResults of its size. Call release once the
// commands are applied.
func (f *FSM) commands(logs []*raft.Log, results []any) (cmds []command, release func()) {
	var releases []func()
	release = func() {
		for _, r := range releases {
			r()
		}
	}
	for i, l := range logs {
		if l.Type != raft.LogCommand || len(l.Data) == 0 {
			continue
		}
		t, body, rel, err := structs.DecodeEntry(l.Data)
		if err != nil {
			panic(damaged(l.Index, err))
		}
		releases = append(releases, rel)
		if t != structs.BatchEntryType {
			if c, ok := f.command(l.Index, t, body); ok {
				c.log, c.sub = i, -1
				cmds = append(cmds, c)
			}
			continue
		}
		entries, err := structs.SplitBatch(body)
		if err != nil {
			panic(damaged(l.Index, err))
		}
		results[i] = make(BatchResults, len(entries))
		for j, e := range entries {
			if c, ok := f.command(l.Index, structs.MessageType(e[0]), e[1:]); ok {
				c.log, c.sub = i, j
				cmds = append(cmds, c)
			}
		}
	}
	return cmds, release
}

// command returns the command of an entry of type t, or false for an
// ignorable entry of a type this server does not know.
func (f *FSM) command(index uint64, t structs.MessageType, body []byte) (command, bool) {
	ignorable := t&structs.IgnoreUnknownTypeFlag != 0
	t &^= structs.IgnoreUnknownTypeFlag
	apply, ok := appliers[t]
	if !ok {
		if ignorable {
			f.logger.Warn("skipping log entry of unknown ignorable type", "type", t, "index", index)
			return command{}, false
		}
		panic(fmt.Errorf("raft log entry %d has unknown type %d; this server is older than the cluster's log: upgrade it", index, t))
	}
	return command{index: index, apply: apply, body: body}, true
}

// damaged is the panic of an entry that does not decode.
func damaged(index uint64, err error) error {
	return fmt.Errorf("raft log entry %d: %w; this server's raft log is damaged: move the raft directory of its "+
		"data_dir aside and restart it so that it copies the state from the leader (in a multi-server cluster), "+
		"or restore a saved snapshot with \"skiff operator snapshot restore\"", index, err)
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
