package scheduler

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/skiffhq/skiff/structs"
)

// rollingJob is a service job of count allocations whose group rolls
// maxParallel at a time.
func rollingJob(count, maxParallel int, image string) *structs.Job {
	j := testJob("web", structs.JobTypeService, count)
	j.TaskGroups[0].Tasks[0].Config = map[string]any{"image": image}
	j.TaskGroups[0].Update = &structs.UpdateStrategy{MaxParallel: maxParallel, HealthCheck: structs.UpdateHealthCheckTaskStates,
		MinHealthyTime: time.Second, HealthyDeadline: time.Minute, ProgressDeadline: 10 * time.Minute}
	return j
}

// reportHealth stores the clients' verdict on allocations.
func (h *harness) reportHealth(healthy bool, allocs ...*structs.Allocation) {
	h.t.Helper()
	var ups []*structs.Allocation
	for _, a := range allocs {
		ups = append(ups, &structs.Allocation{ID: a.ID, ClientStatus: structs.AllocClientStatusRunning,
			DeploymentStatus: &structs.AllocDeploymentStatus{Healthy: &healthy, Timestamp: h.now}})
	}
	if err := h.store.UpdateAllocsFromClient(h.next(), ups); err != nil {
		h.t.Fatal(err)
	}
}

// versions counts the job's live allocations per job version, and the
// new version's pending (no verdict yet) and healthy ones.
func (h *harness) versions(job *structs.Job) (old, pending, healthy int, newest []*structs.Allocation) {
	for _, a := range h.liveAllocs(job) {
		if a.Job.Version != job.Version {
			old++
			continue
		}
		if ds := a.DeploymentStatus; ds != nil && ds.Healthy != nil && *ds.Healthy {
			healthy++
		} else {
			pending++
			newest = append(newest, a)
		}
	}
	return
}

func (h *harness) deployment(job *structs.Job) *structs.Deployment {
	h.t.Helper()
	d, err := h.store.LatestDeploymentByJobID(nil, job.Namespace, job.ID)
	if err != nil {
		h.t.Fatal(err)
	}
	return d
}

// TestRollingUpdate: a changed image replaces a 4-allocation group one at
// a time, each next one only once the last replacement is healthy, all
// under the new version's deployment; an unhealthy replacement stops the
// rollout.
func TestRollingUpdate(t *testing.T) {
	h := newHarness(t)
	addTestNodes(h, 4, 4)
	v0 := h.addJob(rollingJob(4, 1, "nginx:1.27"))
	h.process(v0, structs.EvalTriggerJobRegister)
	d0 := h.deployment(v0)
	if d0 == nil || d0.JobVersion != 0 || d0.TaskGroups["web"].DesiredTotal != 4 {
		t.Fatalf("deployment of version 0 = %+v, want one for 4 allocations", d0)
	}
	first := h.liveAllocs(v0)
	if len(first) != 4 {
		t.Fatalf("%d allocations placed, want 4 (filling the count is not held back)", len(first))
	}
	for _, a := range first {
		if a.DeploymentID != d0.ID {
			t.Errorf("alloc %s has deployment %q, want %s", a.Name, a.DeploymentID, d0.ID)
		}
	}
	h.reportHealth(true, first...)

	v1 := h.addJob(rollingJob(4, 1, "nginx:1.28"))
	for step := 1; step <= 4; step++ {
		h.process(v1, structs.EvalTriggerJobRegister)
		old, pending, healthy, newest := h.versions(v1)
		if pending != 1 || old != 4-step || healthy != step-1 {
			t.Fatalf("step %d: %d old, %d new pending, %d new healthy; want %d, 1, %d", step, old, pending, healthy, 4-step, step-1)
		}
		d1 := h.deployment(v1)
		if d1 == nil || d1.JobVersion != v1.Version || newest[0].DeploymentID != d1.ID {
			t.Fatalf("step %d: the replacement's deployment %q, latest %+v; want the version's", step, newest[0].DeploymentID, d1)
		}
		// No verdict yet: evaluating again replaces nothing more.
		plans := len(h.plans)
		h.process(v1, structs.EvalTriggerDeployment)
		if len(h.plans) != plans {
			t.Fatalf("step %d: a replacement was made while one is not yet healthy", step)
		}
		h.reportHealth(true, newest...)
	}

	// Version 2 rolls; its first replacement is unhealthy: nothing more.
	v2 := h.addJob(rollingJob(4, 1, "nginx:1.29"))
	h.process(v2, structs.EvalTriggerJobRegister)
	_, _, _, newest := h.versions(v2)
	h.reportHealth(false, newest...)
	plans := len(h.plans)
	h.process(v2, structs.EvalTriggerDeployment)
	if len(h.plans) != plans {
		t.Fatal("the rollout went on after an unhealthy replacement")
	}
}

