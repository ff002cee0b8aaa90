package simnode

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/server"
	"github.com/skiffhq/skiff/structs"
)

// newServer starts one in-process server on loopback with the short
// heartbeat timing of server/harness_test.go.
func newServer(t *testing.T, name string, expect int, join []string) *server.Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.DefaultConfig()
	cfg.NodeName = name
	cfg.DataDir = t.TempDir()
	cfg.RPCListener = ln
	cfg.SerfBindAddr = "127.0.0.1"
	cfg.BootstrapExpect = expect
	cfg.RetryJoin = join
	cfg.RetryInterval = 100 * time.Millisecond
	cfg.GossipProfile = "local"
	cfg.ReconcileInterval = 200 * time.Millisecond
	// A second: short enough for the tests to see many TTLs, long enough
	// for a heartbeat to arrive on a machine that lends most of its CPU to
	// its neighbours (at 300 ms, nodes were marked down there).
	cfg.MinHeartbeatTTL = time.Second
	cfg.HeartbeatGrace = 2 * time.Second
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Warn, Output: testWriter{t}})
	s, err := server.New(cfg)
	if err != nil {
		t.Fatalf("start server %s: %v", name, err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// newCluster starts n servers that bootstrap together and returns them
// once one leads with n voters.
func newCluster(t *testing.T, n int) []*server.Server {
	t.Helper()
	first := newServer(t, "s0", n, nil)
	servers := []*server.Server{first}
	for i := 1; i < n; i++ {
		servers = append(servers, newServer(t, fmt.Sprintf("s%d", i), n, []string{first.SerfAddr()}))
	}
	testutil.WaitFor(t, 15*time.Second, fmt.Sprintf("a leader with %d voters", n), func() bool {
		l := leader(servers)
		if l == nil {
			return false
		}
		f := l.Raft().GetConfiguration()
		return f.Error() == nil && len(f.Configuration().Servers) == n
	})
	return servers
}

func leader(servers []*server.Server) *server.Server {
	for _, s := range servers {
		if s.IsLeader() {
			return s
		}
	}
	return nil
}

func rpcAddrs(servers []*server.Server) []string {
	var out []string
	for _, s := range servers {
		out = append(out, s.RPCAddr())
	}
	return out
}

func startFleet(t *testing.T, cfg Config) *Fleet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start fleet: %v", err)
	}
	t.Cleanup(f.Close)
	return f
}

func serviceJob(id string, count int) *structs.Job {
	return &structs.Job{
		ID: id, Datacenters: []string{"dc1", "dc2"},
		TaskGroups: []*structs.TaskGroup{{
			Name: "web", Count: count,
			ReschedulePolicy: &structs.ReschedulePolicy{Unlimited: true, Delay: time.Millisecond, DelayFunction: "constant"},
			Tasks: []*structs.Task{
				{Name: "app", Driver: "containerd", Config: map[string]any{"image": "busybox:1.36"}, Resources: &structs.Resources{CPU: 500, MemoryMB: 256}},
				{Name: "sidecar", Driver: "docker", Config: map[string]any{"image": "envoy:1.30"}, Resources: &structs.Resources{CPU: 100, MemoryMB: 64}},
			},
		}},
	}
}

func registerJob(t *testing.T, s *server.Server, job *structs.Job) {
	t.Helper()
	var reply structs.JobRegisterResponse
	if err := s.RPC("Job.Register", &structs.JobRegisterRequest{Job: job}, &reply); err != nil {
		t.Fatalf("register job %s: %v", job.ID, err)
	}
}

// allocsByStatus counts a job's allocations by client status, and
// separately those the servers still want running.
func allocsByStatus(t *testing.T, s *server.Server, jobID string) (byStatus map[string]int, desiredRun int, allocs []*structs.Allocation) {
	t.Helper()
	all, err := s.State().AllocsByJob(nil, structs.DefaultNamespace, jobID, false)
	if err != nil {
		t.Fatal(err)
	}
	byStatus = map[string]int{}
	for _, a := range all {
		byStatus[a.ClientStatus]++
		if a.DesiredStatus == structs.AllocDesiredStatusRun {
			desiredRun++
		}
	}
	return byStatus, desiredRun, all
}

