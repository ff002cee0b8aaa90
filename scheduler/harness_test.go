package scheduler

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/state"
	"github.com/skiffhq/skiff/structs"
)

var _ State = (*state.Snapshot)(nil)

// testNow is the scheduler's clock in tests.
var testNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// harness is a real state store plus a recording Planner that applies
// plans to it, as the plan applier would.
type harness struct {
	t     testing.TB
	store *state.Store
	index uint64
	now   time.Time
	seed  uint64
	algo  string // Config.Algorithm
	// nodes is shared by every evaluation the harness processes, as the
	// server shares one, so every scheduler test also checks the cache.
	nodes *NodeCache

	plans   []*structs.Plan
	created []*structs.Evaluation
	updated []*structs.Evaluation
	// refuse lists nodes whose part of the next plans is refused, each
	// as many times as its count (-1: always).
	refuse map[string]int
	// untracked hides the store's log of usage writes from the scheduler,
	// which then reads every node's usage row for each evaluation.
	untracked bool
	// drop records nothing and applies nothing (benchmarks).
	drop    bool
	dropped *structs.Plan // the last dropped plan
}

func newHarness(t testing.TB) *harness {
	return &harness{t: t, store: state.New(), index: 100, now: testNow, refuse: map[string]int{}, nodes: &NodeCache{}}
}

func (h *harness) next() uint64 { h.index++; return h.index }

// snapshot is the state an evaluation sees.
func (h *harness) snapshot() State {
	if h.untracked {
		return untrackedSnapshot{Snapshot: h.store.Snapshot()}
	}
	return h.store.Snapshot()
}

// untrackedSnapshot is a snapshot without the log of usage writes (not a
// usageTracker): the scheduler reads every usage row each time. Its field
// UsageSince hides the snapshot's method of that name; everything else
// the scheduler may ask of a snapshot stays.
type untrackedSnapshot struct {
	*state.Snapshot
	UsageSince struct{}
}

var _ usageTracker = (*state.Snapshot)(nil)

// SubmitPlan implements Planner: it applies the plan minus refused nodes.
func (h *harness) SubmitPlan(p *structs.Plan) (*structs.PlanResult, State, error) {
	if h.drop {
		h.dropped = p
		return &structs.PlanResult{}, nil, nil
	}
	h.plans = append(h.plans, p)
	res := &structs.PlanResult{NodeUpdate: map[string][]*structs.Allocation{}, NodeAllocation: map[string][]*structs.Allocation{}}
	refused := map[string]bool{}
	for _, m := range []map[string][]*structs.Allocation{p.NodeUpdate, p.NodeAllocation} {
		for node := range m {
			if n := h.refuse[node]; n != 0 && !refused[node] {
				refused[node] = true
				if n > 0 {
					h.refuse[node]--
				}
			}
		}
	}
	var write []*structs.Allocation
	for _, pair := range []struct {
		in, out map[string][]*structs.Allocation
	}{{p.NodeUpdate, res.NodeUpdate}, {p.NodeAllocation, res.NodeAllocation}} {
		for _, node := range sortedNodeIDs(pair.in) {
			if !refused[node] {
				pair.out[node] = pair.in[node]
				write = append(write, pair.in[node]...)
			}
		}
	}
	if len(write) > 0 {
		if err := h.store.UpsertAllocs(h.next(), write); err != nil {
			return nil, nil, err
		}
	}
	if p.Deployment != nil {
		if err := h.store.UpsertPlanDeployment(h.next(), p.Deployment); err != nil { // as the FSM applies a plan
			return nil, nil, err
		}
	}
	res.AllocIndex = h.index
	if len(refused) > 0 {
		res.RefreshIndex = h.index
		return res, h.snapshot(), nil
	}
	return res, nil, nil
}

func sortedNodeIDs(m map[string][]*structs.Allocation) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// UpdateEval implements Planner.
func (h *harness) UpdateEval(e *structs.Evaluation) error {
	if h.drop {
		h.updated = append(h.updated[:0], e)
		return nil
	}
	h.updated = append(h.updated, e)
	return h.store.UpsertEvals(h.next(), []*structs.Evaluation{e})
}

// CreateEval implements Planner.
func (h *harness) CreateEval(e *structs.Evaluation) error {
	if h.drop {
		return nil
	}
	h.created = append(h.created, e)
	return h.store.UpsertEvals(h.next(), []*structs.Evaluation{e})
}

func (h *harness) addNodes(nodes ...*structs.Node) {
	h.t.Helper()
	for _, n := range nodes {
		n.ComputeClass() // as Node.Register does
		if err := h.store.UpsertNode(h.next(), n); err != nil {
			h.t.Fatal(err)
		}
	}
}

// addJob registers a job and returns the stored version.
func (h *harness) addJob(j *structs.Job) *structs.Job {
	h.t.Helper()
	if err := h.store.UpsertJob(h.next(), j); err != nil {
		h.t.Fatal(err)
	}
	out, err := h.store.JobByID(nil, j.Namespace, j.ID)
	if err != nil || out == nil {
		h.t.Fatalf("read back job %s: %v", j.ID, err)
	}
	return out
}

