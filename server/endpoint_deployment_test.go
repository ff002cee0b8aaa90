package server

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/structs"
)

// testDeployment returns a running deployment of job's current version
// with one group, "web". Its counts match what is placed (nothing), so the
// leader's deployment watcher leaves it alone.
func testDeployment(job *structs.Job, autoRevert bool) *structs.Deployment {
	return &structs.Deployment{
		ID: structs.GenerateUUID(), Namespace: job.Namespace, JobID: job.ID, JobVersion: job.Version,
		JobModifyIndex: job.ModifyIndex, JobSpecModifyIndex: job.JobModifyIndex, JobCreateIndex: job.CreateIndex,
		TaskGroups: map[string]*structs.DeploymentState{
			"web": {AutoRevert: autoRevert, DesiredTotal: 2},
		},
		Status: structs.DeploymentStatusRunning, StatusDescription: structs.DeploymentDescRunning,
	}
}

// commitDeployment writes a deployment update as the rollout engine does,
// straight through raft on the leader, and returns its index.
func commitDeployment(t *testing.T, c *testCluster, req *structs.DeploymentUpdateRequest) uint64 {
	t.Helper()
	index, err := c.leader().raftApply(structs.DeploymentUpdateRequestType, req)
	if err != nil {
		t.Fatalf("commit deployment update: %v", err)
	}
	c.waitForIndex(index)
	return index
}

// markStable marks the job's current version stable through a successful
// deployment of it.
func markStable(t *testing.T, c *testCluster, job *structs.Job) {
	t.Helper()
	d := testDeployment(job, false)
	d.Status, d.StatusDescription = structs.DeploymentStatusSuccessful, structs.DeploymentDescSuccessful
	v := job.Version
	commitDeployment(t, c, &structs.DeploymentUpdateRequest{Deployment: d, StableVersion: &v})
}

// registerVersion registers job and returns the stored job.
func registerVersion(t *testing.T, s *Server, job *structs.Job) *structs.Job {
	t.Helper()
	register(t, s, job)
	return getJob(t, s, job.ID, false)
}

func webWithCount(count int) *structs.Job {
	job := testJob("web")
	job.TaskGroups[0].Count = count
	return job
}

func getDeployment(t *testing.T, s *Server, id string) *structs.Deployment {
	t.Helper()
	var reply structs.SingleDeploymentResponse
	if err := s.RPC("Deployment.GetDeployment", &structs.DeploymentSpecificRequest{DeploymentID: id}, &reply); err != nil {
		t.Fatalf("get deployment %s: %v", id, err)
	}
	return reply.Deployment
}

func getEval(t *testing.T, s *Server, id string) *structs.Evaluation {
	t.Helper()
	var reply structs.SingleEvalResponse
	if err := s.RPC("Eval.GetEval", &structs.EvalSpecificRequest{EvalID: id}, &reply); err != nil {
		t.Fatalf("get eval %s: %v", id, err)
	}
	return reply.Eval
}

