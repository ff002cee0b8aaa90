package command

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/jobspec"
	"github.com/skiffhq/skiff/structs"
)

// writeJobJSON writes a valid JSON job file and returns its path.
func writeJobJSON(t *testing.T) string {
	t.Helper()
	job := &structs.Job{ID: "web", TaskGroups: []*structs.TaskGroup{{Name: "api", Count: 2,
		Tasks: []*structs.Task{{Name: "server", Driver: "containerd", Config: map[string]any{"image": "nginx"}}}}}}
	buf, err := json.Marshal(map[string]any{"Job": job})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "web.json")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// serveRegister answers a register with evalID, then reads of the
// evaluation with evals in turn (the last one repeats).
func serveRegister(f *fakeAgent, evals ...*structs.Evaluation) {
	serveRegisterLater(f, "running", evals...)
}

// serveRegisterLater is serveRegister whose pending allocation turns to
// status later.
func serveRegisterLater(f *fakeAgent, later string, evals ...*structs.Evaluation) {
	f.json("PUT /v1/jobs", 12, &structs.JobRegisterResponse{EvalID: evalID1, EvalCreateIndex: 12, JobModifyIndex: 12})
	n := 0
	f.handle("GET /v1/evaluation/{id}", func(w http.ResponseWriter, r *http.Request) {
		ev := evals[min(n, len(evals)-1)]
		n++
		reply(w, ev.ModifyIndex, ev)
	})
	serveEvalAllocs(f, later)
}

// serveEvalAllocs serves the fixture allocations of the evaluation (one
// running, one pending), then, from the second read on, the pending one
// with status later.
func serveEvalAllocs(f *fakeAgent, later string) {
	reads := 0
	f.handle("GET /v1/evaluation/{id}/allocations", func(w http.ResponseWriter, r *http.Request) {
		allocs := fixtureAllocs()
		if reads > 0 {
			allocs[1].ClientStatus = later
			if later == "failed" {
				allocs[1].ClientDescription = "Failed tasks: server"
				allocs[1].TaskStates = map[string]*structs.TaskState{"server": {State: "dead", Failed: true,
					Events: []*structs.TaskEvent{{Type: "Driver Failure", Time: 5, Message: "pull 127.0.0.1:5000/nope: not found"}}}}
			}
		}
		reads++
		reply(w, uint64(14+reads), allocs)
	})
}

