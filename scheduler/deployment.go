package scheduler

import (
	"github.com/hashicorp/go-memdb"

	"github.com/skiffhq/skiff/structs"
)

// Deployments: rolling updates of service jobs.
//
// A service job whose groups have an update block gets a deployment per
// job version, created by the first plan of that version that places or
// replaces anything in such a group. Every allocation placed for the
// version in those groups carries the deployment's ID, and its client
// judges its health (client/allocrunner/health.go). A group replaces at
// most max_parallel of its old allocations at a time: a destructive
// update stops an old allocation and places its replacement in the same
// plan, and the next ones wait until the replacements in flight are
// healthy (the leader's deployment watcher creates the evaluation that
// continues). A paused, failed or cancelled deployment replaces nothing
// more. Placements that only fill the count (new job, scale up, lost
// allocations) are not held back.

// deploymentReader is an optional extension of State: without it (some
// tests) jobs get no deployments.
type deploymentReader interface {
	LatestDeploymentByJobID(ws memdb.WatchSet, namespace, jobID string) (*structs.Deployment, error)
}

// loadDeployment reads the deployment of the job's current version, if
// any, into c.deployment.
func (c *planCtx) loadDeployment() error {
	if c.job == nil || c.job.Type != structs.JobTypeService || !hasUpdate(c.job) {
		return nil
	}
	dr, ok := c.state.(deploymentReader)
	if !ok {
		return nil
	}
	d, err := dr.LatestDeploymentByJobID(nil, c.job.Namespace, c.job.ID)
	if err != nil {
		return err
	}
	if d != nil && d.JobVersion == c.job.Version && d.JobCreateIndex == c.job.CreateIndex {
		c.deployment = d
	}
	c.deploymentsOn = true
	return nil
}

func hasUpdate(job *structs.Job) bool {
	for _, tg := range job.TaskGroups {
		if rolls(tg) {
			return true
		}
	}
	return false
}

// rolls reports whether a group's changes go through deployments.
func rolls(tg *structs.TaskGroup) bool { return tg.Update != nil && tg.Update.MaxParallel > 0 }

// deploymentFor returns the deployment a placement in tg joins, creating
// it in the plan if the version has none yet; nil when the group does not
// roll or the version's deployment has ended.
func (c *planCtx) deploymentFor(tg *structs.TaskGroup) *structs.Deployment {
	if !c.deploymentsOn || !rolls(tg) {
		return nil
	}
	if c.plan.Deployment != nil {
		return c.plan.Deployment
	}
	if c.deployment != nil {
		if !c.deployment.Active() {
			return nil
		}
		return c.deployment
	}
	d := &structs.Deployment{
		ID: c.newID(), Namespace: c.job.Namespace, JobID: c.job.ID, JobVersion: c.job.Version,
		JobModifyIndex: c.job.JobModifyIndex, JobSpecModifyIndex: c.job.JobModifyIndex, JobCreateIndex: c.job.CreateIndex,
		Status: structs.DeploymentStatusRunning, StatusDescription: structs.DeploymentDescRunning,
		TaskGroups: map[string]*structs.DeploymentState{},
	}
	for _, g := range c.job.TaskGroups {
		if !rolls(g) {
			continue
		}
		d.TaskGroups[g.Name] = &structs.DeploymentState{
			AutoRevert: g.Update.AutoRevert, AutoPromote: g.Update.AutoPromote,
			ProgressDeadline:  g.Update.ProgressDeadline,
			RequireProgressBy: c.now.Add(g.Update.ProgressDeadline),
			DesiredTotal:      g.Count, DesiredCanaries: g.Update.Canary,
		}
	}
	c.plan.Deployment = d
	return d
}

// syncDesiredTotals records count changes of rolling groups in the
// version's running deployment.
func (c *planCtx) syncDesiredTotals() {
	d := c.deployment
	if d == nil || !d.Active() || c.plan.Deployment != nil {
		return
	}
	var up *structs.Deployment
	for _, tg := range c.job.TaskGroups {
		s := d.TaskGroups[tg.Name]
		if s == nil || s.DesiredTotal == tg.Count {
			continue
		}
		if up == nil {
			up = d.Copy()
		}
		up.TaskGroups[tg.Name].DesiredTotal = tg.Count
	}
	if up != nil {
		c.plan.Deployment = up
	}
}

// updateBudget is how many of the group's allocations a destructive update
// may replace now: -1 for any number (the group does not roll); else
// max_parallel minus the replacements not yet healthy, and none while one
// is unhealthy or the deployment is not running.
func (c *planCtx) updateBudget(tg *structs.TaskGroup) int {
	if !c.deploymentsOn || !rolls(tg) {
		return -1
	}
	d := c.deployment
	if d == nil {
		return tg.Update.MaxParallel // a new deployment: nothing in flight yet
	}
	if d.Status != structs.DeploymentStatusRunning {
		return 0
	}
	inFlight := 0
	for _, a := range c.allocs {
		if a.TaskGroup != tg.Name || a.DeploymentID != d.ID || a.DesiredStatus != structs.AllocDesiredStatusRun || c.stopped[a.ID] {
			continue
		}
		h := a.DeploymentStatus
		switch {
		case h != nil && h.Healthy != nil && !*h.Healthy:
			return 0 // unhealthy: the watcher fails the deployment
		case a.ClientStatus == structs.AllocClientStatusFailed:
			return 0
		case h == nil || h.Healthy == nil:
			if !a.TerminalStatus() {
				inFlight++
			}
		}
	}
	return max(tg.Update.MaxParallel-inFlight, 0)
}
