package client

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/skiffhq/skiff/client/driver"
	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/server"
	"github.com/skiffhq/skiff/structs"
)

// fakeDriver runs "tasks" that live until stopped. It outlives client
// instances, as containerd outlives the agent.
type fakeDriver struct {
	mu        sync.Mutex
	unhealthy bool                 // guarded by mu
	tasks     map[string]*fakeTask // by task ID
	starts    int
	recover   int
	destroy   []string
}

type fakeTask struct {
	handle *driver.TaskHandle
	exit   chan *driver.ExitResult
	done   bool
}

var _ driver.Driver = (*fakeDriver)(nil)

func newFakeDriver() *fakeDriver { return &fakeDriver{tasks: map[string]*fakeTask{}} }

func (d *fakeDriver) Name() string { return "containerd" }
func (d *fakeDriver) Fingerprint(context.Context) *driver.Fingerprint {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.unhealthy {
		return &driver.Fingerprint{Description: "containerd does not answer at /run/containerd/containerd.sock"}
	}
	return &driver.Fingerprint{Healthy: true, Attributes: map[string]string{"driver.containerd": "1"}}
}

func (d *fakeDriver) setHealthy(ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.unhealthy = !ok
}

func (d *fakeDriver) StartTask(_ context.Context, cfg *driver.TaskConfig) (*driver.TaskHandle, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t := d.tasks[cfg.ID]; t != nil && !t.done {
		return nil, fmt.Errorf("task %s is already running: a second copy", cfg.ID)
	}
	d.starts++
	h := &driver.TaskHandle{ID: cfg.ID, ContainerID: strings.ReplaceAll(cfg.ID, "/", "-"), StartedAt: time.Now()}
	d.tasks[cfg.ID] = &fakeTask{handle: h, exit: make(chan *driver.ExitResult, 1)}
	return h, nil
}

func (d *fakeDriver) RecoverTask(_ context.Context, h *driver.TaskHandle) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t := d.tasks[h.ID]; t == nil || t.done {
		return driver.ErrTaskNotFound
	}
	d.recover++
	return nil
}

func (d *fakeDriver) task(id string) (*fakeTask, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.tasks[id]
	if t == nil {
		return nil, driver.ErrTaskNotFound
	}
	return t, nil
}

func (d *fakeDriver) WaitTask(_ context.Context, id string) (<-chan *driver.ExitResult, error) {
	t, err := d.task(id)
	if err != nil {
		return nil, err
	}
	out := make(chan *driver.ExitResult, 1)
	go func() {
		r := <-t.exit
		t.exit <- r // later waiters (a restored client) see it too
		out <- r
	}()
	return out, nil
}

func (d *fakeDriver) StopTask(_ context.Context, id string, _ time.Duration, _ string) error {
	t, err := d.task(id)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !t.done {
		t.done = true
		t.exit <- &driver.ExitResult{Signal: 15, ExitCode: 143}
	}
	return nil
}

func (d *fakeDriver) SignalTask(context.Context, string, string) error { return nil }

func (d *fakeDriver) DestroyTask(ctx context.Context, id string, _ bool) error {
	_ = d.StopTask(ctx, id, 0, "")
	d.mu.Lock()
	defer d.mu.Unlock()
	d.destroy = append(d.destroy, id)
	delete(d.tasks, id)
	return nil
}

func (d *fakeDriver) TaskStats(context.Context, string) (*driver.TaskStats, error) {
	return &driver.TaskStats{Timestamp: time.Now()}, nil
}

func (d *fakeDriver) ExecTask(context.Context, string, *driver.ExecOptions) (int, error) {
	return 0, nil
}

func (d *fakeDriver) ListTasks(context.Context) ([]*driver.TaskHandle, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*driver.TaskHandle
	for _, t := range d.tasks {
		out = append(out, t.handle)
	}
	return out, nil
}

func (d *fakeDriver) running() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, t := range d.tasks {
		if !t.done {
			n++
		}
	}
	return n
}

func (d *fakeDriver) counts() (starts, recovers int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.starts, d.recover
}

func startServer(t *testing.T) *server.Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.DefaultConfig()
	cfg.NodeName, cfg.DataDir, cfg.RPCListener = "s1", t.TempDir(), ln
	cfg.SerfBindAddr, cfg.BootstrapExpect, cfg.GossipProfile = "127.0.0.1", 1, "local"
	// No test here is about a node going down, so a node goes down only
	// after 10 s without a heartbeat (the server's default TTL) or 15 s
	// after its liveness connection ends (a client restart). With a TTL of
	// 0.5 s and the default 2 s reconnect grace,
	// TestClientRunsReportsAndReattaches saw 0 or 1 of its 2 tasks running
	// in 3-5 of 12 runs on a VM with 36% steal, most likely a starved
	// client's allocations marked lost.
	cfg.MinHeartbeatTTL, cfg.NodeReconnectGrace = 10*time.Second, 15*time.Second
	cfg.Logger = hclog.NewNullLogger()
	s, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	testutil.WaitFor(t, 10*time.Second, "a leader", s.IsLeader)
	return s
}