func deploymentIDs(ds []*structs.Deployment) []string {
	out := make([]string, 0, len(ds))
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

func TestDeploymentListAndGet(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.leader()
	web := registerVersion(t, s, testJob("web"))
	api := registerVersion(t, s, testJob("api"))
	dWeb := testDeployment(web, false)
	// A deployment of an earlier job purged under the same ID.
	dOld := testDeployment(web, false)
	dOld.JobCreateIndex = web.CreateIndex - 1
	dOld.Status = structs.DeploymentStatusCancelled
	dAPI := testDeployment(api, false)
	for _, d := range []*structs.Deployment{dOld, dWeb, dAPI} {
		commitDeployment(t, c, &structs.DeploymentUpdateRequest{Deployment: d})
	}

	var list structs.DeploymentListResponse
	if err := s.RPC("Deployment.List", &structs.DeploymentListRequest{}, &list); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(deploymentIDs(list.Deployments), " "), strings.Join([]string{dAPI.ID, dWeb.ID, dOld.ID}, " "); got != want {
		t.Fatalf("list = %s, want newest first %s", got, want)
	}
	if list.Index < list.Deployments[0].CreateIndex {
		t.Fatalf("list index %d is below the newest deployment's %d", list.Index, list.Deployments[0].CreateIndex)
	}
	args := &structs.DeploymentListRequest{QueryOptions: structs.QueryOptions{Prefix: dWeb.ID[:6]}}
	if err := s.RPC("Deployment.List", args, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Deployments) != 1 || list.Deployments[0].ID != dWeb.ID {
		t.Fatalf("list with prefix %s = %v, want [%s]", dWeb.ID[:6], deploymentIDs(list.Deployments), dWeb.ID)
	}
	args = &structs.DeploymentListRequest{QueryOptions: structs.QueryOptions{Namespace: "other"}}
	if err := s.RPC("Deployment.List", args, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Deployments) != 0 {
		t.Fatalf("list of namespace other = %v, want none", deploymentIDs(list.Deployments))
	}

	got := getDeployment(t, s, dWeb.ID)
	if got == nil || got.JobID != "web" || got.Status != structs.DeploymentStatusRunning || got.TaskGroups["web"].DesiredTotal != 2 {
		t.Fatalf("get = %+v, want the running deployment of web", got)
	}
	if d := getDeployment(t, s, structs.GenerateUUID()); d != nil {
		t.Fatalf("get of an unknown ID = %+v, want nil", d)
	}

	var jobDeps structs.DeploymentListResponse
	if err := s.RPC("Job.Deployments", &structs.JobSpecificRequest{JobID: "web"}, &jobDeps); err != nil {
		t.Fatal(err)
	}
	if len(jobDeps.Deployments) != 1 || jobDeps.Deployments[0].ID != dWeb.ID {
		t.Fatalf("deployments of web = %v, want only this incarnation's %s", deploymentIDs(jobDeps.Deployments), dWeb.ID)
	}
	if err := s.RPC("Job.Deployments", &structs.JobSpecificRequest{JobID: "web", All: true}, &jobDeps); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(deploymentIDs(jobDeps.Deployments), " "), dWeb.ID+" "+dOld.ID; got != want {
		t.Fatalf("all deployments of web = %s, want %s", got, want)
	}

	var latest structs.SingleDeploymentResponse
	if err := s.RPC("Job.LatestDeployment", &structs.JobSpecificRequest{JobID: "web"}, &latest); err != nil {
		t.Fatal(err)
	}
	if latest.Deployment == nil || latest.Deployment.ID != dWeb.ID {
		t.Fatalf("latest deployment of web = %+v, want %s", latest.Deployment, dWeb.ID)
	}
	if err := s.RPC("Job.LatestDeployment", &structs.JobSpecificRequest{JobID: "nope"}, &latest); err != nil {
		t.Fatal(err)
	}
	if latest.Deployment != nil {
		t.Fatalf("latest deployment of a job without any = %+v, want nil", latest.Deployment)
	}

	var allocs structs.JobAllocationsResponse
	if err := s.RPC("Deployment.Allocations", &structs.DeploymentSpecificRequest{DeploymentID: dWeb.ID}, &allocs); err != nil {
		t.Fatal(err)
	}
	if len(allocs.Allocations) != 0 {
		t.Fatalf("allocations of a deployment nothing was placed for = %d, want 0", len(allocs.Allocations))
	}
}

func TestDeploymentFail(t *testing.T) {
	tests := []struct {
		name        string
		autoRevert  bool
		stableV0    bool
		wantDesc    string
		wantVersion uint64 // the job's version after the fail
		wantCount   int
		wantRevert  bool
	}{
		{"no auto-revert", false, true, structs.DeploymentDescFailedByUser, 1, 3, false},
		{"auto-revert to the stable version", true, true, structs.DeploymentDescFailedByUser + " - rolling back to job version 0", 2, 2, true},
		{"auto-revert without a stable version", true, false, structs.DeploymentDescFailedByUser, 1, 3, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCluster(t, 1)
			s := c.leader()
			v0 := registerVersion(t, s, webWithCount(2))
			if tt.stableV0 {
				markStable(t, c, v0)
			}
			v1 := registerVersion(t, s, webWithCount(3))
			if v1.Version != 1 {
				t.Fatalf("version after a change = %d, want 1", v1.Version)
			}
			d := testDeployment(v1, tt.autoRevert)
			commitDeployment(t, c, &structs.DeploymentUpdateRequest{Deployment: d})

			var reply structs.DeploymentUpdateResponse
			if err := s.RPC("Deployment.Fail", &structs.DeploymentFailRequest{DeploymentID: d.ID}, &reply); err != nil {
				t.Fatalf("fail: %v", err)
			}
			if reply.EvalID == "" || reply.EvalCreateIndex != reply.Index || reply.DeploymentModifyIndex != reply.Index || reply.Index == 0 {
				t.Fatalf("reply = %+v, want an evaluation created with the deployment's change", reply)
			}
			if got := reply.RevertedJobVersion != nil; got != tt.wantRevert {
				t.Fatalf("reverted = %v (%v), want %v", got, reply.RevertedJobVersion, tt.wantRevert)
			}
			if tt.wantRevert && *reply.RevertedJobVersion != 0 {
				t.Fatalf("reverted to version %d, want 0", *reply.RevertedJobVersion)
			}
			got := getDeployment(t, s, d.ID)
			if got.Status != structs.DeploymentStatusFailed || got.StatusDescription != tt.wantDesc || got.ModifyIndex != reply.Index {
				t.Fatalf("deployment = %s %q at %d, want failed %q at %d", got.Status, got.StatusDescription, got.ModifyIndex, tt.wantDesc, reply.Index)
			}
			job := getJob(t, s, "web", false)
			if job.Version != tt.wantVersion || job.TaskGroups[0].Count != tt.wantCount || job.Stable {
				t.Fatalf("job after fail: version %d count %d stable %v, want version %d count %d not stable",
					job.Version, job.TaskGroups[0].Count, job.Stable, tt.wantVersion, tt.wantCount)
			}
			ev := getEval(t, s, reply.EvalID)
			if ev == nil || ev.JobID != "web" || ev.TriggeredBy != structs.EvalTriggerDeployment || ev.DeploymentID != d.ID ||
				ev.Type != job.Type || ev.Priority != job.Priority || ev.CreateIndex != reply.Index {
				t.Fatalf("eval = %+v, want a deployment-watcher eval of web for %s at %d", ev, d.ID, reply.Index)
			}

			err := s.RPC("Deployment.Fail", &structs.DeploymentFailRequest{DeploymentID: d.ID}, &reply)
			if !structs.IsErr(err, ErrBadRequest) || !strings.Contains(err.Error(), "is failed") {
				t.Fatalf("second fail: err = %v, want a bad request saying it is failed", err)
			}
		})
	}
}

