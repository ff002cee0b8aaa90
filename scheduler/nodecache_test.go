package scheduler

import (
	"fmt"
	"slices"
	"testing"

	"github.com/skiffhq/skiff/state"
	"github.com/skiffhq/skiff/structs"
)

func nodeIDs(s *nodeSet) []string {
	var ids []string
	for _, n := range s.nodes {
		ids = append(ids, n.ID)
	}
	return ids
}

func TestNodeCacheFollowsTheNodesTable(t *testing.T) {
	h := newHarness(t)
	for i := range 4 {
		h.addNodes(testNode(i, 2))
	}
	other := testNode(9, 2)
	other.Datacenter = "dc2"
	h.addNodes(other)
	nc := &NodeCache{}
	dc1 := []string{"dc1"}

	old := h.store.Snapshot()
	first, err := nc.nodesFor(old, "default", dc1)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := nodeIDs(first), []string{"node-00000", "node-00001", "node-00002", "node-00003"}; !slices.Equal(got, want) {
		t.Fatalf("dc1 nodes = %v, want %v", got, want)
	}
	if first.inPool != 5 || first.dcAvail["dc1"] != 4 {
		t.Fatalf("inPool %d, dcAvail %v: want 5 and dc1=4", first.inPool, first.dcAvail)
	}
	again, _ := nc.nodesFor(h.store.Snapshot(), "default", dc1)
	if again != first {
		t.Fatal("same nodes table, same request: the cached set was not reused")
	}
	if wild, _ := nc.nodesFor(h.store.Snapshot(), "default", []string{"dc*"}); len(wild.nodes) != 5 {
		t.Fatalf("datacenters dc*: %d nodes, want 5 (each datacenter list has its own entry)", len(wild.nodes))
	}

	// A node goes down: the nodes table changes and the next read sees it.
	down := testNode(1, 2)
	down.Status = structs.NodeStatusDown
	h.addNodes(down)
	now, _ := nc.nodesFor(h.store.Snapshot(), "default", dc1)
	if got, want := nodeIDs(now), []string{"node-00000", "node-00002", "node-00003"}; !slices.Equal(got, want) {
		t.Fatalf("after node-00001 went down: %v, want %v", got, want)
	}
	// A scheduler still on the older snapshot reads its own nodes and does
	// not replace the newer entry.
	stale, _ := nc.nodesFor(old, "default", dc1)
	if len(stale.nodes) != 4 {
		t.Fatalf("old snapshot: %d nodes, want its 4", len(stale.nodes))
	}
	if latest, _ := nc.nodesFor(h.store.Snapshot(), "default", dc1); latest != now {
		t.Fatal("an older snapshot's read replaced the newer cached set")
	}
}

// The cache must not change a plan: the same evaluation with and without
// it places the same allocations on the same nodes.
func TestNodeCacheKeepsPlansDeterministic(t *testing.T) {
	placements := func(cache bool) map[string]string {
		h := newHarness(t)
		if !cache {
			h.nodes = nil
		}
		for i := range 20 {
			h.addNodes(testNode(i, 4))
		}
		// Warm the cache with another job first, as a busy server would.
		h.process(h.addJob(testJob("warm", structs.JobTypeService, 3)), structs.EvalTriggerJobRegister)
		job := h.addJob(testJob("web", structs.JobTypeService, 8))
		h.process(job, structs.EvalTriggerJobRegister)
		out := map[string]string{}
		for name, a := range h.live(job) {
			out[name] = a.NodeID
		}
		return out
	}
	with, without := placements(true), placements(false)
	if len(with) != 8 {
		t.Fatalf("placed %d, want 8", len(with))
	}
	for name, node := range without {
		if with[name] != node {
			t.Fatalf("%s on %s with the cache, on %s without", name, with[name], node)
		}
	}
}

