package agent

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	nomad "github.com/hashicorp/nomad/api"

	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/structs"
)

// commitDeployment writes a deployment update through the agent's raft,
// as the rollout engine does.
func commitDeployment(t *testing.T, a *Agent, req *structs.DeploymentUpdateRequest) {
	t.Helper()
	commit(t, a, structs.DeploymentUpdateRequestType, req)
}

// commit writes a raft entry through the agent, as the servers do.
func commit(t *testing.T, a *Agent, typ structs.MessageType, req any) {
	t.Helper()
	buf, err := structs.Encode(typ, req)
	if err != nil {
		t.Fatal(err)
	}
	f := a.Server().Raft().Apply(buf, 10*time.Second)
	if err := f.Error(); err != nil {
		t.Fatalf("commit entry of type %d: %v", typ, err)
	}
	if err, ok := f.Response().(error); ok && err != nil {
		t.Fatalf("apply entry of type %d: %v", typ, err)
	}
}

// testNomadDeployment is a running deployment of job, as Nomad's client
// read it, with one group. Nothing is placed for it, and its counts say
// so: the leader's deployment watcher has nothing to change.
func testNomadDeployment(job *nomad.Job, group string, autoRevert bool) *structs.Deployment {
	return &structs.Deployment{
		ID: structs.GenerateUUID(), Namespace: "default", JobID: *job.ID, JobVersion: *job.Version,
		JobCreateIndex: *job.CreateIndex, JobSpecModifyIndex: *job.JobModifyIndex,
		TaskGroups: map[string]*structs.DeploymentState{group: {AutoRevert: autoRevert, DesiredTotal: 3}},
		Status:     structs.DeploymentStatusRunning, StatusDescription: structs.DeploymentDescRunning,
	}
}

