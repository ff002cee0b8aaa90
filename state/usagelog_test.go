package state

import (
	"fmt"
	"testing"

	"github.com/skiffhq/skiff/structs"
)

// usedAlloc is an allocation of 100 MHz of CPU.
func usedAlloc(job *structs.Job, id, nodeID string) *structs.Allocation {
	a := testAlloc(job, id, nodeID)
	a.AllocatedResources = &structs.AllocatedResources{Tasks: map[string]*structs.AllocatedTaskResources{
		"server": {Cpu: structs.AllocatedCpuResources{CpuShares: 100}}}}
	return a
}

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

// withWritten brings rows up to date with the rows written since them
// (UsageSince), as the scheduler does.
func withWritten(rows map[string]*structs.NodeUsage, written [][]*structs.NodeUsage) map[string]*structs.NodeUsage {
	for _, batch := range written {
		for _, u := range batch {
			rows[u.NodeID] = u
		}
	}
	return rows
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
	must(t, s.UpsertAllocs(idx, []*structs.Allocation{usedAlloc(job, "a0", "n0"), usedAlloc(job, "a1", "n1")}))
	idx++
	s1 := s.Snapshot()
	b := s.Batch()
	must(t, b.UpsertAllocs(idx, []*structs.Allocation{usedAlloc(job, "a2", "n1")}))
	must(t, b.UpsertAllocs(idx+1, []*structs.Allocation{usedAlloc(job, "a3", "n2")}))
	must(t, b.Commit())
	idx += 2
	must(t, s.UpsertNode(idx, testNode("n9"))) // writes no usage row
	idx++
	stopped := usedAlloc(job, "a0", "n0")
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
		got := withWritten(usageByNode(t, from), written)
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
	if n1 := usageByNode(t, s2)["n1"]; n1 == nil || n1.CPU != 200 {
		t.Fatalf("n1 with two allocations of 100 MHz: %+v, want 200 MHz", n1)
	}
	if _, ok := s1.UsageSince(s2.UsageSeq()); ok {
		t.Fatal("an older snapshot answered for the rows written since a newer one")
	}

	for i := range usageLogLen {
		must(t, s.UpsertAllocs(idx, []*structs.Allocation{usedAlloc(job, fmt.Sprintf("b%d", i), "n3")}))
		idx++
	}
	if _, ok := s.Snapshot().UsageSince(s2.UsageSeq() - 1); ok {
		t.Fatalf("answered for %d commits back; the log keeps %d", usageLogLen+1, usageLogLen)
	}
	if _, ok := s.Snapshot().UsageSince(s2.UsageSeq()); !ok {
		t.Fatalf("did not answer for the last %d commits", usageLogLen)
	}
}

// A restore writes every usage row in one logged commit, and positions of
// the store it replaces mean nothing to the new one.
func TestUsageLogAcrossARestore(t *testing.T) {
	old := New()
	must(t, old.UpsertNode(1, testNode("n0")))
	must(t, old.UpsertJob(2, testJob("default", "web")))
	job := getJob(t, old, "default", "web")
	must(t, old.UpsertAllocs(3, []*structs.Allocation{usedAlloc(job, "a0", "n0")}))
	before := old.Snapshot()

	s := New()
	empty := s.Snapshot()
	r := s.Restore()
	must(t, r.NodeRestore(testNode("n0")))
	must(t, r.JobRestore(job))
	a, err := old.AllocByID(nil, "a0")
	must(t, err)
	must(t, r.AllocRestore(a.Copy()))
	must(t, r.Commit())
	after := s.Snapshot()

	written, ok := after.UsageSince(empty.UsageSeq())
	if !ok || len(written) != 1 || len(written[0]) != 1 || written[0][0].NodeID != "n0" || written[0][0].CPU == 0 {
		t.Fatalf("rows written by the restore: %v (%v), want n0's row", written, ok)
	}
	if _, ok := after.UsageSince(before.UsageSeq()); ok {
		t.Fatal("a position of the store the restore replaced was answered")
	}
	if before.UsageSeq() == after.UsageSeq() {
		t.Fatal("two stores at the same usage log position")
	}
}

// Snapshots taken while commits run see each commit entirely or not at
// all, in the rows and in the log: an earlier snapshot's rows and what
// was written since are always the later snapshot's rows.
func TestUsageLogUnderConcurrentCommits(t *testing.T) {
	s := New()
	const nodes = 8
	for i := range nodes {
		must(t, s.UpsertNode(uint64(1+i), testNode(fmt.Sprintf("n%d", i))))
	}
	must(t, s.UpsertJob(20, testJob("default", "web")))
	job := getJob(t, s, "default", "web")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 300 {
			if err := s.UpsertAllocs(uint64(21+i), []*structs.Allocation{usedAlloc(job, fmt.Sprintf("a%d", i), fmt.Sprintf("n%d", i%nodes))}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	prev := s.Snapshot()
	checks := 0
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		cur := s.Snapshot()
		written, ok := cur.UsageSince(prev.UsageSeq())
		if !ok {
			prev = cur // fell more than the log keeps behind
			continue
		}
		got := withWritten(usageByNode(t, prev), written)
		for id, u := range usageByNode(t, cur) {
			if got[id] != u {
				t.Fatalf("position %d to %d: node %s usage %+v, the later snapshot holds %+v", prev.UsageSeq(), cur.UsageSeq(), id, got[id], u)
			}
		}
		prev = cur
		checks++
	}
	if checks == 0 {
		t.Fatal("no check ran")
	}
}
