package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testcontainerd"
	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/structs"
)

// rollingSleepJob is n sleeping containers whose group rolls
// maxParallel at a time, healthy after minHealthy, reverting on failure.
func rollingSleepJob(archive string, n, maxParallel int, minHealthy time.Duration, args ...any) *structs.Job {
	j := sleepJob("web", "oci-archive:"+archive, n)
	tg := j.TaskGroups[0]
	tg.Tasks[0].Config["args"] = args
	tg.RestartPolicy = &structs.RestartPolicy{Attempts: 0, Mode: structs.RestartModeFail}
	tg.ReschedulePolicy = &structs.ReschedulePolicy{Attempts: 0}
	tg.Update = &structs.UpdateStrategy{MaxParallel: maxParallel, HealthCheck: structs.UpdateHealthCheckTaskStates,
		MinHealthyTime: minHealthy, HealthyDeadline: 30 * time.Second, ProgressDeadline: time.Minute, AutoRevert: true}
	return j
}

// deploymentOf is the job's latest deployment, or nil.
func deploymentOf(a *agentProc, jobID string) *structs.Deployment {
	var d structs.Deployment
	if _, err := call(context.Background(), "GET", a.addr()+"/v1/job/"+jobID+"/deployment", nil, &d); err != nil || d.ID == "" {
		return nil
	}
	return &d
}

