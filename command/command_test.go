package command

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/structs"
)

func TestGolden(t *testing.T) {
	f := newFakeAgent(t)
	f.serveJob()
	f.json("GET /v1/agent/members", 0, &structs.ServerMembersResponse{ServerName: "s1.global", ServerRegion: "global", ServerDC: "dc1",
		Members: []*structs.ServerMember{
			{Name: "s2.global", Addr: "10.0.0.2", Port: 4648, Status: "alive", Tags: map[string]string{"region": "global", "dc": "dc1", "rpc_addr": "10.0.0.2:4647"}},
			{Name: "s1.global", Addr: "10.0.0.1", Port: 4648, Status: "alive", Tags: map[string]string{"region": "global", "dc": "dc1", "rpc_addr": "10.0.0.1:4647"}},
			{Name: "s3.global", Addr: "10.0.0.3", Port: 4648, Status: "failed", Tags: map[string]string{"region": "global", "dc": "dc2", "rpc_addr": "10.0.0.3:4647"}},
		}})
	f.json("GET /v1/status/leader", 0, "10.0.0.2:4647")
	f.json("GET /v1/operator/raft/configuration", 0, &structs.RaftConfigurationResponse{Index: 9, Servers: []*structs.RaftServer{
		{ID: "id-1", Node: "s1.global", Address: "10.0.0.1:4647", Voter: true, RaftProtocol: "3"},
		{ID: "id-2", Node: "s2.global", Address: "10.0.0.2:4647", Leader: true, Voter: true, RaftProtocol: "3"},
	}})
	f.json("GET /v1/evaluations", 0, fixtureEvals())
	f.json("GET /v1/evaluation/"+evalID2, 46, fixtureEvals()[1])
	f.json("GET /v1/evaluation/"+evalID2+"/allocations", 46, []*structs.AllocListStub{})
	f.json("GET /v1/nodes", 0, []*structs.NodeListStub{})

	tests := []struct {
		golden string
		args   []string
	}{
		{"job_status_list.golden", []string{"job", "status"}},
		{"job_status_web.golden", []string{"job", "status", "web"}},
		{"job_history.golden", []string{"job", "history", "web"}},
		{"job_history_p.golden", []string{"job", "history", "-p", "web"}},
		{"deployment_list.golden", []string{"deployment", "list"}},
		{"deployment_status.golden", []string{"deployment", "status", "d3e4f5a6"}},
		{"server_members.golden", []string{"server", "members"}},
		{"raft_list_peers.golden", []string{"operator", "raft", "list-peers"}},
		{"eval_status.golden", []string{"eval", "status", "5f2c1a3c"}},
		{"status.golden", []string{"status"}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			res := runCLI(t, f.srv.URL, tt.args...)
			if res.code != 0 {
				t.Fatalf("exit code %d, stderr:\n%s", res.code, res.stderr)
			}
			checkGolden(t, tt.golden, strings.ReplaceAll(res.stdout, f.srv.URL, "http://127.0.0.1:4646"))
		})
	}
}

func TestJSONOutputs(t *testing.T) {
	f := newFakeAgent(t)
	f.serveJob()
	tests := []struct {
		args  []string
		check func(t *testing.T, out []byte)
	}{
		{[]string{"job", "status", "-json"}, func(t *testing.T, out []byte) {
			var got []*structs.JobListStub
			mustDecode(t, out, &got)
			if len(got) != 3 || got[0].ID != "batch-report" {
				t.Errorf("got %d jobs, first %+v", len(got), got[0])
			}
		}},
		{[]string{"job", "status", "--json", "web"}, func(t *testing.T, out []byte) {
			var got jobStatus
			mustDecode(t, out, &got)
			if got.Job.ID != "web" || len(got.Allocations) != 2 || len(got.Evaluations) != len(fixtureEvals()) || got.Summary == nil {
				t.Errorf("got %+v", got)
			}
		}},
		{[]string{"job", "inspect", "web"}, func(t *testing.T, out []byte) {
			var got struct{ Job *structs.Job }
			mustDecode(t, out, &got)
			if got.Job == nil || got.Job.ID != "web" || got.Job.Version != 3 {
				t.Errorf("got %+v", got.Job)
			}
		}},
		{[]string{"job", "inspect", "-version=2", "web"}, func(t *testing.T, out []byte) {
			var got struct{ Job *structs.Job }
			mustDecode(t, out, &got)
			if got.Job == nil || got.Job.Version != 2 {
				t.Errorf("got %+v", got.Job)
			}
		}},
	}
	for _, tt := range tests {
		res := runCLI(t, f.srv.URL, tt.args...)
		if res.code != 0 {
			t.Errorf("%q: exit code %d, stderr:\n%s", tt.args, res.code, res.stderr)
			continue
		}
		tt.check(t, []byte(res.stdout))
	}
}