func TestJobRunExitCodes(t *testing.T) {
	pending := &structs.Evaluation{ID: evalID1, JobID: "web", Status: "pending", TriggeredBy: "job-register", ModifyIndex: 12}
	complete := &structs.Evaluation{ID: evalID1, JobID: "web", Status: "complete", TriggeredBy: "job-register", ModifyIndex: 13}
	failedPlacement := &structs.Evaluation{ID: evalID1, JobID: "web", Status: "complete", ModifyIndex: 13,
		BlockedEval:    evalID2,
		FailedTGAllocs: map[string]*structs.AllocMetric{"api": {NodesEvaluated: 3, NodesExhausted: 3, DimensionExhausted: map[string]int{"cpu": 3}}},
	}
	blocked := &structs.Evaluation{ID: evalID1, JobID: "web", Status: "blocked", ModifyIndex: 13}
	schedFailed := &structs.Evaluation{ID: evalID1, JobID: "web", Status: "failed", StatusDescription: "maximum attempts reached", ModifyIndex: 13}

	tests := []struct {
		name       string
		evals      []*structs.Evaluation // nil: no agent listening
		later      string                // the pending allocation's status on the next read; "" running
		args       []string
		parseErr   error // from the HCL parser
		wantCode   int
		wantStdout []string
		wantStderr []string
	}{
		{name: "placed", evals: []*structs.Evaluation{pending, complete}, wantCode: 0,
			wantStdout: []string{`Evaluation "5f2c1a3b" finished with status "complete"`, `Allocation "a1b2c3d4" created: node "9e8d7c6b", group "api"`,
				`Allocation "a1b2c3d5" running`, "All allocations are running"},
			wantStderr: []string{`==> Job "web" registered: evaluation ID 5f2c1a3b, index 12`, `Evaluation status changed: "pending" -> "complete"`}},
		{name: "alloc failed", evals: []*structs.Evaluation{complete}, later: "failed", wantCode: 2,
			wantStdout: []string{`Allocation "a1b2c3d5" failed: Failed tasks: server (task "server": Driver Failure: pull 127.0.0.1:5000/nope: not found)`,
				"1 allocation failed"}},
		{name: "placed, not yet running", evals: []*structs.Evaluation{complete}, later: "pending", wantCode: 0,
			wantStderr: []string{"Allocations placed but not all running after"}},
		{name: "placement failure", evals: []*structs.Evaluation{failedPlacement}, wantCode: 2,
			wantStdout: []string{`Task Group "api" (failed to place 1 allocation)`, `Resources exhausted on 3 nodes`,
				`Dimension "cpu" exhausted on 3 nodes`, `Evaluation "5f2c1a3c" waiting for additional capacity`}},
		{name: "blocked", evals: []*structs.Evaluation{blocked}, wantCode: 2},
		{name: "scheduler failed", evals: []*structs.Evaluation{schedFailed}, wantCode: 1,
			wantStderr: []string{`finished with status "failed": maximum attempts reached`}},
		{name: "still pending", evals: []*structs.Evaluation{pending}, args: []string{"-monitor-timeout=1ms"}, wantCode: 1,
			wantStderr: []string{`still "pending" after 1ms`, "skiff eval status " + evalID1}},
		{name: "detach", evals: []*structs.Evaluation{pending}, args: []string{"-detach"}, wantCode: 0,
			wantStdout: []string{"Evaluation ID: " + evalID1}},
		{name: "bad file", evals: []*structs.Evaluation{complete}, parseErr: &jobspec.Error{Problems: []jobspec.Problem{{Filename: "web.hcl", Line: 3, Column: 5, Msg: `unknown block "grup"`}}},
			wantCode: 1, wantStderr: []string{"job file", "web.hcl:3:5: unknown block"}},
		{name: "agent down", wantCode: 1,
			wantStderr: []string{`cannot reach the Skiff agent at http://127.0.0.1:`, `(connection refused); is "skiff agent" running?`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			restore := parseJobFile
			t.Cleanup(func() { parseJobFile = restore })
			var gotEnv []string
			parseJobFile = func(path string, vars, varFiles, environ []string) (*structs.Job, error) {
				gotEnv = environ
				if tt.parseErr != nil {
					return nil, tt.parseErr
				}
				return fixtureJob(), nil
			}
			addr := deadAddress(t)
			if tt.evals != nil {
				f := newFakeAgent(t)
				later := cmp.Or(tt.later, "running")
				serveRegisterLater(f, later, tt.evals...)
				if later == "pending" {
					restore := allocWait
					allocWait = 300 * time.Millisecond
					t.Cleanup(func() { allocWait = restore })
				}
				addr = f.srv.URL
			}
			args := append([]string{"job", "run"}, tt.args...)
			res := runCLIEnv(t, []string{"SKIFF_ADDR=" + addr, "SKIFF_VAR_image=nginx"}, append(args, "web.hcl")...)
			if res.code != tt.wantCode {
				t.Errorf("exit code: got %d, want %d\nstdout:\n%s\nstderr:\n%s", res.code, tt.wantCode, res.stdout, res.stderr)
			}
			for _, s := range tt.wantStdout {
				if !strings.Contains(res.stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, res.stdout)
				}
			}
			for _, s := range tt.wantStderr {
				if !strings.Contains(res.stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, res.stderr)
				}
			}
			if !slices.Contains(gotEnv, "SKIFF_VAR_image=nginx") {
				t.Errorf("parser did not get the environment: %q", gotEnv)
			}
		})
	}
}

