package server

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/skiffhq/skiff/state"
	"github.com/skiffhq/skiff/structs"
)

// watchInterval is how often the leader's deployment watcher looks at the
// active deployments.
const watchInterval = 250 * time.Millisecond

// deploymentWatcher runs on the leader while it leads. It moves every
// active deployment along from what the clients report
// (client/allocrunner/health.go):
//   - it counts each group's placed, healthy and unhealthy allocations,
//     and pushes the progress deadline out by progress_deadline from the
//     latest healthy one;
//   - each newly healthy allocation brings an evaluation, so that the
//     scheduler replaces the next ones (max_parallel at a time);
//   - an unhealthy allocation, or a passed progress deadline, fails the
//     deployment; with auto_revert the latest stable version of the job is
//     registered again in the same raft entry;
//   - once every group has as many healthy allocations as it wants, the
//     deployment is successful and its job version stable;
//   - a deployment whose job was stopped or changed since is cancelled.
//   - canaries waiting for a promotion wait within the progress deadline
//     too: a deployment nobody promotes fails at it, saying so; so does a
//     blocked one (allocations no node can take), saying what it waited for.
//
// A deployment therefore always ends: successful, failed or cancelled.
func (s *Server) deploymentWatcher(ctx context.Context) {
	s.pollWhileActive(ctx, watchInterval, "watch deployments",
		[]string{state.TableDeployments, state.TableAllocs, state.TableJobs}, s.watchDeployments)
}

// watchDeployments makes one pass over the active deployments of snap,
// committing what changed, and reports whether any is still active.
func (s *Server) watchDeployments(snap *state.Snapshot, now time.Time) (bool, error) {
	all, err := snap.ActiveDeployments(nil)
	if err != nil {
		return false, err
	}
	active := false
	for _, d := range all {
		more, err := s.watchDeployment(d.ID, now)
		if err != nil {
			return true, err
		}
		active = active || more
	}
	return active, nil
}

// watchDeployment advances one deployment and reports whether it is still
// active. It holds deploymentMu from its read to its commit, as an
// operator's fail or pause does, so neither undoes the other.
func (s *Server) watchDeployment(id string, now time.Time) (bool, error) {
	s.deploymentMu.Lock()
	defer s.deploymentMu.Unlock()
	snap := s.fsm.State().Snapshot()
	d, err := snap.DeploymentByID(nil, id)
	if err != nil || d == nil || !d.Active() {
		return false, err
	}
	req, err := s.advanceDeployment(snap, d, now)
	if err != nil || req == nil {
		// A running deployment has a deadline to watch; a paused one
		// waits for a change of the tables (its resume) like the idle.
		return d.Status != structs.DeploymentStatusPaused, err
	}
	index, err := s.raftApply(structs.DeploymentUpdateRequestType, req)
	if err != nil {
		return true, fmt.Errorf("deployment %s: %w", d.ID, err)
	}
	s.enqueueEvals(index, req.Evals...)
	if req.Deployment.Active() {
		return true, nil
	}
	s.logger.Info("deployment ended", "deployment_id", d.ID, "job_id", d.JobID, "job_version", d.JobVersion,
		"status", req.Deployment.Status, "description", req.Deployment.StatusDescription)
	return false, nil
}

