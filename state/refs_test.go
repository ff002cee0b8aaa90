package state

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-memdb"

	"github.com/skiffhq/skiff/structs"
)

func TestApplyRefOps(t *testing.T) {
	old := []string{"b", "d", "f"}
	tests := []struct {
		name string
		ops  []refOp
		want []string
	}{
		{"add before, between and after", []refOp{{id: "g", present: true}, {id: "a", present: true}, {id: "c", present: true}}, []string{"a", "b", "c", "d", "f", "g"}},
		{"remove first, last", []refOp{{id: "b"}, {id: "f"}}, []string{"d"}},
		{"remove what is not there", []refOp{{id: "c"}}, []string{"b", "d", "f"}},
		{"the last op on an ID counts", []refOp{{id: "c", present: true}, {id: "d"}, {id: "c"}, {id: "d", present: true}}, []string{"b", "d", "f"}},
		{"add what is there", []refOp{{id: "d", present: true}}, []string{"b", "d", "f"}},
		{"remove all", []refOp{{id: "f"}, {id: "d"}, {id: "b"}}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := slices.Clone(old)
			got := applyRefOps(old, lastOps(slices.Clone(tt.ops)))
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			if !slices.Equal(old, before) {
				t.Fatalf("old changed to %v", old)
			}
		})
	}
	if got := applyRefOps(nil, []refOp{{id: "x", present: true}}); !slices.Equal(got, []string{"x"}) {
		t.Fatalf("into an empty list: got %v", got)
	}
}

// setRefChunkMax makes chunks of at most n IDs until the test ends.
func setRefChunkMax(t *testing.T, n int) {
	old := refChunkMax
	refChunkMax = n
	t.Cleanup(func() { refChunkMax = old })
}

// TestApplyRefChunks: a row's chunks, after any changes, hold exactly the
// IDs a plain sorted set would, in chunks of 1 to refChunkMax IDs in
// order; a write that changes nothing returns the row's own chunks, and
// one that does copies only the chunks it changes.
func TestApplyRefChunks(t *testing.T) {
	for _, max := range []int{2, 8, 13, 64} { // 8 and up: small chunks merge
		setRefChunkMax(t, max)
		for seed := range 20 {
			rng := rand.New(rand.NewPCG(uint64(seed), uint64(max)))
			model := map[string]bool{}
			var row [][]string
			for round := range 200 {
				var ops []refOp
				for range 1 + rng.IntN(3*max) {
					id := fmt.Sprintf("%04d", rng.IntN(40*max))
					// Mostly adds early, mostly removals late.
					ops = append(ops, refOp{id: id, present: rng.IntN(200) > round})
				}
				for _, op := range ops {
					model[op.id] = op.present
				}
				before := row
				var copied [][]string
				for _, c := range row {
					copied = append(copied, slices.Clone(c))
				}
				row = applyRefChunks(row, slices.Clone(ops))
				when := fmt.Sprintf("max %d seed %d round %d", max, seed, round)
				for i := range copied {
					if !slices.Equal(before[i], copied[i]) {
						t.Fatalf("%s: chunk %d of the old row changed in place", when, i)
					}
				}
				checkChunks(t, when, before, row, ops, model)
			}
		}
	}
}

func checkChunks(t *testing.T, when string, before, after [][]string, ops []refOp, model map[string]bool) {
	t.Helper()
	var want, got []string
	for id, present := range model {
		if present {
			want = append(want, id)
		}
	}
	slices.Sort(want)
	for _, c := range after {
		if len(c) == 0 || len(c) > refChunkMax {
			t.Fatalf("%s: a chunk of %d IDs (1 to %d allowed)", when, len(c), refChunkMax)
		}
		got = append(got, c...)
	}
	if !slices.IsSorted(got) || !slices.Equal(got, want) {
		t.Fatalf("%s: row holds %v, want %v", when, got, want)
	}
	// Old chunks that no op falls in are kept as they are, but for one
	// that a small changed chunk after it was merged into.
	touched, untouched := 0, map[*string]bool{}
	for c, chunk := range before {
		in := false
		for _, op := range ops {
			if (c == 0 || op.id > before[c-1][len(before[c-1])-1]) && (c == len(before)-1 || op.id <= chunk[len(chunk)-1]) {
				in = true
			}
		}
		if in {
			touched++
		} else {
			untouched[&chunk[0]] = true
		}
	}
	kept := 0
	for _, c := range after {
		if untouched[&c[0]] {
			kept++
		}
	}
	if kept < len(untouched)-touched {
		t.Fatalf("%s: %d of %d chunks no op fell in were kept; %d chunks were changed", when, kept, len(untouched), touched)
	}
	was := map[string]bool{}
	for _, c := range before {
		for _, id := range c {
			was[id] = true
		}
	}
	for _, op := range ops {
		if was[op.id] != model[op.id] {
			return
		}
	}
	if len(before) > 0 && (len(after) != len(before) || &after[0] != &before[0]) {
		t.Fatalf("%s: no op changed the row, yet its chunks were copied", when)
	}
}

