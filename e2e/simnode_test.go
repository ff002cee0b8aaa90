package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/skiffhq/skiff/internal/simnode"
	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/structs"
)

// The simulated nodes of TestSimulatedNodesScheduling are small, so that
// capacity matters: three allocations of simAllocMHz/simAllocMB fit.
const (
	simNodeMHz, simNodeMB   = 1000, 2048
	simAllocMHz, simAllocMB = 300, 256
)

func simJob(id string, count int) *structs.Job {
	return &structs.Job{
		ID: id, Datacenters: []string{"dc1"},
		TaskGroups: []*structs.TaskGroup{{
			Name: "web", Count: count,
			Tasks: []*structs.Task{{
				Name: "server", Driver: "containerd", Config: map[string]any{"image": "busybox:1.36"},
				Resources: &structs.Resources{CPU: simAllocMHz, MemoryMB: simAllocMB},
			}},
		}},
	}
}

// TestSimulatedNodesScheduling runs 3 real server processes and 20
// simulated client nodes that speak the client RPCs to them, and drives a
// service job through the HTTP API: placed and reported running, scaled
// up and down, moved off a node that dies, carried through a leader
// SIGKILL, and stopped. After every step no node holds more than fits.
func TestSimulatedNodesScheduling(t *testing.T) {
	c := newCluster(t, 3, clusterOpts{})
	leader := c.leader()
	var addrs []string
	var api *agentProc // a follower: the HTTP writes are forwarded
	for _, a := range c.agents {
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", a.rpc))
		if a != leader {
			api = a
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fleet, err := simnode.Start(ctx, simnode.Config{
		Servers: addrs, Count: 20, Name: "e2e", CPUMHz: simNodeMHz, MemoryMB: simNodeMB, Liveness: true,
		Logger: hclog.New(&hclog.LoggerOptions{Name: "fleet", Level: hclog.Warn, Output: logWriter{t}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()
	testutil.WaitFor(t, 10*time.Second, "20 ready nodes", func() bool {
		var nodes []*structs.NodeListStub
		if _, err := call(ctx, "GET", api.addr()+"/v1/nodes?stale", nil, &nodes); err != nil {
			return false
		}
		ready := 0
		for _, n := range nodes {
			if n.Status == structs.NodeStatusReady {
				ready++
			}
		}
		return ready == 20
	})

	put := func(count int) {
		t.Helper()
		if _, err := call(context.Background(), "PUT", api.addr()+"/v1/jobs", map[string]any{"Job": simJob("web", count)}, nil); err != nil {
			t.Fatalf("register web with count %d: %v", count, err)
		}
	}
	// waitRunning waits until exactly want allocations are desired to run
	// and reported running, none of them on node deadNode, and returns all
	// of the job's allocations.
	waitRunning := func(want int, deadNode string) []*structs.AllocListStub {
		t.Helper()
		var allocs []*structs.AllocListStub
		testutil.WaitFor(t, 20*time.Second, fmt.Sprintf("%d allocations running", want), func() bool {
			allocs = jobAllocs(t, c)
			live, running := 0, 0
			for _, a := range allocs {
				if a.DesiredStatus == structs.AllocDesiredStatusRun && !terminalStub(a) {
					if a.NodeID == deadNode {
						return false
					}
					live++
					if a.ClientStatus == structs.AllocClientStatusRunning {
						running++
					}
				}
			}
			return live == want && running == want
		})
		checkCapacity(t, allocs)
		return allocs
	}

	start := time.Now()
	put(10)
	first := waitRunning(10, "")
	t.Logf("10 allocations running %s after the register", time.Since(start).Round(time.Millisecond))
	for _, a := range first {
		if ts := a.TaskStates["server"]; ts == nil || ts.State != "running" {
			t.Errorf("alloc %s task state = %+v, want running", a.ID, ts)
		}
	}

	put(15)
	up := waitRunning(15, "")
	kept := map[string]bool{}
	for _, a := range up {
		kept[a.ID] = true
	}
	for _, a := range first {
		if !kept[a.ID] || a.ClientStatus != structs.AllocClientStatusRunning {
			t.Errorf("scaling up replaced or stopped alloc %s", a.ID)
		}
	}

	put(5)
	testutil.WaitFor(t, 20*time.Second, "the 10 surplus allocations complete", func() bool {
		complete := 0
		for _, a := range jobAllocs(t, c) {
			if a.DesiredStatus == structs.AllocDesiredStatusStop && a.ClientStatus == structs.AllocClientStatusComplete {
				complete++
			}
		}
		return complete == 10
	})
	down := waitRunning(5, "")

	// A node with a running allocation dies: it is marked down after its
	// TTL, its allocation is lost and replaced on another node.
	var victim *simnode.Node
	for _, a := range down {
		if a.ClientStatus == structs.AllocClientStatusRunning {
			for _, n := range fleet.Nodes() {
				if n.ID() == a.NodeID {
					victim = n
				}
			}
			break
		}
	}
	killedAt := time.Now()
	victim.Kill()
	testutil.WaitFor(t, 20*time.Second, "the dead node marked down", func() bool {
		var n structs.Node
		_, err := call(context.Background(), "GET", api.addr()+"/v1/node/"+victim.ID()+"?stale", nil, &n)
		return err == nil && n.Status == structs.NodeStatusDown
	})
	t.Logf("node marked down %s after it stopped", time.Since(killedAt).Round(time.Millisecond))
	moved := waitRunning(5, victim.ID())
	t.Logf("5 allocations running again %s after the node stopped", time.Since(killedAt).Round(time.Millisecond))
	lost := 0
	for _, a := range moved {
		if a.NodeID != victim.ID() {
			continue
		}
		if a.ClientStatus == structs.AllocClientStatusLost {
			lost++
		} else if !terminalStub(a) {
			t.Errorf("alloc %s on the dead node is %s/%s, want lost", a.ID, a.DesiredStatus, a.ClientStatus)
		}
	}
	if lost == 0 {
		t.Errorf("no allocation on the dead node was marked lost")
	}

	// The leader dies; the job is stopped through a surviving server and
	// the nodes, which move to the servers that are left, report every
	// allocation complete.
	c.leader().kill()
	c.leader()
	for _, a := range c.agents {
		if a.running() {
			api = a
		}
	}
	if _, err := call(context.Background(), "DELETE", api.addr()+"/v1/job/web", nil, nil); err != nil {
		t.Fatalf("stop web: %v", err)
	}
	testutil.WaitFor(t, 30*time.Second, "every allocation terminal", func() bool {
		for _, a := range jobAllocs(t, c) {
			if !terminalStub(a) || a.DesiredStatus == structs.AllocDesiredStatusRun {
				return false
			}
		}
		return true
	})
	st := fleet.Stats()
	t.Logf("fleet: %+v; whole test %s", st, time.Since(start).Round(time.Millisecond))
	// 10 placed, 5 more on the scale up, at least one replacement; 10
	// stopped by the scale down, the rest when the job stopped.
	if st.Running < 16 || st.Complete < 10 {
		t.Errorf("fleet reported %d running and %d complete, want >= 16 and >= 10", st.Running, st.Complete)
	}
}

// jobAllocs lists the allocations of job "web" from any live server.
func jobAllocs(t *testing.T, c *cluster) []*structs.AllocListStub {
	t.Helper()
	for _, a := range c.agents {
		if !a.running() {
			continue
		}
		var allocs []*structs.AllocListStub
		if _, err := call(context.Background(), "GET", a.addr()+"/v1/job/web/allocations", nil, &allocs); err == nil {
			return allocs
		}
	}
	return nil
}

func terminalStub(a *structs.AllocListStub) bool {
	switch a.ClientStatus {
	case structs.AllocClientStatusComplete, structs.AllocClientStatusFailed, structs.AllocClientStatusLost:
		return true
	}
	return false
}

// checkCapacity fails the test if the allocations the servers still want
// on a node ask for more than the node has.
func checkCapacity(t *testing.T, allocs []*structs.AllocListStub) {
	t.Helper()
	perNode := map[string]int{}
	for _, a := range allocs {
		if a.DesiredStatus == structs.AllocDesiredStatusRun && !terminalStub(a) {
			perNode[a.NodeID]++
		}
	}
	for id, n := range perNode {
		if n*simAllocMHz > simNodeMHz || n*simAllocMB > simNodeMB {
			t.Errorf("node %s holds %d allocations (%d MHz, %d MB), more than its %d MHz, %d MB",
				id, n, n*simAllocMHz, n*simAllocMB, simNodeMHz, simNodeMB)
		}
	}
}

type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
