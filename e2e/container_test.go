package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"

	"github.com/skiffhq/skiff/internal/ociimage"
	"github.com/skiffhq/skiff/internal/testcontainerd"
	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/structs"
)

// containerAgent is one agent process running a server and a client,
// with its client on a test containerd and pulling from a test registry.
func containerAgent(t testing.TB, env *testcontainerd.Env, registry string) *agentProc {
	t.Helper()
	a := &agentProc{t: t, name: "node1", dir: t.TempDir(),
		http: testutil.FreePort(t), rpc: testutil.FreePort(t), serf: testutil.FreePort(t)}
	a.configPath = filepath.Join(a.dir, "agent.hcl")
	cfg := fmt.Sprintf(`
name      = "node1"
data_dir  = %q
bind_addr = "127.0.0.1"
log_level = "DEBUG"
ports {
  http = %d
  rpc  = %d
  serf = %d
}
server {
  enabled          = true
  bootstrap_expect = 1
  gossip_profile   = "local"
}
client {
  enabled = true
  containerd {
    address             = %q
    namespace           = %q
    insecure_registries = [%q]
  }
}
`, filepath.Join(a.dir, "data"), a.http, a.rpc, a.serf, env.Address, env.Namespace, registry)
	if err := os.WriteFile(a.configPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	a.start()
	t.Cleanup(func() {
		a.kill()
		if t.Failed() {
			t.Logf("---- logs of %s ----\n%s", a.name, a.tail(120))
		}
	})
	waitNodeReady(t, a)
	return a
}

func waitNodeReady(t testing.TB, a *agentProc) {
	t.Helper()
	testutil.WaitFor(t, 30*time.Second, "the client node ready", func() bool {
		var nodes []*structs.NodeListStub
		if _, err := call(context.Background(), "GET", a.addr()+"/v1/nodes", nil, &nodes); err != nil {
			return false
		}
		return len(nodes) == 1 && nodes[0].Status == structs.NodeStatusReady
	})
}

// containerPIDs lists the running tasks of the namespace: container ID -> PID.
func containerPIDs(t testing.TB, env *testcontainerd.Env) map[string]uint32 {
	t.Helper()
	return namespacePIDs(t, env.Address, env.Namespace)
}

// namespacePIDs lists the running tasks of namespace ns on the containerd
// at address: container ID -> PID.
func namespacePIDs(t testing.TB, address, ns string) map[string]uint32 {
	t.Helper()
	c, err := containerd.New(address, containerd.WithDefaultNamespace(ns))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := c.Containers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint32{}
	for _, ctr := range cs {
		task, err := ctr.Task(ctx, nil)
		if err != nil {
			continue
		}
		st, err := task.Status(ctx)
		if err == nil && st.Status == containerd.Running {
			out[ctr.ID()] = task.Pid()
		}
	}
	return out
}

func runningAllocs(t *testing.T, a *agentProc, jobID string) []*structs.AllocListStub {
	t.Helper()
	var allocs []*structs.AllocListStub
	if _, err := call(context.Background(), "GET", a.addr()+"/v1/job/"+jobID+"/allocations", nil, &allocs); err != nil {
		t.Fatal(err)
	}
	var out []*structs.AllocListStub
	for _, al := range allocs {
		if al.DesiredStatus == structs.AllocDesiredStatusRun && al.ClientStatus == structs.AllocClientStatusRunning {
			out = append(out, al)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func httpGet(url string) (string, error) {
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

var portRE = regexp.MustCompile(`\*http\s+127\.0\.0\.1:(\d+)`)

// TestContainersEndToEnd is the client issue's user story with the real
// binary and real containers: the example job is pulled from a registry on
// loopback and answers HTTP; its logs are read through the API; the agent
// is killed with SIGKILL and restarted, and it re-attaches to the same
// containers (same PIDs, no second copy); the job is stopped. A job whose
// image does not exist fails with the cause in the CLI's output.
func TestContainersEndToEnd(t *testing.T) {
	env := testcontainerd.Start(t)
	registry := testcontainerd.StartRegistry(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := ociimage.Push(ctx, testcontainerd.BusyboxArchive(t), registry, "skiff/busybox", "latest"); err != nil {
		t.Fatal(err)
	}
	a := containerAgent(t, env, registry)

	image := registry + "/skiff/busybox:latest"
	out, errOut, code := skiff(t, a, "job", "run", "-var", "image="+image, "../examples/web.hcl")
	// The example rolls through deployments: job run follows the first
	// one to its end, once both instances are healthy.
	if code != 0 || !strings.Contains(out, "successful: web 2/2 healthy") {
		t.Fatalf("job run: exit %d\n%s\n%s", code, out, errOut)
	}
	allocs := runningAllocs(t, a, "web")
	if len(allocs) != 2 {
		t.Fatalf("%d running allocations, want 2", len(allocs))
	}
	answer := func(allocID string) string {
		out, _, code := skiff(t, a, "alloc", "status", allocID)
		m := portRE.FindStringSubmatch(out)
		if code != 0 || m == nil {
			t.Fatalf("alloc status %s: exit %d, no address of port http:\n%s", allocID, code, out)
		}
		body, err := httpGet("http://127.0.0.1:" + m[1] + "/")
		if err != nil {
			return err.Error()
		}
		return body
	}
	for _, al := range allocs {
		if got := answer(al.ID); !strings.Contains(got, "hello from allocation "+al.ID) {
			t.Errorf("allocation %s answered %q", al.Name, got)
		}
	}
	out, _, code = skiff(t, a, "alloc", "logs", allocs[0].ID[:8])
	if code != 0 || !strings.Contains(out, "serving on port") {
		t.Errorf("alloc logs: exit %d, %q; want the task's stdout", code, out)
	}

	before := containerPIDs(t, env)
	if len(before) != 2 {
		t.Fatalf("containerd runs %d tasks, want 2: %v", len(before), before)
	}
	a.kill()
	if got := containerPIDs(t, env); len(got) != 2 {
		t.Fatalf("after kill -9 of the agent, %d tasks run, want 2 (tasks outlive the agent)", len(got))
	}
	a.start()
	waitNodeReady(t, a)
	// The restarted client re-attaches: the allocations stay running with
	// the same containers and PIDs, and nothing was started again.
	testutil.WaitFor(t, 20*time.Second, "the client restored and reported", func() bool {
		return strings.Contains(a.tail(400), "re-attached") || len(runningAllocs(t, a, "web")) == 2
	})
	after := containerPIDs(t, env)
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("tasks after the agent restart %v, want the same as before %v", after, before)
	}
	for _, al := range runningAllocs(t, a, "web") {
		var full structs.Allocation
		if _, err := call(context.Background(), "GET", a.addr()+"/v1/allocation/"+al.ID, nil, &full); err != nil {
			t.Fatal(err)
		}
		if ts := full.TaskStates["httpd"]; ts == nil || ts.Restarts != 0 || ts.State != "running" {
			t.Errorf("allocation %s task state %+v, want running with no restarts", al.Name, ts)
		}
		if got := answer(al.ID); !strings.Contains(got, "hello from allocation "+al.ID) {
			t.Errorf("after the restart, allocation %s answered %q", al.Name, got)
		}
	}

	out, errOut, code = skiff(t, a, "job", "stop", "web")
	if code != 0 {
		t.Fatalf("job stop: exit %d\n%s\n%s", code, out, errOut)
	}
	testutil.WaitFor(t, 30*time.Second, "every task stopped", func() bool { return len(containerPIDs(t, env)) == 0 })

	// A task that keeps failing: restarted per its restart policy with the
	// history in its events, then the allocation fails; its logs keep
	// every run's output.
	crash := filepath.Join(t.TempDir(), "crash.hcl")
	if err := os.WriteFile(crash, []byte(fmt.Sprintf(`
job "crash" {
  group "g" {
    restart {
      attempts = 2
      interval = "1m"
      delay    = "200ms"
      mode     = "fail"
    }
    reschedule {
      attempts  = 0
      unlimited = false
    }
    task "t" {
      driver = "containerd"
      config {
        image   = "%s"
        command = "sh"
        args    = ["-c", "echo run; exit 3"]
      }
    }
  }
}
`, image)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code = skiff(t, a, "job", "run", "-detach", crash); code != 0 {
		t.Fatalf("job run -detach: exit %d\n%s\n%s", code, out, errOut)
	}
	var crashed []*structs.AllocListStub
	testutil.WaitFor(t, 30*time.Second, "the crashing allocation failed", func() bool {
		_, err := call(context.Background(), "GET", a.addr()+"/v1/job/crash/allocations", nil, &crashed)
		return err == nil && len(crashed) == 1 && crashed[0].ClientStatus == structs.AllocClientStatusFailed
	})
	var full structs.Allocation
	if _, err := call(context.Background(), "GET", a.addr()+"/v1/allocation/"+crashed[0].ID, nil, &full); err != nil {
		t.Fatal(err)
	}
	ts := full.TaskStates["t"]
	if full.ClientStatus != structs.AllocClientStatusFailed || ts == nil || ts.Restarts != 2 || !ts.Failed {
		t.Fatalf("crashing task: alloc %s, task state %+v; want failed after 2 restarts", full.ClientStatus, ts)
	}
	restarting := 0
	for _, e := range ts.Events {
		if e.Type == "Restarting" {
			restarting++
		}
	}
	if restarting != 2 {
		t.Errorf("%d Restarting events, want 2", restarting)
	}
	out, _, _ = skiff(t, a, "alloc", "logs", crashed[0].ID)
	if n := strings.Count(out, "run"); n != 3 {
		t.Errorf("logs of the crashing task hold %d runs, want 3:\n%s", n, out)
	}

	// An image that does not exist: the allocation fails with the cause.
	bad := filepath.Join(t.TempDir(), "bad.hcl")
	if err := os.WriteFile(bad, []byte(fmt.Sprintf(`
job "bad" {
  group "g" {
    restart {
      attempts = 0
      mode     = "fail"
    }
    reschedule {
      attempts  = 0
      unlimited = false
    }
    task "t" {
      driver = "containerd"
      config {
        image = "%s/skiff/nope:1"
      }
    }
  }
}
`, registry)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = skiff(t, a, "job", "run", bad)
	if code != 2 || !strings.Contains(out, "not found") {
		t.Fatalf("job run of a missing image: exit %d, want 2 with the cause\n%s\n%s", code, out, errOut)
	}
}

// TestClientThroughLeaderChange: a client-only agent pointed at three
// servers keeps working when the leader is killed: its node stays ready
// and a job registered afterwards runs on it.
func TestClientThroughLeaderChange(t *testing.T) {
	env := testcontainerd.Start(t)
	archive := testcontainerd.BusyboxArchive(t)
	c := newCluster(t, 3, clusterOpts{})
	leader := c.leader()
	var rpcPorts []int
	for _, s := range c.agents {
		rpcPorts = append(rpcPorts, s.rpc)
	}
	cl := clientOnlyAgent(t, env, rpcPorts)
	waitNodeReady(t, leader)

	leader.kill()
	survivor := c.leader()
	job := sleepJob("after-failover", "oci-archive:"+archive, 1)
	if _, err := call(context.Background(), "PUT", survivor.addr()+"/v1/jobs", map[string]any{"Job": job}, nil); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 30*time.Second, "the job running on the client after the leader change", func() bool {
		return len(runningAllocs(t, survivor, "after-failover")) == 1
	})
	// Through the client agent's own HTTP API too: it forwards to a server.
	var nodes []*structs.NodeListStub
	if _, err := call(context.Background(), "GET", cl.addr()+"/v1/nodes", nil, &nodes); err != nil || len(nodes) != 1 || nodes[0].Status != structs.NodeStatusReady {
		t.Fatalf("nodes through the client agent: %v %v; want one ready node", nodes, err)
	}
}

// clientOnlyAgent starts an agent that runs only a client, on the test
// containerd, pointed at the servers' RPC ports; it is killed at cleanup
// (its log is printed when the test failed).
func clientOnlyAgent(tb testing.TB, env *testcontainerd.Env, serverRPCPorts []int) *agentProc {
	tb.Helper()
	return namedClientAgent(tb, env, "client", env.Namespace, serverRPCPorts)
}

// namedClientAgent is clientOnlyAgent with its own name (its node's name)
// and containerd namespace, so that several share one containerd.
func namedClientAgent(tb testing.TB, env *testcontainerd.Env, name, namespace string, serverRPCPorts []int) *agentProc {
	tb.Helper()
	cl := &agentProc{t: tb, name: name, dir: tb.TempDir(),
		http: testutil.FreePort(tb), rpc: testutil.FreePort(tb), serf: testutil.FreePort(tb)}
	cl.configPath = filepath.Join(cl.dir, "agent.hcl")
	servers := make([]string, 0, len(serverRPCPorts))
	for _, p := range serverRPCPorts {
		servers = append(servers, fmt.Sprintf("%q", fmt.Sprintf("127.0.0.1:%d", p)))
	}
	cfg := fmt.Sprintf(`
name      = %q
data_dir  = %q
bind_addr = "127.0.0.1"
log_level = "DEBUG"
ports {
  http = %d
  rpc  = %d
  serf = %d
}
client {
  enabled = true
  servers = [%s]
  containerd {
    address   = %q
    namespace = %q
  }
}
`, name, filepath.Join(cl.dir, "data"), cl.http, cl.rpc, cl.serf, strings.Join(servers, ", "), env.Address, namespace)
	if err := os.WriteFile(cl.configPath, []byte(cfg), 0o600); err != nil {
		tb.Fatal(err)
	}
	cl.start()
	tb.Cleanup(func() {
		cl.kill()
		if tb.Failed() {
			tb.Logf("---- logs of %s ----\n%s", name, cl.tail(80))
		}
	})
	return cl
}
