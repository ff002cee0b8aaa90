package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/skiffhq/skiff/internal/simnode"
	"github.com/skiffhq/skiff/server"
	"github.com/skiffhq/skiff/state"
	"github.com/skiffhq/skiff/structs"
)

// placementRun is one S3 or C1M run: a single server with raft on disk
// (or on tmpfs), a fleet of simulated nodes, and jobs registered as fast
// as the server takes them.
type placementRun struct {
	nodes, jobs, count int
	racks              int
	cpu, mem, diskMB   int  // what each allocation asks
	constrain          bool // ${meta.rack} set_contains_any the first half of the racks
	raftParent         string
	idle               bool // nodes only heartbeat: they neither pull nor report
	registrars         int
	timeout            time.Duration
	// settle: once everything is placed, take a raft snapshot and
	// measure the live heap again after it: without a snapshot being
	// written, which holds the state of its start (and the tree nodes
	// that writes have replaced since) until it ends.
	settle bool
}

// placementResult is what a run measured. Placements are allocations
// committed through raft, as the job summaries of the server's state count
// them (pending or later, on any node).
type placementResult struct {
	placed           int
	elapsed          time.Duration // first registration -> last placement committed
	byTenth          []float64     // placements/s over each tenth, in order: [0] from the first registration, [9] to the last placement
	cpu              time.Duration // the process's CPU time (server, simulated nodes, sampler) over elapsed
	scored           float64       // nodes scored per placement, from the allocations' metrics
	nodesUp          time.Duration // fleet registration
	heapBase         uint64        // live heap after the nodes registered, before any job
	heapEnd          uint64        // live heap once everything was placed
	heapSettled      uint64        // live heap after a raft snapshot taken then (settle runs only)
	sharedJob        bool          // allocations of one job share one *Job in state
	fleet            simnode.Stats
	raftLastIndex    uint64
	registerDuration time.Duration // first -> last registration acknowledged
	lost             int           // allocations lost (their node was marked down) by the end
	downNodes        int           // nodes not ready at the end
	planBytes        int           // the raft entry of the first job's plan, as the plan applier writes it
	planBytesNoJob   int           // the same entry with the allocations' Job left out
}

