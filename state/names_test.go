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
		a.Metrics = &structs.AllocMetric{
			NodesAvailable: map[string]int{"dc1": 3},
			ScoreMetaData: []*structs.NodeScoreMeta{{NodeID: fresh("node-a"),
				Scores: structs.ScoreSet{{Name: fresh("binpack"), Value: 0.5}}}},
		}
		allocs = append(allocs, a)
	}
	b := s.Batch()
	must(t, b.UpsertAllocs(3, allocs))
	b.Commit()

	a1, err := s.AllocByID(nil, "a1")
	must(t, err)
	a2, err := s.AllocByID(nil, "a2")
	must(t, err)
	checks := []struct {
		what string
		a, b string
	}{
		{"node ID", a1.NodeID, storedNode.ID},
		{"namespace", a1.Namespace, stored.Namespace},
		{"job ID", a1.JobID, stored.ID},
		{"group", a1.TaskGroup, stored.TaskGroups[0].Name},
		{"evaluation ID of the next allocation", a2.EvalID, a1.EvalID},
		{"desired status", a1.DesiredStatus, structs.AllocDesiredStatusRun},
		{"client status", a1.ClientStatus, structs.AllocClientStatusPending},
		{"candidate node ID", a1.Metrics.ScoreMetaData[0].NodeID, storedNode.ID},
		{"score name", a1.Metrics.ScoreMetaData[0].Scores[0].Name, structs.ScoreBinPack},
	}
	for _, c := range checks {
		if c.a != c.b {
			t.Fatalf("%s: %q, want %q", c.what, c.a, c.b)
		}
		if !sameString(c.a, c.b) {
			t.Errorf("%s: the allocation keeps its own copy of %q", c.what, c.a)
		}
	}
	if !sameMap(a1.Metrics.NodesAvailable, a2.Metrics.NodesAvailable) {
		t.Error("two placements of one evaluation keep two equal NodesAvailable maps")
	}
}

func sameMap(a, b map[string]int) bool {
	return *(*unsafe.Pointer)(unsafe.Pointer(&a)) == *(*unsafe.Pointer)(unsafe.Pointer(&b))
}
