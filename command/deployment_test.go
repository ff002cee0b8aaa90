package command

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/skiffhq/skiff/structs"
)

func TestDeploymentJSON(t *testing.T) {
	f := newFakeAgent(t)
	f.serveJob()
	res := runCLI(t, f.srv.URL, "deployment", "list", "-json")
	var list []*structs.Deployment
	mustDecode(t, []byte(res.stdout), &list)
	if res.code != 0 || len(list) != 2 || list[0].ID != deployID1 {
		t.Errorf("list -json: code %d, %d deployments", res.code, len(list))
	}
	res = runCLI(t, f.srv.URL, "deployment", "status", "-json", "d3e4f5a7")
	var d structs.Deployment
	mustDecode(t, []byte(res.stdout), &d)
	if res.code != 0 || d.ID != deployID2 || d.TaskGroups["api"].UnhealthyAllocs != 1 {
		t.Errorf("status -json: code %d, %+v", res.code, d)
	}
	res = runCLI(t, f.srv.URL, "job", "status", "-json", "web")
	var st jobStatus
	mustDecode(t, []byte(res.stdout), &st)
	if res.code != 0 || st.LatestDeployment == nil || st.LatestDeployment.ID != deployID1 {
		t.Errorf("job status -json: code %d, latest deployment %+v", res.code, st.LatestDeployment)
	}
}

func TestDeploymentListEmpty(t *testing.T) {
	f := newFakeAgent(t)
	f.json("GET /v1/deployments", 1, []*structs.Deployment{})
	res := runCLI(t, f.srv.URL, "deployment", "list")
	if res.code != 0 || res.stdout != "" || !strings.Contains(res.stderr, "No deployments") {
		t.Errorf("got code %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
}

// TestDeploymentUpdates: fail, pause and resume send their request to the
// deployment the prefix names, and print its new status and evaluation.
func TestDeploymentUpdates(t *testing.T) {
	zero := uint64(0)
	tests := []struct {
		args    []string
		path    string
		pause   *bool
		reply   *structs.DeploymentUpdateResponse
		after   *structs.Deployment
		wantOut string
	}{
		{[]string{"deployment", "fail", "d3e4f5a6"}, "/v1/deployment/fail/" + deployID1, nil,
			&structs.DeploymentUpdateResponse{EvalID: evalID1, RevertedJobVersion: &zero},
			&structs.Deployment{ID: deployID1, Status: "failed", StatusDescription: "Deployment marked as failed - rolling back to job version 0"},
			"Deployment \"d3e4f5a6\" is failed: Deployment marked as failed - rolling back to job version 0\nEvaluation ID: " + evalID1 + "\n"},
		{[]string{"deployment", "pause", "d3e4f5a6"}, "/v1/deployment/pause/" + deployID1, new(true),
			&structs.DeploymentUpdateResponse{},
			&structs.Deployment{ID: deployID1, Status: "paused", StatusDescription: structs.DeploymentDescPaused},
			"Deployment \"d3e4f5a6\" is paused: Deployment is paused\n"},
		{[]string{"deployment", "resume", "-verbose", deployID1}, "/v1/deployment/pause/" + deployID1, new(false),
			&structs.DeploymentUpdateResponse{EvalID: evalID2},
			&structs.Deployment{ID: deployID1, Status: "running", StatusDescription: structs.DeploymentDescRunning},
			"Deployment \"" + deployID1 + "\" is running: Deployment is running\nEvaluation ID: " + evalID2 + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.args[1], func(t *testing.T) {
			f := newFakeAgent(t)
			f.json("GET /v1/deployments", 50, fixtureDeployments())
			f.json("PUT "+tt.path, 60, tt.reply)
			f.json("GET /v1/deployment/"+deployID1, 60, tt.after)
			res := runCLI(t, f.srv.URL, tt.args...)
			if res.code != 0 || res.stdout != tt.wantOut {
				t.Fatalf("got code %d, stdout %q, stderr %q; want stdout %q", res.code, res.stdout, res.stderr, tt.wantOut)
			}
			reqs := f.requests("PUT", tt.path)
			if len(reqs) != 1 {
				t.Fatalf("%d requests to %s, want 1", len(reqs), tt.path)
			}
			var body struct {
				DeploymentID string
				Pause        *bool
			}
			if err := json.NewDecoder(reqs[0].Body).Decode(&body); err != nil || body.DeploymentID != deployID1 {
				t.Fatalf("body: %+v, %v", body, err)
			}
			if (tt.pause == nil) != (body.Pause == nil) || (tt.pause != nil && *tt.pause != *body.Pause) {
				t.Fatalf("Pause = %v, want %v", body.Pause, tt.pause)
			}
		})
	}
}

func TestDeploymentErrors(t *testing.T) {
	f := newFakeAgent(t)
	f.json("GET /v1/deployments", 50, fixtureDeployments())
	f.handle("PUT /v1/deployment/fail/"+deployID2, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "deployment "+deployID2+" is failed; only a running, paused or blocked deployment can be failed", http.StatusBadRequest)
	})
	tests := []struct {
		args       []string
		wantStderr string
	}{
		{[]string{"deployment", "fail", "d3e4f5a7"}, `Error failing deployment "d3e4f5a7": deployment ` + deployID2 + " is failed; only a running, paused or blocked deployment can be failed"},
		{[]string{"deployment", "status", "d3e4f5a"}, `prefix "d3e4f5a" matches 2 deployments`},
		{[]string{"deployment", "pause", "ffff"}, `no deployment with ID or prefix "ffff"`},
		{[]string{"deployment", "resume"}, "expected one argument, the deployment ID"},
		{[]string{"deployment", "list", "x"}, "expected no arguments"},
		{[]string{"deployment"}, "Usage: skiff deployment <subcommand>"},
	}
	for _, tt := range tests {
		res := runCLI(t, f.srv.URL, tt.args...)
		if res.code != 1 || !strings.Contains(res.stderr, tt.wantStderr) || res.stdout != "" {
			t.Errorf("%q: got code %d, stdout %q, stderr:\n%s\nwant 1 and stderr containing %q", tt.args, res.code, res.stdout, res.stderr, tt.wantStderr)
		}
	}
}

