package command

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/skiffhq/skiff/structs"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// fixedNow is the clock of every test, so relative times are stable.
var fixedNow = time.Date(2026, 11, 22, 10, 4, 5, 0, time.UTC)

// fakeAgent is an HTTP API that answers from fixed routes and records the
// requests it saw.
type fakeAgent struct {
	t   *testing.T
	mux *http.ServeMux
	srv *httptest.Server

	mu   sync.Mutex
	reqs []*http.Request // guarded by mu
}

func newFakeAgent(t *testing.T) *fakeAgent {
	t.Helper()
	f := &fakeAgent{t: t, mux: http.NewServeMux()}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		saved := r.Clone(context.Background())
		saved.Body = io.NopCloser(bytes.NewReader(body))
		f.mu.Lock()
		f.reqs = append(f.reqs, saved)
		f.mu.Unlock()
		f.mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// json answers pattern ("GET /v1/jobs") with v and an X-Nomad-Index.
func (f *fakeAgent) json(pattern string, index uint64, v any) {
	f.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) { reply(w, index, v) })
}

func (f *fakeAgent) handle(pattern string, h http.HandlerFunc) { f.mux.HandleFunc(pattern, h) }

// requests returns the requests seen for method and path.
func (f *fakeAgent) requests(method, path string) []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*http.Request
	for _, r := range f.reqs {
		if r.Method == method && r.URL.Path == path {
			out = append(out, r)
		}
	}
	return out
}

func reply(w http.ResponseWriter, index uint64, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Nomad-Index", strconv.FormatUint(index, 10))
	w.Header().Set("X-Nomad-KnownLeader", "true")
	_ = json.NewEncoder(w).Encode(v)
}

// result is what one run of the CLI printed and returned.
type result struct {
	stdout, stderr string
	code           int
}

// runCLI runs the CLI against addr with the test clock.
func runCLI(t *testing.T, addr string, args ...string) result {
	t.Helper()
	return runCLIEnv(t, []string{"SKIFF_ADDR=" + addr}, args...)
}

func runCLIEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, options{stdout: &out, stderr: &errb, env: env, now: func() time.Time { return fixedNow }})
	return result{out.String(), errb.String(), code}
}

// deadAddress returns the address of an agent that is not listening.
func deadAddress(t *testing.T) string {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close()
	return addr
}

// checkGolden compares got with testdata/name, or rewrites it with -update.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (rerun with -update if intended)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// Fixtures. IDs are UUIDs so that prefixes and short IDs are exercised.
const (
	evalID1   = "5f2c1a3b-8d0e-4c6a-9b1f-0a1b2c3d4e5f"
	evalID2   = "5f2c1a3c-1111-4222-8333-444455556666"
	evalID3   = "7b3e9d10-2222-4333-8444-555566667777"
	allocID1  = "a1b2c3d4-0000-4000-8000-000000000001"
	allocID2  = "a1b2c3d5-0000-4000-8000-000000000002"
	nodeID1   = "9e8d7c6b-0000-4000-8000-00000000000a"
	deployID1 = "d3e4f5a6-0000-4000-8000-000000000001"
	deployID2 = "d3e4f5a7-0000-4000-8000-000000000002"
)

func nanos(t time.Time) int64 { return t.UnixNano() }

func fixtureJob() *structs.Job {
	job := &structs.Job{
		ID: "web", Name: "web", Datacenters: []string{"dc1"}, Status: structs.JobStatusRunning,
		Version: 3, SubmitTime: nanos(fixedNow.Add(-2 * time.Hour)), JobModifyIndex: 40,
		TaskGroups: []*structs.TaskGroup{
			{Name: "api", Count: 2, Tasks: []*structs.Task{{Name: "server", Driver: "containerd", Config: map[string]any{"image": "nginx"}}}},
			{Name: "cache", Count: 1, Tasks: []*structs.Task{{Name: "redis", Driver: "containerd", Config: map[string]any{"image": "redis"}}}},
		},
	}
	job.Canonicalize()
	return job
}

func fixtureEvals() []*structs.Evaluation {
	return []*structs.Evaluation{
		{ID: evalID1, Namespace: "default", JobID: "web", Priority: 50, Type: "service", TriggeredBy: structs.EvalTriggerJobRegister,
			Status: structs.EvalStatusComplete, CreateIndex: 40, CreateTime: nanos(fixedNow.Add(-2 * time.Hour)),
			ModifyTime: nanos(fixedNow.Add(-2 * time.Hour))},
		{ID: evalID2, Namespace: "default", JobID: "web", Priority: 50, Type: "service", TriggeredBy: structs.EvalTriggerNodeUpdate,
			Status: structs.EvalStatusComplete, CreateIndex: 45, CreateTime: nanos(fixedNow.Add(-150 * time.Second)),
			ModifyTime: nanos(fixedNow.Add(-140 * time.Second)),
			FailedTGAllocs: map[string]*structs.AllocMetric{"cache": {
				NodesEvaluated: 2, NodesExhausted: 1, DimensionExhausted: map[string]int{"memory": 1},
				ConstraintFiltered: map[string]int{"${attr.kernel.name} = linux": 1},
			}},
			QueuedAllocations: map[string]int{"cache": 1}, BlockedEval: evalID3},
		// The scheduler writes a blocked evaluation with the one that
		// failed to place: it is the newest, with no failures of its own.
		{ID: evalID3, Namespace: "default", JobID: "web", Priority: 50, Type: "service", TriggeredBy: structs.EvalTriggerQueuedAllocs,
			Status: structs.EvalStatusBlocked, CreateIndex: 46, PreviousEval: evalID2, CreateTime: nanos(fixedNow.Add(-140 * time.Second)),
			ModifyTime: nanos(fixedNow.Add(-140 * time.Second))},
	}
}

