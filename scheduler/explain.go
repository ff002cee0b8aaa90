package scheduler

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/skiffhq/skiff/structs"
)

// Explain turns a placement failure metric into lines a person reads, most
// significant first, e.g.
//
//	3 nodes excluded by constraint "${meta.rack} set_contains_any r1,r2"
//	2 nodes exhausted on memory
//	No nodes in datacenter "dc3"
func Explain(m *structs.AllocMetric) []string {
	if m == nil {
		return nil
	}
	var out []string
	for _, dc := range sortedKeys(m.NodesAvailable) {
		if m.NodesAvailable[dc] == 0 {
			out = append(out, fmt.Sprintf("No nodes in datacenter %q", dc))
		}
	}
	if m.NodesInPool == 0 && m.NodesEvaluated == 0 {
		out = append(out, "No nodes in the job's node pool")
	} else if m.NodesEvaluated == 0 && len(out) == 0 {
		out = append(out, "No nodes were eligible for evaluation (none ready in the job's datacenters)")
	}
	for _, k := range byCount(m.ConstraintFiltered) {
		what := fmt.Sprintf("constraint %q", k)
		switch k {
		case filterMissingDrivers:
			what = "missing drivers"
		case filterDistinctHosts:
			what = "distinct_hosts (a node already runs an allocation of the job)"
		}
		out = append(out, fmt.Sprintf("%s excluded by %s", nodes(m.ConstraintFiltered[k]), what))
	}
	for _, k := range byCount(m.DimensionExhausted) {
		out = append(out, fmt.Sprintf("%s exhausted on %s", nodes(m.DimensionExhausted[k]), k))
	}
	if m.CoalescedFailures > 0 {
		out = append(out, fmt.Sprintf("%d more allocation(s) of the group could not be placed for the same reasons", m.CoalescedFailures))
	}
	return out
}

func nodes(n int) string {
	if n == 1 {
		return "1 node"
	}
	return fmt.Sprintf("%d nodes", n)
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// byCount orders keys by count, highest first, then by name.
func byCount(m map[string]int) []string {
	keys := sortedKeys(m)
	slices.SortStableFunc(keys, func(a, b string) int { return cmp.Compare(m[b], m[a]) })
	return keys
}