func TestJobRevert(t *testing.T) {
	f := newFakeAgent(t)
	f.serveJob()
	f.json("PUT /v1/job/web/revert", 70, &structs.JobRegisterResponse{EvalID: evalID1, EvalCreateIndex: 70, JobModifyIndex: 70})
	res := runCLI(t, f.srv.URL, "job", "revert", "-detach", "-check-version=3", "web", "2")
	if res.code != 0 || res.stdout != "Evaluation ID: "+evalID1+"\n" || !strings.Contains(res.stderr, `Job "web" reverted to version 2, index 70`) {
		t.Fatalf("revert -detach: got code %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	reqs := f.requests("PUT", "/v1/job/web/revert")
	var body struct {
		JobID               string
		JobVersion          *uint64
		EnforcePriorVersion *uint64
	}
	if len(reqs) != 1 || json.NewDecoder(reqs[0].Body).Decode(&body) != nil || body.JobID != "web" ||
		body.JobVersion == nil || *body.JobVersion != 2 || body.EnforcePriorVersion == nil || *body.EnforcePriorVersion != 3 {
		t.Fatalf("revert request = %+v", body)
	}

	// Without -detach it follows the evaluation, as "job run" does.
	serveRegister(f, &structs.Evaluation{ID: evalID1, JobID: "web", Status: "complete", TriggeredBy: "job-register", ModifyIndex: 71})
	res = runCLI(t, f.srv.URL, "job", "revert", "web", "2")
	if res.code != 0 || !strings.Contains(res.stdout, `finished with status "complete"`) {
		t.Fatalf("revert: got code %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}

	bad := newFakeAgent(t)
	bad.serveJob()
	bad.handle("PUT /v1/job/web/revert", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `job "web" is already at version 3`, http.StatusBadRequest)
	})
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"job", "revert", "web", "3"}, `Error reverting job "web" to version 3: job "web" is already at version 3`},
		{[]string{"job", "revert", "web", "v2"}, `VERSION must be a job version, a number >= 0 (got "v2")`},
		{[]string{"job", "revert", "web"}, "expected two arguments"},
	} {
		res := runCLI(t, bad.srv.URL, tt.args...)
		if res.code != 1 || !strings.Contains(res.stderr, tt.want) || res.stdout != "" {
			t.Errorf("%q: got code %d, stdout %q, stderr:\n%s\nwant 1 and stderr containing %q", tt.args, res.code, res.stdout, res.stderr, tt.want)
		}
	}
}

