package server

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/skiffhq/skiff/state"
	"github.com/skiffhq/skiff/structs"
)

// Deployment reads deployments and lets an operator fail, pause, resume
// or promote one. The rollout itself (creating deployments, following their health)
// is the scheduler's and the leader's deployment watcher's.
type Deployment struct{ srv *Server }

// List lists deployments, newest first, filtered by ID prefix
// (QueryOptions.Prefix); namespace "*" lists every namespace.
func (d *Deployment) List(args *structs.DeploymentListRequest, reply *structs.DeploymentListResponse) error {
	if done, err := d.srv.forward("Deployment.List", args, args, reply); done {
		return err
	}
	return d.srv.blockingQuery("Deployment.List", &args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, snap *state.Snapshot) (uint64, error) {
		all, err := snap.Deployments(ws)
		if err != nil {
			return 0, err
		}
		ns := namespaceOf(args.Namespace)
		out := make([]*structs.Deployment, 0, len(all))
		for _, dep := range all {
			if (ns == state.AllNamespaces || dep.Namespace == ns) && strings.HasPrefix(dep.ID, args.Prefix) {
				out = append(out, dep)
			}
		}
		sortNewestFirst(out)
		reply.Deployments = out
		return snap.MaxIndex(state.TableDeployments)
	})
}

// sortNewestFirst orders deployments by descending CreateIndex, then ID.
func sortNewestFirst(ds []*structs.Deployment) {
	slices.SortStableFunc(ds, func(a, b *structs.Deployment) int {
		return cmp.Or(cmp.Compare(b.CreateIndex, a.CreateIndex), cmp.Compare(a.ID, b.ID))
	})
}

// GetDeployment returns one deployment (nil if absent), blocking if asked.
func (d *Deployment) GetDeployment(args *structs.DeploymentSpecificRequest, reply *structs.SingleDeploymentResponse) error {
	if done, err := d.srv.forward("Deployment.GetDeployment", args, args, reply); done {
		return err
	}
	return d.srv.blockingQuery("Deployment.GetDeployment", &args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, snap *state.Snapshot) (uint64, error) {
		dep, err := snap.DeploymentByID(ws, args.DeploymentID)
		if err != nil {
			return 0, err
		}
		reply.Deployment = dep
		if dep != nil {
			return dep.ModifyIndex, nil
		}
		return snap.MaxIndex(state.TableDeployments)
	})
}

// Allocations lists the allocations placed for a deployment.
func (d *Deployment) Allocations(args *structs.DeploymentSpecificRequest, reply *structs.JobAllocationsResponse) error {
	if done, err := d.srv.forward("Deployment.Allocations", args, args, reply); done {
		return err
	}
	return d.srv.blockingQuery("Deployment.Allocations", &args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, snap *state.Snapshot) (uint64, error) {
		allocs, err := snap.AllocsByDeployment(ws, args.DeploymentID)
		if err != nil {
			return 0, err
		}
		reply.Allocations = stubs(allocs)
		return snap.MaxIndex(state.TableAllocs)
	})
}

// Deployments lists a job's deployments, newest first. Unless All is set,
// only those of the job's current incarnation are listed: a job purged and
// registered again under the same ID is a new job.
func (j *Job) Deployments(args *structs.JobSpecificRequest, reply *structs.DeploymentListResponse) error {
	if done, err := j.srv.forward("Job.Deployments", args, args, reply); done {
		return err
	}
	return j.srv.blockingQuery("Job.Deployments", &args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, snap *state.Snapshot) (uint64, error) {
		ns := namespaceOf(args.Namespace)
		deps, err := snap.DeploymentsByJobID(ws, ns, args.JobID)
		if err != nil {
			return 0, err
		}
		job, err := snap.JobByID(ws, ns, args.JobID)
		if err != nil {
			return 0, err
		}
		out := make([]*structs.Deployment, 0, len(deps))
		for _, dep := range deps {
			// A deployment that does not record its job's create index
			// (0) is kept: it cannot be told apart.
			if args.All || job == nil || dep.JobCreateIndex == 0 || dep.JobCreateIndex == job.CreateIndex {
				out = append(out, dep)
			}
		}
		sortNewestFirst(out)
		reply.Deployments = out
		return snap.MaxIndex(state.TableDeployments, state.TableJobs)
	})
}