// TestRollingUpdateCountChange: a count change in the middle of a
// rollout is recorded in its deployment, and the new allocations are
// placed at once.
func TestRollingUpdateCountChange(t *testing.T) {
	h := newHarness(t)
	addTestNodes(h, 6, 6)
	v0 := h.addJob(rollingJob(3, 1, "a"))
	h.process(v0, structs.EvalTriggerJobRegister)
	h.reportHealth(true, h.liveAllocs(v0)...)
	v1 := h.addJob(rollingJob(3, 1, "b"))
	h.process(v1, structs.EvalTriggerJobRegister)
	v2 := h.addJob(rollingJob(5, 1, "b"))
	if v2.Version != v1.Version+1 {
		t.Fatalf("the count change made version %d, want %d", v2.Version, v1.Version+1)
	}
	h.process(v2, structs.EvalTriggerJobRegister)
	if n := len(h.liveAllocs(v2)); n < 5 {
		t.Fatalf("%d live allocations after scaling to 5, want at least 5", n)
	}
}

// TestRollingNeverExceedsMaxParallel is the property: whatever the
// count, max_parallel and the clients' verdicts, at no point are more than
// max_parallel of the group's allocations unavailable (neither running
// the old version nor healthy on the new one).
func TestRollingNeverExceedsMaxParallel(t *testing.T) {
	for seed := range uint64(60) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 99))
			h := newHarness(t)
			addTestNodes(h, 12, 4)
			count, maxPar := 2+r.IntN(7), 1+r.IntN(3)
			v0 := h.addJob(rollingJob(count, maxPar, "v0"))
			h.process(v0, structs.EvalTriggerJobRegister)
			h.reportHealth(true, h.liveAllocs(v0)...)
			job := h.addJob(rollingJob(count, maxPar, "v1"))
			// Half the runs register a third version in the middle of the
			// rollout.
			midway := -1
			if seed%2 == 1 {
				midway = r.IntN(count)
			}
			for step := range 4 * count {
				if step == midway {
					job = h.addJob(rollingJob(count, maxPar, "v2"))
				}
				h.process(job, structs.EvalTriggerDeployment)
				live := h.liveAllocs(job)
				var pending []*structs.Allocation
				current := 0
				for _, a := range live {
					ds := a.DeploymentStatus
					if a.DeploymentID != "" && (ds == nil || ds.Healthy == nil) {
						pending = append(pending, a)
					}
					if a.Job.Version == job.Version {
						current++
					}
				}
				if unavailable := count - len(live) + len(pending); unavailable > maxPar {
					t.Fatalf("count %d max_parallel %d, step %d: %d live, %d not yet healthy: %d unavailable",
						count, maxPar, step, len(live), len(pending), unavailable)
				}
				if current == count && len(pending) == 0 {
					return
				}
				// The clients judge some of the pending ones.
				var judged []*structs.Allocation
				for _, a := range pending {
					if r.IntN(3) > 0 {
						judged = append(judged, a)
					}
				}
				h.reportHealth(true, judged...)
			}
			t.Fatalf("count %d max_parallel %d: the rollout did not finish in %d steps", count, maxPar, 4*count)
		})
	}
}

