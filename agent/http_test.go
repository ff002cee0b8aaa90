package agent

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testutil"

	"github.com/hashicorp/go-hclog"
	nomad "github.com/hashicorp/nomad/api"

	"github.com/skiffhq/skiff/structs"
)

// testAgent starts a dev agent without its client (no containers: the
// HTTP API is under test) on free ports and waits for its leader.
func testAgent(t *testing.T) (*Agent, string) {
	t.Helper()
	cfg := &Config{dev: true, Name: "test", LogLevel: "WARN", Client: &ClientConfig{Enabled: new(false)},
		Ports: &Ports{HTTP: testutil.FreePort(t), RPC: testutil.FreePort(t), Serf: testutil.FreePort(t)}}
	if err := cfg.finish(); err != nil {
		t.Fatal(err)
	}
	a, err := Start(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Shutdown)
	deadline := time.Now().Add(10 * time.Second)
	for !a.Server().IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("dev agent elected no leader")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return a, "http://" + a.HTTPAddr()
}

func do(t *testing.T, method, url string, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestNomadClient drives Skiff with Nomad's own Go API client.
func TestNomadClient(t *testing.T) {
	_, addr := testAgent(t)
	client, err := nomad.NewClient(&nomad.Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	job := nomad.NewServiceJob("web", "web", "global", 50)
	job.Datacenters = []string{"dc1"}
	tg := nomad.NewTaskGroup("frontend", 2)
	task := nomad.NewTask("server", "docker").SetConfig("image", "busybox:1.36").SetConfig("args", []string{"httpd", "-f"})
	task.Require(&nomad.Resources{CPU: new(200), MemoryMB: new(64)})
	tg.AddTask(task)
	job.AddTaskGroup(tg)
	job.Canonicalize()

	// A dry run first: nothing can be placed (no nodes), and it says so.
	plan, _, err := client.Jobs().Plan(job, true, nil)
	if err != nil {
		t.Fatalf("plan through Nomad's client: %v", err)
	}
	if plan.Diff == nil || plan.Diff.Type != "Added" {
		t.Fatalf("plan diff of a new job = %+v, want Added", plan.Diff)
	}
	if u := plan.Annotations.DesiredTGUpdates["frontend"]; u == nil || u.Place != 2 || plan.FailedTGAllocs["frontend"] == nil {
		t.Fatalf("plan = %+v (updates %+v), want 2 placements wanted and a failure for group frontend", plan, u)
	}
	if _, _, err := client.Jobs().Info("web", nil); err == nil {
		t.Fatal("plan registered the job; it must change nothing")
	}

	resp, _, err := client.Jobs().Register(job, nil)
	if err != nil {
		t.Fatalf("register through Nomad's client: %v", err)
	}
	if resp.EvalID == "" || resp.JobModifyIndex == 0 {
		t.Fatalf("register response = %+v, want an eval ID and a job modify index", resp)
	}
	if resp.Warnings != "" {
		t.Logf("warnings: %s", resp.Warnings)
	}

	list, meta, err := client.Jobs().List(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != "web" || meta.LastIndex == 0 || !meta.KnownLeader {
		t.Fatalf("list = %+v, meta = %+v; want job web, an index and a known leader", list, meta)
	}

	got, _, err := client.Jobs().Info("web", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *got.TaskGroups[0].Count != 2 || got.TaskGroups[0].Tasks[0].Driver != "docker" ||
		*got.TaskGroups[0].Tasks[0].Resources.MemoryMB != 64 || *got.Status != "pending" {
		t.Fatalf("job read back through Nomad's client differs: count %d driver %s", *got.TaskGroups[0].Count, got.TaskGroups[0].Tasks[0].Driver)
	}

	// A plan of a changed count shows the field that changes.
	*job.TaskGroups[0].Count = 3
	plan, _, err = client.Jobs().Plan(job, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Diff == nil || plan.Diff.Type != "Edited" || len(plan.Diff.TaskGroups) != 1 ||
		len(plan.Diff.TaskGroups[0].Fields) != 1 || plan.Diff.TaskGroups[0].Fields[0].Name != "Count" ||
		plan.Diff.TaskGroups[0].Fields[0].Old != "2" || plan.Diff.TaskGroups[0].Fields[0].New != "3" {
		t.Fatalf("plan diff of count 2 -> 3 = %+v", plan.Diff)
	}
	*job.TaskGroups[0].Count = 2

	// A blocking query through Nomad's client wakes on a change.
	done := make(chan *nomad.Job, 1)
	go func() {
		j, _, err := client.Jobs().Info("web", &nomad.QueryOptions{WaitIndex: *got.ModifyIndex, WaitTime: 20 * time.Second})
		if err != nil {
			t.Errorf("blocking info: %v", err)
		}
		done <- j
	}()
	time.Sleep(100 * time.Millisecond)
	if _, _, err := client.Jobs().Deregister("web", false, nil); err != nil {
		t.Fatalf("deregister: %v", err)
	}
	select {
	case j := <-done:
		if j == nil || !*j.Stop {
			t.Fatalf("blocking query woke with %+v, want the stopped job", j)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("blocking query did not wake on deregister")
	}

	if _, _, err := client.Jobs().Deregister("web", true, nil); err != nil {
		t.Fatalf("purge: %v", err)
	}
	if _, _, err := client.Jobs().Info("web", nil); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("info after purge: err = %v, want 404", err)
	}
}

func TestBadRequests(t *testing.T) {
	_, addr := testAgent(t)
	big := bytes.NewReader(bytes.Repeat([]byte("x"), 50<<20))
	cases := []struct {
		name, method, path string
		body               io.Reader
		code               int
		want               string
	}{
		{"50 MB body", "PUT", "/v1/jobs", big, 413, "larger than the 4194304-byte limit"},
		{"malformed JSON", "PUT", "/v1/jobs", strings.NewReader("{\n  \"Job\": {\"ID\": \"x\",}\n}"), 400, "line 2"},
		{"wrong type", "PUT", "/v1/jobs", strings.NewReader(`{"Job": {"ID": "x", "Priority": "high"}}`), 400, "field Job.Priority"},
		{"no job", "PUT", "/v1/jobs", strings.NewReader(`{}`), 400, `no "Job" object`},
		{"empty body", "PUT", "/v1/jobs", nil, 400, "body is empty"},
		{"invalid job", "PUT", "/v1/jobs", strings.NewReader(`{"Job": {"ID": "x", "TaskGroups": [{"Name": "g", "Count": -1, "Tasks": [{"Name": "t", "Driver": "containerd", "Config": {"image": "a"}}]}]}}`), 400, "count must be >= 0 (got -1)"},
		{"bad index", "GET", "/v1/jobs?index=abc", nil, 400, "not a number"},
		{"bad wait", "GET", "/v1/jobs?wait=forever", nil, 400, "not a duration"},
		{"missing job", "GET", "/v1/job/nope", nil, 404, `job "nope" not found`},
		{"unknown path", "GET", "/v1/nope", nil, 404, "no such endpoint"},
		{"truncated snapshot", "PUT", "/v1/operator/snapshot", strings.NewReader("\x1f\x8b\x08\x00garbage"), 400, "nothing was changed"},
		{"remove unknown peer", "DELETE", "/v1/operator/raft/peer?id=nope", nil, 404, `raft peer "nope" not found`},
		{"plan without a job", "PUT", "/v1/job/web/plan", strings.NewReader(`{}`), 400, `request has no "Job" object`},
		{"another region", "GET", "/v1/jobs?region=mars", nil, 400, `region "mars" is not this cluster's region "global"`},
		{"data after the object", "PUT", "/v1/jobs", strings.NewReader(`{"Job": {"ID": "x", "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Driver": "containerd", "Config": {"image": "a"}}]}]}} {}`), 400, "after top-level value"},
		{"a null group", "PUT", "/v1/jobs", strings.NewReader(`{"Job": {"ID": "x", "TaskGroups": [null, {"Name": "g", "Count": 0, "Tasks": [{"Name": "t", "Driver": "containerd", "Config": {"image": "a"}, "Templates": [null]}]}]}}`), 400, "at TaskGroups[0], TaskGroups[1].Tasks[0].Templates[0]: remove it"},
		{"job of another region", "PUT", "/v1/jobs", strings.NewReader(`{"Job": {"ID": "x", "Region": "mars", "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Driver": "containerd", "Config": {"image": "a"}}]}]}}`), 400, `the job's region "mars"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := do(t, c.method, addr+c.path, c.body)
			if resp.StatusCode != c.code || !strings.Contains(body, c.want) {
				t.Fatalf("got %d %q, want %d containing %q", resp.StatusCode, body, c.code, c.want)
			}
		})
	}
	// None of it registered anything.
	_, body := do(t, "GET", addr+"/v1/jobs", nil)
	if strings.TrimSpace(body) != "[]" {
		t.Fatalf("jobs after bad requests = %s, want []", body)
	}
}

func TestParseEndpointCannotReadServerFiles(t *testing.T) {
	_, addr := testAgent(t)
	hcl := `job "x" {
  group "g" {
    task "t" {
      driver = "containerd"
      config {
        image = "busybox"
        args  = [file("/etc/hostname")]
      }
    }
  }
}`
	body, _ := json.Marshal(map[string]any{"JobHCL": hcl})
	resp, out := do(t, "POST", addr+"/v1/jobs/parse", bytes.NewReader(body))
	if resp.StatusCode != 400 || !strings.Contains(out, "file(\"/etc/hostname\") is not available") {
		t.Fatalf("parse with file(): got %d %q, want 400 refusing file()", resp.StatusCode, out)
	}
	ok, _ := json.Marshal(map[string]any{"JobHCL": strings.Replace(hcl, `[file("/etc/hostname")]`, `["-f"]`, 1)})
	resp, out = do(t, "POST", addr+"/v1/jobs/parse", bytes.NewReader(ok))
	if resp.StatusCode != 200 || !strings.Contains(out, `"ID":"x"`) {
		t.Fatalf("parse without file(): got %d %q", resp.StatusCode, out)
	}
}

func TestUnknownFieldsWarnAndCountDefaults(t *testing.T) {
	_, addr := testAgent(t)
	body := `{"Job": {"ID": "w", "Multiregion": {"Regions": [{"Name": "east"}]}, "ConsulToken": "", "TaskGroups": [
	  {"Name": "a", "Tasks": [{"Name": "t", "Driver": "containerd", "Config": {"image": "busybox"}, "Vault": {"Policies": ["p"]}}]},
	  {"Name": "b", "Count": 0, "Tasks": [{"Name": "t", "Driver": "containerd", "Config": {"image": "busybox"}}]}]}}`
	resp, out := do(t, "PUT", addr+"/v1/jobs", strings.NewReader(body))
	if resp.StatusCode != 200 {
		t.Fatalf("register: %d %s", resp.StatusCode, out)
	}
	var reply structs.JobRegisterResponse
	if err := json.Unmarshal([]byte(out), &reply); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Job.Multiregion", "Job.TaskGroups[].Tasks[].Vault"} {
		if !strings.Contains(reply.Warnings, want) {
			t.Errorf("warnings %q do not name %s", reply.Warnings, want)
		}
	}
	if strings.Contains(reply.Warnings, "ConsulToken") {
		t.Errorf("warnings %q name an empty field", reply.Warnings)
	}
	if idx, _ := strconv.ParseUint(resp.Header.Get("X-Nomad-Index"), 10, 64); idx == 0 {
		t.Error("register response has no X-Nomad-Index")
	}
	_, out = do(t, "GET", addr+"/v1/job/w", nil)
	var job structs.Job
	if err := json.Unmarshal([]byte(out), &job); err != nil {
		t.Fatal(err)
	}
	if job.TaskGroups[0].Count != 1 || job.TaskGroups[1].Count != 0 {
		t.Fatalf("counts = %d, %d; want 1 for a group without Count and 0 where 0 was sent", job.TaskGroups[0].Count, job.TaskGroups[1].Count)
	}

	// A body with no unknown field is decoded once, strictly: the same
	// defaults, and no warning.
	body = `{"Job": {"ID": "s", "TaskGroups": [
	  {"Name": "a", "Tasks": [{"Name": "t", "Driver": "containerd", "Config": {"image": "busybox", "args": ["-c", "true"]}}]},
	  {"Name": "b", "Count": 0, "Tasks": [{"Name": "t", "Driver": "containerd", "Config": {"image": "busybox"}}]},
	  {"Name": "c", "Count": null, "Tasks": [{"Name": "t", "Driver": "containerd", "Config": {"image": "busybox"}}]},
	  {"Name": "d", "Count": 3, "Tasks": [{"Name": "t", "Driver": "containerd", "Config": {"image": "busybox"}}]}]}}`
	resp, out = do(t, "PUT", addr+"/v1/jobs", strings.NewReader(body))
	if resp.StatusCode != 200 || strings.Contains(out, "ignored") {
		t.Fatalf("register without unknown fields: %d %s, want 200 without a warning", resp.StatusCode, out)
	}
	_, out = do(t, "GET", addr+"/v1/job/s", nil)
	job = structs.Job{}
	if err := json.Unmarshal([]byte(out), &job); err != nil {
		t.Fatal(err)
	}
	var counts []int
	for _, tg := range job.TaskGroups {
		counts = append(counts, tg.Count)
	}
	if !slices.Equal(counts, []int{1, 0, 1, 3}) {
		t.Fatalf("counts = %v, want [1 0 1 3] (absent 1, 0 kept, null 1, 3 kept)", counts)
	}
}

func TestConfigFileErrors(t *testing.T) {
	cases := []struct{ src, want string }{
		{"data_dir = 5\nbogus = 1\n", `An argument named "bogus" is not expected here`},
		{"server {\n  enabled = \"yes\"\n}\n", "agent.hcl:2"},
		{"acl {\n  enabled = true\n}\n", "not supported by this version"},
	}
	for _, c := range cases {
		_, err := ParseConfig([]byte(c.src), "agent.hcl")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("config %q: err = %v, want it to contain %q", c.src, err, c.want)
		}
	}
	cfg, err := ParseFlags([]string{"-server", "-bootstrap-expect", "3", "-data-dir", "/tmp/x", "-retry-join", "10.0.0.1", "-bind", "127.0.0.1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.BootstrapExpect != 3 || cfg.Server.ServerJoin.RetryJoin[0] != "10.0.0.1" || cfg.Ports.HTTP != 4646 {
		t.Fatalf("flags not applied: %+v", cfg.Server)
	}
	if _, err := ParseFlags([]string{"-server"}, io.Discard); err == nil || !strings.Contains(err.Error(), "data_dir is required") {
		t.Fatalf("server without data dir: err = %v", err)
	}
}

func TestMetricsIncludeRaft(t *testing.T) {
	a, addr := testAgent(t)
	_ = a
	resp, out := do(t, "PUT", addr+"/v1/jobs", strings.NewReader(`{"Job": {"ID": "m", "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Driver": "containerd", "Config": {"image": "a"}}]}]}}`))
	if resp.StatusCode != 200 {
		t.Fatalf("register: %d %s", resp.StatusCode, out)
	}
	resp, out = do(t, "GET", addr+"/v1/metrics", nil)
	want := "skiff.raft."
	if !raftMetricsWired {
		want = "skiff.http.request" // raft's metrics need -tags hashicorpmetrics (make test sets it)
	}
	if resp.StatusCode != 200 || !strings.Contains(out, want) {
		t.Fatalf("metrics: %d, want %s metrics in %.300s", resp.StatusCode, want, out)
	}
	resp, out = do(t, "GET", addr+"/v1/metrics?format=prometheus", nil)
	if resp.StatusCode != 400 || !strings.Contains(out, "prometheus_metrics = true") {
		t.Fatalf("prometheus while off: %d %s", resp.StatusCode, out)
	}
}

// TestBindAllAdvertisesAPrivateIP: bound to every interface, the agent
// advertises a dialable address to other servers, or says why it cannot.
func TestBindAllAdvertisesAPrivateIP(t *testing.T) {
	cfg, err := ParseFlags([]string{"-server", "-data-dir", t.TempDir(), "-bootstrap-expect", "1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := serverConfig(cfg, nil)
	if err != nil {
		if !strings.Contains(err.Error(), "no private IP") {
			t.Fatalf("err = %v, want a private-IP explanation", err)
		}
		return
	}
	if sc.RPCAdvertise == nil || sc.RPCAdvertise.IP.IsUnspecified() || sc.RPCAdvertise.Port != 4647 {
		t.Fatalf("RPC advertise = %v, want a specific IP on port 4647", sc.RPCAdvertise)
	}
}

// TestServerSettingsFromConfigFiles: every server setting of a config
// file reaches the server, the last file winning.
func TestServerSettingsFromConfigFiles(t *testing.T) {
	dir := t.TempDir()
	first := filepath.Join(dir, "a.hcl")
	second := filepath.Join(dir, "b.hcl")
	if err := os.WriteFile(first, []byte(`data_dir = "/tmp/x"
bind_addr = "127.0.0.1"
server {
  enabled                   = true
  num_schedulers            = 3
  scheduler_algorithm       = "spread"
  dead_server_cleanup       = "1m"
  min_heartbeat_ttl         = "20s"
  max_heartbeats_per_second = 100
  node_reconnect_grace      = "3s"
  heartbeat_grace           = "30s"
  read_lease                = false
}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(second, []byte("server {\n  node_reconnect_grace = \"4s\"\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseFlags([]string{"-config", first, "-config", second}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := serverConfig(cfg, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	if sc.NumSchedulers != 3 || sc.SchedulerAlgorithm != "spread" || sc.DeadServerCleanup != time.Minute ||
		sc.MinHeartbeatTTL != 20*time.Second || sc.MaxHeartbeatsPerSecond != 100 ||
		sc.NodeReconnectGrace != 4*time.Second || sc.HeartbeatGrace != 30*time.Second || !sc.NoReadLease {
		t.Fatalf("server config = schedulers %d %q, cleanup %s, ttl %s, rate %v, reconnect %s, grace %s, no read lease %v",
			sc.NumSchedulers, sc.SchedulerAlgorithm, sc.DeadServerCleanup, sc.MinHeartbeatTTL,
			sc.MaxHeartbeatsPerSecond, sc.NodeReconnectGrace, sc.HeartbeatGrace, sc.NoReadLease)
	}
}

// BenchmarkDecodeJobBody compares the decode of a job registration body
// (the S1 benchmark's job, as skiff job run sends it) the way readJSONWarn
// does it (strict, once) with the way it was done before (typed, then
// generically for the unknown fields).
func BenchmarkDecodeJobBody(b *testing.B) {
	job := &structs.Job{ID: "job-000123", Datacenters: []string{"dc1"}, TaskGroups: []*structs.TaskGroup{{
		Name: "web", Count: 3,
		Networks: []*structs.NetworkResource{{DynamicPorts: []structs.Port{{Label: "http", To: 8080}}}},
		Tasks: []*structs.Task{{Name: "server", Driver: "containerd",
			Config:    map[string]any{"image": "registry.example.com/web:1.4.2", "args": []any{"-listen", ":8080"}},
			Env:       map[string]string{"MODE": "production"},
			Resources: &structs.Resources{CPU: 500, MemoryMB: 256}}},
	}}}
	body, _ := json.Marshal(map[string]any{"Job": job})
	b.Run("impl=typed-and-generic", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var out jobRegisterBody
			if err := json.Unmarshal(body, &out); err != nil {
				b.Fatal(err)
			}
			var doc any
			_ = json.Unmarshal(body, &doc)
			if w := unknownFields(doc, out); len(w) > 0 {
				b.Fatal(w)
			}
		}
	})
	b.Run("impl=strict", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var out jobRegisterBody
			if !decodeStrict(body, &out) {
				b.Fatal("strict decode failed")
			}
			defaultGroupCounts(body, out.Job)
		}
	})
}