// LatestDeployment returns the job's newest deployment, nil if it has none.
func (j *Job) LatestDeployment(args *structs.JobSpecificRequest, reply *structs.SingleDeploymentResponse) error {
	if done, err := j.srv.forward("Job.LatestDeployment", args, args, reply); done {
		return err
	}
	return j.srv.blockingQuery("Job.LatestDeployment", &args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, snap *state.Snapshot) (uint64, error) {
		dep, err := snap.LatestDeploymentByJobID(ws, namespaceOf(args.Namespace), args.JobID)
		if err != nil {
			return 0, err
		}
		reply.Deployment = dep
		return snap.MaxIndex(state.TableDeployments)
	})
}

// Fail marks an active deployment failed, as an operator's decision. If a
// group of the deployment has auto_revert, the job's latest stable version
// older than the deployment's is registered again in the same raft entry.
// An evaluation of the job is created with it, so the scheduler acts on
// the outcome.
func (d *Deployment) Fail(args *structs.DeploymentFailRequest, reply *structs.DeploymentUpdateResponse) error {
	return d.srv.write("Deployment.Fail", args, reply, func() error { return d.fail(args, reply) })
}

func (d *Deployment) fail(args *structs.DeploymentFailRequest, reply *structs.DeploymentUpdateResponse) error {
	return d.change(args.DeploymentID, reply, func(snap *state.Snapshot, dep *structs.Deployment, job *structs.Job) (*structs.DeploymentUpdateRequest, error) {
		if !dep.Active() {
			return nil, fmt.Errorf("%w: deployment %s is %s; only a running, paused or blocked deployment can be failed", ErrBadRequest, dep.ID, dep.Status)
		}
		revert, suffix, err := d.srv.revertFor(snap, dep, job)
		if err != nil {
			return nil, err
		}
		u := dep.Copy()
		u.Status, u.StatusDescription = structs.DeploymentStatusFailed, structs.DeploymentDescFailedByUser+suffix
		return &structs.DeploymentUpdateRequest{Deployment: u, Job: revert, Evals: followUp(job, dep.ID)}, nil
	})
}

// Pause pauses a running (or blocked) deployment (Pause set) or resumes a
// paused one. A resume creates an evaluation of the job in the same raft
// entry, so the rollout continues.
func (d *Deployment) Pause(args *structs.DeploymentPauseRequest, reply *structs.DeploymentUpdateResponse) error {
	return d.srv.write("Deployment.Pause", args, reply, func() error { return d.pause(args, reply) })
}

func (d *Deployment) pause(args *structs.DeploymentPauseRequest, reply *structs.DeploymentUpdateResponse) error {
	verb, from, to, desc := "resumed", structs.DeploymentStatusPaused, structs.DeploymentStatusRunning, structs.DeploymentDescRunning
	if args.Pause {
		verb, from, to, desc = "paused", structs.DeploymentStatusRunning, structs.DeploymentStatusPaused, structs.DeploymentDescPaused
	}
	return d.change(args.DeploymentID, reply, func(_ *state.Snapshot, dep *structs.Deployment, job *structs.Job) (*structs.DeploymentUpdateRequest, error) {
		if dep.Status != from && !(args.Pause && dep.Status == structs.DeploymentStatusBlocked) {
			return nil, fmt.Errorf("%w: deployment %s is %s; only a %s deployment can be %s", ErrBadRequest, dep.ID, dep.Status, from, verb)
		}
		u := dep.Copy()
		u.Status, u.StatusDescription = to, desc
		req := &structs.DeploymentUpdateRequest{Deployment: u}
		if !args.Pause {
			req.Evals = followUp(job, dep.ID)
		}
		return req, nil
	})
}

// Promote promotes the canaries of a running deployment: those of every
// group that has canaries (All), or of the named Groups. Every canary of a
// group promoted must be placed and healthy; a group promoted already is
// left as it is. An evaluation of the job is created in the same raft
// entry, so the rollout continues: the canaries take the place of old
// allocations and the rest of the group rolls.
func (d *Deployment) Promote(args *structs.DeploymentPromoteRequest, reply *structs.DeploymentUpdateResponse) error {
	return d.srv.write("Deployment.Promote", args, reply, func() error { return d.promote(args, reply) })
}