// advanceDeployment decides what changes for one active deployment: nil
// when nothing does.
func (s *Server) advanceDeployment(snap *state.Snapshot, d *structs.Deployment, now time.Time) (*structs.DeploymentUpdateRequest, error) {
	job, err := snap.JobByID(nil, d.Namespace, d.JobID)
	if err != nil {
		return nil, err
	}
	end := func(status, desc string) *structs.DeploymentUpdateRequest {
		up := d.Copy()
		up.Status, up.StatusDescription = status, desc
		return &structs.DeploymentUpdateRequest{Deployment: up}
	}
	switch {
	case job == nil || job.Stop:
		return end(structs.DeploymentStatusCancelled, structs.DeploymentDescStoppedJob), nil
	case job.Version != d.JobVersion || job.CreateIndex != d.JobCreateIndex:
		return end(structs.DeploymentStatusCancelled, structs.DeploymentDescNewerJob), nil
	case d.Status == structs.DeploymentStatusPaused:
		return nil, nil // counts and deadlines wait
	}

	allocs, err := snap.AllocsByDeployment(nil, d.ID)
	if err != nil {
		return nil, err
	}
	up := d.Copy()
	type tally struct {
		placed, healthy, unhealthy int
		newest                     time.Time // of the healthy verdicts
	}
	counts := map[string]*tally{}
	for name := range up.TaskGroups {
		counts[name] = &tally{}
	}
	byID := make(map[string]*structs.Allocation, len(allocs))
	unhealthy := false
	for _, a := range allocs {
		byID[a.ID] = a
		c := counts[a.TaskGroup]
		if c == nil {
			continue
		}
		c.placed++
		h := a.DeploymentStatus
		switch {
		case h == nil || h.Healthy == nil:
		case !*h.Healthy:
			c.unhealthy++
			unhealthy = true
		case a.DesiredStatus == structs.AllocDesiredStatusRun && !a.TerminalStatus():
			c.healthy++
			if h.Timestamp.After(c.newest) {
				c.newest = h.Timestamp
			}
		}
	}
	// ready reports whether every canary of the group is placed and
	// healthy, as Deployment.Promote judges it.
	ready := func(g *structs.DeploymentState) bool {
		healthy, wanted, _ := healthyCanaries(g, func(id string) (*structs.Allocation, error) { return byID[id], nil })
		return healthy >= wanted
	}
	done, moreHealthy := true, false
	for name, g := range up.TaskGroups {
		c := counts[name]
		if c.healthy > g.HealthyAllocs {
			moreHealthy = true
			if g.ProgressDeadline > 0 {
				g.RequireProgressBy = c.newest.Add(g.ProgressDeadline)
			}
		}
		g.PlacedAllocs, g.HealthyAllocs, g.UnhealthyAllocs = c.placed, c.healthy, c.unhealthy
		if g.HealthyAllocs < g.DesiredTotal || g.DesiredCanaries > 0 && !g.Promoted {
			done = false // too few healthy, or canaries waiting for their promotion
		}
	}
	promote := autoPromote(up, ready)
	req := &structs.DeploymentUpdateRequest{Deployment: up}
	missedDeadline, awaitingPromotion := false, false
	for _, g := range up.TaskGroups {
		waiting := g.DesiredCanaries > 0 && !g.Promoted
		if !done && g.ProgressDeadline > 0 && !g.RequireProgressBy.IsZero() && now.After(g.RequireProgressBy) &&
			(g.HealthyAllocs < g.DesiredTotal || waiting) {
			missedDeadline = true
			awaitingPromotion = awaitingPromotion || waiting && ready(g)
		}
	}
	switch {
	case unhealthy || missedDeadline:
		desc := structs.DeploymentDescFailedAllocations
		switch {
		case unhealthy:
		case awaitingPromotion:
			// Even a deployment that waits for an operator ends, and says why.
			desc = structs.DeploymentDescProgressDeadline + ": the canaries were healthy but not promoted"
		case d.Status == structs.DeploymentStatusBlocked:
			// Say what it waited for: "...: 2 allocation(s) of group ... cannot be placed (...)".
			desc = structs.DeploymentDescProgressDeadline + strings.TrimSuffix(strings.TrimPrefix(d.StatusDescription, structs.DeploymentDescBlocked),
				"; it continues when capacity appears")
		default:
			desc = structs.DeploymentDescProgressDeadline
		}
		up.Status, up.StatusDescription = structs.DeploymentStatusFailed, desc
		revert, suffix, err := s.revertFor(snap, d, job)
		if err != nil {
			return nil, err
		}
		up.StatusDescription += suffix
		if revert != nil {
			req.Job = revert
			req.Evals = append(req.Evals, deploymentEval(job, d.ID))
		}
	case done:
		up.Status, up.StatusDescription = structs.DeploymentStatusSuccessful, structs.DeploymentDescSuccessful
		v := d.JobVersion
		req.StableVersion = &v
	case len(promote) > 0:
		for _, name := range promote {
			up.TaskGroups[name].Promoted = true
		}
		req.Evals = append(req.Evals, deploymentEval(job, d.ID)) // the canaries take over, the rest roll
	case moreHealthy:
		req.Evals = append(req.Evals, deploymentEval(job, d.ID)) // the next replacements
	default:
		if sameCounts(d, up) {
			return nil, nil
		}
	}
	return req, nil
}

// autoPromote returns the groups to promote now: when every group still
// waiting with canaries has auto_promote and all its canaries ready, all
// of them (Nomad promotes a deployment as a whole); else none.
func autoPromote(d *structs.Deployment, ready func(*structs.DeploymentState) bool) []string {
	var out []string
	for name, g := range d.TaskGroups {
		if g.DesiredCanaries == 0 || g.Promoted {
			continue
		}
		if !g.AutoPromote || !ready(g) {
			return nil
		}
		out = append(out, name)
	}
	return out
}

func sameCounts(a, b *structs.Deployment) bool {
	for name, x := range a.TaskGroups {
		y := b.TaskGroups[name]
		if y == nil || x.PlacedAllocs != y.PlacedAllocs || x.HealthyAllocs != y.HealthyAllocs || x.UnhealthyAllocs != y.UnhealthyAllocs {
			return false
		}
	}
	return true
}