// TestNomadClientDeployments drives deployments and reverts with Nomad's
// own Go API client.
func TestNomadClientDeployments(t *testing.T) {
	a, addr := testAgent(t)
	client, err := nomad.NewClient(&nomad.Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	// No update block (and no Canonicalize, which would add one): the
	// deployments here are the test's own.
	job := nomad.NewServiceJob("web", "web", "global", 50)
	job.Datacenters = []string{"dc1"}
	tg := nomad.NewTaskGroup("frontend", 2)
	tg.AddTask(nomad.NewTask("server", "docker").SetConfig("image", "busybox:1.36"))
	job.AddTaskGroup(tg)
	register := func(count int) *nomad.Job {
		t.Helper()
		*job.TaskGroups[0].Count = count
		if _, _, err := client.Jobs().Register(job, nil); err != nil {
			t.Fatalf("register: %v", err)
		}
		got, _, err := client.Jobs().Info("web", nil)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}

	// Version 0 succeeds and is stable; version 1 rolls out with
	// auto-revert.
	v0 := register(2)
	d0 := testNomadDeployment(v0, "frontend", false)
	d0.Status, d0.StatusDescription = structs.DeploymentStatusSuccessful, structs.DeploymentDescSuccessful
	zero := uint64(0)
	commitDeployment(t, a, &structs.DeploymentUpdateRequest{Deployment: d0, StableVersion: &zero})
	v1 := register(3)
	d1 := testNomadDeployment(v1, "frontend", true)
	commitDeployment(t, a, &structs.DeploymentUpdateRequest{Deployment: d1})

	list, meta, err := client.Deployments().List(nil)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(list) != 2 || list[0].ID != d1.ID || list[1].ID != d0.ID || meta.LastIndex == 0 {
		t.Fatalf("list = %d deployments (meta %+v), want %s then %s", len(list), meta, d1.ID, d0.ID)
	}
	list, _, err = client.Deployments().PrefixList(d1.ID[:6])
	if err != nil || len(list) != 1 || list[0].ID != d1.ID {
		t.Fatalf("prefix list: %v, %d deployments", err, len(list))
	}
	info, _, err := client.Deployments().Info(d1.ID, nil)
	if err != nil {
		t.Fatalf("info: %v", err)
	}
	if info.JobID != "web" || info.JobVersion != 1 || info.Status != "running" ||
		info.TaskGroups["frontend"] == nil || !info.TaskGroups["frontend"].AutoRevert || info.TaskGroups["frontend"].DesiredTotal != 3 {
		t.Fatalf("info = %+v, want the running deployment of web version 1", info)
	}
	if _, _, err := client.Deployments().Info(structs.GenerateUUID(), nil); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("info of an unknown deployment: err = %v, want 404", err)
	}
	allocs, _, err := client.Deployments().Allocations(d1.ID, nil)
	if err != nil || len(allocs) != 0 {
		t.Fatalf("allocations: %v, %d", err, len(allocs))
	}
	jobDeps, _, err := client.Jobs().Deployments("web", false, nil)
	if err != nil || len(jobDeps) != 2 || jobDeps[0].ID != d1.ID {
		t.Fatalf("job deployments: %v, %d", err, len(jobDeps))
	}
	latest, _, err := client.Jobs().LatestDeployment("web", nil)
	if err != nil || latest == nil || latest.ID != d1.ID {
		t.Fatalf("latest deployment: %v, %+v", err, latest)
	}
	if none, _, err := client.Jobs().LatestDeployment("other", nil); err != nil || none != nil {
		t.Fatalf("latest deployment of a job without any: %v, %+v; want nil, nil", err, none)
	}

	versions, diffs, _, err := client.Jobs().Versions("web", true, nil)
	if err != nil || len(versions) != 2 || len(diffs) != 1 {
		t.Fatalf("versions with diffs: %v, %d versions, %d diffs; want 2 and 1", err, len(versions), len(diffs))
	}
	countChange := func(d *nomad.JobDiff) bool {
		for _, g := range d.TaskGroups {
			for _, f := range g.Fields {
				if g.Name == "frontend" && f.Name == "Count" && f.Old == "2" && f.New == "3" {
					return true
				}
			}
		}
		return false
	}
	if diffs[0].Type != "Edited" || !countChange(diffs[0]) {
		t.Fatalf("diff of version 1 = %+v, want frontend's Count edited from 2 to 3", diffs[0])
	}
	if _, diffs, _, err := client.Jobs().Versions("web", false, nil); err != nil || len(diffs) != 0 {
		t.Fatalf("versions without diffs: %v, %d diffs", err, len(diffs))
	}

	paused, _, err := client.Deployments().Pause(d1.ID, true, nil)
	if err != nil || paused.EvalID != "" || paused.DeploymentModifyIndex == 0 {
		t.Fatalf("pause: %v, %+v", err, paused)
	}
	if info, _, _ = client.Deployments().Info(d1.ID, nil); info.Status != "paused" {
		t.Fatalf("status after pause = %s", info.Status)
	}
	if _, _, err := client.Deployments().Pause(d1.ID, true, nil); err == nil || !strings.Contains(err.Error(), "400") ||
		!strings.Contains(err.Error(), "is paused") {
		t.Fatalf("second pause: err = %v, want 400 saying it is paused", err)
	}
	resumed, _, err := client.Deployments().Pause(d1.ID, false, nil)
	if err != nil || resumed.EvalID == "" {
		t.Fatalf("resume: %v, %+v", err, resumed)
	}

	failed, wm, err := client.Deployments().Fail(d1.ID, nil)
	if err != nil {
		t.Fatalf("fail: %v", err)
	}
	if failed.EvalID == "" || failed.RevertedJobVersion == nil || *failed.RevertedJobVersion != 0 || wm.LastIndex == 0 {
		t.Fatalf("fail = %+v (meta %+v), want an eval and a revert to version 0", failed, wm)
	}
	info, _, _ = client.Deployments().Info(d1.ID, nil)
	if info.Status != "failed" || info.StatusDescription != "Deployment marked as failed - rolling back to job version 0" {
		t.Fatalf("after fail: %s %q", info.Status, info.StatusDescription)
	}
	got, _, err := client.Jobs().Info("web", nil)
	if err != nil || *got.Version != 2 || *got.TaskGroups[0].Count != 2 {
		t.Fatalf("job after the revert: %v, version %d", err, *got.Version)
	}
	if _, _, err := client.Deployments().Fail(d1.ID, nil); err == nil || !strings.Contains(err.Error(), "400") ||
		!strings.Contains(err.Error(), "is failed") {
		t.Fatalf("second fail: err = %v, want 400 saying it is failed", err)
	}

	two := uint64(2)
	rev, _, err := client.Jobs().Revert("web", 1, &two, nil, "", "")
	if err != nil || rev.EvalID == "" {
		t.Fatalf("revert: %v, %+v", err, rev)
	}
	if got, _, _ = client.Jobs().Info("web", nil); *got.Version != 3 || *got.TaskGroups[0].Count != 3 {
		t.Fatalf("after revert to 1: version %d count %d, want 3 and 3", *got.Version, *got.TaskGroups[0].Count)
	}
	if _, _, err := client.Jobs().Revert("web", 3, nil, nil, "", ""); err == nil || !strings.Contains(err.Error(), "already at version 3") {
		t.Fatalf("revert to the current version: err = %v", err)
	}
	if _, _, err := client.Jobs().Revert("web", 0, &two, nil, "", ""); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("revert with a stale prior version: err = %v, want 400", err)
	}
}

