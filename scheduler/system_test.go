package scheduler

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/skiffhq/skiff/structs"
)

func TestSystemOnePerNodeAndNewNode(t *testing.T) {
	h := newHarness(t)
	nodes := addTestNodes(h, 4, 4)
	nodes[3].Drivers["containerd"].Healthy = false // infeasible: no placement, no failure
	h.addNodes(nodes[3])
	job := h.addJob(testJob("agent", structs.JobTypeSystem, 1))
	eval := h.process(job, structs.EvalTriggerJobRegister)
	perNode := func() map[string]int {
		out := map[string]int{}
		for _, a := range h.liveAllocs(job) {
			out[a.NodeID]++
		}
		return out
	}
	got := perNode()
	if len(got) != 3 || got[nodes[3].ID] != 0 {
		t.Errorf("per node: got %v, want one on each of the 3 healthy nodes", got)
	}
	if len(eval.FailedTGAllocs) != 0 {
		t.Errorf("FailedTGAllocs: got %v, want none", eval.FailedTGAllocs)
	}
	// A node joins: the next evaluation places on it only.
	h.addNodes(testNode(9, 4))
	h.process(job, structs.EvalTriggerNodeUpdate)
	p := h.lastPlan()
	if got := placed(p); len(got) != 1 || got[0].NodeID != "node-00009" {
		t.Errorf("placed after join: got %v, want one on node-00009", names(got))
	}
	// A node becomes infeasible (driver unhealthy): its allocation stops.
	nodes[0].Drivers["containerd"].Healthy = false
	h.addNodes(nodes[0])
	h.process(job, structs.EvalTriggerNodeUpdate)
	if got := stopped(h.lastPlan()); len(got) != 1 || got[0].NodeID != nodes[0].ID {
		t.Errorf("stopped: got %d, want the allocation on %s", len(got), nodes[0].ID)
	}
	if got := perNode(); len(got) != 3 {
		t.Errorf("per node at the end: got %v, want 3 nodes", got)
	}
}

func TestSystemExhaustedNodeIsAFailure(t *testing.T) {
	h := newHarness(t)
	nodes := addTestNodes(h, 3, 3)
	nodes[1].NodeResources.Memory.MemoryMB = 100
	h.addNodes(nodes[1])
	job := h.addJob(testJob("agent", structs.JobTypeSystem, 1))
	eval := h.process(job, structs.EvalTriggerJobRegister)
	m := eval.FailedTGAllocs["web"]
	if m == nil || m.DimensionExhausted[dimMemory] != 1 || eval.QueuedAllocations["web"] != 1 {
		t.Fatalf("failure: got %+v queued %v, want memory exhausted on 1 node, 1 queued", m, eval.QueuedAllocations)
	}
	if len(h.liveAllocs(job)) != 2 {
		t.Errorf("live: got %d, want 2", len(h.liveAllocs(job)))
	}
}

func TestSysBatchCompleteNotReplaced(t *testing.T) {
	h := newHarness(t)
	addTestNodes(h, 2, 2)
	job := h.addJob(testJob("once", structs.JobTypeSysBatch, 1))
	h.process(job, structs.EvalTriggerJobRegister)
	for _, a := range h.liveAllocs(job) {
		done := a.Copy()
		done.ClientStatus = structs.AllocClientStatusComplete
		if err := h.store.UpdateAllocsFromClient(h.next(), []*structs.Allocation{done}); err != nil {
			t.Fatal(err)
		}
	}
	plans := len(h.plans)
	h.process(job, structs.EvalTriggerNodeUpdate)
	if len(h.plans) != plans {
		t.Errorf("plans: got a new plan placing %v, want none", names(placed(h.lastPlan())))
	}
}

// planFingerprint is what must not change between identical runs.
func planFingerprint(p *structs.Plan) []string {
	var out []string
	for _, a := range placed(p) {
		out = append(out, a.ID+"@"+a.NodeID+"/"+a.Name)
	}
	slices.Sort(out)
	return out
}

func TestDeterminism(t *testing.T) {
	run := func(seed uint64) (*structs.Plan, *structs.Evaluation) {
		h := newHarness(t)
		h.seed = seed
		addTestNodes(h, 40, 8)
		job := testJob("web", structs.JobTypeService, 12)
		job.TaskGroups[0].Networks = []*structs.NetworkResource{{DynamicPorts: []structs.Port{{Label: "http"}}}}
		job = h.addJob(job)
		eval := h.process(job, structs.EvalTriggerJobRegister)
		return h.lastPlan(), eval
	}
	a, ea := run(0)
	b, eb := run(0)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("same inputs: got different plans\n%v\n%v", planFingerprint(a), planFingerprint(b))
	}
	if !reflect.DeepEqual(ea, eb) {
		t.Errorf("same inputs: got different evaluations")
	}
	c, _ := run(42)
	if slices.Equal(planFingerprint(a), planFingerprint(c)) {
		t.Errorf("different seeds: got identical placements and IDs, want them to differ")
	}
}

func TestNewUnknownType(t *testing.T) {
	h := newHarness(t)
	if _, err := New("cron", Config{State: h.store.Snapshot(), Planner: h}); err == nil {
		t.Errorf("New(cron): got no error, want one")
	}
	for _, typ := range []string{"service", "batch", "system", "sysbatch"} {
		if _, err := New(typ, Config{State: h.store.Snapshot(), Planner: h}); err != nil {
			t.Errorf("New(%s): got %v, want no error", typ, err)
		}
	}
}