func TestDeploymentFailErrorsAndNoopRevert(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.leader()
	var reply structs.DeploymentUpdateResponse
	err := s.RPC("Deployment.Fail", &structs.DeploymentFailRequest{DeploymentID: structs.GenerateUUID()}, &reply)
	if !structs.IsErr(err, structs.ErrNotFound) {
		t.Fatalf("fail of an unknown deployment: err = %v, want not found", err)
	}
	err = s.RPC("Deployment.Fail", &structs.DeploymentFailRequest{}, &reply)
	if !structs.IsErr(err, ErrBadRequest) {
		t.Fatalf("fail without an ID: err = %v, want a bad request", err)
	}

	// v0 stable, v1 a change, v2 back to v0's spec: a failed deployment of
	// v2 has nothing to revert to that would change the job.
	v0 := registerVersion(t, s, webWithCount(2))
	markStable(t, c, v0)
	registerVersion(t, s, webWithCount(3))
	v2 := registerVersion(t, s, webWithCount(2))
	d := testDeployment(v2, true)
	commitDeployment(t, c, &structs.DeploymentUpdateRequest{Deployment: d})
	if err := s.RPC("Deployment.Fail", &structs.DeploymentFailRequest{DeploymentID: d.ID}, &reply); err != nil {
		t.Fatal(err)
	}
	if reply.RevertedJobVersion != nil {
		t.Fatalf("reverted to %d, want no revert to the same spec", *reply.RevertedJobVersion)
	}
	got := getDeployment(t, s, d.ID)
	if !strings.Contains(got.StatusDescription, "not rolling back to stable job version 0") {
		t.Fatalf("description = %q, want it to say why it did not roll back", got.StatusDescription)
	}
	if job := getJob(t, s, "web", false); job.Version != 2 {
		t.Fatalf("job version = %d, want 2 (unchanged)", job.Version)
	}
}

func TestLatestStableBefore(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.leader()
	v0 := registerVersion(t, s, webWithCount(1))
	markStable(t, c, v0)
	v1 := registerVersion(t, s, webWithCount(2))
	markStable(t, c, v1)
	registerVersion(t, s, webWithCount(3))
	snap := s.State().Snapshot()
	for _, tt := range []struct {
		before uint64
		want   int64 // -1: none
	}{{3, 1}, {2, 1}, {1, 0}, {0, -1}} {
		got, err := s.latestStableBefore(snap, "default", "web", tt.before)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case tt.want < 0 && got != nil:
			t.Errorf("before %d: got version %d, want none", tt.before, got.Version)
		case tt.want >= 0 && (got == nil || got.Version != uint64(tt.want) || !got.Stable):
			t.Errorf("before %d: got %+v, want stable version %d", tt.before, got, tt.want)
		}
	}
	if got, err := s.latestStableBefore(snap, "default", "nope", 5); got != nil || err != nil {
		t.Errorf("unknown job: got %v, %v; want nil, nil", got, err)
	}
}

