package scheduler

import (
	"fmt"
	"testing"

	"github.com/skiffhq/skiff/structs"
)

// BenchmarkServicePlacement is the S2 workload of BENCHMARKS.md: nodes of 4
// cores x 3,500 MHz and 32,000 MB in 25 racks and two datacenters; a job
// constrained to half of the racks with set_contains_any, optionally
// spread over racks; the plan is dropped so every iteration places the
// full count. It reports placements/s and the nodes scored per placement.
func BenchmarkServicePlacement(b *testing.B) {
	const racks = 25
	for _, nodes := range []int{1000, 5000, 10000} {
		h := newHarness(b)
		h.drop = true
		for i := range nodes {
			n := testNode(i, racks)
			n.Datacenter = fmt.Sprintf("dc-%d", 1+i%2)
			n.ComputeClass()
			if err := h.store.UpsertNode(h.next(), n); err != nil {
				b.Fatal(err)
			}
		}
		half := ""
		for r := range racks / 2 {
			if r > 0 {
				half += ","
			}
			half += fmt.Sprintf("r%d", r)
		}
		for _, count := range []int{600, 1200} {
			for _, size := range []struct {
				name     string
				cpu, mem int
			}{{"big", 6000, 6000}, {"small", 100, 128}} {
				for _, spread := range []bool{false, true} {
					name := fmt.Sprintf("nodes=%d/count=%d/alloc=%s/spread=%v", nodes, count, size.name, spread)
					b.Run(name, func(b *testing.B) {
						job := testJob(fmt.Sprintf("bench-%d-%s-%v", count, size.name, spread), structs.JobTypeService, count)
						job.Datacenters = []string{"dc-1", "dc-2"}
						job.Constraints = []*structs.Constraint{{LTarget: "${meta.rack}", Operand: structs.ConstraintSetContainsAny, RTarget: half}}
						job.TaskGroups[0].Tasks[0].Resources = &structs.Resources{CPU: size.cpu, MemoryMB: size.mem}
						if spread {
							job.TaskGroups[0].Spreads = []*structs.Spread{{Attribute: "${meta.rack}", Weight: 100}}
						}
						job = h.addJob(job)
						snap := h.store.Snapshot()
						eval := &structs.Evaluation{ID: "bench-eval", Namespace: job.Namespace, Priority: 50,
							Type: job.Type, TriggeredBy: structs.EvalTriggerJobRegister, JobID: job.ID}
						placedN, scored := 0, 0
						b.ResetTimer()
						for b.Loop() {
							s, err := New(job.Type, Config{State: snap, Planner: h, Now: testNow, Nodes: h.nodes})
							if err != nil {
								b.Fatal(err)
							}
							if err := s.Process(eval); err != nil {
								b.Fatal(err)
							}
							for _, a := range placed(h.dropped) {
								placedN++
								m := a.Metrics
								scored += m.NodesEvaluated - m.NodesFiltered - m.NodesExhausted
							}
						}
						b.StopTimer()
						if placedN == 0 {
							b.Fatal("nothing placed")
						}
						b.ReportMetric(float64(placedN)/b.Elapsed().Seconds(), "placements/s")
						b.ReportMetric(float64(scored)/float64(placedN), "scored/placement")
						b.ReportMetric(float64(placedN)/float64(b.N), "placed/op")
					})
				}
			}
		}
	}
}