func TestJobHistoryDiffsJSON(t *testing.T) {
	f := newFakeAgent(t)
	f.serveJob()
	res := runCLI(t, f.srv.URL, "job", "history", "-p", "-json", "web")
	var got struct {
		Versions []*structs.Job
		Diffs    []*structs.JobDiff
	}
	mustDecode(t, []byte(res.stdout), &got)
	if res.code != 0 || len(got.Versions) != 2 || len(got.Diffs) != 2 || got.Diffs[1] != nil ||
		got.Diffs[0] == nil || got.Diffs[0].Type != structs.DiffTypeEdited {
		t.Fatalf("history -p -json: code %d, %+v", res.code, got)
	}
}

// TestDeploymentPromote: "deployment promote" and "job promote" promote
// every group with canaries, or those -group names, and print the
// deployment's new status and the evaluation.
func TestDeploymentPromote(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantAll    bool
		wantGroups []string
		wantOut    string
	}{
		{"deployment, all groups", []string{"deployment", "promote", "d3e4f5a6"}, true, nil,
			"Deployment \"d3e4f5a6\" is running: Deployment is running\nEvaluation ID: " + evalID1 + "\n"},
		{"deployment, two groups", []string{"deployment", "promote", "-group", "api", "-group=cache", "-verbose", deployID1}, false, []string{"api", "cache"},
			"Deployment \"" + deployID1 + "\" is running: Deployment is running\nEvaluation ID: " + evalID1 + "\n"},
		{"job, all groups", []string{"job", "promote", "web"}, true, nil,
			"Deployment \"d3e4f5a6\" is running: Deployment is running\nEvaluation ID: " + evalID1 + "\n"},
		{"job, one group", []string{"job", "promote", "-group", "api", "web"}, false, []string{"api"},
			"Deployment \"d3e4f5a6\" is running: Deployment is running\nEvaluation ID: " + evalID1 + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAgent(t)
			f.serveJob()
			path := "/v1/deployment/promote/" + deployID1
			f.json("PUT "+path, 60, &structs.DeploymentUpdateResponse{EvalID: evalID1, EvalCreateIndex: 60, DeploymentModifyIndex: 60})
			res := runCLI(t, f.srv.URL, tt.args...)
			if res.code != 0 || res.stdout != tt.wantOut {
				t.Fatalf("got code %d, stdout %q, stderr %q; want stdout %q", res.code, res.stdout, res.stderr, tt.wantOut)
			}
			reqs := f.requests("PUT", path)
			if len(reqs) != 1 {
				t.Fatalf("%d requests to %s, want 1", len(reqs), path)
			}
			var body struct {
				DeploymentID string
				All          bool
				Groups       []string
			}
			if err := json.NewDecoder(reqs[0].Body).Decode(&body); err != nil || body.DeploymentID != deployID1 ||
				body.All != tt.wantAll || !slices.Equal(body.Groups, tt.wantGroups) {
				t.Fatalf("body: %+v, %v; want All %v, Groups %v", body, err, tt.wantAll, tt.wantGroups)
			}
		})
	}
}