// TestFleetRegistersAndStaysReady: every node registers with its
// datacenter, rack and resources, and heartbeats keep it ready for many
// TTLs.
func TestFleetRegistersAndStaysReady(t *testing.T) {
	s := newCluster(t, 1)[0]
	f := startFleet(t, Config{Servers: []string{s.RPCAddr()}, Count: 6, Datacenters: []string{"dc1", "dc2"}, Racks: 3, NodeClass: "sim"})
	if got := f.Stats().Registered; got != 6 {
		t.Fatalf("registered = %d, want 6", got)
	}
	for i, n := range f.Nodes() {
		got, err := s.State().NodeByID(nil, n.ID())
		if err != nil || got == nil {
			t.Fatalf("node %s not in state: %v", n.Name(), err)
		}
		wantDC, wantRack := fmt.Sprintf("dc%d", 1+i%2), fmt.Sprintf("r%d", i%3)
		if got.Status != structs.NodeStatusReady || got.Datacenter != wantDC || got.Meta["rack"] != wantRack ||
			got.NodeClass != "sim" || got.NodeResources.Cpu.CpuShares != 14000 || !got.Drivers["docker"].Healthy {
			t.Errorf("node %d = status %s dc %s rack %s class %s cpu %d, want ready %s %s sim 14000 with docker healthy",
				i, got.Status, got.Datacenter, got.Meta["rack"], got.NodeClass, got.NodeResources.Cpu.CpuShares, wantDC, wantRack)
		}
	}
	// Enough heartbeats for every node to have beaten about four times
	// (TTL 1-1.25 s): nodes that missed one would be down by now.
	testutil.WaitFor(t, 30*time.Second, "24 heartbeats", func() bool { return f.Stats().Heartbeats >= 24 })
	for _, n := range f.Nodes() {
		if got, _ := s.State().NodeByID(nil, n.ID()); got.Status != structs.NodeStatusReady {
			t.Errorf("node %s is %s after heartbeating, want ready", n.Name(), got.Status)
		}
	}
	if st := f.Stats(); st.HeartbeatErrors != 0 {
		t.Errorf("heartbeat errors = %d, want 0", st.HeartbeatErrors)
	}
}

// TestFleetReportsRunningThenComplete: a job's allocations are reported
// running with a task state per task; stopping the job has them reported
// complete.
func TestFleetReportsRunningThenComplete(t *testing.T) {
	s := newCluster(t, 1)[0]
	f := startFleet(t, Config{Servers: []string{s.RPCAddr()}, Count: 4, Datacenters: []string{"dc1", "dc2"}})
	registerJob(t, s, serviceJob("web", 6))
	// The state may show the reports before their acknowledgements reach
	// the nodes: wait for both.
	testutil.WaitFor(t, 10*time.Second, "6 allocations running, acknowledged", func() bool {
		st, _, _ := allocsByStatus(t, s, "web")
		return st[structs.AllocClientStatusRunning] == 6 && f.Stats().Running == 6
	})
	_, _, allocs := allocsByStatus(t, s, "web")
	for _, a := range allocs {
		for _, task := range []string{"app", "sidecar"} {
			ts := a.TaskStates[task]
			if ts == nil || ts.State != "running" || ts.StartedAt.IsZero() {
				t.Errorf("alloc %s task %s state = %+v, want running with StartedAt", a.ID, task, ts)
			}
		}
	}

	var dereg structs.JobDeregisterResponse
	if err := s.RPC("Job.Deregister", &structs.JobDeregisterRequest{JobID: "web"}, &dereg); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "6 allocations complete, acknowledged", func() bool {
		st, run, _ := allocsByStatus(t, s, "web")
		return st[structs.AllocClientStatusComplete] == 6 && run == 0 && f.Stats().Complete == 6
	})
	if st := f.Stats(); st.Running != 6 || st.UpdatedAllocs != 12 {
		t.Errorf("fleet stats = %+v, want 6 running and 12 updates in all", st)
	}
}

