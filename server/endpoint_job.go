package server

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/skiffhq/skiff/fsm"
	"github.com/skiffhq/skiff/state"
	"github.com/skiffhq/skiff/structs"
)

// ErrBadRequest marks errors that the caller must fix; the HTTP layer
// answers them with 400.
var ErrBadRequest = structs.ErrBadRequest

// Job registers, stops and reads jobs.
type Job struct{ srv *Server }

// Register validates a job and commits it with its evaluation in one raft
// entry.
func (j *Job) Register(args *structs.JobRegisterRequest, reply *structs.JobRegisterResponse) error {
	return j.srv.write("Job.Register", args, reply, func() error { return j.register(args, reply) })
}

func (j *Job) register(args *structs.JobRegisterRequest, reply *structs.JobRegisterResponse) error {
	if args.Job == nil {
		return fmt.Errorf("%w: the request has no Job", ErrBadRequest)
	}
	job := args.Job
	if err := j.prepare(job, args.Namespace); err != nil {
		return err
	}

	// EnforceIndex is checked by the FSM, where the write is applied.
	cur, err := j.srv.fsm.State().JobByID(nil, job.Namespace, job.ID)
	if err != nil {
		return err
	}
	if args.PreserveCounts && cur != nil {
		for _, tg := range job.TaskGroups {
			if old := cur.LookupTaskGroup(tg.Name); old != nil {
				tg.Count = old.Count
			}
		}
	}
	now := time.Now()
	args.SubmitTime = now.UnixNano()
	args.Eval = nil
	if job.Periodic == nil && job.ParameterizedJob == nil {
		args.Eval = jobEval(job, structs.EvalTriggerJobRegister)
	}
	index, resp, err := j.srv.raftApplyResult(structs.JobRegisterRequestType, args)
	if err != nil {
		return err
	}
	reply.Index = index
	if args.Eval != nil {
		reply.EvalID, reply.EvalCreateIndex = args.Eval.ID, index
		j.srv.enqueueEvals(index, args.Eval)
	}
	if r, ok := resp.(*fsm.RegisterResult); ok {
		reply.JobModifyIndex = r.JobModifyIndex // this write's, not a later writer's
	}
	return nil
}

// Revert registers an earlier version of a job again, as a new version,
// through the same path as Register (validation, an evaluation in the
// same raft entry). The version must be tracked and differ from the
// current one; EnforcePriorVersion, when set, must be the current version.
func (j *Job) Revert(args *structs.JobRevertRequest, reply *structs.JobRegisterResponse) error {
	return j.srv.write("Job.Revert", args, reply, func() error { return j.revert(args, reply) })
}

func (j *Job) revert(args *structs.JobRevertRequest, reply *structs.JobRegisterResponse) error {
	ns := namespaceOf(args.Namespace)
	snap := j.srv.fsm.State().Snapshot()
	cur, err := snap.JobByID(nil, ns, args.JobID)
	if err != nil {
		return err
	}
	if cur == nil {
		return fmt.Errorf("job %q %w in namespace %q", args.JobID, structs.ErrNotFound, ns)
	}
	old, err := snap.JobByIDAndVersion(nil, ns, args.JobID, args.JobVersion)
	if err != nil {
		return err
	}
	if old == nil {
		versions, err := snap.JobVersionsByID(nil, ns, args.JobID)
		if err != nil {
			return err
		}
		kept := make([]string, 0, len(versions))
		for _, v := range versions {
			kept = append(kept, strconv.FormatUint(v.Version, 10))
		}
		return fmt.Errorf("job %q version %d %w (the versions kept are %s; see \"skiff job history\")",
			args.JobID, args.JobVersion, structs.ErrNotFound, strings.Join(kept, ", "))
	}
	if args.JobVersion == cur.Version {
		return fmt.Errorf("%w: job %q is already at version %d", ErrBadRequest, args.JobID, cur.Version)
	}
	reg := &structs.JobRegisterRequest{Job: revertCopy(old), WriteRequest: args.WriteRequest}
	reg.Namespace = ns
	if p := args.EnforcePriorVersion; p != nil {
		if *p != cur.Version {
			return fmt.Errorf("%w: job %q is at version %d, not at version %d as the revert requires", ErrBadRequest, args.JobID, cur.Version, *p)
		}
		// The check holds until the entry is applied: a register in
		// between changes the job modify index, and the FSM refuses this
		// one.
		reg.EnforceIndex, reg.JobModifyIndex = true, cur.JobModifyIndex
	}
	return j.register(reg, reply)
}

