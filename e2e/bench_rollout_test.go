package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testcontainerd"
	"github.com/skiffhq/skiff/structs"
)

// BenchmarkRollout is the rollout issue's figures with real containers: a
// 10-allocation job with max_parallel = 2 and min_healthy_time = 1s.
//   - rolling-s: a changed command registered -> its deployment
//     successful; overhead-s: that minus the minimum health time the five
//     batches must wait (5 x 1 s);
//   - revert-s: a version whose task exits at once: the first unhealthy
//     verdict (its client's timestamp) -> the deployment failed with the
//     rollback registered;
//   - canary-revert-s: the same with canary = 1: the canary's unhealthy
//     verdict -> failed and rolled back.
func BenchmarkRollout(b *testing.B) {
	env := testcontainerd.Start(b)
	archive := testcontainerd.BusyboxArchive(b)
	c := newCluster(b, 1, clusterOpts{})
	srv := c.leader()
	clientOnlyAgent(b, env, []int{srv.rpc})
	waitNodeReady(b, srv)
	put := func(j *structs.Job) time.Time {
		b.Helper()
		start := time.Now()
		if _, err := call(context.Background(), "PUT", srv.addr()+"/v1/jobs", map[string]any{"Job": j}, nil); err != nil {
			b.Fatal(err)
		}
		return start
	}
	// ended polls for the deployment of version v to reach status and
	// returns when it was seen.
	ended := func(v uint64, status string) (time.Time, *structs.Deployment) {
		b.Helper()
		var d *structs.Deployment
		pollFor(b, 3*time.Minute, "a deployment "+status, func() bool {
			var all []*structs.Deployment
			if _, err := call(context.Background(), "GET", srv.addr()+"/v1/job/web/deployments", nil, &all); err != nil {
				return false
			}
			for _, x := range all {
				if x.JobVersion == v && x.Status == status {
					d = x
					return true
				}
			}
			return false
		})
		return time.Now(), d
	}
	version := uint64(0)
	put(rollingSleepJob(archive, 10, 2, time.Second, "3600"))
	ended(version, structs.DeploymentStatusSuccessful)
	var rolling, revert, canaryRevert []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		version++
		start := put(rollingSleepJob(archive, 10, 2, time.Second, fmt.Sprint(3601+i)))
		done, _ := ended(version, structs.DeploymentStatusSuccessful)
		rolling = append(rolling, done.Sub(start))

		// A version whose task exits at once, rolled (its first
		// replacements) and then as a canary: each fails and rolls back.
		for _, canary := range []bool{false, true} {
			version++
			j := rollingSleepJob(archive, 10, 2, time.Second, "not-a-number")
			if canary {
				j.TaskGroups[0].Update.Canary = 1
			}
			put(j)
			failed, d := ended(version, structs.DeploymentStatusFailed)
			if first := firstUnhealthy(b, srv, d.ID); !first.IsZero() {
				if canary {
					canaryRevert = append(canaryRevert, failed.Sub(first))
				} else {
					revert = append(revert, failed.Sub(first))
				}
			}
			version++ // the rollback's version
			ended(version, structs.DeploymentStatusSuccessful)
		}
	}
	b.StopTimer()
	b.ReportMetric(percentile(rolling, 0.5).Seconds(), "rolling-s")
	b.ReportMetric((percentile(rolling, 0.5) - 5*time.Second).Seconds(), "overhead-s")
	if len(revert) > 0 {
		b.ReportMetric(percentile(revert, 0.5).Seconds(), "revert-s")
	}
	if len(canaryRevert) > 0 {
		b.ReportMetric(percentile(canaryRevert, 0.5).Seconds(), "canary-revert-s")
	}
	b.Logf("10 allocations, max_parallel 2, min_healthy_time 1s: rolled in %v; unhealthy -> rollback registered %v; unhealthy canary -> rollback %v", rolling, revert, canaryRevert)
}

// firstUnhealthy returns the earliest unhealthy verdict (its client's
// timestamp) among the allocations of a deployment; zero if none.
func firstUnhealthy(b *testing.B, srv *agentProc, deploymentID string) time.Time {
	b.Helper()
	var stubs []*structs.AllocListStub
	if _, err := call(context.Background(), "GET", srv.addr()+"/v1/deployment/allocations/"+deploymentID, nil, &stubs); err != nil {
		b.Fatal(err)
	}
	var first time.Time
	for _, s := range stubs {
		var a structs.Allocation
		if _, err := call(context.Background(), "GET", srv.addr()+"/v1/allocation/"+s.ID, nil, &a); err != nil {
			b.Fatal(err)
		}
		if h := a.DeploymentStatus; h != nil && h.Healthy != nil && !*h.Healthy && (first.IsZero() || h.Timestamp.Before(first)) {
			first = h.Timestamp
		}
	}
	return first
}
