package scheduler

import (
	"math"
	"math/bits"

	"github.com/skiffhq/skiff/structs"
)

// maxScoreMeta is how many of the best candidates a metric keeps.
const maxScoreMeta = 5

// binPackScore is Nomad's documented bin-packing fitness, 20 - (10^freeCpu
// + 10^freeMem) after the placement, normalised to 0..1: fuller is better.
func binPackScore(n *structs.Node, u *nodeUsage, a *ask) float64 {
	cpu, mem, _ := n.Capacity()
	if cpu <= 0 || mem <= 0 {
		return 0
	}
	freeCPU := 1 - float64(u.cpu+a.cpu)/float64(cpu)
	freeMem := 1 - float64(u.mem+a.mem)/float64(mem)
	s := 20 - (math.Exp(freeCPU*math.Ln10) + math.Exp(freeMem*math.Ln10))
	return math.Max(0, math.Min(18, s)) / 18
}

// spreadState tracks, for one spread block, how the group's allocations
// are spread over the attribute's values.
type spreadState struct {
	attr    target
	weight  float64
	targets map[string]float64 // value -> percent
	rest    float64            // percent left for values without a target
	counts  map[string]int     // value -> allocations that will run
	values  map[string]bool    // every value of a feasible node
	lo, hi  int                // least and most used value, set by bounds

	// Per-placement memo: the node at position i has value vals[valIdx[i]-1]
	// (0 unknown, -1 unset); pscore[k] is the score of vals[k] (NaN: not yet).
	valIdx []int32
	vals   []string
	idxOf  map[string]int
	pscore []float64
}

// value returns the index in vals of the value of node n at position i,
// or -1 when the node has no value.
func (s *spreadState) value(i int, n *structs.Node) int {
	if i >= 0 && i < len(s.valIdx) {
		if k := s.valIdx[i]; k != 0 {
			return int(k) - 1
		}
	}
	k := -1
	if v, ok := s.attr.resolve(n); ok {
		var seen bool
		if k, seen = s.idxOf[v]; !seen {
			k = len(s.vals)
			s.idxOf[v] = k
			s.vals = append(s.vals, v)
			s.pscore = append(s.pscore, math.NaN())
		}
	}
	if i >= 0 && i < len(s.valIdx) {
		s.valIdx[i] = int32(k) + 1
		if k < 0 {
			s.valIdx[i] = -1
			return -1
		}
	}
	return k
}

// nodeScore is the memoised score of the node at position i.
func (s *spreadState) nodeScore(i int, n *structs.Node, count int) float64 {
	k := s.value(i, n)
	if k < 0 {
		return -1
	}
	if math.IsNaN(s.pscore[k]) {
		s.pscore[k] = s.score(s.vals[k], true, count)
	}
	return s.pscore[k]
}

// bounds computes the least and most used values before a placement.
func (s *spreadState) bounds() {
	for k := range s.pscore {
		s.pscore[k] = math.NaN()
	}
	s.lo, s.hi = math.MaxInt, 0
	for val := range s.values {
		n := s.counts[val]
		s.lo, s.hi = min(s.lo, n), max(s.hi, n)
	}
}

func newSpreadState(s *structs.Spread) *spreadState {
	st := &spreadState{attr: parseTarget(s.Attribute), weight: float64(s.Weight), counts: map[string]int{}, values: map[string]bool{}}
	if st.weight == 0 {
		st.weight = 50
	}
	if len(s.SpreadTarget) > 0 {
		st.targets = map[string]float64{}
		sum := 0.0
		for _, t := range s.SpreadTarget {
			st.targets[t.Value] = float64(t.Percent)
			sum += float64(t.Percent)
		}
		st.rest = math.Max(0, 100-sum)
	}
	return st
}

