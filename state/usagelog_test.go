package state

import (
	"fmt"
	"testing"

	"github.com/skiffhq/skiff/structs"
)

// usageByNode reads every usage row of a snapshot.
func usageByNode(t *testing.T, s *Snapshot) map[string]*structs.NodeUsage {
	t.Helper()
	rows, err := s.NodeUsages()
	must(t, err)
	out := map[string]*structs.NodeUsage{}
	for _, u := range rows {
		out[u.NodeID] = u
	}
	return out
}

// The rows written since an earlier snapshot bring that snapshot's rows
// up to a later one exactly, through single writes, batches and stops;
// a snapshot cannot be brought back to an earlier one, nor from further
// back than the log keeps.
func TestUsageSince(t *testing.T) {
	s := New()
	for i := range 4 {
		must(t, s.UpsertNode(uint64(1+i), testNode(fmt.Sprintf("n%d", i))))
	}
	must(t, s.UpsertJob(10, testJob("default", "web")))
	job := getJob(t, s, "default", "web")
	s0 := s.Snapshot()

	idx := uint64(11)
	must(t, s.UpsertAllocs(idx, []*structs.Allocation{testAlloc(job, "a0", "n0"), testAlloc(job, "a1", "n1")}))
	idx++
	s1 := s.Snapshot()
	b := s.Batch()
	must(t, b.UpsertAllocs(idx, []*structs.Allocation{testAlloc(job, "a2", "n1")}))
	must(t, b.UpsertAllocs(idx+1, []*structs.Allocation{testAlloc(job, "a3", "n2")}))
	must(t, b.Commit())
	idx += 2
	must(t, s.UpsertNode(idx, testNode("n9"))) // writes no usage row
	idx++
	stopped := testAlloc(job, "a0", "n0")
	stopped.DesiredStatus = structs.AllocDesiredStatusStop
	must(t, s.UpsertAllocs(idx, []*structs.Allocation{stopped}))
	idx++
	s2 := s.Snapshot()
	if s2.UsageSeq() != s0.UsageSeq()+3 {
		t.Fatalf("usage log positions %d then %d: want three commits that wrote usage rows between", s0.UsageSeq(), s2.UsageSeq())
	}

	for _, from := range []*Snapshot{s0, s1, s2} {
		written, ok := s2.UsageSince(from.UsageSeq())
		if !ok {
			t.Fatalf("from position %d: the log does not know", from.UsageSeq())
		}
		got := usageByNode(t, from)
		for _, batch := range written {
			for _, u := range batch {
				got[u.NodeID] = u
			}
		}
		want := usageByNode(t, s2)
		if len(got) != len(want) {
			t.Fatalf("from position %d: %d rows, want %d", from.UsageSeq(), len(got), len(want))
		}
		for id, u := range want {
			if got[id] != u {
				t.Fatalf("from position %d: node %s usage %+v, want %+v", from.UsageSeq(), id, got[id], u)
			}
		}
	}
	if n0 := usageByNode(t, s2)["n0"]; n0 == nil || n0.CPU != 0 {
		t.Fatalf("n0 after its allocation stopped: %+v, want a row at zero", n0)
	}
	if _, ok := s1.UsageSince(s2.UsageSeq()); ok {
		t.Fatal("an older snapshot answered for the rows written since a newer one")
	}

	for i := range usageLogLen {
		must(t, s.UpsertAllocs(idx, []*structs.Allocation{testAlloc(job, fmt.Sprintf("b%d", i), "n3")}))
		idx++
	}
	if _, ok := s.Snapshot().UsageSince(s2.UsageSeq() - 1); ok {
		t.Fatalf("answered for %d commits back; the log keeps %d", usageLogLen+1, usageLogLen)
	}
	if _, ok := s.Snapshot().UsageSince(s2.UsageSeq()); !ok {
		t.Fatalf("did not answer for the last %d commits", usageLogLen)
	}
}