func TestExplain(t *testing.T) {
	cases := []struct {
		m    *structs.AllocMetric
		want []string
	}{
		{&structs.AllocMetric{NodesInPool: 5, NodesEvaluated: 5, ConstraintFiltered: map[string]int{
			"${meta.rack} set_contains_any r1,r2": 3, filterMissingDrivers: 1}, DimensionExhausted: map[string]int{"memory": 1}},
			[]string{`3 nodes excluded by constraint "${meta.rack} set_contains_any r1,r2"`, "1 node excluded by missing drivers", "1 node exhausted on memory"}},
		{&structs.AllocMetric{NodesInPool: 5, NodesAvailable: map[string]int{"dc3": 0}},
			[]string{`No nodes in datacenter "dc3"`}},
		{&structs.AllocMetric{NodesInPool: 0},
			[]string{"No nodes in the job's node pool"}},
		{&structs.AllocMetric{NodesInPool: 2, NodesEvaluated: 2, DimensionExhausted: map[string]int{"cpu": 2}, CoalescedFailures: 4},
			[]string{"2 nodes exhausted on cpu", "4 more allocation(s) of the group could not be placed for the same reasons"}},
		{nil, nil},
	}
	for i, c := range cases {
		if got := Explain(c.m); !slices.Equal(got, c.want) {
			t.Errorf("case %d: got %q, want %q", i, got, c.want)
		}
	}
}

func TestSystemNodeDownMarksLost(t *testing.T) {
	h := newHarness(t)
	nodes := addTestNodes(h, 3, 3)
	job := h.addJob(testJob("agent", structs.JobTypeSystem, 1))
	h.process(job, structs.EvalTriggerJobRegister)
	if err := h.store.UpdateNodeStatus(h.next(), nodes[2].ID, structs.NodeStatusDown, 1); err != nil {
		t.Fatal(err)
	}
	h.process(job, structs.EvalTriggerNodeUpdate)
	p := h.lastPlan()
	st := stopped(p)
	if len(st) != 1 || st[0].NodeID != nodes[2].ID || st[0].ClientStatus != structs.AllocClientStatusLost {
		t.Errorf("stops: got %d, want the allocation on %s marked lost", len(st), nodes[2].ID)
	}
	if got := len(placed(p)); got != 0 {
		t.Errorf("placed: got %d, want 0 (system allocations are not moved)", got)
	}
}

func TestSystemDestructiveUpdate(t *testing.T) {
	h := newHarness(t)
	addTestNodes(h, 3, 3)
	job := h.addJob(testJob("agent", structs.JobTypeSystem, 1))
	h.process(job, structs.EvalTriggerJobRegister)
	before := map[string]string{} // node -> alloc ID
	for _, a := range h.liveAllocs(job) {
		before[a.NodeID] = a.ID
	}
	next := job.Copy()
	next.TaskGroups[0].Tasks[0].Config["image"] = "agent:2"
	job = h.addJob(next)
	h.process(job, structs.EvalTriggerJobRegister)
	p := h.lastPlan()
	if got := len(stopped(p)); got != 3 {
		t.Errorf("stopped: got %d, want 3", got)
	}
	for _, a := range placed(p) {
		if a.PreviousAllocation != before[a.NodeID] || a.Job.Version != 1 {
			t.Errorf("node %s: got previous %q version %d, want %q version 1", a.NodeID, a.PreviousAllocation, a.Job.Version, before[a.NodeID])
		}
	}
	if got := len(placed(p)); got != 3 {
		t.Errorf("placed: got %d, want 3", got)
	}
}

// TestSystemStagger: with update { max_parallel = 2, stagger = 30s } a
// system job's destructive update replaces two allocations per batch, the
// next batch a stagger after the last (a follow-up evaluation), never
// sooner even when another evaluation comes in between.
func TestSystemStagger(t *testing.T) {
	h := newHarness(t)
	addTestNodes(h, 5, 5)
	v0 := testJob("agent", structs.JobTypeSystem, 1)
	v0.TaskGroups[0].Update = &structs.UpdateStrategy{MaxParallel: 2, Stagger: 30 * time.Second}
	job := h.addJob(v0)
	h.process(job, structs.EvalTriggerJobRegister)
	v1 := job.Copy()
	v1.TaskGroups[0].Tasks[0].Config["image"] = "agent:2"
	job = h.addJob(v1)

	step := func(at time.Duration, trigger string, wantNew int, wantFollowUp time.Duration) {
		t.Helper()
		h.now = testNow.Add(at)
		created := len(h.created)
		h.process(job, trigger)
		newer := 0
		for _, a := range h.liveAllocs(job) {
			if a.Job.Version == job.Version {
				newer++
			}
		}
		if newer != wantNew || len(h.liveAllocs(job)) != 5 {
			t.Fatalf("at %v: %d of %d live allocations on the new version, want %d of 5", at, newer, len(h.liveAllocs(job)), wantNew)
		}
		var follow *structs.Evaluation
		for _, e := range h.created[created:] {
			if e.TriggeredBy == structs.EvalTriggerRollingUpdate {
				follow = e
			}
		}
		switch {
		case wantFollowUp == 0 && follow != nil:
			t.Fatalf("at %v: follow-up evaluation due %v, want none", at, follow.WaitUntil)
		case wantFollowUp != 0 && (follow == nil || !follow.WaitUntil.Equal(testNow.Add(wantFollowUp))):
			t.Fatalf("at %v: follow-up %+v, want one due at +%v", at, follow, wantFollowUp)
		}
	}
	step(0, structs.EvalTriggerJobRegister, 2, 30*time.Second)
	step(10*time.Second, structs.EvalTriggerNodeUpdate, 2, 30*time.Second) // within the stagger: nothing
	step(30*time.Second, structs.EvalTriggerRollingUpdate, 4, 60*time.Second)
	step(60*time.Second, structs.EvalTriggerRollingUpdate, 5, 0)
}