func startClient(t *testing.T, cfg *Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Start()
	select {
	case <-c.Registered():
	case <-time.After(10 * time.Second):
		t.Fatal("client did not register")
	}
	return c
}

func serverAllocs(t *testing.T, s *server.Server, jobID string) []*structs.Allocation {
	t.Helper()
	allocs, err := s.State().AllocsByJob(nil, "default", jobID, false)
	if err != nil {
		t.Fatal(err)
	}
	return allocs
}

func countStatus(allocs []*structs.Allocation, status string) int {
	n := 0
	for _, a := range allocs {
		if a.ClientStatus == status {
			n++
		}
	}
	return n
}

func testJob(count int) *structs.Job {
	return &structs.Job{ID: "web", Datacenters: []string{"dc1"}, TaskGroups: []*structs.TaskGroup{{
		Name: "web", Count: count,
		Tasks: []*structs.Task{{Name: "server", Driver: "containerd",
			Config:    map[string]any{"image": "busybox"},
			Resources: &structs.Resources{CPU: 100, MemoryMB: 64}}},
	}}}
}

// TestClientRunsReportsAndReattaches: a client (talking to the server over
// its RPC port, as a separate machine would) registers, runs the
// allocations placed on it, reports them running; restarted, it
// re-attaches without starting a second copy and removes a container
// that belongs to no allocation; a stopped job's tasks are stopped and
// reported complete.
func TestClientRunsReportsAndReattaches(t *testing.T) {
	srv := startServer(t)
	d := newFakeDriver()
	dir := t.TempDir()
	cfg := func() *Config {
		return &Config{DataDir: dir, NodeName: "n1", Servers: []string{srv.RPCAddr()},
			Drivers: map[string]driver.Driver{"containerd": d}, GCInterval: time.Hour}
	}
	c := startClient(t, cfg())
	node, _ := srv.State().NodeByID(nil, c.NodeID())
	if node == nil || node.Status != structs.NodeStatusReady || node.Attributes["cpu.numcores"] == "" || !node.Drivers["containerd"].Healthy {
		t.Fatalf("registered node %+v, want ready with fingerprinted attributes and a healthy driver", node)
	}

	var reply structs.JobRegisterResponse
	if err := srv.RPC("Job.Register", &structs.JobRegisterRequest{Job: testJob(2)}, &reply); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "2 allocations running on the server", func() bool {
		return countStatus(serverAllocs(t, srv, "web"), structs.AllocClientStatusRunning) == 2
	})
	if n := d.running(); n != 2 {
		t.Fatalf("driver runs %d tasks, want 2", n)
	}

	// An orphan: a container of an allocation this node never had.
	orphan := structs.GenerateUUID() + "/server"
	if _, err := d.StartTask(context.Background(), &driver.TaskConfig{ID: orphan}); err != nil {
		t.Fatal(err)
	}
	c.Shutdown()
	if n := d.running(); n != 3 {
		t.Fatalf("after the agent stopped, %d tasks run, want 3: tasks outlive the agent", n)
	}
	startsBefore, _ := d.counts()
	c = startClient(t, cfg())
	defer c.Shutdown()
	testutil.WaitFor(t, 10*time.Second, "the orphan removed", func() bool { return d.running() == 2 })
	starts, recovers := d.counts()
	if starts != startsBefore || recovers != 2 {
		t.Fatalf("after restart: %d new starts, %d re-attaches; want 0 and 2", starts-startsBefore, recovers)
	}

	var dereg structs.JobDeregisterResponse
	if err := srv.RPC("Job.Deregister", &structs.JobDeregisterRequest{JobID: "web"}, &dereg); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "tasks stopped and allocations complete", func() bool {
		return d.running() == 0 && countStatus(serverAllocs(t, srv, "web"), structs.AllocClientStatusComplete) == 2
	})
}

// TestClientInProcess: the dev agent's wiring, the client calling its
// server in process.
func TestClientInProcess(t *testing.T) {
	srv := startServer(t)
	d := newFakeDriver()
	c := startClient(t, &Config{DataDir: t.TempDir(), NodeName: "n1", RPC: InprocRPC(srv.RPC),
		Drivers: map[string]driver.Driver{"containerd": d}})
	defer c.Shutdown()
	var reply structs.JobRegisterResponse
	if err := srv.RPC("Job.Register", &structs.JobRegisterRequest{Job: testJob(1)}, &reply); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the allocation running", func() bool {
		return countStatus(serverAllocs(t, srv, "web"), structs.AllocClientStatusRunning) == 1
	})
}

