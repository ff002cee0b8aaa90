package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/structs"
)

// playHealth plays a client on node n that judges health at once: every
// pending allocation is reported running, and those of a deployment
// healthy unless healthy(a) says otherwise, until the test ends.
func playHealth(t *testing.T, s *Server, n *structs.Node, healthy func(a *structs.Allocation) bool) {
	every(t, 20*time.Millisecond, func() {
		allocs, _ := s.State().AllocsByNode(nil, n.ID)
		var up []*structs.Allocation
		for _, a := range allocs {
			if a.TerminalStatus() || a.DesiredStatus != structs.AllocDesiredStatusRun {
				continue
			}
			judged := a.DeploymentStatus != nil && a.DeploymentStatus.Healthy != nil
			if a.ClientStatus == structs.AllocClientStatusRunning && (a.DeploymentID == "" || judged) {
				continue
			}
			u := &structs.Allocation{ID: a.ID, ClientStatus: structs.AllocClientStatusRunning,
				TaskStates: map[string]*structs.TaskState{"server": {State: "running", StartedAt: time.Now()}}}
			if a.DeploymentID != "" && !judged {
				h := healthy(a)
				u.DeploymentStatus = &structs.AllocDeploymentStatus{Healthy: &h, Timestamp: time.Now()}
			}
			up = append(up, u)
		}
		if len(up) > 0 {
			var r structs.GenericResponse
			_ = s.RPC("Node.UpdateAlloc", &structs.AllocUpdateRequest{NodeID: n.ID, SecretID: n.SecretID, Alloc: up}, &r)
		}
	})
}

func rollingTestJob(image string, autoRevert bool) *structs.Job {
	job := testJob("web")
	job.TaskGroups[0].Count = 3
	job.TaskGroups[0].Tasks[0].Config = map[string]any{"image": image}
	job.TaskGroups[0].Tasks[0].Resources = &structs.Resources{CPU: 100, MemoryMB: 64}
	job.TaskGroups[0].Update = &structs.UpdateStrategy{MaxParallel: 1, HealthCheck: structs.UpdateHealthCheckTaskStates,
		MinHealthyTime: time.Millisecond, HealthyDeadline: time.Minute, ProgressDeadline: time.Minute, AutoRevert: autoRevert}
	return job
}