// TestNomadClientPromote promotes canaries with Nomad's own Go API
// client: refused while a canary is not judged healthy, then accepted.
// deployedAllocs registers job "web" (group "frontend", no update block,
// so the deployment is the test's own) and, once its evaluation is done,
// a running deployment of it with n allocations placed on a node that
// does not exist, canaries if canary is set, none judged yet.
func deployedAllocs(t *testing.T, a *Agent, client *nomad.Client, n int, canary bool) (*structs.Deployment, []*structs.Allocation) {
	t.Helper()
	job := nomad.NewServiceJob("web", "web", "global", 50)
	job.Datacenters = []string{"dc1"}
	tg := nomad.NewTaskGroup("frontend", 2)
	tg.AddTask(nomad.NewTask("server", "docker").SetConfig("image", "busybox:1.36"))
	job.AddTaskGroup(tg)
	reg, _, err := client.Jobs().Register(job, nil)
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	testutil.WaitFor(t, 10*time.Second, "the evaluation of web done", func() bool {
		ev, _, err := client.Evaluations().Info(reg.EvalID, nil)
		return err == nil && ev.Status != structs.EvalStatusPending
	})
	v0, _, err := client.Jobs().Info("web", nil)
	if err != nil {
		t.Fatal(err)
	}
	d := testNomadDeployment(v0, "frontend", false)
	g := d.TaskGroups["frontend"]
	node := structs.GenerateUUID()
	var allocs []*structs.Allocation
	for i := range n {
		c := &structs.Allocation{ID: structs.GenerateUUID(), Namespace: "default", JobID: "web", TaskGroup: "frontend",
			Name: fmt.Sprintf("web.frontend[%d]", i), NodeID: node, EvalID: reg.EvalID,
			DesiredStatus: structs.AllocDesiredStatusRun, ClientStatus: structs.AllocClientStatusRunning,
			DeploymentID: d.ID, DeploymentStatus: &structs.AllocDeploymentStatus{Canary: canary}}
		if canary {
			g.DesiredCanaries++
			g.PlacedCanaries = append(g.PlacedCanaries, c.ID)
		}
		allocs = append(allocs, c)
	}
	g.PlacedAllocs = n
	commit(t, a, structs.ApplyPlanResultsRequestType, &structs.ApplyPlanResultsRequest{Allocs: allocs, Deployment: d, EvalID: reg.EvalID})
	return d, allocs
}