// nodeRows returns the nodes that have a row of allocations, with the
// allocations each lists.
func nodeRows(t *testing.T, s *Store) map[string][]string {
	t.Helper()
	rows, err := list[allocRefs](nil, s.Snapshot().txn(), TableAllocRefs, indexID, nil)
	must(t, err)
	out := map[string][]string{}
	for _, r := range rows {
		if id, ok := strings.CutPrefix(r.Key, "n\x00"); ok {
			out[id] = slices.Concat(r.Chunks...)
		}
	}
	return out
}

// fired says whether a channel of ws is closed, without waiting.
func fired(ws memdb.WatchSet) bool {
	for ch := range ws {
		select {
		case <-ch:
			return true
		default:
		}
	}
	return false
}

// TestIdleNodeWatchesItsOwnRow: a registered node has its row of
// allocations while it has none, so that a watch on its allocations (a
// client's pull) fires for its own, not for another node's (go-memdb's
// watch on a missing row fires for any row near it). The row goes with
// the node, once the node's allocations have gone.
func TestIdleNodeWatchesItsOwnRow(t *testing.T) {
	s := New()
	job := testJob("default", "web")
	must(t, s.UpsertJob(1, job))
	must(t, s.UpsertNode(2, testNode("a")))
	must(t, s.UpsertNode(3, testNode("b")))
	ws := memdb.NewWatchSet()
	allocs, err := s.Snapshot().AllocsByNode(ws, "a")
	must(t, err)
	if len(allocs) != 0 || len(ws) == 0 {
		t.Fatalf("node a: %d allocations, %d watches; want none and a watch", len(allocs), len(ws))
	}
	must(t, s.UpsertAllocs(4, []*structs.Allocation{testAlloc(job, "alloc-b", "b")}))
	if fired(ws) {
		t.Fatal("an allocation placed on node b woke a watch on node a's allocations")
	}
	must(t, s.UpsertNode(5, testNode("a"))) // a client registering again, after a restart
	if fired(ws) {
		t.Fatal("node a registering again woke a watch on its allocations")
	}
	must(t, s.UpsertAllocs(6, []*structs.Allocation{testAlloc(job, "alloc-a", "a")}))
	if !fired(ws) {
		t.Fatal("an allocation placed on node a did not wake a watch on its allocations")
	}

	must(t, s.DeleteEvals(7, nil, []string{"alloc-a"}))
	if got, want := nodeRows(t, s), map[string][]string{"a": {}, "b": {"alloc-b"}}; !maps.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("after node a's allocation went: rows %v, want %v", got, want)
	}
	ws = memdb.NewWatchSet()
	_, err = s.Snapshot().AllocsByNode(ws, "a")
	must(t, err)
	must(t, s.DeleteNodes(8, []string{"a"}))
	if !fired(ws) {
		t.Fatal("deleting node a did not wake a watch on its allocations")
	}
	must(t, s.DeleteNodes(9, []string{"b"}))
	if got, want := nodeRows(t, s), map[string][]string{"b": {"alloc-b"}}; !maps.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("after both nodes were deleted: rows %v, want %v (b's until its allocation goes)", got, want)
	}
	must(t, s.DeleteEvals(10, nil, []string{"alloc-b"}))
	if got := nodeRows(t, s); len(got) != 0 {
		t.Fatalf("rows of deleted nodes without allocations: %v", got)
	}
}

// TestRestoreGivesIdleNodesTheirRows: a restore derives a row for every
// node, empty for one without allocations, whichever comes first in the
// snapshot, a node or its allocations.
func TestRestoreGivesIdleNodesTheirRows(t *testing.T) {
	s := New()
	job := testJob("default", "web")
	r := s.Restore()
	must(t, r.JobRestore(job))
	must(t, r.AllocRestore(testAlloc(job, "alloc-b", "b")))
	must(t, r.NodeRestore(testNode("a")))
	must(t, r.NodeRestore(testNode("b")))
	must(t, r.AllocRestore(testAlloc(job, "alloc-c", "c")))
	must(t, r.NodeRestore(testNode("c")))
	must(t, r.AllocRestore(testAlloc(job, "alloc-c2", "c")))
	must(t, r.Commit())
	want := map[string][]string{"a": {}, "b": {"alloc-b"}, "c": {"alloc-c", "alloc-c2"}}
	if got := nodeRows(t, s); !maps.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("rows %v, want %v", got, want)
	}
}