// prepare readies a job from a request for registration (or a dry run):
// defaults, validation, region, and the server-managed fields cleared.
func (j *Job) prepare(job *structs.Job, namespace string) error {
	if namespace != "" && job.Namespace == "" {
		job.Namespace = namespace
	}
	if nulls := structs.NullEntries(job); len(nulls) > 0 {
		return fmt.Errorf("%w: the job holds null where a block belongs, at %s: remove it or give it a value", ErrBadRequest, strings.Join(nulls, ", "))
	}
	job.Canonicalize()
	if err := job.Validate(); err != nil {
		return err
	}
	if job.Region != j.srv.config.Region {
		return fmt.Errorf("%w: the job's region %q is not this cluster's region %q", ErrBadRequest, job.Region, j.srv.config.Region)
	}
	// Server-managed fields are never taken from the request.
	job.Stop, job.Status, job.StatusDescription, job.Stable = false, "", "", false
	job.Version, job.CreateIndex, job.ModifyIndex, job.JobModifyIndex = 0, 0, 0, 0
	return nil
}

// Deregister stops a job (its allocations will be stopped) or, with
// Purge, removes it and its history.
func (j *Job) Deregister(args *structs.JobDeregisterRequest, reply *structs.JobDeregisterResponse) error {
	return j.srv.write("Job.Deregister", args, reply, func() error { return j.deregister(args, reply) })
}

func (j *Job) deregister(args *structs.JobDeregisterRequest, reply *structs.JobDeregisterResponse) error {
	ns := namespaceOf(args.Namespace)
	args.Namespace = ns
	job, err := j.srv.fsm.State().JobByID(nil, ns, args.JobID)
	if err != nil {
		return err
	}
	if job == nil {
		return fmt.Errorf("job %q %w in namespace %q", args.JobID, structs.ErrNotFound, ns)
	}
	args.Eval = nil
	if job.Periodic == nil && job.ParameterizedJob == nil {
		args.Eval = jobEval(job, structs.EvalTriggerJobDeregister)
	}
	index, err := j.srv.raftApply(structs.JobDeregisterRequestType, args)
	if err != nil {
		return err
	}
	reply.Index = index
	reply.JobModifyIndex = index
	j.srv.blocked.Untrack(structs.NamespacedID{Namespace: ns, ID: job.ID})
	if args.Eval != nil {
		reply.EvalID, reply.EvalCreateIndex = args.Eval.ID, index
		j.srv.enqueueEvals(index, args.Eval)
	}
	return nil
}

func namespaceOf(ns string) string {
	if ns == "" {
		return structs.DefaultNamespace
	}
	return ns
}

// GetJob returns one job (nil if absent), blocking if asked.
func (j *Job) GetJob(args *structs.JobSpecificRequest, reply *structs.SingleJobResponse) error {
	if done, err := j.srv.forward("Job.GetJob", args, args, reply); done {
		return err
	}
	return j.srv.blockingQuery("Job.GetJob", &args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, snap *state.Snapshot) (uint64, error) {
		job, err := snap.JobByID(ws, namespaceOf(args.Namespace), args.JobID)
		if err != nil {
			return 0, err
		}
		reply.Job = job
		if job != nil {
			return job.ModifyIndex, nil
		}
		return snap.MaxIndex(state.TableJobs)
	})
}