func TestNomadClientPromote(t *testing.T) {
	a, addr := testAgent(t)
	client, err := nomad.NewClient(&nomad.Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	d, canaries := deployedAllocs(t, a, client, 2, true)
	g := d.TaskGroups["frontend"]
	// The deployment's counts match its canaries: the leader's watcher
	// has nothing to change.
	// health marks canaries healthy (false: not judged yet) with the
	// counts that match, in one entry, as verdicts reach the servers.
	health := func(healthy ...bool) {
		t.Helper()
		req := &structs.DeploymentUpdateRequest{Deployment: d, HealthTime: time.Now()}
		g.PlacedAllocs, g.HealthyAllocs = len(canaries), 0
		for i, c := range canaries {
			if healthy[i] {
				req.HealthyAllocs = append(req.HealthyAllocs, c.ID)
				g.HealthyAllocs++
			}
		}
		commitDeployment(t, a, req)
	}
	health(true, false) // the second not judged yet

	_, _, err = client.Deployments().PromoteAll(d.ID, nil)
	if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "group frontend has 1 of 2 canaries healthy; promote once they all are") {
		t.Fatalf("promote all before the canaries are healthy: err = %v, want 400 with the counts", err)
	}
	_, _, err = client.Deployments().PromoteGroups(d.ID, []string{"api"}, nil)
	if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), `has no group "api"`) {
		t.Fatalf("promote of an unknown group: err = %v, want 400", err)
	}

	health(true, true)
	resp, wm, err := client.Deployments().PromoteGroups(d.ID, []string{"frontend"}, nil)
	if err != nil {
		t.Fatalf("promote frontend: %v", err)
	}
	if resp.EvalID == "" || resp.DeploymentModifyIndex == 0 || wm.LastIndex == 0 {
		t.Fatalf("promote = %+v (meta %+v), want an evaluation and the deployment's index", resp, wm)
	}
	info, _, err := client.Deployments().Info(d.ID, nil)
	if err != nil || !info.TaskGroups["frontend"].Promoted || info.Status != "running" {
		t.Fatalf("after promote: %v, %+v", err, info)
	}
	// Promoted already: accepted.
	if resp, _, err := client.Deployments().PromoteAll(d.ID, nil); err != nil || resp.EvalID == "" {
		t.Fatalf("promote all after the promotion: %v, %+v", err, resp)
	}
}