// Nodes of one computed class share feasibility, except for constraints on
// values unique to a node, which the class does not cover.
func TestClassCacheSkipsUniqueConstraints(t *testing.T) {
	for _, c := range []struct {
		name  string
		con   structs.Constraint
		wants string // the only node that may take the allocations
	}{
		{"node.unique.name", structs.Constraint{LTarget: "${node.unique.name}", Operand: "=", RTarget: "n5"}, "node-00005"},
		{"attr.unique", structs.Constraint{LTarget: "${attr.unique.hostname}", Operand: "=", RTarget: "host-3"}, "node-00003"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			var nodes []*structs.Node
			for i := range 8 {
				n := testNode(i, 1) // one rack: every node has the same class
				n.Attributes["unique.hostname"] = "host-" + string(rune('0'+i))
				nodes = append(nodes, n)
			}
			h.addNodes(nodes...)
			if nodes[0].ComputedClass != nodes[7].ComputedClass {
				t.Fatal("test nodes should share a computed class")
			}
			job := testJob("web", structs.JobTypeService, 3)
			con := c.con
			job.Constraints = []*structs.Constraint{&con}
			job = h.addJob(job)
			h.process(job, structs.EvalTriggerJobRegister)
			live := h.live(job)
			if len(live) != 3 {
				t.Fatalf("placed %d, want 3 on %s", len(live), c.wants)
			}
			for name, a := range live {
				if a.NodeID != c.wants {
					t.Errorf("%s on %s, want %s", name, a.NodeID, c.wants)
				}
			}
		})
	}
}

// pointUsage hides the state's bulk usage read: the scheduler looks each
// node's usage up alone.
type pointUsage struct {
	State
	snap *state.Snapshot
}

func (p pointUsage) NodeUsage(id string) (*structs.NodeUsage, error) { return p.snap.NodeUsage(id) }

// Reading node usage in one pass (a job that places many allocations)
// gives the plan that lookups node by node give.
func TestBulkUsageReadPlansTheSame(t *testing.T) {
	h := newHarness(t)
	for i := range 60 {
		h.addNodes(testNode(i, 3))
	}
	// Existing load on some nodes, so that usage rows differ.
	busy := h.addJob(testJob("busy", structs.JobTypeService, 25))
	h.process(busy, structs.EvalTriggerJobRegister)
	job := h.addJob(testJob("web", structs.JobTypeService, 40))
	snap := h.store.Snapshot()
	plan := func(st State) map[string]string {
		h.drop = true
		defer func() { h.drop = false }()
		ev := &structs.Evaluation{ID: "bulk-eval", Namespace: job.Namespace, Priority: 50, Type: job.Type,
			TriggeredBy: structs.EvalTriggerJobRegister, JobID: job.ID}
		s, err := New(job.Type, Config{State: st, Planner: h, Now: h.now, Nodes: h.nodes})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Process(ev); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, a := range placed(h.dropped) {
			out[a.Name] = a.NodeID
		}
		return out
	}
	bulk, point := plan(snap), plan(pointUsage{State: snap, snap: snap})
	if len(bulk) != 40 {
		t.Fatalf("placed %d, want 40", len(bulk))
	}
	for name, node := range point {
		if bulk[name] != node {
			t.Fatalf("%s: on %s reading usage in bulk, on %s node by node", name, bulk[name], node)
		}
	}
}