func (d *Deployment) promote(args *structs.DeploymentPromoteRequest, reply *structs.DeploymentUpdateResponse) error {
	if !args.All && len(args.Groups) == 0 {
		return fmt.Errorf("%w: the request promotes nothing; set All to promote every group with canaries, or name Groups", ErrBadRequest)
	}
	return d.change(args.DeploymentID, reply, func(snap *state.Snapshot, dep *structs.Deployment, job *structs.Job) (*structs.DeploymentUpdateRequest, error) {
		u, err := promoted(dep, args, func(id string) (*structs.Allocation, error) { return snap.AllocByID(nil, id) })
		if err != nil {
			return nil, err
		}
		return &structs.DeploymentUpdateRequest{Deployment: u, Evals: followUp(job, dep.ID)}, nil
	})
}

// SetAllocHealth records an operator's verdict on allocations of an
// active deployment: the way health is decided for groups
// with update { health_check = "manual" }, and an override for the
// others (a verdict given replaces the client's). Every allocation named
// must belong to the deployment. The leader's deployment watcher acts on
// the verdicts as on a client's: healthy ones let the rollout continue,
// an unhealthy one fails the deployment.
func (d *Deployment) SetAllocHealth(args *structs.DeploymentAllocHealthRequest, reply *structs.DeploymentUpdateResponse) error {
	return d.srv.write("Deployment.SetAllocHealth", args, reply, func() error { return d.setAllocHealth(args, reply) })
}

func (d *Deployment) setAllocHealth(args *structs.DeploymentAllocHealthRequest, reply *structs.DeploymentUpdateResponse) error {
	if len(args.HealthyAllocationIDs)+len(args.UnhealthyAllocationIDs) == 0 {
		return fmt.Errorf("%w: the request names no allocation; list them in HealthyAllocationIDs or UnhealthyAllocationIDs", ErrBadRequest)
	}
	return d.change(args.DeploymentID, reply, func(snap *state.Snapshot, dep *structs.Deployment, _ *structs.Job) (*structs.DeploymentUpdateRequest, error) {
		if !dep.Active() {
			return nil, fmt.Errorf("%w: deployment %s is %s; allocation health can be set only while it is running, blocked or paused", ErrBadRequest, dep.ID, dep.Status)
		}
		seen := map[string]bool{}
		for _, id := range slices.Concat(args.HealthyAllocationIDs, args.UnhealthyAllocationIDs) {
			if seen[id] {
				return nil, fmt.Errorf("%w: allocation %q is listed twice (or as both healthy and unhealthy); list each once", ErrBadRequest, id)
			}
			seen[id] = true
			a, err := snap.AllocByID(nil, id)
			if err != nil {
				return nil, err
			}
			switch {
			case a == nil:
				return nil, fmt.Errorf("%w: allocation %q not found; give full allocation IDs (skiff job status -verbose %s lists them)", ErrBadRequest, id, dep.JobID)
			case a.DeploymentID != dep.ID:
				return nil, fmt.Errorf("%w: allocation %s is not part of deployment %s", ErrBadRequest, id, dep.ID)
			}
		}
		return &structs.DeploymentUpdateRequest{
			Deployment: dep.Copy(), HealthyAllocs: args.HealthyAllocationIDs, UnhealthyAllocs: args.UnhealthyAllocationIDs,
			HealthTime: time.Now().UTC(),
		}, nil
	})
}

// change makes an operator's change to deployment id. Under deploymentMu
// (against the leader's watcher, which reads, decides and commits too),
// decide reads the deployment, its job (nil if purged) and the state, and
// returns the update to commit, or why there is none; change commits it
// and answers reply.
func (d *Deployment) change(id string, reply *structs.DeploymentUpdateResponse,
	decide func(snap *state.Snapshot, dep *structs.Deployment, job *structs.Job) (*structs.DeploymentUpdateRequest, error)) error {
	d.srv.deploymentMu.Lock()
	defer d.srv.deploymentMu.Unlock()
	snap := d.srv.fsm.State().Snapshot()
	dep, job, err := d.lookup(snap, id)
	if err != nil {
		return err
	}
	req, err := decide(snap, dep, job)
	if err != nil {
		return err
	}
	index, err := d.srv.raftApply(structs.DeploymentUpdateRequestType, req)
	if err != nil {
		return err
	}
	d.fillReply(reply, req, index)
	return nil
}

// followUp is the evaluation of job that acts on a change to its
// deployment deploymentID: none if the job was purged.
func followUp(job *structs.Job, deploymentID string) []*structs.Evaluation {
	if job == nil {
		return nil
	}
	return []*structs.Evaluation{deploymentEval(job, deploymentID)}
}