func latestDeployment(t *testing.T, s *Server) *structs.Deployment {
	d, err := s.State().LatestDeploymentByJobID(nil, "default", "web")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDeploymentRollsAndRevertsThroughRaft: the whole loop on a server
// with a node that reports health: version 0 deploys and becomes stable;
// version 1 rolls one allocation at a time to success; version 2's
// allocations are unhealthy, so its deployment fails and auto_revert
// registers version 1's spec again, which rolls back.
func TestDeploymentRollsAndRevertsThroughRaft(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.leader()
	n := smallNode("n1")
	registerNode(t, s, n)
	playHealth(t, s, n, func(a *structs.Allocation) bool {
		return a.Job.TaskGroups[0].Tasks[0].Config["image"] != "bad"
	})

	waitDeployment := func(version uint64, status string) *structs.Deployment {
		t.Helper()
		var d *structs.Deployment
		testutil.WaitFor(t, 20*time.Second, fmt.Sprintf("deployment of version %d %s", version, status), func() bool {
			// By version, not the latest: a failed one is followed at
			// once by the revert's.
			all, _ := s.State().DeploymentsByJobID(nil, "default", "web")
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
	register(t, s, rollingTestJob("good:1", true))
	waitDeployment(0, structs.DeploymentStatusSuccessful)
	if j, _ := s.State().JobByID(nil, "default", "web"); !j.Stable {
		t.Fatal("version 0 is not stable after its deployment succeeded")
	}

	register(t, s, rollingTestJob("good:2", true))
	d1 := waitDeployment(1, structs.DeploymentStatusSuccessful)
	if g := d1.TaskGroups["web"]; g.HealthyAllocs != 3 || g.PlacedAllocs != 3 || g.DesiredTotal != 3 {
		t.Errorf("successful deployment counts %+v, want 3 placed, 3 healthy", g)
	}
	for _, a := range liveAllocs(t, s, "web") {
		if a.Job.Version != 1 || a.DeploymentID != d1.ID {
			t.Errorf("after the rollout alloc %s is version %d of deployment %s", a.Name, a.Job.Version, a.DeploymentID)
		}
	}

	register(t, s, rollingTestJob("bad", true))
	d2 := waitDeployment(2, structs.DeploymentStatusFailed)
	if want := structs.DeploymentDescFailedAllocations + " - rolling back to job version 1"; d2.StatusDescription != want {
		t.Errorf("failed deployment says %q, want %q", d2.StatusDescription, want)
	}
	waitDeployment(3, structs.DeploymentStatusSuccessful)
	job, _ := s.State().JobByID(nil, "default", "web")
	if job.Version != 3 || job.TaskGroups[0].Tasks[0].Config["image"] != "good:2" || !job.Stable {
		t.Fatalf("after the revert the job is version %d image %v stable %v; want 3, good:2, stable", job.Version, job.TaskGroups[0].Tasks[0].Config["image"], job.Stable)
	}
	if len(liveAllocs(t, s, "web")) != 3 {
		t.Errorf("%d live allocations after the revert, want 3", len(liveAllocs(t, s, "web")))
	}
}

// TestDeploymentCancelledByNewerVersion: registering a new version while
// a deployment runs cancels it.
func TestDeploymentCancelledByNewerVersion(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.leader()
	n := smallNode("n1")
	registerNode(t, s, n)
	// Nothing is ever judged: deployments stay running until cancelled.
	register(t, s, rollingTestJob("a", false))
	testutil.WaitFor(t, 10*time.Second, "a running deployment", func() bool {
		d := latestDeployment(t, s)
		return d != nil && d.Status == structs.DeploymentStatusRunning
	})
	first := latestDeployment(t, s)
	register(t, s, rollingTestJob("b", false))
	testutil.WaitFor(t, 10*time.Second, "the first deployment cancelled", func() bool {
		d, _ := s.State().DeploymentByID(nil, first.ID)
		return d.Status == structs.DeploymentStatusCancelled && d.StatusDescription == structs.DeploymentDescNewerJob
	})
}

// TestCanaryAutoPromote: a version with canary = 1 and auto_promote
// places its canary, promotes it once healthy and rolls the rest to a
// successful deployment; without auto_promote it waits, running, with
// the canary healthy and the old allocations untouched.
func TestCanaryAutoPromote(t *testing.T) {
	for _, auto := range []bool{true, false} {
		t.Run(fmt.Sprint("auto_promote=", auto), func(t *testing.T) {
			c := newTestCluster(t, 1)
			s := c.leader()
			n := smallNode("n1")
			registerNode(t, s, n)
			playHealth(t, s, n, func(*structs.Allocation) bool { return true })
			job := func(image string) *structs.Job {
				j := rollingTestJob(image, false)
				j.TaskGroups[0].Update.Canary, j.TaskGroups[0].Update.AutoPromote = 1, auto
				return j
			}
			register(t, s, job("a"))
			testutil.WaitFor(t, 20*time.Second, "version 0 deployed", func() bool {
				d := latestDeployment(t, s)
				return d != nil && d.JobVersion == 0 && d.Status == structs.DeploymentStatusSuccessful
			})
			register(t, s, job("b"))
			if auto {
				testutil.WaitFor(t, 20*time.Second, "version 1 deployed through its canary", func() bool {
					d := latestDeployment(t, s)
					return d != nil && d.JobVersion == 1 && d.Status == structs.DeploymentStatusSuccessful
				})
				d := latestDeployment(t, s)
				if g := d.TaskGroups["web"]; !g.Promoted || len(g.PlacedCanaries) != 1 || g.HealthyAllocs != 3 {
					t.Fatalf("deployment group %+v, want promoted with 1 canary and 3 healthy", g)
				}
				return
			}
			testutil.WaitFor(t, 20*time.Second, "the canary healthy", func() bool {
				d := latestDeployment(t, s)
				return d != nil && d.JobVersion == 1 && d.TaskGroups["web"].HealthyAllocs == 1
			})
			time.Sleep(time.Second)
			d := latestDeployment(t, s)
			old := 0
			for _, a := range liveAllocs(t, s, "web") {
				if a.Job.Version == 0 {
					old++
				}
			}
			if d.Status != structs.DeploymentStatusRunning || d.TaskGroups["web"].Promoted || old != 3 {
				t.Fatalf("without auto_promote: deployment %s promoted %v, %d old allocations; want running, unpromoted, 3 old",
					d.Status, d.TaskGroups["web"].Promoted, old)
			}
		})
	}
}

// TestUnpromotedCanariesFailAtProgressDeadline: a deployment whose
// healthy canaries nobody promotes still ends, at its progress deadline,
// and says why.
func TestUnpromotedCanariesFailAtProgressDeadline(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.leader()
	n := smallNode("n1")
	registerNode(t, s, n)
	playHealth(t, s, n, func(*structs.Allocation) bool { return true })
	job := func(image string) *structs.Job {
		j := rollingTestJob(image, false)
		u := j.TaskGroups[0].Update
		u.Canary, u.HealthyDeadline, u.ProgressDeadline = 1, time.Second, 2*time.Second
		return j
	}
	register(t, s, job("a"))
	testutil.WaitFor(t, 20*time.Second, "version 0 deployed", func() bool {
		d := latestDeployment(t, s)
		return d != nil && d.JobVersion == 0 && d.Status == structs.DeploymentStatusSuccessful
	})
	register(t, s, job("b"))
	testutil.WaitFor(t, 20*time.Second, "version 1's deployment failed at its progress deadline", func() bool {
		d := latestDeployment(t, s)
		return d != nil && d.JobVersion == 1 && d.Status == structs.DeploymentStatusFailed
	})
	d := latestDeployment(t, s)
	if want := structs.DeploymentDescProgressDeadline + ": the canaries were healthy but not promoted"; d.StatusDescription != want {
		t.Errorf("description %q, want %q", d.StatusDescription, want)
	}
}

// TestBlockedDeploymentEnds: a version no node has room for blocks its
// deployment, with the reason, while the old version keeps running; at
// the progress deadline it fails saying what it waited for, and
// auto_revert rolls back.
func TestBlockedDeploymentEnds(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.leader()
	n := smallNode("n1")
	registerNode(t, s, n)
	playHealth(t, s, n, func(*structs.Allocation) bool { return true })
	register(t, s, rollingTestJob("a", true))
	testutil.WaitFor(t, 10*time.Second, "version 0 successful", func() bool {
		d := latestDeployment(t, s)
		return d != nil && d.Status == structs.DeploymentStatusSuccessful
	})

	big := rollingTestJob("b", true)
	big.TaskGroups[0].Tasks[0].Resources.MemoryMB = 4096
	big.TaskGroups[0].Update.ProgressDeadline = 2 * time.Second
	big.TaskGroups[0].Update.HealthyDeadline = time.Second
	register(t, s, big)
	var blocked *structs.Deployment
	testutil.WaitFor(t, 10*time.Second, "version 1's deployment blocked", func() bool {
		blocked = latestDeployment(t, s)
		return blocked.JobVersion == 1 && blocked.Status == structs.DeploymentStatusBlocked
	})
	if !strings.Contains(blocked.StatusDescription, `allocation(s) of group "web" cannot be placed (1 node exhausted on memory)`) {
		t.Errorf("blocked deployment says %q, want which group and why", blocked.StatusDescription)
	}
	for _, a := range liveAllocs(t, s, "web") {
		if a.Job.Version != 0 {
			t.Errorf("alloc %s of version %d live while blocked, want only version 0's", a.Name, a.Job.Version)
		}
	}
	testutil.WaitFor(t, 10*time.Second, "version 1's deployment failed at its progress deadline", func() bool {
		d := getDeployment(t, s, blocked.ID)
		return d.Status == structs.DeploymentStatusFailed
	})
	d := getDeployment(t, s, blocked.ID)
	want := structs.DeploymentDescProgressDeadline + `: 1 allocation(s) of group "web" cannot be placed (1 node exhausted on memory) - rolling back to job version 0`
	if d.StatusDescription != want {
		t.Errorf("failed deployment says %q, want %q", d.StatusDescription, want)
	}
}