func TestDeploymentPromoteErrors(t *testing.T) {
	const refused = "deployment " + deployID1 + " cannot be promoted: group api has 0 of 1 canaries healthy; promote once they all are"
	f := newFakeAgent(t)
	f.serveJob()
	f.handle("PUT /v1/deployment/promote/"+deployID1, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, refused, http.StatusBadRequest)
	})
	none := newFakeAgent(t)
	none.json("GET /v1/jobs", 50, []*structs.JobListStub{{ID: "batch", Name: "batch", Type: "batch"}})
	none.json("GET /v1/job/batch/deployment", 50, nil)
	tests := []struct {
		addr       string
		args       []string
		wantStderr string
	}{
		{f.srv.URL, []string{"deployment", "promote", "d3e4f5a6"}, `Error promoting deployment "d3e4f5a6": ` + refused},
		{f.srv.URL, []string{"job", "promote", "-group", "api", "web"}, `Error promoting deployment "d3e4f5a6": ` + refused},
		{f.srv.URL, []string{"deployment", "promote", "d3e4f5a"}, `prefix "d3e4f5a" matches 2 deployments`},
		{f.srv.URL, []string{"deployment", "promote"}, "expected one argument, the deployment ID"},
		{f.srv.URL, []string{"job", "promote", "web", "x"}, "expected one argument, the job ID"},
		{none.srv.URL, []string{"job", "promote", "batch"}, `Error promoting job "batch": it has no deployment to promote`},
	}
	for _, tt := range tests {
		res := runCLI(t, tt.addr, tt.args...)
		if res.code != 1 || !strings.Contains(res.stderr, tt.wantStderr) || res.stdout != "" {
			t.Errorf("%q: got code %d, stdout %q, stderr:\n%s\nwant 1 and stderr containing %q", tt.args, res.code, res.stdout, res.stderr, tt.wantStderr)
		}
	}
}

// TestDeploymentHealth: "deployment health" resolves the deployment and
// allocation prefixes and sends the verdict in Nomad's field names.
func TestDeploymentHealth(t *testing.T) {
	tests := []struct {
		args                   []string
		healthy, unhealthy     []string
		wantCode               int
		wantStdout, wantStderr string
	}{
		{[]string{"deployment", "health", "-healthy", "d3e4f5a6", "a1b2c3d4", allocID2}, []string{allocID1, allocID2}, nil, 0,
			"Deployment \"d3e4f5a6\" is running: Deployment is running\n", ""},
		{[]string{"deployment", "health", "-unhealthy", "d3e4f5a6", "a1b2c3d5"}, nil, []string{allocID2}, 0,
			"Deployment \"d3e4f5a6\" is running: Deployment is running\n", ""},
		{[]string{"deployment", "health", "d3e4f5a6", "a1b2c3d5"}, nil, nil, 1, "", "give exactly one of -healthy and -unhealthy"},
		{[]string{"deployment", "health", "-healthy", "d3e4f5a6"}, nil, nil, 1, "", "expected the deployment ID and at least one allocation ID"},
		{[]string{"deployment", "health", "-healthy", "d3e4f5a6", "ffff"}, nil, nil, 1, "", `no allocation with ID or prefix "ffff"`},
	}
	for _, tt := range tests {
		f := newFakeAgent(t)
		f.json("GET /v1/deployments", 50, fixtureDeployments())
		f.json("GET /v1/allocations", 50, fixtureAllocs())
		path := "/v1/deployment/allocation-health/" + deployID1
		f.json("PUT "+path, 60, &structs.DeploymentUpdateResponse{DeploymentModifyIndex: 60})
		f.json("GET /v1/deployment/"+deployID1, 60, &structs.Deployment{ID: deployID1, Status: "running", StatusDescription: structs.DeploymentDescRunning})
		res := runCLI(t, f.srv.URL, tt.args...)
		if res.code != tt.wantCode || res.stdout != tt.wantStdout || !strings.Contains(res.stderr, tt.wantStderr) {
			t.Errorf("%q: got code %d, stdout %q, stderr %q; want %d, %q, %q", tt.args, res.code, res.stdout, res.stderr, tt.wantCode, tt.wantStdout, tt.wantStderr)
			continue
		}
		reqs := f.requests("PUT", path)
		if tt.wantCode != 0 {
			if len(reqs) != 0 {
				t.Errorf("%q: %d requests sent, want none", tt.args, len(reqs))
			}
			continue
		}
		var body struct {
			DeploymentID                                 string
			HealthyAllocationIDs, UnhealthyAllocationIDs []string
		}
		if len(reqs) != 1 || json.NewDecoder(reqs[0].Body).Decode(&body) != nil || body.DeploymentID != deployID1 ||
			!slices.Equal(body.HealthyAllocationIDs, tt.healthy) || !slices.Equal(body.UnhealthyAllocationIDs, tt.unhealthy) {
			t.Errorf("%q: %d requests, body %+v; want healthy %v, unhealthy %v", tt.args, len(reqs), body, tt.healthy, tt.unhealthy)
		}
	}
}
