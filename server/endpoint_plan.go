package server

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/skiffhq/skiff/scheduler"
	"github.com/skiffhq/skiff/state"
	"github.com/skiffhq/skiff/structs"
)

// Plan dry-runs a register: the scheduler runs against the current state
// with the job as it would be registered, and the plan it makes is
// described instead of applied. Nothing is written. It runs on the leader,
// whose state is the newest.
func (j *Job) Plan(args *structs.JobPlanRequest, reply *structs.JobPlanResponse) error {
	return j.srv.write("Job.Plan", args, reply, func() error { return j.plan(args, reply) })
}

func (j *Job) plan(args *structs.JobPlanRequest, reply *structs.JobPlanResponse) error {
	if args.Job == nil {
		return fmt.Errorf("%w: the request has no Job", ErrBadRequest)
	}
	job := args.Job
	if err := j.prepare(job, args.Namespace); err != nil {
		return err
	}
	store := j.srv.fsm.State()
	snap := store.Snapshot()
	index, err := snap.LatestIndex()
	if err != nil {
		return err
	}
	cur, err := snap.JobByID(nil, job.Namespace, job.ID)
	if err != nil {
		return err
	}
	switch {
	case cur == nil:
		job.Version, job.CreateIndex, job.JobModifyIndex = 0, index+1, index+1
	case state.SpecEqual(cur, job) && !cur.Stop:
		job.Version, job.CreateIndex, job.JobModifyIndex = cur.Version, cur.CreateIndex, cur.JobModifyIndex
		reply.JobModifyIndex = cur.JobModifyIndex
	default:
		job.Version, job.CreateIndex, job.JobModifyIndex = cur.Version+1, cur.CreateIndex, index+1
		reply.JobModifyIndex = cur.JobModifyIndex
	}
	job.ModifyIndex = index + 1

	ev := &structs.Evaluation{
		ID: structs.GenerateUUID(), Namespace: job.Namespace, Priority: job.Priority, Type: job.Type,
		TriggeredBy: structs.EvalTriggerJobRegister, JobID: job.ID, JobModifyIndex: job.JobModifyIndex,
		Status: structs.EvalStatusPending, CreateIndex: index + 1, ModifyIndex: index + 1,
	}
	p := &dryRunPlanner{}
	sched, err := scheduler.New(job.Type, scheduler.Config{
		Logger: j.srv.logger.Named("plan"), State: &planState{Snapshot: snap, job: job},
		Planner: p, Now: time.Now(), Algorithm: j.srv.config.SchedulerAlgorithm, Nodes: j.srv.schedulerNodes(store),
	})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if job.Periodic == nil && job.ParameterizedJob == nil {
		if err := sched.Process(ev); err != nil {
			return fmt.Errorf("plan job %q: %w", job.ID, err)
		}
	}
	if args.Diff {
		var old *structs.Job
		if cur != nil && !cur.Stop {
			old = cur
		}
		reply.Diff = structs.DiffJobs(old, job)
	}
	reply.Annotations = annotate(snap, job, p.plan)
	if p.eval != nil {
		reply.FailedTGAllocs = p.eval.FailedTGAllocs
		// Placements that found no node are still placements wanted.
		for tg, n := range p.eval.QueuedAllocations {
			if u := reply.Annotations.DesiredTGUpdates[tg]; u != nil && n > 0 {
				u.Place += uint64(n)
			}
		}
	}
	reply.CreatedEvals = p.created
	reply.Index = index
	return nil
}

// planState is the snapshot with the planned job in place of the stored one.
type planState struct {
	*state.Snapshot
	job *structs.Job
}

func (s *planState) JobByID(ws memdb.WatchSet, namespace, id string) (*structs.Job, error) {
	if namespace == s.job.Namespace && id == s.job.ID {
		return s.job, nil
	}
	return s.Snapshot.JobByID(ws, namespace, id)
}

// dryRunPlanner records what the scheduler would do and accepts every
// plan without applying it.
type dryRunPlanner struct {
	plan    *structs.Plan
	eval    *structs.Evaluation
	created []*structs.Evaluation
}

func (p *dryRunPlanner) SubmitPlan(plan *structs.Plan) (*structs.PlanResult, scheduler.State, error) {
	p.plan = plan
	return &structs.PlanResult{NodeUpdate: plan.NodeUpdate, NodeAllocation: plan.NodeAllocation}, nil, nil
}

func (p *dryRunPlanner) UpdateEval(ev *structs.Evaluation) error { p.eval = ev; return nil }

func (p *dryRunPlanner) CreateEval(ev *structs.Evaluation) error {
	p.created = append(p.created, ev)
	return nil
}

// annotate counts, per task group, what the plan would do.
func annotate(snap *state.Snapshot, job *structs.Job, plan *structs.Plan) *structs.PlanAnnotations {
	out := &structs.PlanAnnotations{DesiredTGUpdates: map[string]*structs.DesiredUpdates{}}
	for _, tg := range job.TaskGroups {
		out.DesiredTGUpdates[tg.Name] = &structs.DesiredUpdates{}
	}
	get := func(tg string) *structs.DesiredUpdates {
		u := out.DesiredTGUpdates[tg]
		if u == nil {
			u = &structs.DesiredUpdates{}
			out.DesiredTGUpdates[tg] = u
		}
		return u
	}
	touched := map[string]bool{}
	replaced := map[string]bool{} // stopped allocs that a placement replaces
	if plan != nil {
		for _, allocs := range plan.NodeAllocation {
			for _, a := range allocs {
				touched[a.ID] = true
				existing, _ := snap.AllocByID(nil, a.ID)
				switch {
				case existing != nil:
					get(a.TaskGroup).InPlaceUpdate++
				case a.PreviousAllocation != "":
					replaced[a.PreviousAllocation] = true
					prev, _ := snap.AllocByID(nil, a.PreviousAllocation)
					if prev != nil && prev.NodeID != "" && prev.ClientStatus != structs.AllocClientStatusLost && prev.DesiredStatus == structs.AllocDesiredStatusRun &&
						prev.ClientStatus != structs.AllocClientStatusFailed {
						get(a.TaskGroup).DestructiveUpdate++
					} else {
						get(a.TaskGroup).Place++
					}
				default:
					get(a.TaskGroup).Place++
				}
			}
		}
		for _, allocs := range plan.NodeUpdate {
			for _, a := range allocs {
				touched[a.ID] = true
				if !replaced[a.ID] {
					get(a.TaskGroup).Stop++
				}
			}
		}
	}
	live, _ := snap.AllocsByJob(nil, job.Namespace, job.ID, true)
	for _, a := range live {
		if !a.TerminalStatus() && !touched[a.ID] {
			get(a.TaskGroup).Ignore++
		}
	}
	return out
}
