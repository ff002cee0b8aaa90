package allocrunner

import (
	"time"

	"github.com/skiffhq/skiff/structs"
)

// Deployment health. An allocation placed by a deployment (DeploymentID
// set) whose group has an update block is judged once, from its task
// states ("checks" counts as "task_states" until checks exist; "manual"
// is never judged here):
//   - unhealthy as soon as a task fails or a main task restarts, or when
//     healthy_deadline passes (counted from the runner's start) first;
//   - healthy once every main task has been running for min_healthy_time.
//
// The verdict goes to the servers with the allocation's next report; the
// leader's deployment watcher acts on it.

// healthOf judges the allocation's health from the task views: it returns
// the verdict, or nil with when to look again (zero: no need).
func (ar *AllocRunner) healthOf(a *structs.Allocation, v []taskView, now time.Time) (*bool, time.Time) {
	if a.DeploymentID == "" || a.Job == nil {
		return nil, time.Time{}
	}
	tg := a.Job.LookupTaskGroup(a.TaskGroup)
	if tg == nil || tg.Update == nil || tg.Update.HealthCheck == structs.UpdateHealthCheckManual {
		return nil, time.Time{}
	}
	if ds := a.DeploymentStatus; ds != nil && ds.Healthy != nil {
		return ds.Healthy, time.Time{} // judged before (by this runner, or before a restart)
	}
	verdict := func(b bool) (*bool, time.Time) { return &b, time.Time{} }
	running := true
	var latest time.Time
	for _, t := range v {
		if t.state.Failed {
			return verdict(false)
		}
		if t.role != roleMain {
			continue
		}
		if t.state.Restarts > 0 {
			return verdict(false)
		}
		if t.state.State != TaskStateRunning || t.state.StartedAt.IsZero() {
			running = false
			continue
		}
		if t.state.StartedAt.After(latest) {
			latest = t.state.StartedAt
		}
	}
	deadline := ar.started.Add(tg.Update.HealthyDeadline)
	if running && !latest.IsZero() {
		healthyAt := latest.Add(tg.Update.MinHealthyTime)
		if !now.Before(healthyAt) {
			return verdict(true)
		}
		if tg.Update.HealthyDeadline <= 0 || healthyAt.Before(deadline) {
			return nil, healthyAt
		}
	}
	if tg.Update.HealthyDeadline > 0 {
		if !now.Before(deadline) {
			return verdict(false)
		}
		return nil, deadline
	}
	return nil, time.Time{}
}

// judgeHealth applies healthOf to a and arranges to look again when the
// verdict may change. It reports whether a verdict was reached now.
func (ar *AllocRunner) judgeHealth(a *structs.Allocation, v []taskView) bool {
	before := a.DeploymentStatus != nil && a.DeploymentStatus.Healthy != nil
	healthy, again := ar.healthOf(a, v, ar.cfg.Now())
	if healthy != nil && !before {
		ds := &structs.AllocDeploymentStatus{}
		if a.DeploymentStatus != nil {
			*ds = *a.DeploymentStatus
		}
		h := *healthy
		ds.Healthy, ds.Timestamp = &h, ar.cfg.Now()
		a.DeploymentStatus = ds
		ar.logger.Debug("allocation health decided", "healthy", h)
		return true
	}
	if !again.IsZero() && (ar.lc.healthAt.IsZero() || again.Before(ar.lc.healthAt) || !ar.lc.healthAt.After(ar.cfg.Now())) {
		ar.lc.healthAt = again
		time.AfterFunc(time.Until(again)+10*time.Millisecond, ar.inbox.poke)
	}
	return false
}