func fixtureAllocs() []*structs.AllocListStub {
	return []*structs.AllocListStub{
		{ID: allocID1, EvalID: evalID1, Name: "web.api[0]", NodeID: nodeID1, JobID: "web", JobVersion: 3, TaskGroup: "api",
			DesiredStatus: "run", ClientStatus: "running", CreateIndex: 41,
			CreateTime: nanos(fixedNow.Add(-2 * time.Hour)), ModifyTime: nanos(fixedNow.Add(-90 * time.Minute))},
		{ID: allocID2, EvalID: evalID1, Name: "web.api[1]", NodeID: nodeID1, JobID: "web", JobVersion: 3, TaskGroup: "api",
			DesiredStatus: "run", ClientStatus: "pending", CreateIndex: 42,
			CreateTime: nanos(fixedNow.Add(-45 * time.Second)), ModifyTime: nanos(fixedNow.Add(-5 * time.Second))},
	}
}

// fixtureDeployments are the deployments of "web", newest first: version
// 3 rolling out (with a canary), version 2 failed.
func fixtureDeployments() []*structs.Deployment {
	return []*structs.Deployment{
		{ID: deployID1, Namespace: "default", JobID: "web", JobVersion: 3, Status: structs.DeploymentStatusRunning,
			StatusDescription: structs.DeploymentDescRunning, CreateIndex: 41, ModifyIndex: 44,
			TaskGroups: map[string]*structs.DeploymentState{
				"api": {AutoRevert: true, DesiredTotal: 2, PlacedAllocs: 2, HealthyAllocs: 1, DesiredCanaries: 1,
					PlacedCanaries: []string{allocID2}, RequireProgressBy: fixedNow.Add(10 * time.Minute)},
				"cache": {DesiredTotal: 1},
			}},
		{ID: deployID2, Namespace: "default", JobID: "web", JobVersion: 2, Status: structs.DeploymentStatusFailed,
			StatusDescription: structs.DeploymentDescFailedAllocations, CreateIndex: 30, ModifyIndex: 35,
			TaskGroups: map[string]*structs.DeploymentState{
				"api": {DesiredTotal: 2, PlacedAllocs: 2, HealthyAllocs: 1, UnhealthyAllocs: 1},
			}},
	}
}

// serveJob registers the read routes of the fixture job "web".
func (f *fakeAgent) serveJob() {
	job := fixtureJob()
	f.json("GET /v1/jobs", 50, []*structs.JobListStub{
		job.Stub(nil),
		{ID: "batch-report", Name: "batch-report", Type: "batch", Priority: 70, Status: "dead", Stop: true,
			Periodic: true, SubmitTime: nanos(fixedNow.Add(-48 * time.Hour))},
		{ID: "web-canary", Name: "web-canary", Type: "service", Priority: 50, Status: "pending",
			SubmitTime: nanos(fixedNow.Add(-time.Minute))},
	})
	f.json("GET /v1/job/web", 50, job)
	f.json("GET /v1/job/web/summary", 50, &structs.JobSummary{JobID: "web", Namespace: "default",
		Summary: map[string]structs.TaskGroupSummary{"api": {Running: 1, Starting: 1}, "cache": {Queued: 1}}})
	f.json("GET /v1/job/web/evaluations", 50, fixtureEvals())
	f.json("GET /v1/job/web/allocations", 50, fixtureAllocs())
	v2 := fixtureJob()
	v2.Version, v2.Stable, v2.SubmitTime = 2, true, nanos(fixedNow.Add(-24*time.Hour))
	v2.TaskGroups[0].Count = 1
	v2.TaskGroups[0].Tasks[0].Config["image"] = "nginx:1.25"
	deps := fixtureDeployments()
	f.json("GET /v1/job/web/deployment", 50, deps[0])
	f.json("GET /v1/job/web/deployments", 50, deps)
	f.json("GET /v1/deployments", 50, deps)
	for _, d := range deps {
		f.json("GET /v1/deployment/"+d.ID, d.ModifyIndex, d)
	}
	f.json("GET /v1/job/web/versions", 50, map[string]any{"Versions": []*structs.Job{job, v2}})
}
