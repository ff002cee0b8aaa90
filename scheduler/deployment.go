package scheduler

import (
	"fmt"
	"strings"

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
		if tg.Rolls() {
			return true
		}
	}
	return false
}

// deploymentFor returns the deployment a placement in tg joins, creating
// it in the plan if the version has none yet; nil when the group does not
// roll or the version's deployment has ended.
func (c *planCtx) deploymentFor(tg *structs.TaskGroup) *structs.Deployment {
	if !c.deploymentsOn || !tg.Rolls() {
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
		if !g.Rolls() {
			continue
		}
		s := &structs.DeploymentState{
			AutoRevert: g.Update.AutoRevert, AutoPromote: g.Update.AutoPromote,
			ProgressDeadline:  g.Update.ProgressDeadline,
			RequireProgressBy: c.now.Add(g.Update.ProgressDeadline),
			DesiredTotal:      g.Count,
		}
		if c.canaryGroups[g.Name] {
			s.DesiredCanaries = g.Update.Canary
		}
		d.TaskGroups[g.Name] = s
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
	if !c.deploymentsOn || !tg.Rolls() {
		return -1
	}
	d := c.deployment
	switch {
	case d == nil && c.canaryGroups[tg.Name]:
		return 0 // canaries first
	case d != nil && (d.Status != structs.DeploymentStatusRunning && d.Status != structs.DeploymentStatusBlocked || c.inCanaryPhase(tg)):
		return 0
	}
	inFlight := 0
	for _, a := range c.allocs {
		if a.TaskGroup != tg.Name || a.DesiredStatus != structs.AllocDesiredStatusRun || c.stopped[a.ID] || a.TerminalStatus() {
			continue
		}
		h := a.DeploymentStatus
		switch {
		case a.DeploymentID == "":
			// Placed outside any deployment: nobody will judge it.
		case h != nil && h.Healthy != nil && !*h.Healthy:
			if d != nil && a.DeploymentID == d.ID {
				return 0 // unhealthy: the watcher fails the deployment
			}
		case h == nil || h.Healthy == nil:
			// Not yet healthy, of this deployment or of the one a newer
			// version replaced: unavailable either way.
			inFlight++
		}
	}
	return max(tg.Update.MaxParallel-inFlight, 0)
}

// Canaries. A group with update { canary = N } whose new version changes
// its allocations destructively first gets N canaries: allocations of
// the new version placed beside the old ones, which keep running and are
// not replaced. They count for nothing until the deployment promotes the
// group (an operator, or auto_promote once every canary is healthy); then
// each canary takes the place of the old allocation of the same name,
// and the rest roll max_parallel at a time.

// decideCanaries notes, before anything is planned, which groups start
// with canaries: those that roll, have canaries, and have allocations of
// an older version that a destructive update would replace. A version's
// deployment keeps the decision (DesiredCanaries).
func (c *planCtx) decideCanaries() {
	c.canaryGroups = map[string]bool{}
	for _, tg := range c.job.TaskGroups {
		if !c.deploymentsOn || !tg.Rolls() || tg.Update.Canary <= 0 {
			continue
		}
		if d := c.deployment; d != nil {
			s := d.TaskGroups[tg.Name]
			c.canaryGroups[tg.Name] = s != nil && s.DesiredCanaries > 0
			continue
		}
		for _, a := range c.allocs {
			if a.TaskGroup == tg.Name && a.DesiredStatus == structs.AllocDesiredStatusRun && !a.TerminalStatus() &&
				!c.current(a) && destructive(a.Job, c.job, tg.Name) {
				c.canaryGroups[tg.Name] = true
				break
			}
		}
	}
}

// inCanaryPhase reports whether the group's canaries wait for promotion.
func (c *planCtx) inCanaryPhase(tg *structs.TaskGroup) bool {
	if !c.canaryGroups[tg.Name] {
		return false
	}
	d := c.plan.Deployment
	if d == nil {
		d = c.deployment
	}
	if d == nil {
		return true
	}
	s := d.TaskGroups[tg.Name]
	return s != nil && !s.Promoted && d.Active()
}

// splitCanaries takes the group's canaries out of live while they wait
// for promotion: they neither count towards the group nor are stopped.
func (c *planCtx) splitCanaries(tg *structs.TaskGroup, live []*structs.Allocation) (rest, canaries []*structs.Allocation) {
	if !c.inCanaryPhase(tg) || c.deployment == nil {
		return live, nil
	}
	for _, a := range live {
		if a.DeploymentID == c.deployment.ID && a.DeploymentStatus != nil && a.DeploymentStatus.Canary {
			canaries = append(canaries, a)
		} else {
			rest = append(rest, a)
		}
	}
	return rest, canaries
}

// placeCanaries returns the canaries still to place: named after the
// group's first allocations that no canary shadows yet.
func (c *planCtx) placeCanaries(tg *structs.TaskGroup, canaries []*structs.Allocation) []placement {
	if !c.inCanaryPhase(tg) {
		return nil
	}
	need := tg.Update.Canary - len(canaries)
	taken := map[string]bool{}
	for _, a := range canaries {
		taken[a.Name] = true
	}
	var out []placement
	for i := 0; need > 0 && i < max(tg.Count, tg.Update.Canary)+len(canaries); i++ {
		name := allocName(c.job.ID, tg.Name, i)
		if taken[name] {
			continue
		}
		out = append(out, placement{tg: tg, name: name, canary: true})
		need--
	}
	return out
}

// planDeployment returns the deployment in the plan, copying the
// version's stored one into it first when the plan changes it.
func (c *planCtx) planDeployment(tg *structs.TaskGroup) *structs.Deployment {
	d := c.deploymentFor(tg)
	if d != nil && c.plan.Deployment == nil {
		c.plan.Deployment = d.Copy()
		d = c.plan.Deployment
	}
	return d
}

// markBlocked marks the version's deployment blocked while placements of
// its rolling groups fail (no node can take them), saying which and why,
// and running again once they are all placed. A version whose first
// placements all fail gets its deployment here, blocked. A blocked
// deployment still ends at its progress deadline (the leader's deployment
// watcher fails it).
func (c *planCtx) markBlocked() {
	var why []string
	var d *structs.Deployment
	for _, tg := range c.job.TaskGroups {
		m := c.failed[tg.Name]
		if m == nil || !tg.Rolls() {
			continue
		}
		if x := c.deploymentFor(tg); x != nil {
			d = x
			reason := "no node fits"
			if lines := Explain(m); len(lines) > 0 {
				reason = lines[0]
			}
			why = append(why, fmt.Sprintf("%d allocation(s) of group %q cannot be placed (%s)", 1+m.CoalescedFailures, tg.Name, reason))
		}
	}
	if d == nil {
		d = c.plan.Deployment
	}
	if d == nil {
		d = c.deployment
	}
	if d == nil || d.Status != structs.DeploymentStatusRunning && d.Status != structs.DeploymentStatusBlocked {
		return
	}
	status, desc := structs.DeploymentStatusRunning, structs.DeploymentDescRunning
	if len(why) > 0 {
		status = structs.DeploymentStatusBlocked
		desc = structs.DeploymentDescBlocked + ": " + strings.Join(why, "; ") + "; it continues when capacity appears"
	}
	if d.Status == status && d.StatusDescription == desc {
		return
	}
	if c.plan.Deployment == nil {
		c.plan.Deployment = d.Copy()
	}
	c.plan.Deployment.Status, c.plan.Deployment.StatusDescription = status, desc
}