// TestUnhealthyDriverGetsNoPlacements: when containerd stops answering,
// the node reports the driver unhealthy and the scheduler places nothing
// there (the evaluation says why); when it answers again, the blocked
// job is placed.
func TestUnhealthyDriverGetsNoPlacements(t *testing.T) {
	srv := startServer(t)
	d := newFakeDriver()
	c := startClient(t, &Config{DataDir: t.TempDir(), NodeName: "n1", RPC: InprocRPC(srv.RPC),
		Drivers: map[string]driver.Driver{"containerd": d}, FingerprintInterval: 50 * time.Millisecond})
	defer c.Shutdown()
	d.setHealthy(false)
	testutil.WaitFor(t, 10*time.Second, "the node's driver reported unhealthy", func() bool {
		n, _ := srv.State().NodeByID(nil, c.NodeID())
		return n != nil && n.Drivers["containerd"] != nil && !n.Drivers["containerd"].Healthy
	})
	var reply structs.JobRegisterResponse
	if err := srv.RPC("Job.Register", &structs.JobRegisterRequest{Job: testJob(1)}, &reply); err != nil {
		t.Fatal(err)
	}
	var ev *structs.Evaluation
	testutil.WaitFor(t, 10*time.Second, "the evaluation processed", func() bool {
		ev, _ = srv.State().EvalByID(nil, reply.EvalID)
		return ev != nil && ev.Status == structs.EvalStatusComplete
	})
	if m := ev.FailedTGAllocs["web"]; m == nil || len(serverAllocs(t, srv, "web")) != 0 {
		t.Fatalf("eval %+v: want a placement failure and no allocation while the driver is unhealthy", ev)
	}
	d.setHealthy(true)
	testutil.WaitFor(t, 10*time.Second, "the job placed and running once the driver is healthy", func() bool {
		return countStatus(serverAllocs(t, srv, "web"), structs.AllocClientStatusRunning) == 1
	})
}

// TestGarbageCollection: terminal allocations beyond gc_max_allocs are
// destroyed, oldest first: their tasks removed and their directories gone.
func TestGarbageCollection(t *testing.T) {
	srv := startServer(t)
	d := newFakeDriver()
	dir := t.TempDir()
	c := startClient(t, &Config{DataDir: dir, NodeName: "n1", RPC: InprocRPC(srv.RPC),
		Drivers: map[string]driver.Driver{"containerd": d}, MaxTerminalAllocs: 1, GCInterval: 50 * time.Millisecond})
	defer c.Shutdown()
	var reply structs.JobRegisterResponse
	if err := srv.RPC("Job.Register", &structs.JobRegisterRequest{Job: testJob(3)}, &reply); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "3 allocations running", func() bool {
		return countStatus(serverAllocs(t, srv, "web"), structs.AllocClientStatusRunning) == 3
	})
	var dereg structs.JobDeregisterResponse
	if err := srv.RPC("Job.Deregister", &structs.JobDeregisterRequest{JobID: "web"}, &dereg); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "all but one terminal allocation collected", func() bool {
		c.runnersMu.Lock()
		n := len(c.runners)
		c.runnersMu.Unlock()
		d.mu.Lock()
		destroyed := len(d.destroy)
		d.mu.Unlock()
		return n == 1 && destroyed >= 2
	})
	entries, err := os.ReadDir(filepath.Join(dir, "alloc"))
	if err != nil || len(entries) != 1 {
		t.Fatalf("alloc dirs left: %d (%v), want 1", len(entries), err)
	}
}

// TestRefusedStatusUpdateDropsOnlyItself: when the servers refuse a batch
// of status updates for one bad entry, the good ones of the batch still
// reach them.
func TestRefusedStatusUpdateDropsOnlyItself(t *testing.T) {
	srv := startServer(t)
	d := newFakeDriver()
	c := startClient(t, &Config{DataDir: t.TempDir(), NodeName: "n1", RPC: InprocRPC(srv.RPC),
		Drivers: map[string]driver.Driver{"containerd": d}})
	defer c.Shutdown()
	var reply structs.JobRegisterResponse
	if err := srv.RPC("Job.Register", &structs.JobRegisterRequest{Job: testJob(1)}, &reply); err != nil {
		t.Fatal(err)
	}
	var alloc *structs.Allocation
	testutil.WaitFor(t, 10*time.Second, "the allocation running", func() bool {
		allocs := serverAllocs(t, srv, "web")
		if countStatus(allocs, structs.AllocClientStatusRunning) == 1 {
			alloc = allocs[0]
		}
		return alloc != nil
	})
	// Both queued before the sender wakes: one batch.
	c.updates.mu.Lock()
	c.updates.pending[alloc.ID] = &structs.Allocation{ID: alloc.ID, ClientStatus: structs.AllocClientStatusRunning,
		ClientDescription: "reported beside a bad update", TaskStates: alloc.TaskStates}
	c.updates.mu.Unlock()
	c.updates.add(&structs.Allocation{ID: "not-an-alloc", ClientStatus: "bogus"})
	testutil.WaitFor(t, 10*time.Second, "the good update applied", func() bool {
		a, _ := srv.State().AllocByID(nil, alloc.ID)
		return a != nil && a.ClientDescription == "reported beside a bad update"
	})
}