func TestDeploymentPauseResume(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.leader()
	job := registerVersion(t, s, testJob("web"))
	d := testDeployment(job, false)
	commitDeployment(t, c, &structs.DeploymentUpdateRequest{Deployment: d})

	pause := func(p bool) (*structs.DeploymentUpdateResponse, error) {
		var reply structs.DeploymentUpdateResponse
		err := s.RPC("Deployment.Pause", &structs.DeploymentPauseRequest{DeploymentID: d.ID, Pause: p}, &reply)
		return &reply, err
	}
	reply, err := pause(true)
	if err != nil {
		t.Fatalf("pause: %v", err)
	}
	if reply.EvalID != "" || reply.DeploymentModifyIndex == 0 {
		t.Fatalf("pause reply = %+v, want no evaluation and the deployment's index", reply)
	}
	if got := getDeployment(t, s, d.ID); got.Status != structs.DeploymentStatusPaused || got.StatusDescription != structs.DeploymentDescPaused {
		t.Fatalf("after pause: %s %q", got.Status, got.StatusDescription)
	}
	if _, err := pause(true); !structs.IsErr(err, ErrBadRequest) || !strings.Contains(err.Error(), "is paused") {
		t.Fatalf("pause of a paused deployment: err = %v, want a bad request saying it is paused", err)
	}

	reply, err = pause(false)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if got := getDeployment(t, s, d.ID); got.Status != structs.DeploymentStatusRunning || got.StatusDescription != structs.DeploymentDescRunning {
		t.Fatalf("after resume: %s %q", got.Status, got.StatusDescription)
	}
	ev := getEval(t, s, reply.EvalID)
	if ev == nil || ev.TriggeredBy != structs.EvalTriggerDeployment || ev.DeploymentID != d.ID || ev.CreateIndex != reply.EvalCreateIndex {
		t.Fatalf("resume eval = %+v, want a deployment-watcher eval of %s", ev, d.ID)
	}
	if _, err := pause(false); !structs.IsErr(err, ErrBadRequest) || !strings.Contains(err.Error(), "is running") {
		t.Fatalf("resume of a running deployment: err = %v, want a bad request saying it is running", err)
	}

	var failed structs.DeploymentUpdateResponse
	if err := s.RPC("Deployment.Fail", &structs.DeploymentFailRequest{DeploymentID: d.ID}, &failed); err != nil {
		t.Fatal(err)
	}
	for _, p := range []bool{true, false} {
		if _, err := pause(p); !structs.IsErr(err, ErrBadRequest) || !strings.Contains(err.Error(), "is failed") {
			t.Fatalf("pause=%v of a failed deployment: err = %v, want a bad request saying it is failed", p, err)
		}
	}
}

func TestJobRevert(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.leader()
	registerVersion(t, s, webWithCount(2))
	registerVersion(t, s, webWithCount(3))

	revert := func(version uint64, prior *uint64) (*structs.JobRegisterResponse, error) {
		var reply structs.JobRegisterResponse
		err := s.RPC("Job.Revert", &structs.JobRevertRequest{JobID: "web", JobVersion: version, EnforcePriorVersion: prior}, &reply)
		return &reply, err
	}
	reply, err := revert(0, nil)
	if err != nil {
		t.Fatalf("revert to 0: %v", err)
	}
	job := getJob(t, s, "web", false)
	if job.Version != 2 || job.TaskGroups[0].Count != 2 || reply.JobModifyIndex != job.JobModifyIndex {
		t.Fatalf("after revert to 0: version %d count %d (reply %+v), want version 2 with count 2", job.Version, job.TaskGroups[0].Count, reply)
	}
	if ev := getEval(t, s, reply.EvalID); ev == nil || ev.TriggeredBy != structs.EvalTriggerJobRegister || ev.CreateIndex != reply.Index {
		t.Fatalf("revert eval = %+v, want a job-register eval in the same entry", ev)
	}

	one, two := uint64(1), uint64(2)
	errs := []struct {
		name    string
		version uint64
		prior   *uint64
		isErr   error
		want    string
	}{
		{"current version", 2, nil, ErrBadRequest, `job "web" is already at version 2`},
		{"unknown version", 9, nil, structs.ErrNotFound, `job "web" version 9 not found`},
		{"wrong prior version", 1, &one, ErrBadRequest, "is at version 2, not at version 1"},
	}
	for _, e := range errs {
		_, err := revert(e.version, e.prior)
		if !structs.IsErr(err, e.isErr) || !strings.Contains(err.Error(), e.want) {
			t.Errorf("%s: err = %v, want %v containing %q", e.name, err, e.isErr, e.want)
		}
	}
	var reply2 structs.JobRegisterResponse
	err = s.RPC("Job.Revert", &structs.JobRevertRequest{JobID: "ghost", JobVersion: 0}, &reply2)
	if !structs.IsErr(err, structs.ErrNotFound) || !strings.Contains(err.Error(), `"ghost"`) {
		t.Errorf("revert of an unknown job: err = %v, want not found naming it", err)
	}

	if _, err := revert(1, &two); err != nil {
		t.Fatalf("revert to 1 with the right prior version: %v", err)
	}
	if job := getJob(t, s, "web", false); job.Version != 3 || job.TaskGroups[0].Count != 3 {
		t.Fatalf("after revert to 1: version %d count %d, want version 3 with count 3", job.Version, job.TaskGroups[0].Count)
	}
	// Version 1 has the current spec: the revert is accepted and adds no
	// version.
	if _, err := revert(1, nil); err != nil {
		t.Fatalf("revert to a version with the current spec: %v", err)
	}
	if job := getJob(t, s, "web", false); job.Version != 3 {
		t.Fatalf("version after a revert to the same spec = %d, want 3", job.Version)
	}
}