// TestFailedAllocOfOlderVersionIsReplaced: an allocation that failed with
// no reschedule left holds its slot while the job stands still, and is
// replaced once a new version is registered (a rollback fills the slot
// of the version that failed).
func TestFailedAllocOfOlderVersionIsReplaced(t *testing.T) {
	h := newHarness(t)
	addTestNodes(h, 3, 3)
	j := testJob("web", structs.JobTypeService, 2)
	j.TaskGroups[0].ReschedulePolicy = &structs.ReschedulePolicy{Attempts: 0}
	v0 := h.addJob(j)
	h.process(v0, structs.EvalTriggerJobRegister)
	failed := h.liveAllocs(v0)[0]
	if err := h.store.UpdateAllocsFromClient(h.next(), []*structs.Allocation{{ID: failed.ID, ClientStatus: structs.AllocClientStatusFailed}}); err != nil {
		t.Fatal(err)
	}
	h.process(v0, structs.EvalTriggerReschedule)
	if n := len(h.liveAllocs(v0)); n != 1 {
		t.Fatalf("%d live allocations after a failure with no reschedule left, want 1", n)
	}
	j2 := testJob("web", structs.JobTypeService, 2)
	j2.TaskGroups[0].ReschedulePolicy = &structs.ReschedulePolicy{Attempts: 0}
	j2.TaskGroups[0].Tasks[0].Config = map[string]any{"image": "nginx:1.28"}
	v1 := h.addJob(j2)
	h.process(v1, structs.EvalTriggerJobRegister)
	if n := len(h.liveAllocs(v1)); n != 2 {
		t.Fatalf("%d live allocations after a new version, want 2 (the failed slot filled)", n)
	}
}

// TestCanaryThenPromote: with canary = 1, a destructive change first
// places one canary beside the four old allocations and replaces
// nothing, promoted or not yet healthy; once the group is promoted the
// canary takes the place of the old allocation of its name and the rest
// roll one at a time.
func TestCanaryThenPromote(t *testing.T) {
	h := newHarness(t)
	addTestNodes(h, 6, 6)
	canaryJob := func(image string) *structs.Job {
		j := rollingJob(4, 1, image)
		j.TaskGroups[0].Update.Canary = 1
		return j
	}
	v0 := h.addJob(canaryJob("a"))
	h.process(v0, structs.EvalTriggerJobRegister)
	if d := h.deployment(v0); d == nil || d.TaskGroups["web"].DesiredCanaries != 0 {
		t.Fatalf("the first version's deployment = %+v, want no canaries (nothing to replace)", d)
	}
	h.reportHealth(true, h.liveAllocs(v0)...)

	v1 := h.addJob(canaryJob("b"))
	h.process(v1, structs.EvalTriggerJobRegister)
	d := h.deployment(v1)
	old, pending, _, newest := h.versions(v1)
	if d.JobVersion != 1 || d.TaskGroups["web"].DesiredCanaries != 1 || len(d.TaskGroups["web"].PlacedCanaries) != 1 ||
		old != 4 || pending != 1 || !newest[0].DeploymentStatus.Canary || d.TaskGroups["web"].PlacedCanaries[0] != newest[0].ID {
		t.Fatalf("after the change: deployment %+v, %d old, %d new; want 1 canary beside 4 old", d.TaskGroups["web"], old, pending)
	}
	h.reportHealth(true, newest...)
	plans := len(h.plans)
	h.process(v1, structs.EvalTriggerDeployment)
	if len(h.plans) != plans {
		t.Fatal("something was replaced before the promotion")
	}

	promoted := h.deployment(v1).Copy()
	promoted.TaskGroups["web"].Promoted = true
	if err := h.store.UpsertDeployment(h.next(), promoted); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		h.process(v1, structs.EvalTriggerDeployment)
		byName := h.live(v1) // fails on two live allocations of one name
		if len(byName) != 4 {
			t.Fatalf("%d live allocations after the promotion, want 4", len(byName))
		}
		_, _, _, newest := h.versions(v1)
		h.reportHealth(true, newest...)
	}
	if old, pending, healthy, _ := h.versions(v1); old != 0 || pending != 0 || healthy != 4 {
		t.Fatalf("after the rollout: %d old, %d pending, %d healthy; want 4 healthy of the new version", old, pending, healthy)
	}
	if a := h.alloc(newest[0].ID); a.TerminalStatus() {
		t.Error("the promoted canary was stopped")
	}
}