// promoted returns a copy of dep with the groups args names promoted, or
// a bad-request error saying why they cannot be. alloc reads an
// allocation by ID (nil if there is none).
func promoted(dep *structs.Deployment, args *structs.DeploymentPromoteRequest, alloc func(id string) (*structs.Allocation, error)) (*structs.Deployment, error) {
	switch dep.Status {
	case structs.DeploymentStatusRunning, structs.DeploymentStatusBlocked:
	case structs.DeploymentStatusPaused:
		return nil, fmt.Errorf("%w: deployment %s is paused; resume it first", ErrBadRequest, dep.ID)
	default:
		return nil, fmt.Errorf("%w: deployment %s is %s; only a running or blocked deployment can be promoted", ErrBadRequest, dep.ID, dep.Status)
	}
	groups, err := groupsToPromote(dep, args)
	if err != nil {
		return nil, err
	}
	var notReady []string
	for _, name := range groups {
		g := dep.TaskGroups[name]
		if g.Promoted {
			continue // promoted already: nothing to check, nothing to change
		}
		healthy, wanted, err := healthyCanaries(g, alloc)
		if err != nil {
			return nil, err
		}
		if healthy < wanted {
			notReady = append(notReady, fmt.Sprintf("group %s has %d of %d canaries healthy", name, healthy, wanted))
		}
	}
	if len(notReady) > 0 {
		return nil, fmt.Errorf("%w: deployment %s cannot be promoted: %s; promote once they all are", ErrBadRequest, dep.ID, strings.Join(notReady, ", "))
	}
	u := dep.Copy()
	for _, name := range groups {
		u.TaskGroups[name].Promoted = true
	}
	u.StatusDescription = structs.DeploymentDescRunning
	return u, nil
}

