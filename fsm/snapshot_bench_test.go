package fsm

import (
	"fmt"
	"io"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/skiffhq/skiff/structs"
)

// BenchmarkSnapshotWrite writes a snapshot of 100 jobs of 500 allocations
// each (the C1M shape, a twentieth of its size), allocations either
// carrying their job or referring to its version.
func BenchmarkSnapshotWrite(b *testing.B) {
	f := New(hclog.NewNullLogger())
	idx := uint64(1)
	for j := range 100 {
		id := fmt.Sprintf("job-%03d", j)
		apply(b, f, idx, structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: testJob(id, 500)})
		idx++
		job, _ := f.State().JobByID(nil, "default", id)
		var allocs []*structs.Allocation
		for i := range 500 {
			allocs = append(allocs, &structs.Allocation{ID: structs.GenerateUUID(), Namespace: "default", JobID: id, Job: job,
				TaskGroup: "web", Name: fmt.Sprintf("%s.web[%d]", id, i), NodeID: structs.GenerateUUID(),
				DesiredStatus: structs.AllocDesiredStatusRun, ClientStatus: structs.AllocClientStatusRunning,
				Metrics: &structs.AllocMetric{NodesEvaluated: 13, NodesInPool: 5000, ScoreMetaData: []*structs.NodeScoreMeta{
					{NodeID: structs.GenerateUUID(), Scores: structs.ScoreSet{{Name: "binpack", Value: 0.4}}, NormScore: 0.4}}}})
		}
		apply(b, f, idx, structs.ApplyPlanResultsRequestType, &structs.ApplyPlanResultsRequest{EvalID: "e", Allocs: allocs})
		idx++
	}
	snap := f.State().Snapshot()
	for _, refs := range []bool{false, true} {
		b.Run(fmt.Sprintf("jobRefs=%v", refs), func(b *testing.B) {
			var size int64
			b.ReportAllocs()
			for b.Loop() {
				w := &countingWriter{}
				if err := Write(w, snap, refs); err != nil {
					b.Fatal(err)
				}
				size = w.n
			}
			b.ReportMetric(float64(size)/50000, "bytes/alloc")
		})
	}
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

var _ io.Writer = (*countingWriter)(nil)
