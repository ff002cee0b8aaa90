package state

import (
	"strings"
	"testing"
	"unsafe"

	"github.com/skiffhq/skiff/structs"
)

// fresh returns a copy of s in its own memory, as a decoder makes.
func fresh(s string) string { return strings.Clone(s) }

func sameString(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }

// Allocations written through a Batch (the FSM) keep the store's copy of
// the strings they repeat, not the copies decoded from each raft entry.
func TestStoredAllocationsShareStrings(t *testing.T) {
	s := New()
	node := testNode("node-a")
	must(t, s.UpsertNode(1, node))
	job := testJob("default", "web")
	must(t, s.UpsertJob(2, job))
	stored := getJob(t, s, "default", "web")
	storedNode, err := s.NodeByID(nil, "node-a")
	must(t, err)

	var allocs []*structs.Allocation
	for _, id := range []string{"a1", "a2"} {
		a := testAlloc(stored, id, fresh("node-a"))
		a.Job = nil // as the plan applier commits them
		a.Namespace, a.JobID, a.TaskGroup, a.EvalID = fresh("default"), fresh("web"), fresh(a.TaskGroup), fresh("eval-1")
		a.DesiredStatus, a.ClientStatus = fresh("run"), fresh("pending")
		a.NodeName = fresh(node.Name)
		a.AllocatedResources = &structs.AllocatedResources{Tasks: map[string]*structs.AllocatedTaskResources{
			"server": {Cpu: structs.AllocatedCpuResources{CpuShares: 100}, Memory: structs.AllocatedMemoryResources{MemoryMB: 64}}}}
		a.Metrics = &structs.AllocMetric{
			NodesAvailable: map[string]int{"dc1": 3},
			ScoreMetaData: []*structs.NodeScoreMeta{{NodeID: fresh("node-a"),
				Scores: structs.ScoreSet{{Name: fresh("binpack"), Value: 0.5}}}},
		}
		allocs = append(allocs, a)
	}
	b := s.Batch()
	must(t, b.UpsertAllocs(3, allocs))
	must(t, b.Commit())

	a1, err := s.AllocByID(nil, "a1")
	must(t, err)
	a2, err := s.AllocByID(nil, "a2")
	must(t, err)
	checks := []struct {
		what string
		a, b string
	}{
		{"node ID", a1.NodeID, storedNode.ID},
		{"node name", a1.NodeName, storedNode.Name},
		{"namespace", a1.Namespace, stored.Namespace},
		{"job ID", a1.JobID, stored.ID},
		{"group", a1.TaskGroup, stored.TaskGroups[0].Name},
		{"evaluation ID of the next allocation", a2.EvalID, a1.EvalID},
		{"desired status", a1.DesiredStatus, structs.AllocDesiredStatusRun},
		{"client status", a1.ClientStatus, structs.AllocClientStatusPending},
		{"candidate node ID", a1.Metrics.ScoreMetaData[0].NodeID, storedNode.ID},
	}
	for _, c := range checks {
		if c.a != c.b {
			t.Fatalf("%s: %q, want %q", c.what, c.a, c.b)
		}
		if !sameString(c.a, c.b) {
			t.Errorf("%s: the allocation keeps its own copy of %q", c.what, c.a)
		}
	}
	if a1.AllocatedResources != a2.AllocatedResources {
		t.Error("two placements of one group without ports keep two equal AllocatedResources")
	}
}

// Allocations keep their own resources when they differ or hold ports.
func TestStoredAllocationsKeepTheirOwnResources(t *testing.T) {
	s := New()
	must(t, s.UpsertNode(1, testNode("node-a")))
	must(t, s.UpsertJob(2, testJob("default", "web")))
	job := getJob(t, s, "default", "web")
	res := func(cpu int64, port int) *structs.AllocatedResources {
		r := &structs.AllocatedResources{Tasks: map[string]*structs.AllocatedTaskResources{
			"server": {Cpu: structs.AllocatedCpuResources{CpuShares: cpu}}}}
		if port > 0 {
			r.Shared.Ports = []structs.AllocatedPortMapping{{Label: "http", Value: port}}
		}
		return r
	}
	a1, a2, a3, a4 := testAlloc(job, "a1", "node-a"), testAlloc(job, "a2", "node-a"), testAlloc(job, "a3", "node-a"), testAlloc(job, "a4", "node-a")
	a1.AllocatedResources, a2.AllocatedResources = res(100, 0), res(200, 0)       // different CPU
	a3.AllocatedResources, a4.AllocatedResources = res(100, 8080), res(100, 8081) // ports
	b := s.Batch()
	must(t, b.UpsertAllocs(3, []*structs.Allocation{a1, a2, a3, a4}))
	must(t, b.Commit())
	for id, want := range map[string]int64{"a1": 100, "a2": 200} {
		a, err := s.AllocByID(nil, id)
		must(t, err)
		if got := a.AllocatedResources.Tasks["server"].Cpu.CpuShares; got != want {
			t.Errorf("%s: CPU %d, want %d", id, got, want)
		}
	}
	for id, want := range map[string]int{"a3": 8080, "a4": 8081} {
		a, err := s.AllocByID(nil, id)
		must(t, err)
		if got := a.AllocatedResources.Shared.Ports[0].Value; got != want {
			t.Errorf("%s: port %d, want %d", id, got, want)
		}
	}
}