func TestDeploymentEndpointsThroughFollower(t *testing.T) {
	c := newTestCluster(t, 3)
	f := c.follower()
	registerVersion(t, f, webWithCount(2))
	job := registerVersion(t, f, webWithCount(3))
	d := testDeployment(job, false)
	commitDeployment(t, c, &structs.DeploymentUpdateRequest{Deployment: d})

	var list structs.DeploymentListResponse
	if err := f.RPC("Deployment.List", &structs.DeploymentListRequest{}, &list); err != nil || len(list.Deployments) != 1 {
		t.Fatalf("list via follower: %v, %d deployments", err, len(list.Deployments))
	}
	var reply structs.DeploymentUpdateResponse
	if err := f.RPC("Deployment.Pause", &structs.DeploymentPauseRequest{DeploymentID: d.ID, Pause: true}, &reply); err != nil {
		t.Fatalf("pause via follower: %v", err)
	}
	if got := getDeployment(t, f, d.ID); got.Status != structs.DeploymentStatusPaused {
		t.Fatalf("after pause via follower: %s", got.Status)
	}
	if err := f.RPC("Deployment.Fail", &structs.DeploymentFailRequest{DeploymentID: d.ID}, &reply); err != nil {
		t.Fatalf("fail via follower: %v", err)
	}
	if reply.EvalID == "" || getDeployment(t, f, d.ID).Status != structs.DeploymentStatusFailed {
		t.Fatalf("fail via follower: reply %+v", reply)
	}
	err := f.RPC("Deployment.Fail", &structs.DeploymentFailRequest{DeploymentID: d.ID}, &reply)
	if !structs.IsErr(err, ErrBadRequest) || !strings.Contains(err.Error(), "is failed") {
		t.Fatalf("second fail via follower: err = %v, want the leader's bad request", err)
	}
	var rev structs.JobRegisterResponse
	if err := f.RPC("Job.Revert", &structs.JobRevertRequest{JobID: "web", JobVersion: 0}, &rev); err != nil {
		t.Fatalf("revert via follower: %v", err)
	}
	if got := getJob(t, f, "web", false); got.Version != 2 || got.TaskGroups[0].Count != 2 {
		t.Fatalf("after revert via follower: version %d count %d", got.Version, got.TaskGroups[0].Count)
	}
}

// canaryFixture registers job web (no update block, so the scheduler
// makes no deployment of its own), waits until its evaluation is done
// (there is no node: nothing is placed), and returns the stored job, a
// running deployment of it whose group web wants 2 canaries of 4
// allocations, and those canaries, on a node that does not exist.
// Nothing is committed: see commitCanaries.
func canaryFixture(t *testing.T, c *testCluster) (*structs.Job, *structs.Deployment, []*structs.Allocation) {
	t.Helper()
	s := c.leader()
	reg := register(t, s, testJob("web"))
	testutil.WaitFor(t, 10*time.Second, "the evaluation of web done", func() bool {
		ev, err := s.State().EvalByID(nil, reg.EvalID)
		return err == nil && ev != nil && ev.Status != structs.EvalStatusPending
	})
	job := getJob(t, s, "web", false)
	d := testDeployment(job, false)
	g := d.TaskGroups["web"]
	g.DesiredTotal, g.DesiredCanaries = 4, 2
	node := structs.GenerateUUID()
	var canaries []*structs.Allocation
	for i := range 2 {
		a := &structs.Allocation{
			ID: structs.GenerateUUID(), Namespace: job.Namespace, JobID: job.ID, TaskGroup: "web",
			Name: fmt.Sprintf("web.web[%d]", i), NodeID: node, EvalID: reg.EvalID,
			DesiredStatus: structs.AllocDesiredStatusRun, ClientStatus: structs.AllocClientStatusRunning,
			DeploymentID: d.ID, DeploymentStatus: &structs.AllocDeploymentStatus{Canary: true},
		}
		g.PlacedCanaries = append(g.PlacedCanaries, a.ID)
		canaries = append(canaries, a)
	}
	return job, d, canaries
}