// envInt reads a positive integer from the environment, or def.
func envInt(tb testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(strings.ReplaceAll(v, "_", ""))
	if err != nil || n <= 0 {
		tb.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// startPlacementServer starts one in-process server (raft voter, boltdb
// log with fsync, RPC on loopback) with the default timing, its data dir
// under parent ("" for the test's temp dir), and waits until it leads.
func startPlacementServer(tb testing.TB, parent string) *server.Server {
	tb.Helper()
	dir := tb.TempDir()
	if parent != "" {
		d, err := os.MkdirTemp(parent, "skiff-bench-")
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { os.RemoveAll(d) })
		dir = d
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	cfg := server.DefaultConfig()
	cfg.NodeName, cfg.DataDir, cfg.RPCListener = "bench", dir, ln
	cfg.SerfBindAddr, cfg.BootstrapExpect, cfg.GossipProfile = "127.0.0.1", 1, "local"
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "bench", Level: hclog.Error, Output: os.Stderr})
	if n := envInt(tb, "SKIFF_BENCH_SCHEDULERS", 0); n > 0 {
		cfg.NumSchedulers = n // the server's num_schedulers; default one per core
	}
	s, err := server.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Shutdown)
	deadline := time.Now().Add(20 * time.Second)
	for !s.IsLeader() {
		if time.Now().After(deadline) {
			tb.Fatal("the bench server did not become leader")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return s
}

// placementJob is the workload of BENCHMARKS.md (scheduler/bench_test.go's
// shape): one group of count, one containerd task, in dc-1 and dc-2,
// optionally constrained to the first half of the racks.
func placementJob(id string, r placementRun) *structs.Job {
	j := &structs.Job{
		ID: id, Datacenters: []string{"dc-1", "dc-2"},
		TaskGroups: []*structs.TaskGroup{{
			Name: placementGroup, Count: r.count,
			Tasks: []*structs.Task{{
				Name: "app", Driver: "containerd",
				Config:    map[string]any{"image": "nginx:1.27"},
				Resources: &structs.Resources{CPU: r.cpu, MemoryMB: r.mem},
			}},
		}},
	}
	if r.diskMB > 0 {
		j.TaskGroups[0].EphemeralDisk = &structs.EphemeralDisk{SizeMB: r.diskMB}
	}
	if r.constrain {
		var half []string
		for i := range r.racks / 2 {
			half = append(half, fmt.Sprintf("r%d", i))
		}
		j.Constraints = []*structs.Constraint{{LTarget: "${meta.rack}", Operand: structs.ConstraintSetContainsAny, RTarget: strings.Join(half, ",")}}
	}
	return j
}

// placementGroup is the name of the one group of every job of a run.
const placementGroup = "web"

// placedCount sums the live allocations of every job summary (starting
// or running: placed and not lost), and separately the lost ones, which
// a node that missed its heartbeat leaves behind. Every job has the one
// group placementJob gives it, looked up by name: starting an iteration
// over the summary's map was half of the sampler's CPU at 10,000 jobs.
func placedCount(st *state.Store) (live, lost int) {
	sums, err := st.Snapshot().JobSummaries(nil)
	if err != nil {
		return 0, 0
	}
	for _, s := range sums {
		g := s.Summary[placementGroup]
		live += g.Starting + g.Running
		lost += g.Lost
	}
	return live, lost
}

type progress struct {
	at     time.Duration
	placed int
}

// runPlacement does one run and returns what it measured. b's timer, if
// tb is a *testing.B, runs only from the first registration to the last
// placement.
func runPlacement(tb testing.TB, r placementRun) *placementResult {
	tb.Helper()
	b, _ := tb.(*testing.B)
	if b != nil {
		b.StopTimer()
	}
	s := startPlacementServer(tb, r.raftParent)
	res := &placementResult{}

	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	fleet, err := simnode.Start(ctx, simnode.Config{
		Servers: []string{s.RPCAddr()}, Count: r.nodes, Name: "bench",
		Datacenters: []string{"dc-1", "dc-2"}, Racks: r.racks, NodeClass: "standard",
		Idle: r.idle, RegisterConcurrency: 64,
		Logger: hclog.New(&hclog.LoggerOptions{Name: "fleet", Level: hclog.Error, Output: os.Stderr}),
	})
	cancel()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(fleet.Close)
	res.nodesUp = time.Since(t0)
	res.heapBase = liveHeap()

	total := r.jobs * r.count
	var samples []progress
	var registered atomic.Int64
	var regDone atomic.Int64 // nanoseconds since start when the last registration was acknowledged
	next := atomic.Int64{}
	var wg sync.WaitGroup
	errs := make(chan error, r.registrars)
	if b != nil {
		b.StartTimer()
	}
	start, cpu0 := time.Now(), processCPU()
	for range r.registrars {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= r.jobs {
					return
				}
				var reply structs.JobRegisterResponse
				req := &structs.JobRegisterRequest{Job: placementJob(fmt.Sprintf("job-%06d", i), r)}
				if err := s.RPC("Job.Register", req, &reply); err != nil {
					errs <- fmt.Errorf("register job %d: %w", i, err)
					return
				}
				if registered.Add(1) == int64(r.jobs) {
					regDone.Store(int64(time.Since(start)))
				}
			}
		}()
	}
	// Sample the placed count until all is placed: every 20 ms, or 20 us
	// per job when that is longer. A sample reads every job summary, and at
	// 10,000 jobs sampling every 20 ms took a tenth of the machine from
	// the server it measures.
	deadline := start.Add(r.timeout)
	tick := time.NewTicker(max(20*time.Millisecond, time.Duration(r.jobs)*20*time.Microsecond))
	for {
		placed, _ := placedCount(s.State())
		samples = append(samples, progress{time.Since(start), placed})
		if placed >= total {
			break
		}
		select {
		case err := <-errs:
			tick.Stop()
			wg.Wait()
			tb.Fatal(err)
		default:
		}
		if time.Now().After(deadline) {
			tick.Stop()
			wg.Wait()
			tb.Fatalf("after %s only %d of %d allocations placed (%d of %d jobs registered)", r.timeout, placed, total, registered.Load(), r.jobs)
		}
		<-tick.C
	}
	tick.Stop()
	res.elapsed, res.cpu = samples[len(samples)-1].at, processCPU()-cpu0
	if b != nil {
		b.StopTimer()
	}
	wg.Wait()
	res.placed = samples[len(samples)-1].placed
	res.registerDuration = time.Duration(regDone.Load())
	res.byTenth = eachTenth(samples, total)
	res.scored, res.sharedJob = scoredPerPlacement(tb, s.State(), r.jobs)
	res.planBytes, res.planBytesNoJob = planEntrySize(tb, s.State())
	checkCounts(tb, s.State(), r.jobs, r.count)
	res.fleet = fleet.Stats()
	_, res.lost = placedCount(s.State())
	res.downNodes = notReady(tb, s.State())
	res.raftLastIndex = s.Raft().LastIndex()
	res.heapEnd = liveHeap()
	if r.settle {
		// raft runs one snapshot at a time: this one waits for any
		// that the log's growth started, then writes its own.
		if err := s.Raft().Snapshot().Error(); err != nil {
			tb.Logf("raft snapshot before the settled heap: %v", err)
		}
		res.heapSettled = liveHeap()
	}
	if path := os.Getenv("SKIFF_HEAP_PROFILE"); path != "" {
		// The live heap with everything placed, for "go tool pprof".
		if f, err := os.Create(path); err == nil {
			_ = pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	return res
}

// eachTenth returns the placement rate over each tenth of the placements
// (0 for a tenth that ended in the same sample as the one before): a
// timeline of the run, to see where it slowed down.
func eachTenth(samples []progress, total int) []float64 {
	rates := make([]float64, 10)
	prev := progress{}
	for k := range rates {
		for _, p := range samples {
			if float64(p.placed) >= float64(k+1)/10*float64(total) || p == samples[len(samples)-1] {
				if d := p.at - prev.at; d > 0 {
					rates[k] = float64(p.placed-prev.placed) / d.Seconds()
				}
				prev = p
				break
			}
		}
	}
	return rates
}

// timeline is the log line of a run's tenths and CPU time.
func (res *placementResult) timeline() string {
	return fmt.Sprintf("placements/s by tenth %.0f; CPU %s (%.2f cores)", res.byTenth, res.cpu.Round(time.Second), res.cpu.Seconds()/res.elapsed.Seconds())
}

// scoredPerPlacement averages NodesEvaluated - NodesFiltered -
// NodesExhausted (the nodes the scheduler scored, as
// scheduler/bench_test.go counts them) over the allocations of up to 20
// jobs spread over the run, and reports whether the allocations of a job
// share one *Job in state (or each holds its own decoded copy).
func scoredPerPlacement(tb testing.TB, st *state.Store, jobs int) (float64, bool) {
	snap := st.Snapshot()
	scored, n := 0, 0
	shared := true
	step := max(1, jobs/20)
	for i := 0; i < jobs; i += step {
		allocs, err := snap.AllocsByJob(nil, structs.DefaultNamespace, fmt.Sprintf("job-%06d", i), false)
		if err != nil {
			tb.Fatal(err)
		}
		for _, a := range allocs {
			if m := a.Metrics; m != nil {
				scored += m.NodesEvaluated - m.NodesFiltered - m.NodesExhausted
				n++
			}
			if a.Job != allocs[0].Job {
				shared = false
			}
		}
	}
	if n == 0 {
		return 0, shared
	}
	return float64(scored) / float64(n), shared
}

// planEntrySize encodes the plan result of the first job as the plan
// applier commits it (every allocation with its Job), and again with the
// allocations' Job left out, to show what the per-allocation copies cost.
func planEntrySize(tb testing.TB, st *state.Store) (withJob, withoutJob int) {
	allocs, err := st.Snapshot().AllocsByJob(nil, structs.DefaultNamespace, "job-000000", false)
	if err != nil || len(allocs) == 0 {
		return 0, 0
	}
	size := func(strip bool) int {
		req := &structs.ApplyPlanResultsRequest{EvalID: allocs[0].EvalID}
		for _, a := range allocs {
			c := a.Copy()
			c.ClientStatus, c.TaskStates = structs.AllocClientStatusPending, nil // as placed, before any client report
			if strip {
				c.Job = nil
			}
			req.Allocs = append(req.Allocs, c)
		}
		buf, err := structs.Encode(structs.ApplyPlanResultsRequestType, req)
		if err != nil {
			tb.Fatal(err)
		}
		return len(buf)
	}
	return size(false), size(true)
}

// notReady counts the nodes that are not ready.
func notReady(tb testing.TB, st *state.Store) int {
	nodes, err := st.Snapshot().Nodes(nil)
	if err != nil {
		tb.Fatal(err)
	}
	n := 0
	for _, nd := range nodes {
		if nd.Status != structs.NodeStatusReady {
			n++
		}
	}
	return n
}

// checkCounts reports every job with more or fewer live allocations
// than its count: the invariant "never more running than count".
func checkCounts(tb testing.TB, st *state.Store, jobs, count int) {
	snap := st.Snapshot()
	bad := 0
	for i := range jobs {
		id := fmt.Sprintf("job-%06d", i)
		allocs, err := snap.AllocsByJob(nil, structs.DefaultNamespace, id, false)
		if err != nil {
			tb.Fatal(err)
		}
		live, names := 0, map[string]int{}
		for _, a := range allocs {
			if !a.TerminalStatus() {
				live++
				names[a.Name]++
			}
		}
		if live != count {
			if bad++; bad <= 5 {
				dup := 0
				for _, c := range names {
					dup += c - 1
				}
				tb.Errorf("job %s has %d live allocations (%d duplicate names), want %d", id, live, dup, count)
			}
		}
	}
	if bad > 5 {
		tb.Errorf("... and %d more jobs with the wrong number of allocations", bad-5)
	}
}

// liveHeap is the process's live heap after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkPlacementThroughRaft is S3: placements per second through raft
// with every plan applied, on one server with 5,000 simulated nodes
// (BENCHMARKS.md's workload: 25 racks, dc-1/dc-2 alternating, a
// set_contains_any constraint on the first half of the racks), 1,000 jobs
// x 100 allocations of 100 MHz / 128 MB registered as fast as the server
// takes them by 4 in-process callers. The baseline in the same run is
// raft=tmpfs: the same with the raft log and snapshots on tmpfs, so that
// fsync costs nothing (see README for why not a raft-free apply).
// clients=report has the nodes pull and report every allocation running,
// which adds one Node.UpdateAlloc raft write per node per plan.
//
// Sizes: SKIFF_S3_NODES, SKIFF_S3_JOBS, SKIFF_S3_COUNT. Run with
// -benchtime 1x: one iteration is a whole run.
func BenchmarkPlacementThroughRaft(b *testing.B) {
	r := placementRun{
		nodes: envInt(b, "SKIFF_S3_NODES", 5000), jobs: envInt(b, "SKIFF_S3_JOBS", 1000),
		count: envInt(b, "SKIFF_S3_COUNT", 100), racks: 25, cpu: 100, mem: 128, constrain: true,
		registrars: 4, timeout: 10 * time.Minute,
	}
	for _, v := range []struct {
		name, parent string
		idle         bool
	}{{"raft=disk/clients=idle", "", true}, {"raft=tmpfs/clients=idle", "/dev/shm", true}, {"raft=disk/clients=report", "", false}} {
		b.Run(v.name, func(b *testing.B) {
			if v.parent != "" {
				if fi, err := os.Stat(v.parent); err != nil || !fi.IsDir() {
					b.Skipf("no %s on this machine", v.parent)
				}
			}
			run := r
			run.raftParent, run.idle = v.parent, v.idle
			var placed int
			var elapsed time.Duration
			var first, last, scored float64
			lost := 0
			for range b.N {
				res := runPlacement(b, run)
				placed += res.placed
				elapsed += res.elapsed
				first += res.byTenth[0] / float64(b.N)
				last += res.byTenth[9] / float64(b.N)
				scored += res.scored / float64(b.N)
				b.Logf("%d nodes up in %s; %d jobs x %d placed in %s (registrations acknowledged in %s); raft last index %d; "+
					"allocations share their job: %v; plan entry %d KB (%d KB without per-allocation jobs); lost allocations %d, nodes not ready %d; fleet %+v",
					run.nodes, res.nodesUp.Round(time.Millisecond), run.jobs, run.count, res.elapsed.Round(time.Millisecond),
					res.registerDuration.Round(time.Millisecond), res.raftLastIndex, res.sharedJob, res.planBytes>>10, res.planBytesNoJob>>10,
					res.lost, res.downNodes, res.fleet)
				b.Log(res.timeline())
				lost += res.lost
			}
			b.ReportMetric(float64(placed)/elapsed.Seconds(), "placements/s")
			b.ReportMetric(first, "first-tenth/s")
			b.ReportMetric(last, "last-tenth/s")
			if first > 0 {
				b.ReportMetric(100*(1-last/first), "decay-%")
			}
			b.ReportMetric(scored, "scored/placement")
			b.ReportMetric(float64(lost)/float64(b.N), "lost-allocs")
		})
	}
}

// BenchmarkC1M is the C1M figure: SKIFF_C1M_ALLOCS allocations (1,000,000
// for the real figure) in jobs of SKIFF_C1M_COUNT (default 100) on
// SKIFF_C1M_NODES (default 5,000) idle simulated nodes, one server with
// raft on disk, no constraint, allocations of 20 MHz / 32 MB / 128 MB disk
// so that 1M fit. It reports the total time, placements/s, and the live
// heap (after a GC) per 10,000 allocations: the growth from the heap
// with the nodes registered to the heap with everything placed, which
// counts the jobs, evaluations, summaries and raft's log cache too; and
// the same after a raft snapshot taken once everything is placed
// (settled-heap-MB/10k-allocs): a snapshot being written when the first
// measure is taken keeps the state of its start alive. It is skipped
// unless SKIFF_C1M_ALLOCS is set.
func BenchmarkC1M(b *testing.B) {
	if os.Getenv("SKIFF_C1M_ALLOCS") == "" {
		b.Skip("set SKIFF_C1M_ALLOCS (e.g. 1000000) to run C1M")
	}
	count := envInt(b, "SKIFF_C1M_COUNT", 100)
	allocs := envInt(b, "SKIFF_C1M_ALLOCS", 1_000_000)
	r := placementRun{
		nodes: envInt(b, "SKIFF_C1M_NODES", 5000), jobs: max(1, allocs/count), count: count,
		racks: 25, cpu: 20, mem: 32, diskMB: 128, idle: true, registrars: 4, timeout: 30 * time.Minute, settle: true,
	}
	for range b.N {
		res := runPlacement(b, r)
		// MB of growth over the heap with the nodes, per 10,000 allocations.
		perTenK := func(heap uint64) float64 {
			return float64(heap-min(heap, res.heapBase)) / float64(res.placed) * 10000 / (1 << 20)
		}
		b.Logf("%d allocations (%d jobs x %d) on %d nodes in %s; first tenth %.0f/s, last tenth %.0f/s; heap %d MB with the nodes, %d MB at the end, %d MB after a snapshot; "+
			"raft last index %d; allocations share their job: %v; lost allocations %d, nodes not ready %d; fleet %+v",
			res.placed, r.jobs, r.count, r.nodes, res.elapsed.Round(time.Millisecond), res.byTenth[0], res.byTenth[9],
			res.heapBase>>20, res.heapEnd>>20, res.heapSettled>>20, res.raftLastIndex, res.sharedJob, res.lost, res.downNodes, res.fleet)
		b.Log(res.timeline())
		b.ReportMetric(res.elapsed.Seconds(), "total-s")
		b.ReportMetric(res.cpu.Seconds(), "cpu-s")
		b.ReportMetric(float64(res.placed)/res.elapsed.Seconds(), "placements/s")
		b.ReportMetric(res.byTenth[0], "first-tenth/s")
		b.ReportMetric(res.byTenth[9], "last-tenth/s")
		b.ReportMetric(perTenK(res.heapEnd), "heap-MB/10k-allocs")
		b.ReportMetric(perTenK(res.heapSettled), "settled-heap-MB/10k-allocs")
		b.ReportMetric(float64(res.heapEnd)/(1<<20), "heap-MB")
		b.ReportMetric(float64(res.lost), "lost-allocs")
	}
}