// TestNomadClientAllocHealth: Nomad's client sets allocation health by
// hand; a healthy verdict is stored, an unhealthy one fails the
// deployment (through the leader's watcher).
func TestNomadClientAllocHealth(t *testing.T) {
	a, addr := testAgent(t)
	client, err := nomad.NewClient(&nomad.Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	d, allocs := deployedAllocs(t, a, client, 2, false)
	resp, wm, err := client.Deployments().SetAllocHealth(d.ID, []string{allocs[0].ID}, nil, nil)
	if err != nil {
		t.Fatalf("set health: %v", err)
	}
	if resp.DeploymentModifyIndex == 0 || wm.LastIndex == 0 {
		t.Fatalf("set health = %+v (meta %+v), want the deployment's index", resp, wm)
	}
	info, _, err := client.Allocations().Info(allocs[0].ID, nil)
	if err != nil || info.DeploymentStatus == nil || info.DeploymentStatus.Healthy == nil || !*info.DeploymentStatus.Healthy {
		t.Fatalf("allocation after a healthy verdict: %v, %+v", err, info.DeploymentStatus)
	}
	_, _, err = client.Deployments().SetAllocHealth(d.ID, []string{structs.GenerateUUID()}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("health of an unknown allocation: err = %v, want 400 not found", err)
	}
	if _, _, err := client.Deployments().SetAllocHealth(d.ID, nil, []string{allocs[1].ID}, nil); err != nil {
		t.Fatalf("set unhealthy: %v", err)
	}
	testutil.WaitFor(t, 10*time.Second, "the deployment failed", func() bool {
		dep, _, err := client.Deployments().Info(d.ID, nil)
		return err == nil && dep.Status == structs.DeploymentStatusFailed && dep.StatusDescription == structs.DeploymentDescFailedAllocations
	})
}

func TestDeploymentBadRequests(t *testing.T) {
	_, addr := testAgent(t)
	id := structs.GenerateUUID()
	cases := []struct {
		name, method, path, body string
		code                     int
		want                     string
	}{
		{"unknown deployment", "GET", "/v1/deployment/" + id, "", 404, "not found"},
		{"fail unknown", "PUT", "/v1/deployment/fail/" + id, "", 404, "not found"},
		{"pause without body", "PUT", "/v1/deployment/pause/" + id, "", 400, "body is empty"},
		{"pause without Pause", "PUT", "/v1/deployment/pause/" + id, `{"DeploymentID": "` + id + `"}`, 400, `no "Pause" field`},
		{"pause of another ID", "PUT", "/v1/deployment/pause/" + id, `{"DeploymentID": "x", "Pause": true}`, 400, "does not match"},
		{"promote without body", "PUT", "/v1/deployment/promote/" + id, "", 400, "body is empty"},
		{"promote nothing", "PUT", "/v1/deployment/promote/" + id, `{"DeploymentID": "` + id + `"}`, 400, "promotes nothing"},
		{"promote of another ID", "POST", "/v1/deployment/promote/" + id, `{"DeploymentID": "x", "All": true}`, 400, "does not match"},
		{"promote unknown", "PUT", "/v1/deployment/promote/" + id, `{"All": true}`, 404, "not found"},
		{"promote bad groups", "PUT", "/v1/deployment/promote/" + id, `{"Groups": "web"}`, 400, "field Groups"},
		{"oversized promote body", "PUT", "/v1/deployment/promote/" + id, strings.Repeat("x", 5<<20), 413, "larger than the 4194304-byte limit"},
		{"revert without version", "PUT", "/v1/job/web/revert", `{"JobID": "web"}`, 400, `no "JobVersion"`},
		{"revert of another job", "PUT", "/v1/job/web/revert", `{"JobID": "api", "JobVersion": 0}`, 400, "does not match"},
		{"revert unknown job", "PUT", "/v1/job/web/revert", `{"JobVersion": 0}`, 404, `job "web" not found`},
		{"health without body", "PUT", "/v1/deployment/allocation-health/" + id, "", 400, "body is empty"},
		{"health of nothing", "PUT", "/v1/deployment/allocation-health/" + id, `{"DeploymentID": "` + id + `"}`, 400, "names no allocation"},
		{"health of another ID", "POST", "/v1/deployment/allocation-health/" + id, `{"DeploymentID": "x", "HealthyAllocationIDs": ["a"]}`, 400, "does not match"},
		{"health unknown", "PUT", "/v1/deployment/allocation-health/" + id, `{"HealthyAllocationIDs": ["a"]}`, 404, "not found"},
		{"oversized fail body", "PUT", "/v1/deployment/fail/" + id, strings.Repeat("x", 5<<20), 413, "larger than the 4194304-byte limit"},
		{"list", "GET", "/v1/deployments", "", 200, "[]"},
		{"job deployments", "GET", "/v1/job/web/deployments", "", 200, "[]"},
		{"latest of none", "GET", "/v1/job/web/deployment", "", 200, "null"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body io.Reader // nil, not a nil *strings.Reader: no body at all
			if c.body != "" {
				body = strings.NewReader(c.body)
			}
			r, out := do(t, c.method, addr+c.path, body)
			if r.StatusCode != c.code || !strings.Contains(out, c.want) {
				t.Fatalf("got %d %q, want %d containing %q", r.StatusCode, out, c.code, c.want)
			}
		})
	}
}