// commitCanaries gives the canaries the health given (nil: not judged
// yet) and commits them with the deployment: in one plan entry the first
// time, as the scheduler would have placed them; after that in one
// deployment update with the verdicts, as they reach the servers. The deployment's
// counts are made to match, so the leader's deployment watcher has
// nothing to change (it fails a deployment with an unhealthy allocation:
// promoted's own test covers that case). Once the job is evaluated again
// (a promotion does that) the canaries are lost: their node does not
// exist.
func commitCanaries(t *testing.T, c *testCluster, job *structs.Job, d *structs.Deployment, canaries []*structs.Allocation, health ...*bool) {
	t.Helper()
	g := d.TaskGroups["web"]
	g.PlacedAllocs, g.HealthyAllocs = len(canaries), 0
	for i, a := range canaries {
		a.DeploymentStatus.Healthy, a.DeploymentStatus.Timestamp = health[i], time.Now()
		if h := health[i]; h != nil && *h {
			g.HealthyAllocs++
		}
	}
	var typ structs.MessageType = structs.ApplyPlanResultsRequestType
	var req any = &structs.ApplyPlanResultsRequest{Allocs: canaries, Job: job, Deployment: d, EvalID: canaries[0].EvalID}
	if placed, _ := c.leader().State().AllocByID(nil, canaries[0].ID); placed != nil {
		// Placed already: a plan no longer sets a deployment's counts, so
		// the verdicts and the counts that match them go in one entry.
		u := &structs.DeploymentUpdateRequest{Deployment: d, HealthTime: time.Now()}
		for i, a := range canaries {
			switch h := health[i]; {
			case h != nil && *h:
				u.HealthyAllocs = append(u.HealthyAllocs, a.ID)
			case h != nil:
				u.UnhealthyAllocs = append(u.UnhealthyAllocs, a.ID)
			}
		}
		typ, req = structs.DeploymentUpdateRequestType, u
	}
	index, err := c.leader().raftApply(typ, req)
	if err != nil {
		t.Fatalf("commit canaries: %v", err)
	}
	c.waitForIndex(index)
}

func promote(s *Server, id string, all bool, groups ...string) (*structs.DeploymentUpdateResponse, error) {
	var reply structs.DeploymentUpdateResponse
	err := s.RPC("Deployment.Promote", &structs.DeploymentPromoteRequest{DeploymentID: id, All: all, Groups: groups}, &reply)
	return &reply, err
}

func TestDeploymentPromote(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.leader()
	job, d, canaries := canaryFixture(t, c)
	yes := true
	commitCanaries(t, c, job, d, canaries, &yes, nil)

	errs := []struct {
		name   string
		all    bool
		groups []string
		want   string
	}{
		{"a canary not judged", true, nil, "group web has 1 of 2 canaries healthy; promote once they all are"},
		{"named group not judged", false, []string{"web"}, "group web has 1 of 2 canaries healthy"},
		{"unknown group", false, []string{"api"}, `has no group "api" (its groups: web)`},
		{"nothing named", false, nil, "promotes nothing"},
	}
	for _, e := range errs {
		if _, err := promote(s, d.ID, e.all, e.groups...); !structs.IsErr(err, ErrBadRequest) || !strings.Contains(err.Error(), e.want) {
			t.Errorf("%s: err = %v, want a bad request containing %q", e.name, err, e.want)
		}
	}
	if _, err := promote(s, structs.GenerateUUID(), true); !structs.IsErr(err, structs.ErrNotFound) {
		t.Errorf("promote of an unknown deployment: err = %v, want not found", err)
	}
	if got := getDeployment(t, s, d.ID); got.TaskGroups["web"].Promoted || got.Status != structs.DeploymentStatusRunning {
		t.Fatalf("after refused promotions: %s, promoted %v", got.Status, got.TaskGroups["web"].Promoted)
	}

	commitCanaries(t, c, job, d, canaries, &yes, &yes)
	reply, err := promote(s, d.ID, false, "web")
	if err != nil {
		t.Fatalf("promote: %v", err)
	}
	if reply.EvalID == "" || reply.EvalCreateIndex != reply.Index || reply.DeploymentModifyIndex != reply.Index || reply.Index == 0 {
		t.Fatalf("reply = %+v, want an evaluation created with the promotion", reply)
	}
	got := getDeployment(t, s, d.ID)
	if !got.TaskGroups["web"].Promoted || got.Status != structs.DeploymentStatusRunning || got.StatusDescription != structs.DeploymentDescRunning ||
		got.ModifyIndex < reply.Index {
		t.Fatalf("after promote: %s %q promoted %v at %d", got.Status, got.StatusDescription, got.TaskGroups["web"].Promoted, got.ModifyIndex)
	}
	ev := getEval(t, s, reply.EvalID)
	if ev == nil || ev.JobID != "web" || ev.TriggeredBy != structs.EvalTriggerDeployment || ev.DeploymentID != d.ID || ev.CreateIndex != reply.Index {
		t.Fatalf("eval = %+v, want a deployment-watcher eval of web for %s at %d", ev, d.ID, reply.Index)
	}
	// Promoted already: accepted, its canaries are not looked at again.
	if again, err := promote(s, d.ID, true); err != nil || again.EvalID == "" {
		t.Fatalf("second promote: %+v, %v; want it accepted", again, err)
	}

	var r structs.DeploymentUpdateResponse
	if err := s.RPC("Deployment.Pause", &structs.DeploymentPauseRequest{DeploymentID: d.ID, Pause: true}, &r); err != nil {
		t.Fatal(err)
	}
	if _, err := promote(s, d.ID, true); !structs.IsErr(err, ErrBadRequest) || !strings.Contains(err.Error(), "is paused; resume it first") {
		t.Errorf("promote of a paused deployment: err = %v", err)
	}
	if err := s.RPC("Deployment.Fail", &structs.DeploymentFailRequest{DeploymentID: d.ID}, &r); err != nil {
		t.Fatal(err)
	}
	if _, err := promote(s, d.ID, true); !structs.IsErr(err, ErrBadRequest) || !strings.Contains(err.Error(), "is failed; only a running or blocked deployment can be promoted") {
		t.Errorf("promote of a failed deployment: err = %v", err)
	}
}