// TestRollingNodeLostMidway: a node lost in the middle of a rollout has
// its allocations replaced at once (filling the count is not held back),
// and the rollout goes on to the end.
func TestRollingNodeLostMidway(t *testing.T) {
	h := newHarness(t)
	addTestNodes(h, 5, 5)
	v0 := h.addJob(rollingJob(4, 1, "a"))
	h.process(v0, structs.EvalTriggerJobRegister)
	h.reportHealth(true, h.liveAllocs(v0)...)
	v1 := h.addJob(rollingJob(4, 1, "b"))
	h.process(v1, structs.EvalTriggerJobRegister)
	_, _, _, newest := h.versions(v1)
	h.reportHealth(true, newest...)
	// Lose a node that runs an old allocation.
	var lost string
	for _, a := range h.liveAllocs(v1) {
		if a.Job.Version == 0 {
			lost = a.NodeID
			break
		}
	}
	if err := h.store.UpdateNodeStatus(h.next(), lost, structs.NodeStatusDown, h.now.Unix()); err != nil {
		t.Fatal(err)
	}
	h.process(v1, structs.EvalTriggerNodeUpdate)
	if n := len(h.liveAllocs(v1)); n != 4 {
		t.Fatalf("%d live allocations after losing node %s, want 4 (the lost one replaced at once)", n, lost)
	}
	for range 8 {
		h.process(v1, structs.EvalTriggerDeployment)
		_, _, _, newest := h.versions(v1)
		h.reportHealth(true, newest...)
	}
	if old, pending, healthy, _ := h.versions(v1); old != 0 || pending != 0 || healthy != 4 {
		t.Fatalf("after the rollout: %d old, %d pending, %d healthy; want 4 healthy", old, pending, healthy)
	}
}

// TestRollingBlocked: a new version no node can take blocks its
// deployment, saying which group and why, and leaves the old version
// running; the deployment runs again once a node that fits appears.
func TestRollingBlocked(t *testing.T) {
	h := newHarness(t)
	addTestNodes(h, 2, 2)
	v0 := h.addJob(rollingJob(2, 1, "a"))
	h.process(v0, structs.EvalTriggerJobRegister)
	h.reportHealth(true, h.liveAllocs(v0)...)

	big := rollingJob(2, 1, "b")
	big.TaskGroups[0].Tasks[0].Resources = &structs.Resources{CPU: 500, MemoryMB: 40000}
	v1 := h.addJob(big)
	h.process(v1, structs.EvalTriggerJobRegister)
	d := h.deployment(v1)
	if d == nil || d.JobVersion != v1.Version || d.Status != structs.DeploymentStatusBlocked {
		t.Fatalf("deployment = %+v, want version %d's, blocked", d, v1.Version)
	}
	want := `Deployment is blocked: 1 allocation(s) of group "web" cannot be placed (2 nodes exhausted on memory); it continues when capacity appears`
	if d.StatusDescription != want {
		t.Fatalf("description = %q, want %q", d.StatusDescription, want)
	}
	if old, pending, _, _ := h.versions(v1); old != 2 || pending != 0 {
		t.Fatalf("%d old and %d new allocations live, want the 2 old kept running (no replacement found a node)", old, pending)
	}

	n := testNode(9, 2)
	n.NodeResources.Memory.MemoryMB = 128000
	h.addNodes(n)
	h.process(v1, structs.EvalTriggerNodeUpdate)
	d = h.deployment(v1)
	if d.Status != structs.DeploymentStatusRunning || d.StatusDescription != structs.DeploymentDescRunning {
		t.Fatalf("after a node that fits joined: deployment %s %q, want running", d.Status, d.StatusDescription)
	}
	if _, pending, _, _ := h.versions(v1); pending != 1 {
		t.Fatalf("%d replacements pending, want 1 (max_parallel)", pending)
	}
}