// groupsToPromote returns, sorted, the groups of dep a promotion names:
// with All every group that has canaries, else args.Groups, each of which
// must be a group of dep with canaries.
func groupsToPromote(dep *structs.Deployment, args *structs.DeploymentPromoteRequest) ([]string, error) {
	var out []string
	if args.All {
		for name, g := range dep.TaskGroups {
			if g != nil && g.DesiredCanaries > 0 {
				out = append(out, name)
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("%w: deployment %s has no canaries to promote", ErrBadRequest, dep.ID)
		}
		slices.Sort(out)
		return out, nil
	}
	for _, name := range args.Groups {
		g := dep.TaskGroups[name]
		switch {
		case g == nil:
			groups := slices.Sorted(maps.Keys(dep.TaskGroups))
			return nil, fmt.Errorf("%w: deployment %s has no group %q (its groups: %s)", ErrBadRequest, dep.ID, name, strings.Join(groups, ", "))
		case g.DesiredCanaries == 0:
			return nil, fmt.Errorf("%w: group %q of deployment %s has no canaries to promote", ErrBadRequest, name, dep.ID)
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// healthyCanaries counts the group's placed canaries that are healthy,
// and how many must be for the group to be promoted: every one wanted,
// and every one placed. A canary that is gone, not judged yet, unhealthy,
// or stopped is not healthy.
func healthyCanaries(g *structs.DeploymentState, alloc func(id string) (*structs.Allocation, error)) (healthy, wanted int, err error) {
	for _, id := range g.PlacedCanaries {
		a, err := alloc(id)
		if err != nil {
			return 0, 0, fmt.Errorf("read canary allocation %s: %w", id, err)
		}
		if a != nil && a.DeploymentStatus != nil && a.DeploymentStatus.Healthy != nil && *a.DeploymentStatus.Healthy && !a.TerminalStatus() {
			healthy++
		}
	}
	return healthy, max(g.DesiredCanaries, len(g.PlacedCanaries)), nil
}

// lookup returns the deployment an operator acts on, and its job (nil if
// the job was purged). A deployment that is missing is a not-found error.
func (d *Deployment) lookup(snap *state.Snapshot, id string) (*structs.Deployment, *structs.Job, error) {
	if id == "" {
		return nil, nil, fmt.Errorf("%w: the request names no deployment (DeploymentID is empty)", ErrBadRequest)
	}
	dep, err := snap.DeploymentByID(nil, id)
	if err != nil {
		return nil, nil, err
	}
	if dep == nil {
		return nil, nil, fmt.Errorf("deployment %q %w", id, structs.ErrNotFound)
	}
	job, err := snap.JobByID(nil, dep.Namespace, dep.JobID)
	if err != nil {
		return nil, nil, err
	}
	return dep, job, nil
}

// fillReply answers a committed deployment update: its index, and its
// evaluation (now handed to the broker), if any.
func (d *Deployment) fillReply(reply *structs.DeploymentUpdateResponse, req *structs.DeploymentUpdateRequest, index uint64) {
	reply.Index = index
	reply.DeploymentModifyIndex = index
	if req.Job != nil { // a revert: the earlier version registered again
		v := req.Job.Version
		reply.RevertedJobVersion = &v
	}
	if len(req.Evals) > 0 {
		reply.EvalID, reply.EvalCreateIndex = req.Evals[0].ID, index
		d.srv.enqueueEvals(index, req.Evals...)
	}
}

// autoRevert reports whether any group of the deployment reverts to the
// last stable version when the deployment fails.
func autoRevert(dep *structs.Deployment) bool {
	for _, tg := range dep.TaskGroups {
		if tg != nil && tg.AutoRevert {
			return true
		}
	}
	return false
}

// jobEval is a new pending evaluation of job, triggered by trigger.
func jobEval(job *structs.Job, trigger string) *structs.Evaluation {
	now := time.Now().UnixNano()
	return &structs.Evaluation{
		ID: structs.GenerateUUID(), Namespace: job.Namespace, Priority: job.Priority, Type: job.Type,
		TriggeredBy: trigger, JobID: job.ID, Status: structs.EvalStatusPending, CreateTime: now, ModifyTime: now,
	}
}

// deploymentEval is the evaluation of job that follows a change to one of
// its deployments.
func deploymentEval(job *structs.Job, deploymentID string) *structs.Evaluation {
	ev := jobEval(job, structs.EvalTriggerDeployment)
	ev.DeploymentID = deploymentID
	return ev
}

// revertCopy returns a copy of an earlier version of a job, ready to be
// registered again as a new version: the fields the servers manage are
// cleared (the store numbers the version) and it is submitted now.
func revertCopy(v *structs.Job) *structs.Job {
	job := v.Copy()
	job.Stop, job.Status, job.StatusDescription, job.Stable = false, "", "", false
	job.SubmitTime = time.Now().UnixNano()
	return job
}

// revertFor decides the automatic revert of a failed deployment: the job
// to register again (a copy of the latest stable version before the
// deployment's, with that Version for the caller to report), or nil, and
// what to add to the deployment's description. Nothing is reverted when
// no group has auto_revert, when the job changed since the deployment
// began (that would undo a change this deployment never rolled out), or
// when the stable version's spec is the job's already (no revert loops).
func (s *Server) revertFor(snap *state.Snapshot, dep *structs.Deployment, job *structs.Job) (*structs.Job, string, error) {
	if job == nil || job.Version != dep.JobVersion || !autoRevert(dep) {
		return nil, "", nil
	}
	stable, err := s.latestStableBefore(snap, dep.Namespace, dep.JobID, dep.JobVersion)
	if err != nil || stable == nil {
		return nil, "", err
	}
	if structs.DiffJobs(job, stable).Type == structs.DiffTypeNone {
		return nil, fmt.Sprintf(" - not rolling back to stable job version %d as current job has same specification", stable.Version), nil
	}
	revert := revertCopy(stable)
	revert.Version = stable.Version // for the caller's report; the store numbers the new version
	return revert, fmt.Sprintf(" - rolling back to job version %d", stable.Version), nil
}

// latestStableBefore returns the newest version of the job older than
// version that is marked stable (its deployment succeeded), or nil if no
// tracked version is. The leader calls it to find where a failed
// deployment reverts to: an operator's Deployment.Fail, and the
// deployment watcher. The job returned is the store's: copy it before
// changing it.
func (s *Server) latestStableBefore(snap *state.Snapshot, namespace, jobID string, version uint64) (*structs.Job, error) {
	versions, err := snap.JobVersionsByID(nil, namespace, jobID) // newest first
	if err != nil {
		return nil, fmt.Errorf("find the latest stable version of job %q before version %d: %w", jobID, version, err)
	}
	for _, v := range versions {
		if v.Version < version && v.Stable {
			return v, nil
		}
	}
	return nil, nil
}
