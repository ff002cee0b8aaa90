package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/skiffhq/skiff/internal/simnode"
	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/structs"
)

// BenchmarkNodeLoss is S7 with simulated nodes: 3 real server processes
// (default settings: heartbeat TTL at least 10 s and stretched to 50
// heartbeats/s, reconnect grace 2 s) and SKIFF_S7_NODES simulated nodes
// (1,000 by default) that hold liveness connections as real clients do. A
// job of one allocation per 5 nodes runs. Ten times, a node running one of
// its allocations dies (its connections close, as when a client process
// is killed); the benchmark times node down and the replacement running,
// and reports the median and p99 (the worst of ten).
//
// Then, for SKIFF_S7_SOAK (0 by default; the issue asks for 10m), the
// fleet lives on under a stream of job writes, and every node marked down
// that was not killed is a false down (reported; it must be 0). Read the
// figures from the reported metrics: the testing package cuts a
// benchmark's log short.
func BenchmarkNodeLoss(b *testing.B) {
	nodes := envInt("SKIFF_S7_NODES", 1000)
	soak, _ := time.ParseDuration(os.Getenv("SKIFF_S7_SOAK"))
	const kills = 10
	for n := 0; n < b.N; n++ {
		c := newCluster(b, 3, clusterOpts{})
		c.leader()
		var addrs []string
		for _, a := range c.agents {
			addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", a.rpc))
		}
		api := c.agents[0]
		ctx, cancel := context.WithCancel(context.Background())
		fleet, err := simnode.Start(ctx, simnode.Config{
			Servers: addrs, Count: nodes, Name: "s7", Liveness: true,
			Logger: hclog.New(&hclog.LoggerOptions{Name: "fleet", Level: hclog.Error, Output: logWriter{b}}),
		})
		if err != nil {
			b.Fatal(err)
		}
		// The baseline in the same run: three more nodes without liveness
		// connections, detected by the heartbeat TTL alone (what a
		// TTL-only design such as Nomad's does).
		ttlOnly, err := simnode.Start(ctx, simnode.Config{
			// In a datacenter of their own: idle nodes never report an
			// allocation running, so the job must not be placed on them.
			Servers: addrs, Count: 3, Name: "s7ttl", Idle: true, Datacenters: []string{"dc-ttl"},
			Logger: hclog.New(&hclog.LoggerOptions{Name: "ttl", Level: hclog.Error, Output: logWriter{b}}),
		})
		if err != nil {
			b.Fatal(err)
		}
		count := max(nodes/5, kills+1)
		job := simJob("s7", count)
		if _, err := call(context.Background(), "PUT", api.addr()+"/v1/jobs", map[string]any{"Job": job}, nil); err != nil {
			b.Fatal(err)
		}
		// running returns the job's allocations desired to run and
		// running, once there are count of them and none on avoid.
		running := func(avoid map[string]bool) ([]*structs.AllocListStub, bool) {
			var allocs []*structs.AllocListStub
			if _, err := call(context.Background(), "GET", api.addr()+"/v1/job/s7/allocations?stale", nil, &allocs); err != nil {
				return nil, false
			}
			var live []*structs.AllocListStub
			for _, a := range allocs {
				if a.DesiredStatus == structs.AllocDesiredStatusRun && a.ClientStatus == structs.AllocClientStatusRunning {
					if avoid[a.NodeID] {
						return nil, false
					}
					live = append(live, a)
				}
			}
			return live, len(live) == count
		}
		// dumpStuck logs what the servers and the simulated nodes know of
		// allocations not running (a diagnosis of a slow setup or kill).
		dumpStuck := func() {
			var allocs []*structs.AllocListStub
			_, _ = call(context.Background(), "GET", api.addr()+"/v1/job/s7/allocations", nil, &allocs)
			for _, a := range allocs {
				if a.ClientStatus == structs.AllocClientStatusRunning || a.DesiredStatus != structs.AllocDesiredStatusRun {
					continue
				}
				var full structs.Allocation
				_, _ = call(context.Background(), "GET", api.addr()+"/v1/allocation/"+a.ID, nil, &full)
				var node structs.Node
				_, _ = call(context.Background(), "GET", api.addr()+"/v1/node/"+a.NodeID, nil, &node)
				var simView map[string]string
				var trace simnode.PullTrace
				var live1 bool
				for _, sn := range fleet.Nodes() {
					if sn.ID() == a.NodeID {
						simView, trace, live1 = sn.Allocs(), sn.Trace(), sn.LivenessOpen()
					}
				}
				b.Logf("STUCK alloc %s desired %s client %s create %d modify %d allocmodify %d on node %s (status %s, modify %d); simnode sees %v, pulls %+v (in flight for %v), liveness %v",
					a.ID, a.DesiredStatus, a.ClientStatus, full.CreateIndex, full.ModifyIndex, full.AllocModifyIndex, a.NodeID, node.Status, node.ModifyIndex, simView, trace, time.Since(trace.PullSince), live1)
			}
		}
		var live []*structs.AllocListStub
		start, dumped := time.Now(), false
		testutil.WaitFor(b, 2*time.Minute, fmt.Sprintf("%d allocations running on %d nodes", count, nodes), func() bool {
			var ok bool
			live, ok = running(nil)
			if !ok && time.Since(start) > 30*time.Second && !dumped {
				dumped = true
				dumpStuck()
			}
			return ok
		})
		// Steady state first: every node holds its liveness connection (a
		// node killed before its connection opened is found by its TTL).
		pollFor(b, time.Minute, "every node's liveness connection open", func() bool {
			for _, sn := range fleet.Nodes() {
				if !sn.LivenessOpen() {
					return false
				}
			}
			return true
		})
		byID := map[string]*simnode.Node{}
		for _, sn := range fleet.Nodes() {
			byID[sn.ID()] = sn
		}
		killed := map[string]bool{}
		var toDown, toRunning []time.Duration
		b.ResetTimer()
		for k := range kills {
			var victim *simnode.Node
			for _, a := range live {
				if !killed[a.NodeID] {
					victim = byID[a.NodeID]
					break
				}
			}
			killed[victim.ID()] = true
			wasOpen := victim.LivenessOpen()
			start := time.Now()
			victim.Kill()
			killTook := time.Since(start)
			pollFor(b, 5*time.Minute, "the dead node down", func() bool {
				return nodeStatusOf(api, victim.ID()) == structs.NodeStatusDown
			})
			toDown = append(toDown, time.Since(start))
			dumped = false
			pollFor(b, 5*time.Minute, "its allocations running elsewhere", func() bool {
				var ok bool
				live, ok = running(killed)
				if !ok && time.Since(start) > 30*time.Second && !dumped {
					dumped = true
					dumpStuck()
				}
				return ok
			})
			toRunning = append(toRunning, time.Since(start))
			b.Logf("kill %d: down %s, replaced %s (the kill itself %s; liveness connection open %v)", k+1, toDown[k].Round(time.Millisecond), toRunning[k].Round(time.Millisecond), killTook.Round(time.Millisecond), wasOpen)
			if toDown[k] > 10*time.Second || os.Getenv("SKIFF_S7_DUMP") != "" {
				// Slow: keep the servers' logs for a look.
				for _, a := range c.agents {
					path := filepath.Join(os.TempDir(), fmt.Sprintf("skiff-s7-kill%d-%s.log", k+1, a.name))
					_ = os.WriteFile(path, []byte(a.tail(1<<30)), 0o644)
					b.Logf("kill %d was slow (node %s); %s's log is in %s", k+1, victim.ID(), a.name, path)
				}
			}
		}
		b.StopTimer()
		var ttlDown []time.Duration
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, sn := range ttlOnly.Nodes() {
			killed[sn.ID()] = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				sn.Kill()
				// (pollFor fails the benchmark, which only its own
				// goroutine may do.)
				for time.Since(start) < 10*time.Minute && nodeStatusOf(api, sn.ID()) != structs.NodeStatusDown {
					time.Sleep(20 * time.Millisecond)
				}
				mu.Lock()
				ttlDown = append(ttlDown, time.Since(start))
				mu.Unlock()
			}()
		}
		wg.Wait()
		b.ReportMetric(percentile(ttlDown, 0.5).Seconds(), "ttl-only-down-p50-s")
		b.Logf("S7 baseline, same run: 3 nodes without liveness connections (heartbeat TTL only) down after %v", ttlDown)
		b.ReportMetric(percentile(toDown, 0.5).Seconds(), "down-p50-s")
		b.ReportMetric(percentile(toDown, 0.99).Seconds(), "down-p99-s")
		b.ReportMetric(percentile(toRunning, 0.5).Seconds(), "replaced-p50-s")
		b.ReportMetric(percentile(toRunning, 0.99).Seconds(), "replaced-p99-s")
		b.Logf("S7 %d simulated nodes, %d kills: node down p50 %s p99 %s; replacement running p50 %s p99 %s",
			nodes, kills, percentile(toDown, 0.5).Round(time.Millisecond), percentile(toDown, 0.99).Round(time.Millisecond),
			percentile(toRunning, 0.5).Round(time.Millisecond), percentile(toRunning, 0.99).Round(time.Millisecond))

		if soak > 0 {
			writes := soakWrites(b, api, soak)
			falseDown := 0
			var list []*structs.NodeListStub
			if _, err := call(context.Background(), "GET", api.addr()+"/v1/nodes", nil, &list); err != nil {
				b.Fatal(err)
			}
			for _, nd := range list {
				if nd.Status != structs.NodeStatusReady && !killed[nd.ID] {
					falseDown++
					// Benchmark logs are cut short: the servers' lines about
					// the node go to a file.
					var lines []string
					for _, a := range c.agents {
						for _, line := range strings.Split(a.tail(1<<30), "\n") {
							if strings.Contains(line, nd.ID) {
								lines = append(lines, a.name+": "+line)
							}
						}
					}
					path := filepath.Join(os.TempDir(), "skiff-s7-false-down-"+nd.Name+".log")
					_ = os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
					b.Logf("false down: node %s (%s) is %s; the servers' lines about it are in %s", nd.Name, nd.ID, nd.Status, path)
				}
			}
			st := fleet.Stats()
			b.ReportMetric(float64(falseDown), "false-down")
			b.Logf("S7 soak %s under %d job writes: %d nodes not ready that were not killed (heartbeats %d, errors %d)",
				soak, writes, falseDown, st.Heartbeats, st.HeartbeatErrors)
			if falseDown > 0 {
				b.Errorf("%d false downs during the soak", falseDown)
			}
		}
		fleet.Close()
		ttlOnly.Close()
		cancel()
	}
}

// soakWrites registers and updates small jobs through the API, a few at a
// time, for d; it returns how many writes were acknowledged.
func soakWrites(b *testing.B, api *agentProc, d time.Duration) int64 {
	var acked atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				j := simJob(fmt.Sprintf("soak-%d-%d", w, i%20), 0)
				j.Meta = map[string]string{"i": fmt.Sprint(i)}
				if _, err := call(context.Background(), "PUT", api.addr()+"/v1/jobs", map[string]any{"Job": j}, nil); err == nil {
					acked.Add(1)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	return acked.Load()
}
