package allocrunner

import (
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/structs"
)

// deploymentAlloc is a service allocation placed by a deployment whose
// group's update block judges health by task states.
func deploymentAlloc(minHealthy, deadline time.Duration) *structs.Allocation {
	a := testAlloc(structs.JobTypeService, fastRestarts(3, structs.RestartModeFail), task("web"))
	a.DeploymentID = "d1"
	a.Job.TaskGroups[0].Update = &structs.UpdateStrategy{MaxParallel: 1, HealthCheck: structs.UpdateHealthCheckTaskStates,
		MinHealthyTime: minHealthy, HealthyDeadline: deadline}
	return a
}

// healthReported waits for an update that carries a health verdict and
// returns it.
func (h *harness) healthReported() bool {
	h.t.Helper()
	var healthy *bool
	testutil.WaitFor(h.t, waitTime, "a health verdict", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, u := range h.updates {
			if u.DeploymentStatus != nil && u.DeploymentStatus.Healthy != nil {
				healthy = u.DeploymentStatus.Healthy
				return true
			}
		}
		return false
	})
	return *healthy
}

func TestHealthyAfterMinHealthyTime(t *testing.T) {
	h := newHarness(t, deploymentAlloc(300*time.Millisecond, time.Minute))
	start := time.Now()
	h.ar.Run()
	if !h.healthReported() {
		t.Fatal("a task running past min_healthy_time was reported unhealthy")
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("healthy after %s, before min_healthy_time (300ms)", took)
	}
	if ds := h.ar.Alloc().DeploymentStatus; ds == nil || ds.Healthy == nil || !*ds.Healthy || ds.Timestamp.IsZero() {
		t.Errorf("the runner's allocation has deployment status %+v, want healthy with a time", ds)
	}
}

func TestRestartBeforeHealthyIsUnhealthy(t *testing.T) {
	h := newHarness(t, deploymentAlloc(time.Minute, 5*time.Minute))
	h.ar.Run()
	h.waitTask("web", TaskStateRunning)
	if err := h.drv.exit(h.id("web"), 1); err != nil {
		t.Fatal(err)
	}
	if h.healthReported() {
		t.Fatal("a task that exited before min_healthy_time was reported healthy")
	}
}

func TestHealthyDeadlinePassesUnhealthy(t *testing.T) {
	h := newHarness(t, deploymentAlloc(time.Minute, 300*time.Millisecond))
	h.ar.Run()
	if h.healthReported() {
		t.Fatal("healthy although min_healthy_time (1m) is past the healthy_deadline (300ms)")
	}
}

func TestNoVerdictWithoutDeployment(t *testing.T) {
	a := deploymentAlloc(10*time.Millisecond, time.Minute)
	a.DeploymentID = ""
	h := newHarness(t, a)
	h.ar.Run()
	h.waitStatus(structs.AllocClientStatusRunning)
	time.Sleep(100 * time.Millisecond)
	if ds := h.ar.Alloc().DeploymentStatus; ds != nil && ds.Healthy != nil {
		t.Fatalf("an allocation of no deployment got a health verdict: %+v", ds)
	}
}