// TestJobRunBlockingQuery checks that the monitor waits on the evaluation
// with a blocking query at the index it last saw, and registers the job
// the JSON file holds with -check-index.
func TestJobRunBlockingQuery(t *testing.T) {
	f := newFakeAgent(t)
	serveRegister(f,
		&structs.Evaluation{ID: evalID1, Status: "pending", ModifyIndex: 12},
		&structs.Evaluation{ID: evalID1, Status: "complete", ModifyIndex: 13})
	res := runCLI(t, f.srv.URL, "job", "run", "-json", "-check-index=7", writeJobJSON(t))
	if res.code != 0 {
		t.Fatalf("exit code %d, stderr:\n%s", res.code, res.stderr)
	}
	reads := f.requests("GET", "/v1/evaluation/"+evalID1)
	if len(reads) != 2 {
		t.Fatalf("got %d reads of the evaluation, want 2", len(reads))
	}
	if q := reads[0].URL.Query(); q.Has("index") {
		t.Errorf("first read should not block, got %s", reads[0].URL.RawQuery)
	}
	if q := reads[1].URL.Query(); q.Get("index") != "12" || q.Get("wait") == "" {
		t.Errorf("second read: got %s, want index=12 and a wait", reads[1].URL.RawQuery)
	}

	regs := f.requests("PUT", "/v1/jobs")
	if len(regs) != 1 {
		t.Fatalf("got %d registers, want 1", len(regs))
	}
	var body struct {
		Job            *structs.Job
		EnforceIndex   bool
		JobModifyIndex uint64
	}
	if err := json.NewDecoder(regs[0].Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if body.Job == nil || body.Job.ID != "web" || body.Job.Region != "global" || !body.EnforceIndex || body.JobModifyIndex != 7 {
		t.Errorf("register body: got %+v", body)
	}
}

func TestJobRunUsage(t *testing.T) {
	tests := [][]string{
		{"job", "run"},
		{"job", "run", "a.hcl", "b.hcl"},
		{"job", "run", "-check-index=x", "a.hcl"},
		{"job", "run", "-no-such-flag", "a.hcl"},
	}
	for _, args := range tests {
		res := runCLI(t, deadAddress(t), args...)
		if res.code != 1 || !strings.Contains(res.stderr, "Usage: skiff job run") || res.stdout != "" {
			t.Errorf("%q: got code %d, stdout %q, stderr:\n%s", args, res.code, res.stdout, res.stderr)
		}
	}
}

func TestJobRunInvalidJSONJob(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"Job": {"ID": "web", "Priority": 500}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	res := runCLI(t, deadAddress(t), "job", "run", "-json", bad)
	if res.code != 1 || !strings.Contains(res.stderr, "priority must be between 1 and 100") ||
		!strings.Contains(res.stderr, "job has no groups") {
		t.Errorf("got code %d, stderr:\n%s", res.code, res.stderr)
	}
}

func TestJobValidate(t *testing.T) {
	restore := parseJobFile
	t.Cleanup(func() { parseJobFile = restore })
	parseJobFile = func(path string, vars, varFiles, environ []string) (*structs.Job, error) {
		if strings.Contains(path, "bad") {
			return nil, &jobspec.Error{Problems: []jobspec.Problem{
				{Filename: "bad.hcl", Line: 3, Column: 5, Msg: `group "api": count must be >= 0 (got -1)`},
				{Filename: "bad.hcl", Line: 9, Column: 1, Msg: `unknown block "grup"`},
			}}
		}
		if len(vars) != 1 || vars[0] != "image=nginx" {
			return nil, errors.New("vars not passed")
		}
		return fixtureJob(), nil
	}
	res := runCLI(t, deadAddress(t), "job", "validate", "-var", "image=nginx", "good.hcl")
	if res.code != 0 || res.stdout != "Job validation successful\n" {
		t.Errorf("valid: got %d, %q, %q", res.code, res.stdout, res.stderr)
	}
	res = runCLI(t, deadAddress(t), "job", "validate", "bad.hcl")
	if res.code != 1 || !strings.Contains(res.stderr, "  bad.hcl:3:5: group") || !strings.Contains(res.stderr, "  bad.hcl:9:1: unknown") {
		t.Errorf("invalid: got %d, stderr:\n%s", res.code, res.stderr)
	}
}

func TestJobRunUnreadableFile(t *testing.T) {
	var out, errb strings.Builder
	code := RunWith([]string{"job", "run", "-detach", filepath.Join(t.TempDir(), "missing.hcl")}, &out, &errb, nil)
	if code != 1 || !strings.Contains(errb.String(), "read job file") || strings.Contains(errb.String(), "is invalid") {
		t.Fatalf("exit %d, stderr %q: want 1 and a read error, not \"is invalid\"", code, errb.String())
	}
}

// TestJobRunFollowsDeployment: for a service job with an update block,
// job run follows the new version's deployment to its end, printing its
// progress as plain lines when piped: successful exits 0, failed (rolled
// back) exits 2.
func TestJobRunFollowsDeployment(t *testing.T) {
	for _, tc := range []struct {
		end      string
		desc     string
		wantCode int
		want     string
	}{
		{structs.DeploymentStatusSuccessful, structs.DeploymentDescSuccessful, 0, `Deployment "d1d2d3d4" successful`},
		{structs.DeploymentStatusFailed, structs.DeploymentDescFailedAllocations + " - rolling back to job version 1", 2,
			`Deployment "d1d2d3d4" failed: Failed due to unhealthy allocations - rolling back to job version 1`},
	} {
		t.Run(tc.end, func(t *testing.T) {
			restore := parseJobFile
			t.Cleanup(func() { parseJobFile = restore })
			parseJobFile = func(string, []string, []string, []string) (*structs.Job, error) {
				j := fixtureJob()
				j.TaskGroups[0].Update = &structs.UpdateStrategy{MaxParallel: 1}
				return j, nil
			}
			f := newFakeAgent(t)
			complete := &structs.Evaluation{ID: evalID1, JobID: "web", Status: "complete", TriggeredBy: "job-register", ModifyIndex: 13}
			serveRegister(f, complete)
			dep := func(status string, healthy int) *structs.Deployment {
				return &structs.Deployment{ID: "d1d2d3d4-0000-0000-0000-000000000000", JobID: "web", JobVersion: 2, JobModifyIndex: 12,
					Status: status, StatusDescription: structs.DeploymentDescRunning,
					TaskGroups: map[string]*structs.DeploymentState{"api": {DesiredTotal: 2, PlacedAllocs: 2, HealthyAllocs: healthy}}}
			}
			f.json("GET /v1/job/{id}/deployment", 14, dep(structs.DeploymentStatusRunning, 0))
			reads := 0
			f.handle("GET /v1/deployment/{id}", func(w http.ResponseWriter, r *http.Request) {
				reads++
				d := dep(structs.DeploymentStatusRunning, 1)
				if reads > 1 {
					d = dep(tc.end, 2)
					d.StatusDescription = tc.desc
				}
				reply(w, uint64(20+reads), d)
			})
			res := runCLIEnv(t, []string{"SKIFF_ADDR=" + f.srv.URL}, "job", "run", "web.hcl")
			if res.code != tc.wantCode {
				t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", res.code, tc.wantCode, res.stdout, res.stderr)
			}
			for _, s := range []string{`Monitoring deployment "d1d2d3d4"`, "running: api 0/2 healthy, 2 placed, 0 unhealthy",
				"running: api 1/2 healthy", tc.want} {
				if !strings.Contains(res.stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, res.stdout)
				}
			}
			if strings.Contains(res.stdout, "\033[") {
				t.Errorf("piped output has terminal escapes:\n%q", res.stdout)
			}

			// On a terminal the view (status line, table header, one
			// group: 3 lines) is redrawn in place at each change.
			reads = 0
			var out, errb bytes.Buffer
			code := run(context.Background(), []string{"job", "run", "web.hcl"}, options{stdout: &out, stderr: &errb,
				env: []string{"SKIFF_ADDR=" + f.srv.URL}, now: func() time.Time { return fixedNow },
				terminal: func(io.Writer) bool { return true }})
			if code != tc.wantCode {
				t.Fatalf("terminal: exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, out.String(), errb.String())
			}
			views := strings.Split(out.String(), "\033[3A\033[J")
			if len(views) != 3 {
				t.Fatalf("terminal: %d views (redraws + 1), want 3:\n%q", len(views), out.String())
			}
			for i, want := range []string{"running: Deployment is running\n", "running: Deployment is running\n", tc.end + ": " + tc.desc} {
				if !strings.Contains(views[i], want) || !strings.Contains(views[i], "Task Group") {
					t.Errorf("terminal: view %d lacks %q or the group table:\n%s", i, want, views[i])
				}
			}
			if strings.Contains(out.String(), "api 0/2 healthy") {
				t.Errorf("terminal output has the piped lines:\n%s", out.String())
			}
		})
	}
}