// TestFleetKilledNodeAndFailedAlloc: a killed node is marked down and its
// allocation replaced elsewhere; an allocation the hook fails is
// rescheduled.
func TestFleetKilledNodeAndFailedAlloc(t *testing.T) {
	s := newCluster(t, 1)[0]
	failed := make(chan string, 1)
	f := startFleet(t, Config{Servers: []string{s.RPCAddr()}, Count: 4, Datacenters: []string{"dc1", "dc2"},
		CPUMHz: 1200, // two allocations per node at most
		AllocStatus: func(n *Node, a *structs.Allocation) string {
			if a.JobID == "flaky" {
				select {
				case failed <- a.ID:
					return structs.AllocClientStatusFailed
				default:
				}
			}
			return ""
		}})
	registerJob(t, s, serviceJob("web", 4))
	testutil.WaitFor(t, 10*time.Second, "4 allocations running", func() bool {
		st, _, _ := allocsByStatus(t, s, "web")
		return st[structs.AllocClientStatusRunning] == 4
	})
	_, _, allocs := allocsByStatus(t, s, "web")
	victim := allocs[0].NodeID
	var killed *Node
	for _, n := range f.Nodes() {
		if n.ID() == victim {
			killed = n
		}
	}
	killed.Kill()
	testutil.WaitFor(t, 10*time.Second, "the killed node down and 4 allocations running again", func() bool {
		n, _ := s.State().NodeByID(nil, victim)
		st, _, _ := allocsByStatus(t, s, "web")
		return n.Status == structs.NodeStatusDown && st[structs.AllocClientStatusRunning] == 4 && st[structs.AllocClientStatusLost] > 0
	})
	_, _, allocs = allocsByStatus(t, s, "web")
	for _, a := range allocs {
		if a.NodeID == victim && a.ClientStatus != structs.AllocClientStatusLost {
			t.Errorf("alloc %s on the dead node is %s, want lost", a.ID, a.ClientStatus)
		}
	}

	registerJob(t, s, serviceJob("flaky", 1))
	testutil.WaitFor(t, 10*time.Second, "one failed and one replacement running", func() bool {
		st, _, _ := allocsByStatus(t, s, "flaky")
		return st[structs.AllocClientStatusFailed] == 1 && st[structs.AllocClientStatusRunning] == 1
	})
	testutil.WaitFor(t, 5*time.Second, "the failure acknowledged", func() bool { return f.Stats().Failed == 1 })
}

// TestFleetSurvivesLeaderChange: nodes talk to all three servers; when
// the leader shuts down they keep heartbeating (none is marked down) and
// a job registered afterwards is reported running.
func TestFleetSurvivesLeaderChange(t *testing.T) {
	servers := newCluster(t, 3)
	f := startFleet(t, Config{Servers: rpcAddrs(servers), Count: 6})
	old := leader(servers)
	old.Shutdown()
	var rest []*server.Server
	for _, s := range servers {
		if s != old {
			rest = append(rest, s)
		}
	}
	var l *server.Server
	testutil.WaitFor(t, 15*time.Second, "a new leader", func() bool { l = leader(rest); return l != nil })
	registerJob(t, l, serviceJob("after", 3))
	testutil.WaitFor(t, 15*time.Second, "3 allocations running after the leader changed", func() bool {
		st, _, _ := allocsByStatus(t, l, "after")
		return st[structs.AllocClientStatusRunning] == 3
	})
	// Past the new leader's grace (2 s) plus a TTL, every node must still
	// be ready: heartbeats reached the new leader.
	beats := f.Stats().Heartbeats
	testutil.WaitFor(t, 30*time.Second, "heartbeats past the failover grace", func() bool {
		return f.Stats().Heartbeats >= beats+6*8 // about four TTLs of 6 nodes
	})
	for _, n := range f.Nodes() {
		if got, _ := l.State().NodeByID(nil, n.ID()); got == nil || got.Status != structs.NodeStatusReady {
			t.Errorf("node %s after the leader change = %+v, want ready", n.Name(), got)
		}
	}
}