// List lists jobs with their summaries, filtered by ID prefix; namespace
// "*" lists every namespace.
func (j *Job) List(args *structs.JobListRequest, reply *structs.JobListResponse) error {
	if done, err := j.srv.forward("Job.List", args, args, reply); done {
		return err
	}
	return j.srv.blockingQuery("Job.List", &args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, snap *state.Snapshot) (uint64, error) {
		ns := namespaceOf(args.Namespace)
		jobs, err := snap.JobsByIDPrefix(ws, ns, args.Prefix)
		if err != nil {
			return 0, err
		}
		sums, err := snap.JobSummariesByIDPrefix(ws, ns, args.Prefix)
		if err != nil {
			return 0, err
		}
		// Both are sorted by namespace, then job ID: walk them together.
		jobSums := make([]*structs.JobSummary, len(jobs))
		for i, job := range jobs {
			for len(sums) > 0 && (sums[0].Namespace < job.Namespace || sums[0].Namespace == job.Namespace && sums[0].JobID < job.ID) {
				sums = sums[1:] // a summary without its job
			}
			if len(sums) > 0 && sums[0].Namespace == job.Namespace && sums[0].JobID == job.ID {
				jobSums[i], sums = sums[0], sums[1:]
			}
		}
		reply.Jobs = j.srv.stubs.stubs(jobs, jobSums)
		return snap.MaxIndex(state.TableJobs, state.TableJobSummary)
	})
}

// GetJobVersions lists a job's versions, newest first.
func (j *Job) GetJobVersions(args *structs.JobSpecificRequest, reply *structs.JobVersionsResponse) error {
	if done, err := j.srv.forward("Job.GetJobVersions", args, args, reply); done {
		return err
	}
	return j.srv.blockingQuery("Job.GetJobVersions", &args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, snap *state.Snapshot) (uint64, error) {
		versions, err := snap.JobVersionsByID(ws, namespaceOf(args.Namespace), args.JobID)
		if err != nil {
			return 0, err
		}
		reply.Versions = versions
		if len(versions) == 0 {
			return snap.MaxIndex(state.TableJobVersions)
		}
		var idx uint64
		for _, v := range versions {
			idx = max(idx, v.ModifyIndex)
		}
		return idx, nil
	})
}

// Summary returns a job's allocation counts per group.
func (j *Job) Summary(args *structs.JobSpecificRequest, reply *structs.JobSummaryResponse) error {
	if done, err := j.srv.forward("Job.Summary", args, args, reply); done {
		return err
	}
	return j.srv.blockingQuery("Job.Summary", &args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, snap *state.Snapshot) (uint64, error) {
		sum, err := snap.JobSummaryByID(ws, namespaceOf(args.Namespace), args.JobID)
		if err != nil {
			return 0, err
		}
		reply.JobSummary = sum
		if sum != nil {
			return sum.ModifyIndex, nil
		}
		return snap.MaxIndex(state.TableJobSummary)
	})
}

// Allocations lists a job's allocations.
func (j *Job) Allocations(args *structs.JobSpecificRequest, reply *structs.JobAllocationsResponse) error {
	if done, err := j.srv.forward("Job.Allocations", args, args, reply); done {
		return err
	}
	return j.srv.blockingQuery("Job.Allocations", &args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, snap *state.Snapshot) (uint64, error) {
		allocs, err := snap.AllocsByJob(ws, namespaceOf(args.Namespace), args.JobID, args.All)
		if err != nil {
			return 0, err
		}
		reply.Allocations = stubs(allocs)
		// Which allocations count depends on the job's incarnation too.
		return snap.MaxIndex(state.TableAllocs, state.TableJobs)
	})
}

// Evaluations lists a job's evaluations, newest first.
func (j *Job) Evaluations(args *structs.JobSpecificRequest, reply *structs.JobEvaluationsResponse) error {
	if done, err := j.srv.forward("Job.Evaluations", args, args, reply); done {
		return err
	}
	return j.srv.blockingQuery("Job.Evaluations", &args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, snap *state.Snapshot) (uint64, error) {
		evals, err := snap.EvalsByJob(ws, namespaceOf(args.Namespace), args.JobID)
		if err != nil {
			return 0, err
		}
		sort.Slice(evals, func(a, b int) bool { return evals[a].CreateIndex > evals[b].CreateIndex })
		reply.Evaluations = evals
		return snap.MaxIndex(state.TableEvals)
	})
}
