package state

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/skiffhq/skiff/structs"
)

// BenchmarkPlanApply is the write the FSM makes most at scale: a plan of
// 100 placements of one job over 100 of 5,000 nodes, in a Batch, into a
// store that already holds 200,000 allocations (the C1M shape at a fifth
// of its size). It also reports the live heap each stored allocation
// costs (measured once, before the timed loop).
func BenchmarkPlanApply(b *testing.B) {
	const nodes, perPlan, before = 5000, 100, 200_000
	rng := rand.New(rand.NewPCG(1, 2))
	s := New()
	idx := uint64(1)
	nodeIDs := make([]string, nodes)
	for i := range nodeIDs {
		n := testNode(fmt.Sprintf("%08x-0000-4000-8000-%012x", rng.Uint32(), i))
		nodeIDs[i] = n.ID
		if err := s.UpsertNode(idx, n); err != nil {
			b.Fatal(err)
		}
		idx++
	}
	jobs := 0
	plan := func() {
		id := fmt.Sprintf("job-%05d", jobs)
		jobs++
		if err := s.UpsertJob(idx, testJob("default", id)); err != nil {
			b.Fatal(err)
		}
		idx++
		job, _ := s.JobByID(nil, "default", id)
		evalID := structs.GenerateUUID()
		allocs := make([]*structs.Allocation, perPlan)
		for i := range allocs {
			a := testAlloc(job, structs.GenerateUUID(), nodeIDs[rng.IntN(nodes)])
			a.EvalID, a.Name = evalID, fmt.Sprintf("%s.web[%d]", id, i)
			a.Metrics = &structs.AllocMetric{NodesEvaluated: 13, NodesInPool: nodes, ScoreMetaData: []*structs.NodeScoreMeta{
				{NodeID: a.NodeID, Scores: structs.ScoreSet{{Name: "binpack", Value: 0.4}}, NormScore: 0.4}}}
			allocs[i] = a
		}
		batch := s.Batch()
		if err := batch.UpsertAllocs(idx, allocs); err != nil {
			b.Fatal(err)
		}
		if err := batch.Commit(); err != nil {
			b.Fatal(err)
		}
		idx++
	}
	heap := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	h0 := heap()
	for range before / perPlan {
		plan()
	}
	perAlloc := float64(heap()-h0) / before
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		plan()
	}
	b.ReportMetric(perAlloc, "heap-B/alloc")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perPlan), "ns/placement")
}