// score is the spread boost of placing one more allocation on a node with
// value v, in -1..1, for a group of count allocations.
func (s *spreadState) score(v string, ok bool, count int) float64 {
	if !ok {
		return -1
	}
	used := float64(s.counts[v])
	if s.targets != nil {
		pct, targeted := s.targets[v]
		if !targeted {
			pct = s.rest
			used = 0
			for val, n := range s.counts {
				if _, t := s.targets[val]; !t {
					used += float64(n)
				}
			}
		}
		desired := pct / 100 * float64(count)
		if desired <= 0 {
			return -1
		}
		return math.Max(-1, math.Min(1, (desired-used)/desired))
	}
	// Even spread: the least used values get +1, the most used -1.
	lo, hi := s.lo, s.hi
	if lo == math.MaxInt || hi == lo {
		return 0
	}
	return (float64(hi-lo) - 2*(used-float64(lo))) / float64(hi-lo)
}

// candidate is one scored node.
type candidate struct {
	node  *structs.Node
	usage *nodeUsage
	res   *structs.AllocatedResources // set when ports were assigned
	sc    scores
}

// scores are the scores of one candidate; has marks the applicable ones.
type scores struct {
	binPack, antiAffinity, reschedule, affinity, spread float64
	has                                                 uint8 // bits: 1 anti-affinity, 2 reschedule, 4 affinity, 8 spread
	norm                                                float64
}

func (s scores) meta(nodeID string) *structs.NodeScoreMeta {
	m := make(structs.ScoreSet, 1, 1+bits.OnesCount8(s.has))
	m[0] = structs.Score{Name: structs.ScoreBinPack, Value: s.binPack}
	for _, sc := range []struct {
		bit   uint8
		name  string
		value float64
	}{
		{1, structs.ScoreAntiAffinity, s.antiAffinity}, {2, structs.ScoreReschedule, s.reschedule},
		{4, structs.ScoreAffinity, s.affinity}, {8, structs.ScoreSpread, s.spread},
	} {
		if s.has&sc.bit != 0 {
			m = append(m, structs.Score{Name: sc.name, Value: sc.value})
		}
	}
	return &structs.NodeScoreMeta{NodeID: nodeID, Scores: m, NormScore: s.norm}
}

// limitFor is how many fitting nodes a placement scores: Nomad's
// max(2, ceil(log2 N)), or max(count, 100) with spread or affinity.
func limitFor(g *groupChecks, feasible int) int {
	if len(g.spreads) > 0 || len(g.affinities) > 0 {
		return max(g.tg.Count, 100)
	}
	if feasible < 2 {
		return 2
	}
	return max(2, int(math.Ceil(math.Log2(float64(feasible)))))
}

// selectNode picks the best node for one allocation of a group, recording
// why others were set aside in m. penalty is a node to avoid (the node a
// failed allocation ran on). It returns nil when no node fits.
func (c *planCtx) selectNode(g *groupChecks, a *ask, m *structs.AllocMetric, penalty string) (*candidate, error) {
	n := len(c.order)
	limit := limitFor(g, n)
	for _, s := range g.spreads {
		s.bounds()
	}
	var top [maxScoreMeta]candidate // best first
	kept := 0
	found, visited := 0, 0
	for ; visited < n && found < limit; visited++ {
		i := (c.offset + visited) % n
		k := c.order[i]
		node := c.set.nodes[k]
		m.NodesEvaluated++
		reason := g.static(k, node)
		if reason == "" {
			reason = c.dynamic(g, node)
		}
		if reason != "" {
			m.NodesFiltered++
			incr(&m.ConstraintFiltered, reason)
			continue
		}
		u := c.usageAt[k]
		if u == nil {
			if err := c.readUsageInBulk(limit); err != nil {
				return nil, err
			}
			var err error
			if u, err = c.usageOf(k); err != nil {
				return nil, err
			}
		}
		dim, res := c.fitIn(node, c.set.caps[k], u, a)
		if dim != "" {
			m.NodesExhausted++
			incr(&m.DimensionExhausted, dim)
			if node.NodeClass != "" {
				incr(&m.ClassExhausted, node.NodeClass)
			}
			continue
		}
		found++
		cand := candidate{node: node, usage: u, res: res, sc: c.score(g, i, node, u, a, penalty)}
		// Insert into the top list; ties keep the earlier node.
		j := kept
		for j > 0 && cand.sc.norm > top[j-1].sc.norm {
			j--
		}
		if j < maxScoreMeta {
			if kept < maxScoreMeta {
				kept++
			}
			copy(top[j+1:kept], top[j:kept-1])
			top[j] = cand
		}
	}
	if n > 0 {
		c.offset = (c.offset + visited) % n
	}
	if kept == 0 {
		return nil, nil
	}
	m.ScoreMetaData = make([]*structs.NodeScoreMeta, kept)
	for i := range kept {
		m.ScoreMetaData[i] = top[i].sc.meta(top[i].node.ID)
	}
	best := top[0]
	if best.res == nil {
		best.res = a.resources()
	}
	return &best, nil
}