func (h *harness) addAllocs(allocs ...*structs.Allocation) {
	h.t.Helper()
	if err := h.store.UpsertAllocs(h.next(), allocs); err != nil {
		h.t.Fatal(err)
	}
}

// process runs an evaluation of job through a new scheduler.
func (h *harness) process(job *structs.Job, trigger string) *structs.Evaluation {
	h.t.Helper()
	e := &structs.Evaluation{
		ID: fmt.Sprintf("eval-%d", h.index), Namespace: job.Namespace, Priority: 50, Type: job.Type,
		TriggeredBy: trigger, JobID: job.ID, Status: structs.EvalStatusPending,
	}
	if err := h.store.UpsertEvals(h.next(), []*structs.Evaluation{e}); err != nil {
		h.t.Fatal(err)
	}
	s, err := New(job.Type, Config{State: h.snapshot(), Planner: h, Now: h.now, Seed: h.seed, Algorithm: h.algo, Nodes: h.nodes})
	if err != nil {
		h.t.Fatal(err)
	}
	if err := s.Process(e); err != nil {
		h.t.Fatalf("process: %v", err)
	}
	if len(h.updated) == 0 || h.updated[len(h.updated)-1].ID != e.ID {
		h.t.Fatalf("evaluation %s was not updated", e.ID)
	}
	return h.updated[len(h.updated)-1]
}

// lastPlan returns the last submitted plan (fails if none).
func (h *harness) lastPlan() *structs.Plan {
	h.t.Helper()
	if len(h.plans) == 0 {
		h.t.Fatal("no plan was submitted")
	}
	return h.plans[len(h.plans)-1]
}

// liveAllocs returns the job's allocations that are not terminal.
func (h *harness) liveAllocs(job *structs.Job) []*structs.Allocation {
	h.t.Helper()
	allocs, err := h.store.AllocsByJob(nil, job.Namespace, job.ID, true)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []*structs.Allocation
	for _, a := range allocs {
		if !a.TerminalStatus() {
			out = append(out, a)
		}
	}
	return out
}

// live returns the job's allocations that are not terminal, by name.
func (h *harness) live(job *structs.Job) map[string]*structs.Allocation {
	h.t.Helper()
	out := map[string]*structs.Allocation{}
	for _, a := range h.liveAllocs(job) {
		{
			if out[a.Name] != nil {
				h.t.Errorf("two live allocations named %s", a.Name)
			}
			out[a.Name] = a
		}
	}
	return out
}

// testNode returns node i: 4 cores x 3,500 MHz, 32,000 MB, 100 GiB, a
// healthy containerd driver, meta.rack r<i mod racks>, in dc1.
func testNode(i, racks int) *structs.Node {
	return &structs.Node{
		ID: fmt.Sprintf("node-%05d", i), Name: fmt.Sprintf("n%d", i), Datacenter: "dc1",
		NodePool: "default", NodeClass: "standard",
		Attributes: map[string]string{"kernel.name": "linux", "cpu.numcores": "4", "driver.version": "1.7.2"},
		Meta:       map[string]string{"rack": fmt.Sprintf("r%d", i%racks)},
		NodeResources: &structs.NodeResources{
			Cpu:    structs.NodeCpuResources{CpuShares: 14000, TotalCpuCores: 4},
			Memory: structs.NodeMemoryResources{MemoryMB: 32000},
			Disk:   structs.NodeDiskResources{DiskMB: 100 * 1024},
		},
		Drivers:               map[string]*structs.DriverInfo{"containerd": {Detected: true, Healthy: true}},
		Status:                structs.NodeStatusReady,
		SchedulingEligibility: structs.NodeSchedulingEligible,
	}
}

// testJob returns a canonical job of one group "web" with one task.
func testJob(id, typ string, count int) *structs.Job {
	j := &structs.Job{
		ID: id, Type: typ, Datacenters: []string{"dc1"},
		TaskGroups: []*structs.TaskGroup{{
			Name: "web", Count: count,
			Tasks: []*structs.Task{{
				Name: "app", Driver: "containerd",
				Config:    map[string]any{"image": "nginx:1.27"},
				Resources: &structs.Resources{CPU: 500, MemoryMB: 256},
			}},
		}},
	}
	j.Canonicalize()
	return j
}

// names returns the names of allocations, sorted.
func names(allocs []*structs.Allocation) []string {
	var out []string
	for _, a := range allocs {
		out = append(out, a.Name)
	}
	slices.Sort(out)
	return out
}

// placed and stopped flatten a plan.
func placed(p *structs.Plan) []*structs.Allocation {
	var out []*structs.Allocation
	for _, id := range sortedNodeIDs(p.NodeAllocation) {
		out = append(out, p.NodeAllocation[id]...)
	}
	return out
}

func stopped(p *structs.Plan) []*structs.Allocation {
	var out []*structs.Allocation
	for _, id := range sortedNodeIDs(p.NodeUpdate) {
		out = append(out, p.NodeUpdate[id]...)
	}
	return out
}

func join(s []string) string { return strings.Join(s, ",") }