func mustDecode(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
}

func TestErrors(t *testing.T) {
	f := newFakeAgent(t)
	f.serveJob()
	f.json("GET /v1/evaluations", 0, fixtureEvals())
	f.handle("GET /v1/job/ghost", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `job "ghost" not found`, http.StatusNotFound)
	})
	tests := []struct {
		args       []string
		wantStderr string
	}{
		{[]string{"job", "status", "nope"}, `Error looking up job "nope": no job with ID or prefix "nope"`},
		{[]string{"job", "status", "we"}, `prefix "we" matches 2 jobs: web, web-canary`},
		{[]string{"eval", "status", "5f2c1a3"}, `matches 2 evaluations: ` + evalID1 + ", " + evalID2},
		{[]string{"job", "frobnicate"}, "Usage: skiff job <subcommand>"},
		{[]string{"frobnicate"}, "Usage: skiff [--version]"},
		{[]string{}, "Usage: skiff [--version]"},
		{[]string{"job", "status", "-no-such-flag"}, "flag provided but not defined: -no-such-flag"},
		{[]string{"job", "status", "a", "b"}, "expected at most one argument"},
		{[]string{"agent", "-dev"}, "agent not built in"},
	}
	for _, tt := range tests {
		res := runCLI(t, f.srv.URL, tt.args...)
		if res.code != 1 || !strings.Contains(res.stderr, tt.wantStderr) {
			t.Errorf("%q: got code %d, want 1 and stderr containing %q; stderr:\n%s", tt.args, res.code, tt.wantStderr, res.stderr)
		}
		if res.stdout != "" {
			t.Errorf("%q: stdout should be empty, got %q", tt.args, res.stdout)
		}
	}
}

func TestAgentDelegates(t *testing.T) {
	t.Cleanup(func() { RunAgent = nil })
	var got []string
	RunAgent = func(args []string) int { got = args; return 3 }
	res := runCLI(t, deadAddress(t), "agent", "-dev", "-bind=127.0.0.1")
	if res.code != 3 || strings.Join(got, " ") != "-dev -bind=127.0.0.1" {
		t.Errorf("got code %d, args %q", res.code, got)
	}
}

func TestFlagsOverrideEnv(t *testing.T) {
	f := newFakeAgent(t)
	f.handle("GET /v1/jobs", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Nomad-Token") != "flag-token" || r.URL.Query().Get("namespace") != "flag-ns" ||
			r.URL.Query().Get("region") != "env-region" {
			http.Error(w, "wrong token, namespace or region: "+r.URL.RawQuery, http.StatusForbidden)
			return
		}
		reply(w, 1, []any{})
	})
	env := []string{"SKIFF_ADDR=" + deadAddress(t), "SKIFF_TOKEN=env-token", "SKIFF_NAMESPACE=env-ns", "SKIFF_REGION=env-region"}
	res := runCLIEnv(t, env, "job", "status", "-address", f.srv.URL, "--token=flag-token", "-namespace=flag-ns")
	if res.code != 0 {
		t.Errorf("got code %d, stderr:\n%s", res.code, res.stderr)
	}
	res = runCLIEnv(t, env, "job", "status", "-address", f.srv.URL)
	if res.code != 1 || !strings.Contains(res.stderr, "check the token") {
		t.Errorf("env token: got code %d, stderr:\n%s", res.code, res.stderr)
	}
}

func TestRunWithPublic(t *testing.T) {
	var out, errb bytes.Buffer
	if code := RunWith([]string{"version"}, &out, &errb, nil); code != 0 || !strings.HasPrefix(out.String(), "Skiff v") {
		t.Errorf("got %d, %q, %q", code, out.String(), errb.String())
	}
}