func incr(m *structs.Counts, k string) {
	if *m == nil {
		*m = map[string]int{}
	}
	(*m)[k]++
}

// score computes every applicable score of a node and their mean.
func (c *planCtx) score(g *groupChecks, i int, n *structs.Node, u *nodeUsage, a *ask, penalty string) scores {
	s := scores{binPack: binPackScore(n, u, a)}
	if c.spread {
		// Nomad's spread algorithm: (10^freeCpu + 10^freeMem - 2) / 18,
		// the mirror of the bin-packing fitness.
		s.binPack = 1 - s.binPack
	}
	sum, k := s.binPack, 1.0
	collisions := 0
	for _, x := range c.jobOn[n.ID] {
		if x.TaskGroup == g.tg.Name {
			collisions++
		}
	}
	if collisions > 0 && g.tg.Count > 0 {
		s.antiAffinity = math.Max(-1, -float64(collisions+1)/float64(g.tg.Count))
		s.has |= 1
		sum, k = sum+s.antiAffinity, k+1
	}
	if penalty != "" && n.ID == penalty {
		s.reschedule = -1
		s.has |= 2
		sum, k = sum-1, k+1
	}
	if len(g.affinities) > 0 {
		total, w := 0.0, 0.0
		for _, af := range g.affinities {
			total += math.Abs(af.weight)
			if af.match(n) {
				w += af.weight
			}
		}
		if total > 0 && w != 0 {
			s.affinity = w / total
			s.has |= 4
			sum, k = sum+s.affinity, k+1
		}
	}
	if len(g.spreads) > 0 {
		total, w := 0.0, 0.0
		for _, sp := range g.spreads {
			w += sp.weight * sp.nodeScore(i, n, g.tg.Count)
			total += sp.weight
		}
		s.spread = w / total
		s.has |= 8
		sum, k = sum+s.spread, k+1
	}
	s.norm = sum / k
	return s
}

// prepareSpreads fills a group's spread counts from the allocations that
// will run and the values of every feasible node.
func (c *planCtx) prepareSpreads(g *groupChecks) {
	if len(g.spreads) == 0 {
		return
	}
	for _, s := range g.spreads {
		clear(s.counts)
		clear(s.values)
		s.valIdx = make([]int32, len(c.order))
		s.vals, s.idxOf, s.pscore = nil, map[string]int{}, nil
	}
	for _, k := range c.order {
		n := c.set.nodes[k]
		if g.static(k, n) != "" {
			continue
		}
		for _, s := range g.spreads {
			if v, ok := s.attr.resolve(n); ok {
				s.values[v] = true
			}
		}
	}
	for nodeID, allocs := range c.jobOn {
		n, _ := c.node(nodeID) // an error reads as a gone node
		if n == nil {
			continue
		}
		for _, a := range allocs {
			if a.TaskGroup == g.tg.Name {
				c.countSpread(g, n, 1)
			}
		}
	}
}

// countSpread adds delta allocations on node n to the group's spreads.
func (c *planCtx) countSpread(g *groupChecks, n *structs.Node, delta int) {
	for _, s := range g.spreads {
		if v, ok := s.attr.resolve(n); ok {
			s.counts[v] += delta
		}
	}
}