// TestPromoted: the decision, on its own (through raft the deployment
// watcher fails a deployment with an unhealthy canary before it could be
// promoted).
func TestPromoted(t *testing.T) {
	yes, no := true, false
	allocs := map[string]*structs.Allocation{}
	canary := func(health *bool, desired string) string {
		a := &structs.Allocation{ID: structs.GenerateUUID(), DesiredStatus: desired, ClientStatus: structs.AllocClientStatusRunning,
			DeploymentStatus: &structs.AllocDeploymentStatus{Canary: true, Healthy: health}}
		allocs[a.ID] = a
		return a.ID
	}
	run := structs.AllocDesiredStatusRun
	ok1, ok2, ok3 := canary(&yes, run), canary(&yes, run), canary(&yes, run)
	bad, unjudged, stopped := canary(&no, run), canary(nil, run), canary(&yes, structs.AllocDesiredStatusStop)
	gone := structs.GenerateUUID()
	read := func(id string) (*structs.Allocation, error) { return allocs[id], nil }
	dep := func(status string, groups map[string]*structs.DeploymentState) *structs.Deployment {
		return &structs.Deployment{ID: "d1", Status: status, StatusDescription: "x", TaskGroups: groups}
	}
	group := func(desired int, promoted bool, placed ...string) *structs.DeploymentState {
		return &structs.DeploymentState{DesiredCanaries: desired, Promoted: promoted, PlacedCanaries: placed, DesiredTotal: 4}
	}
	running := structs.DeploymentStatusRunning
	tests := []struct {
		name         string
		d            *structs.Deployment
		all          bool
		groups       []string
		wantErr      string
		wantPromoted []string
	}{
		{"all healthy", dep(running, map[string]*structs.DeploymentState{"web": group(2, false, ok1, ok2), "db": group(0, false)}), true, nil, "", []string{"web"}},
		{"named, twice", dep(running, map[string]*structs.DeploymentState{"web": group(2, false, ok1, ok2), "api": group(1, false, unjudged)}), false, []string{"web", "web"}, "", []string{"web"}},
		{"unhealthy", dep(running, map[string]*structs.DeploymentState{"web": group(2, false, ok1, bad)}), true, nil, "group web has 1 of 2 canaries healthy; promote once they all are", nil},
		{"unjudged", dep(running, map[string]*structs.DeploymentState{"web": group(2, false, unjudged, ok1)}), true, nil, "group web has 1 of 2 canaries healthy", nil},
		{"gone", dep(running, map[string]*structs.DeploymentState{"web": group(2, false, ok1, gone)}), true, nil, "group web has 1 of 2 canaries healthy", nil},
		{"stopped", dep(running, map[string]*structs.DeploymentState{"web": group(1, false, stopped)}), true, nil, "group web has 0 of 1 canaries healthy", nil},
		{"not all placed", dep(running, map[string]*structs.DeploymentState{"web": group(3, false, ok1, ok2)}), true, nil, "group web has 2 of 3 canaries healthy", nil},
		{"more placed than wanted", dep(running, map[string]*structs.DeploymentState{"web": group(2, false, ok1, ok2, unjudged)}), true, nil, "group web has 2 of 3 canaries healthy", nil},
		{"two groups not ready", dep(running, map[string]*structs.DeploymentState{"web": group(2, false, ok1, bad), "api": group(1, false, unjudged), "db": group(1, false, ok3)}), true, nil,
			"cannot be promoted: group api has 0 of 1 canaries healthy, group web has 1 of 2 canaries healthy; promote", nil},
		{"one group of two", dep(running, map[string]*structs.DeploymentState{"web": group(2, false, ok1, bad), "db": group(1, false, ok3)}), false, []string{"db"}, "", []string{"db"}},
		{"promoted already", dep(running, map[string]*structs.DeploymentState{"web": group(2, true, ok1, bad), "db": group(1, false, ok3)}), true, nil, "", []string{"db", "web"}},
		{"no canaries", dep(running, map[string]*structs.DeploymentState{"web": group(0, false)}), true, nil, "deployment d1 has no canaries to promote", nil},
		{"named group without canaries", dep(running, map[string]*structs.DeploymentState{"web": group(0, false)}), false, []string{"web"}, `group "web" of deployment d1 has no canaries to promote`, nil},
		{"unknown group", dep(running, map[string]*structs.DeploymentState{"web": group(1, false, ok1), "api": group(1, false, ok2)}), false, []string{"db"}, `deployment d1 has no group "db" (its groups: api, web)`, nil},
		{"paused", dep(structs.DeploymentStatusPaused, map[string]*structs.DeploymentState{"web": group(1, false, ok1)}), true, nil, "deployment d1 is paused; resume it first", nil},
		{"blocked", dep(structs.DeploymentStatusBlocked, map[string]*structs.DeploymentState{"web": group(1, false, ok1)}), true, nil, "", []string{"web"}},
		{"successful", dep(structs.DeploymentStatusSuccessful, map[string]*structs.DeploymentState{"web": group(1, true, ok1)}), true, nil, "is successful; only a running or blocked deployment", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.d.Copy()
			u, err := promoted(tt.d, &structs.DeploymentPromoteRequest{DeploymentID: tt.d.ID, All: tt.all, Groups: tt.groups}, read)
			if tt.wantErr != "" {
				if !structs.IsErr(err, ErrBadRequest) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want a bad request containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for name, g := range u.TaskGroups {
				if g.Promoted {
					got = append(got, name)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.wantPromoted) || u.StatusDescription != structs.DeploymentDescRunning {
				t.Fatalf("promoted %v (%q), want %v (%q)", got, u.StatusDescription, tt.wantPromoted, structs.DeploymentDescRunning)
			}
			if !reflect.DeepEqual(tt.d, before) {
				t.Fatal("promoted changed the deployment it was given")
			}
		})
	}
}

func TestDeploymentPromoteThroughFollower(t *testing.T) {
	c := newTestCluster(t, 3)
	f := c.follower()
	job, d, canaries := canaryFixture(t, c)
	yes := true
	commitCanaries(t, c, job, d, canaries, nil, nil)
	_, err := promote(f, d.ID, true)
	if !structs.IsErr(err, ErrBadRequest) || !strings.Contains(err.Error(), "group web has 0 of 2 canaries healthy") {
		t.Fatalf("promote via follower before health: err = %v, want the leader's bad request", err)
	}
	commitCanaries(t, c, job, d, canaries, &yes, &yes)
	reply, err := promote(f, d.ID, true)
	if err != nil {
		t.Fatalf("promote via follower: %v", err)
	}
	c.waitForIndex(reply.Index)
	if got := getDeployment(t, f, d.ID); !got.TaskGroups["web"].Promoted || reply.EvalID == "" {
		t.Fatalf("after promote via follower: promoted %v, reply %+v", got.TaskGroups["web"].Promoted, reply)
	}
}

// TestDeploymentPromoteRollsOut: the whole loop with the scheduler and a
// node that reports health: version 1's canary waits, healthy, until an
// operator promotes it; then the rollout continues to success.
func TestDeploymentPromoteRollsOut(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.leader()
	n := smallNode("n1")
	registerNode(t, s, n)
	playHealth(t, s, n, func(*structs.Allocation) bool { return true })
	job := func(image string) *structs.Job {
		j := rollingTestJob(image, false)
		j.TaskGroups[0].Update.Canary = 1
		return j
	}
	register(t, s, job("a"))
	testutil.WaitFor(t, 20*time.Second, "version 0 deployed", func() bool {
		d := latestDeployment(t, s)
		return d != nil && d.JobVersion == 0 && d.Status == structs.DeploymentStatusSuccessful
	})
	register(t, s, job("b"))
	var d *structs.Deployment
	testutil.WaitFor(t, 20*time.Second, "version 1's canary healthy", func() bool {
		d = latestDeployment(t, s)
		return d != nil && d.JobVersion == 1 && d.TaskGroups["web"].HealthyAllocs == 1
	})
	if g := d.TaskGroups["web"]; g.Promoted || g.DesiredCanaries != 1 || len(g.PlacedCanaries) != 1 {
		t.Fatalf("deployment group before the promotion %+v, want 1 canary placed, not promoted", g)
	}
	if _, err := promote(s, d.ID, false, "web"); err != nil {
		t.Fatalf("promote: %v", err)
	}
	testutil.WaitFor(t, 20*time.Second, "version 1 deployed", func() bool {
		d = latestDeployment(t, s)
		return d.Status == structs.DeploymentStatusSuccessful
	})
	if g := d.TaskGroups["web"]; d.JobVersion != 1 || !g.Promoted || g.HealthyAllocs != 3 {
		t.Fatalf("deployment %s of version %d, group %+v; want version 1 promoted with 3 healthy", d.Status, d.JobVersion, g)
	}
	live := liveAllocs(t, s, "web")
	for _, a := range live {
		if a.Job.Version != 1 {
			t.Errorf("after the rollout alloc %s runs version %d", a.Name, a.Job.Version)
		}
	}
	if len(live) != 3 {
		t.Errorf("%d live allocations after the rollout, want 3", len(live))
	}
}