// TestRollingUpdateWithContainers is the rollout issue's end-to-end test
// with real containers: a 4-allocation job moves to a new command with
// max_parallel = 1 and never has fewer than 3 running allocations; then
// a version whose task exits at once fails its deployment, and the job
// rolls back by itself to the last stable version.
func TestRollingUpdateWithContainers(t *testing.T) {
	env := testcontainerd.Start(t)
	archive := testcontainerd.BusyboxArchive(t)
	c := newCluster(t, 1, clusterOpts{})
	srv := c.leader()
	clientOnlyAgent(t, env, []int{srv.rpc})
	waitNodeReady(t, srv)
	put := func(j *structs.Job) {
		t.Helper()
		if _, err := call(context.Background(), "PUT", srv.addr()+"/v1/jobs", map[string]any{"Job": j}, nil); err != nil {
			t.Fatal(err)
		}
	}
	waitDeployment := func(version uint64, status string, timeout time.Duration) *structs.Deployment {
		t.Helper()
		var d *structs.Deployment
		testutil.WaitFor(t, timeout, fmt.Sprintf("the deployment of version %d %s", version, status), func() bool {
			var all []*structs.Deployment
			if _, err := call(context.Background(), "GET", srv.addr()+"/v1/job/web/deployments", nil, &all); err != nil {
				return false
			}
			for _, x := range all {
				if x.JobVersion == version && x.Status == status {
					d = x
					return true
				}
			}
			return false
		})
		return d
	}

	put(rollingSleepJob(archive, 4, 1, time.Second, "3600"))
	waitDeployment(0, structs.DeploymentStatusSuccessful, time.Minute)

	// Version 1 rolls; sample the running allocations all along.
	started := time.Now()
	put(rollingSleepJob(archive, 4, 1, time.Second, "3601"))
	fewest := 4
	testutil.WaitFor(t, 2*time.Minute, "the deployment of version 1 successful", func() bool {
		fewest = min(fewest, len(liveAllocs(t, srv, "web")))
		d := deploymentOf(srv, "web")
		return d != nil && d.JobVersion == 1 && d.Status == structs.DeploymentStatusSuccessful
	})
	t.Logf("4 allocations rolled one at a time (min_healthy_time 1s) in %s; fewest running during the rollout: %d",
		time.Since(started).Round(time.Millisecond), fewest)
	if fewest < 3 {
		t.Errorf("only %d allocations were running at one point of a max_parallel = 1 rollout of 4", fewest)
	}
	for _, a := range liveAllocs(t, srv, "web") {
		var full structs.Allocation
		if _, err := call(context.Background(), "GET", srv.addr()+"/v1/allocation/"+a.ID, nil, &full); err != nil {
			t.Fatal(err)
		}
		if full.Job.Version != 1 {
			t.Errorf("after the rollout alloc %s runs version %d", a.Name, full.Job.Version)
		}
	}

	// Version 2's task exits at once: unhealthy, failed, rolled back.
	// Submitted with the CLI, which follows the deployment and exits 2.
	file := filepath.Join(t.TempDir(), "web.json")
	body, err := json.Marshal(map[string]any{"Job": rollingSleepJob(archive, 4, 1, time.Second, "not-a-number")})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, body, 0o600); err != nil {
		t.Fatal(err)
	}
	failedAt := time.Now()
	out, errOut, code := skiff(t, srv, "job", "run", "-json", file)
	if code != 2 || !strings.Contains(out, "rolling back to job version 1") {
		t.Errorf("job run of a failing version: exit %d, want 2 with the rollback named\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	d2 := waitDeployment(2, structs.DeploymentStatusFailed, time.Minute)
	t.Logf("version 2 failed after %s: %s", time.Since(failedAt).Round(time.Millisecond), d2.StatusDescription)
	waitDeployment(3, structs.DeploymentStatusSuccessful, 2*time.Minute)
	var job structs.Job
	if _, err := call(context.Background(), "GET", srv.addr()+"/v1/job/web", nil, &job); err != nil {
		t.Fatal(err)
	}
	if job.Version != 3 || fmt.Sprint(job.TaskGroups[0].Tasks[0].Config["args"]) != "[3601]" || !job.Stable {
		t.Fatalf("after the rollback the job is version %d with args %v (stable %v); want version 3 with version 1's args, stable",
			job.Version, job.TaskGroups[0].Tasks[0].Config["args"], job.Stable)
	}
	testutil.WaitFor(t, time.Minute, "4 allocations running after the rollback", func() bool {
		return len(liveAllocs(t, srv, "web")) == 4
	})
}

// TestCanaryPromoteWithContainers: a canary of the new version runs
// beside the old containers and replaces nothing until an operator
// promotes it with "skiff job promote"; then the rest roll and the
// deployment succeeds.
func TestCanaryPromoteWithContainers(t *testing.T) {
	env := testcontainerd.Start(t)
	archive := testcontainerd.BusyboxArchive(t)
	c := newCluster(t, 1, clusterOpts{})
	srv := c.leader()
	clientOnlyAgent(t, env, []int{srv.rpc})
	waitNodeReady(t, srv)
	canaryJob := func(arg string) *structs.Job {
		j := rollingSleepJob(archive, 3, 1, 500*time.Millisecond, arg)
		j.TaskGroups[0].Update.Canary = 1
		return j
	}
	put := func(j *structs.Job) {
		t.Helper()
		if _, err := call(context.Background(), "PUT", srv.addr()+"/v1/jobs", map[string]any{"Job": j}, nil); err != nil {
			t.Fatal(err)
		}
	}
	put(canaryJob("3600"))
	testutil.WaitFor(t, time.Minute, "version 0 deployed", func() bool {
		d := deploymentOf(srv, "web")
		return d != nil && d.JobVersion == 0 && d.Status == structs.DeploymentStatusSuccessful
	})
	put(canaryJob("3601"))
	testutil.WaitFor(t, time.Minute, "the canary healthy", func() bool {
		d := deploymentOf(srv, "web")
		return d != nil && d.JobVersion == 1 && d.TaskGroups["g"].HealthyAllocs == 1
	})
	time.Sleep(time.Second) // nothing else may move
	if n := len(liveAllocs(t, srv, "web")); n != 4 {
		t.Fatalf("%d running allocations with one canary beside 3, want 4", n)
	}
	if out, errOut, code := skiff(t, srv, "job", "promote", "web"); code != 0 {
		t.Fatalf("job promote: exit %d\n%s\n%s", code, out, errOut)
	}
	testutil.WaitFor(t, time.Minute, "version 1 deployed", func() bool {
		d := deploymentOf(srv, "web")
		return d != nil && d.JobVersion == 1 && d.Status == structs.DeploymentStatusSuccessful
	})
	testutil.WaitFor(t, 30*time.Second, "3 running allocations", func() bool {
		return len(liveAllocs(t, srv, "web")) == 3
	})
}
