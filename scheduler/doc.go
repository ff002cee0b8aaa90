// Package scheduler turns an evaluation into a plan: the pure,
// deterministic core of Skiff's scheduling.
//
// Inputs are a read-only State (a state snapshot), the evaluation, the
// time Now and a Seed (derived from the evaluation ID when zero); output is
// a structs.Plan handed to the Planner, plus follow-up evaluations. The
// package does no I/O, reads no clock and uses no global random source:
// the same inputs always give the same plan, so a snapshot attached to a
// bug report reproduces it.
//
//	        eval + job + allocs + nodes (State)
//	                     |
//	                     v
//	+-------------------------------------------+
//	| reconcile   per group: keep / stop / lost |  reconcile.go, system.go
//	|             in-place / destructive update |
//	|             reschedule (now or delayed)   |
//	+-------------------------------------------+
//	                     | placements (name, replaced alloc)
//	                     v
//	+-------------------------------------------+
//	| feasibility ready nodes in dcs + pool,    |  feasible.go
//	|             drivers, constraints (cached  |
//	|             per group), distinct_*        |
//	+-------------------------------------------+
//	                     | feasible nodes, visited from a rotating offset
//	                     v
//	+-------------------------------------------+
//	| rank        fit (cpu, memory, disk, ports)|  resources.go, rank.go
//	|             bin-pack, anti-affinity,      |
//	|             affinity, spread; best of the |
//	|             first `limit` fitting nodes   |
//	+-------------------------------------------+
//	                     |
//	                     v
//	plan -> Planner.SubmitPlan -> refused nodes? plan again (<= MaxPlanAttempts)
//	     -> CreateEval (blocked / delayed reschedule) -> UpdateEval
//
// Candidate limit: like Nomad, a placement scores at most
// max(2, ceil(log2 N)) fitting nodes, or max(count, 100) when the group
// has spread or affinity blocks; nodes are shuffled once per attempt
// with the seeded generator and each placement continues where the last
// one stopped, so work spreads over the cluster without rescanning it.
//
// Every placement records an AllocMetric (nodes evaluated, filtered by
// which constraint, exhausted on which dimension, top scores). Groups that
// could not be placed fully end in eval.FailedTGAllocs and one blocked
// evaluation carries the queued work; Explain renders a metric as lines a
// person reads.
package scheduler