func TestJobStop(t *testing.T) {
	f := newFakeAgent(t)
	f.serveJob()
	f.json("DELETE /v1/job/web-canary", 60, &structs.JobDeregisterResponse{EvalID: evalID2})
	f.json("DELETE /v1/job/web", 61, &structs.JobDeregisterResponse{EvalID: evalID2})
	f.json("GET /v1/evaluation/{id}", 62, &structs.Evaluation{ID: evalID2, Status: "complete", TriggeredBy: "job-deregister"})

	res := runCLI(t, f.srv.URL, "job", "stop", "web-c")
	if res.code != 1 || !strings.Contains(res.stderr, "-yes") || len(f.requests("DELETE", "/v1/job/web-canary")) != 0 {
		t.Errorf("prefix without -yes: got code %d, stderr:\n%s", res.code, res.stderr)
	}
	res = runCLI(t, f.srv.URL, "job", "stop", "-yes", "-purge", "-detach", "web-c")
	dels := f.requests("DELETE", "/v1/job/web-canary")
	if res.code != 0 || res.stdout != "Evaluation ID: "+evalID2+"\n" || len(dels) != 1 || dels[0].URL.Query().Get("purge") != "true" {
		t.Errorf("detach: got code %d, stdout %q, stderr:\n%s", res.code, res.stdout, res.stderr)
	}
	res = runCLI(t, f.srv.URL, "job", "stop", "web")
	if res.code != 0 || !strings.Contains(res.stdout, `finished with status "complete"`) {
		t.Errorf("monitor: got code %d, stdout %q, stderr:\n%s", res.code, res.stdout, res.stderr)
	}
}

func TestJobPlanExitCodes(t *testing.T) {
	tests := []struct {
		name    string
		updates map[string]*api.DesiredUpdates
		status  int
		want    int
	}{
		{"no change", map[string]*api.DesiredUpdates{"api": {Ignore: 2}}, 200, 0},
		{"changes", map[string]*api.DesiredUpdates{"api": {Place: 1, InPlaceUpdate: 1}}, 200, 1},
		{"error", nil, 500, 255},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAgent(t)
			f.handle("PUT /v1/job/web/plan", func(w http.ResponseWriter, r *http.Request) {
				if tt.status != 200 {
					http.Error(w, "no scheduler", tt.status)
					return
				}
				reply(w, 5, &api.PlanResponse{JobModifyIndex: 40, Annotations: &api.PlanAnnotations{DesiredTGUpdates: tt.updates}})
			})
			res := runCLI(t, f.srv.URL, "job", "plan", "-json", writeJobJSON(t))
			if res.code != tt.want {
				t.Errorf("got code %d, want %d; stdout:\n%s\nstderr:\n%s", res.code, tt.want, res.stdout, res.stderr)
			}
			if tt.want != 255 && !strings.Contains(res.stdout, "Job Modify Index: 40") {
				t.Errorf("stdout lacks the modify index:\n%s", res.stdout)
			}
		})
	}
	if res := runCLI(t, deadAddress(t), "job", "plan"); res.code != 255 {
		t.Errorf("usage: got code %d, want 255", res.code)
	}
}

func TestSnapshotSave(t *testing.T) {
	snap := bytes.Repeat([]byte("state"), 4096)
	f := newFakeAgent(t)
	f.handle("GET /v1/operator/snapshot", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Nomad-Index", "77")
		_, _ = w.Write(snap)
	})
	var restored []byte
	f.handle("PUT /v1/operator/snapshot", func(w http.ResponseWriter, r *http.Request) {
		buf := new(bytes.Buffer)
		_, _ = buf.ReadFrom(r.Body)
		restored = buf.Bytes()
		w.Header().Set("X-Nomad-Index", "78")
	})
	dir := t.TempDir()
	path := filepath.Join(dir, "backup.snap")
	res := runCLI(t, f.srv.URL, "operator", "snapshot", "save", path)
	if res.code != 0 || !strings.Contains(res.stdout, "20480 bytes, index 77") {
		t.Fatalf("save: got code %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, snap) {
		t.Errorf("saved file: %d bytes, err %v", len(got), err)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}
	res = runCLI(t, f.srv.URL, "operator", "snapshot", "restore", path)
	if res.code != 0 || !bytes.Equal(restored, snap) {
		t.Errorf("restore: got code %d (%d bytes), stderr %q", res.code, len(restored), res.stderr)
	}

	failing := newFakeAgent(t)
	failing.handle("GET /v1/operator/snapshot", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no cluster leader", http.StatusInternalServerError)
	})
	other := filepath.Join(dir, "other.snap")
	res = runCLI(t, failing.srv.URL, "operator", "snapshot", "save", other)
	if res.code != 1 || !strings.Contains(res.stderr, "no cluster leader") {
		t.Errorf("failing save: got code %d, stderr %q", res.code, res.stderr)
	}
	if _, err := os.Stat(other); !os.IsNotExist(err) {
		t.Errorf("failed save left a file: %v", err)
	}
}