// The node set numbers computed classes so that feasibility is cached by
// class; nodes registered without a computed class must still be checked
// one by one, and a node's reserved resources are not offered.
func TestNodeSetClassesAndCapacity(t *testing.T) {
	h := newHarness(t)
	for i := range 6 {
		n := testNode(i, 3) // racks r0, r1, r2, r0, ...
		n.ReservedResources = &structs.NodeReservedResources{Cpu: structs.NodeCpuResources{CpuShares: 500}}
		h.addNodes(n)
	}
	set, err := (&NodeCache{}).nodesFor(h.store.Snapshot(), "default", []string{"dc1"})
	if err != nil {
		t.Fatal(err)
	}
	for k, n := range set.nodes {
		for j, m := range set.nodes {
			if (set.class[k] == set.class[j]) != (n.ComputedClass == m.ComputedClass) {
				t.Fatalf("%s (class %q) and %s (class %q) numbered %d and %d", n.ID, n.ComputedClass, m.ID, m.ComputedClass, set.class[k], set.class[j])
			}
		}
		if set.caps[k].cpu != 14000-500 || set.caps[k].mem != 32000 {
			t.Fatalf("%s: capacity %d MHz, %d MB; want 13500 MHz (14000 less 500 reserved), 32000 MB", n.ID, set.caps[k].cpu, set.caps[k].mem)
		}
		if set.pos[n.ID] != int32(k) {
			t.Fatalf("%s at position %d, pos says %d", n.ID, k, set.pos[n.ID])
		}
	}

	// Without computed classes, each node is checked on its own.
	h = newHarness(t)
	for i := range 6 {
		n := testNode(i, 3)
		h.addNodes(n)
		n.ComputedClass = ""
		if err := h.store.UpsertNode(h.next(), n); err != nil {
			t.Fatal(err)
		}
	}
	job := testJob("rack1", structs.JobTypeService, 4)
	job.Constraints = []*structs.Constraint{{LTarget: "${meta.rack}", RTarget: "r1", Operand: "="}}
	h.process(h.addJob(job), structs.EvalTriggerJobRegister)
	live := h.liveAllocs(job)
	if len(live) != 4 {
		t.Fatalf("%d placed, want 4", len(live))
	}
	for _, a := range live {
		if a.NodeID != "node-00001" && a.NodeID != "node-00004" {
			t.Fatalf("placed on %s, which is not in rack r1", a.NodeID)
		}
	}
}

// The usage rows an evaluation reads in bulk are kept with the node set
// and brought up to date from the store's log of usage writes for the
// next one. The placements must be exactly those made reading every row
// each time, through placements, stops and a node left full.
func TestBulkUsageFollowsTheStore(t *testing.T) {
	run := func(untracked bool) ([]string, *harness) {
		h := newHarness(t)
		h.untracked = untracked
		for i := range 40 {
			h.addNodes(testNode(i, 4))
		}
		var placed []string
		jobs := map[string]*structs.Job{}
		for j := range 8 {
			job := testJob(fmt.Sprintf("job-%d", j), structs.JobTypeService, 12)
			job.TaskGroups[0].Tasks[0].Resources = &structs.Resources{CPU: 3000, MemoryMB: 4000}
			jobs[job.ID] = h.addJob(job)
			h.process(jobs[job.ID], structs.EvalTriggerJobRegister)
			if j == 4 {
				stop := jobs["job-1"].Copy()
				stop.Stop = true
				h.process(h.addJob(stop), structs.EvalTriggerJobDeregister)
			}
		}
		for j := range 8 {
			for _, a := range h.liveAllocs(jobs[fmt.Sprintf("job-%d", j)]) {
				placed = append(placed, a.Name+" on "+a.NodeID)
			}
		}
		slices.Sort(placed)
		return placed, h
	}
	tracked, h := run(false)
	fresh, hf := run(true)
	if set, _ := hf.nodes.nodesFor(hf.store.Snapshot(), "default", []string{"dc1"}); set.usageRows != nil {
		t.Fatal("the run without the usage log kept usage rows")
	}
	if !slices.Equal(tracked, fresh) {
		t.Fatalf("placed with kept usage rows:\n%v\nreading every row each time:\n%v", tracked, fresh)
	}

	snap := h.store.Snapshot()
	set, err := h.nodes.nodesFor(snap, "default", []string{"dc1"})
	if err != nil {
		t.Fatal(err)
	}
	if set.usageRows == nil || set.usageSeq == 0 {
		t.Fatal("no usage rows kept with the node set: the evaluations read the table every time")
	}
	rows, ok := set.usageFrom(snap)
	if !ok {
		t.Fatal("the kept rows could not be brought up to the latest snapshot")
	}
	all, err := snap.NodeUsages()
	if err != nil {
		t.Fatal(err)
	}
	want := make([]*structs.NodeUsage, len(set.nodes))
	for _, u := range all {
		k, ok := set.pos[u.NodeID]
		if !ok {
			t.Fatalf("a usage row of node %s, which is not in the set", u.NodeID)
		}
		want[k] = u
	}
	for k := range want {
		if rows[k] != want[k] {
			t.Fatalf("node %s: kept usage %+v, the store holds %+v", set.nodes[k].ID, rows[k], want[k])
		}
	}
}