func TestRaftRemovePeerAndJoin(t *testing.T) {
	f := newFakeAgent(t)
	f.handle("DELETE /v1/operator/raft/peer", func(w http.ResponseWriter, r *http.Request) {})
	f.json("PUT /v1/agent/join", 0, api.JoinResponse{NumJoined: 2})
	res := runCLI(t, f.srv.URL, "operator", "raft", "remove-peer", "-peer-id", "id-3")
	reqs := f.requests("DELETE", "/v1/operator/raft/peer")
	if res.code != 0 || len(reqs) != 1 || reqs[0].URL.Query().Get("id") != "id-3" {
		t.Errorf("remove-peer: got code %d, stderr %q", res.code, res.stderr)
	}
	if res := runCLI(t, f.srv.URL, "operator", "raft", "remove-peer"); res.code != 1 {
		t.Errorf("remove-peer without -peer-id: got code %d", res.code)
	}
	res = runCLI(t, f.srv.URL, "server", "join", "10.0.0.2", "10.0.0.3")
	if res.code != 0 || res.stdout != "Joined 2 servers\n" {
		t.Errorf("join: got code %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
}

func TestNodeAndAllocStatus(t *testing.T) {
	f := newFakeAgent(t)
	f.json("GET /v1/nodes", 0, []*structs.NodeListStub{})
	f.json("GET /v1/allocations", 0, fixtureAllocs())
	alloc := &structs.Allocation{ID: allocID1, EvalID: evalID1, Name: "web.api[0]", NodeID: nodeID1, JobID: "web",
		TaskGroup: "api", DesiredStatus: "run", ClientStatus: "running", Job: fixtureJob(),
		TaskStates: map[string]*structs.TaskState{"server": {State: "running", Events: []*structs.TaskEvent{
			{Type: "Started", Time: nanos(fixedNow), DisplayMessage: "Task started by client"}}}}}
	f.json("GET /v1/allocation/"+allocID1, 3, alloc)

	res := runCLI(t, f.srv.URL, "node", "status")
	if res.code != 0 || res.stdout != "" || !strings.Contains(res.stderr, "No client nodes") {
		t.Errorf("node status: got code %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	res = runCLI(t, f.srv.URL, "alloc", "status", "a1b2c3d4")
	if res.code != 0 || !strings.Contains(res.stdout, `Task "server" is "running"`) ||
		!strings.Contains(res.stdout, "Task started by client") || !strings.Contains(res.stdout, "Job Version         = 3") {
		t.Errorf("alloc status: got code %d, stdout:\n%s\nstderr %q", res.code, res.stdout, res.stderr)
	}
}

func TestHumanDuration(t *testing.T) {
	tests := map[string]string{"0s": "0s", "45s": "45s", "2m30s": "2m30s", "2m0s": "2m", "3h12m5s": "3h12m", "100h": "4d4h"}
	for in, want := range tests {
		d, _ := time.ParseDuration(in)
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%s): got %q, want %q", in, got, want)
		}
	}
}

func TestIsLeaderWithSharedIP(t *testing.T) {
	members := []*structs.ServerMember{
		{Name: "a", Addr: "127.0.0.1", Tags: map[string]string{"rpc_addr": "127.0.0.1:4647"}},
		{Name: "b", Addr: "127.0.0.1", Tags: map[string]string{"rpc_addr": "127.0.0.1:5647"}},
		{Name: "c", Addr: "127.0.0.1", Tags: map[string]string{"rpc_addr": "127.0.0.1:6647"}},
	}
	var leaders []string
	for _, m := range members {
		if isLeader(m, "127.0.0.1:5647") {
			leaders = append(leaders, m.Name)
		}
	}
	if len(leaders) != 1 || leaders[0] != "b" {
		t.Fatalf("leaders = %v, want [b]", leaders)
	}
}
