package scheduler

import (
	"fmt"
	"math"
	"testing"

	"github.com/skiffhq/skiff/state"
	"github.com/skiffhq/skiff/structs"
)

func TestCandidateLimit(t *testing.T) {
	cases := []struct {
		name       string
		nodes      int
		spread     bool
		wantScored int
	}{
		{"log2 of 64", 64, false, 6},
		{"log2 of 1000 rounds up", 1000, false, 10},
		{"at least 2", 1, false, 1}, // only one node exists
		{"spread scores max(count, 100)", 150, true, 100},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			addTestNodes(h, c.nodes, 4)
			job := testJob("web", structs.JobTypeService, 1)
			if c.spread {
				job.TaskGroups[0].Spreads = []*structs.Spread{{Attribute: "${meta.rack}"}}
			}
			job = h.addJob(job)
			h.process(job, structs.EvalTriggerJobRegister)
			a := placed(h.lastPlan())[0]
			m := a.Metrics
			if got := m.NodesEvaluated - m.NodesFiltered - m.NodesExhausted; got != c.wantScored {
				t.Errorf("scored: got %d, want %d", got, c.wantScored)
			}
			if len(m.ScoreMetaData) == 0 || len(m.ScoreMetaData) > maxScoreMeta {
				t.Fatalf("ScoreMetaData: got %d entries, want 1..%d", len(m.ScoreMetaData), maxScoreMeta)
			}
			for i := 1; i < len(m.ScoreMetaData); i++ {
				if m.ScoreMetaData[i].NormScore > m.ScoreMetaData[i-1].NormScore {
					t.Errorf("ScoreMetaData not best first: %v then %v", m.ScoreMetaData[i-1].NormScore, m.ScoreMetaData[i].NormScore)
				}
			}
			if m.ScoreMetaData[0].NodeID != a.NodeID {
				t.Errorf("best: got %s, want the chosen node %s", m.ScoreMetaData[0].NodeID, a.NodeID)
			}
		})
	}
}

func TestBinPackPrefersFullerNodes(t *testing.T) {
	empty, busy := testNode(1, 1), testNode(2, 1)
	a := &ask{cpu: 1000, mem: 1000}
	e := binPackScore(empty, &nodeUsage{}, a)
	b := binPackScore(busy, &nodeUsage{cpu: 10000, mem: 20000}, a)
	if b <= e {
		t.Errorf("binpack: got busy %.3f <= empty %.3f, want busy higher", b, e)
	}
	full := binPackScore(busy, &nodeUsage{cpu: 13000, mem: 31000}, a)
	if math.Abs(full-1) > 0.01 {
		t.Errorf("binpack of a full node: got %.3f, want ~1", full)
	}
}

func TestSpreadScore(t *testing.T) {
	even := newSpreadState(&structs.Spread{Attribute: "${meta.rack}"})
	even.values = map[string]bool{"r0": true, "r1": true, "r2": true}
	even.counts = map[string]int{"r0": 2, "r1": 1}
	even.bounds()
	targeted := newSpreadState(&structs.Spread{Attribute: "${meta.rack}",
		SpreadTarget: []*structs.SpreadTarget{{Value: "r0", Percent: 50}}})
	targeted.counts = map[string]int{"r0": 1, "r1": 5}
	cases := []struct {
		s    *spreadState
		v    string
		want float64
	}{
		{even, "r2", 1},  // least used
		{even, "r0", -1}, // most used
		{even, "r1", 0},
		{targeted, "r0", 0.8}, // desired 5 of 10, 1 used
		{targeted, "r9", 0},   // the untargeted 50%: 5 desired, 5 used
	}
	for _, c := range cases {
		if got := c.s.score(c.v, true, 10); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("score(%s): got %v, want %v", c.v, got, c.want)
		}
	}
}

// TestSpreadAlgorithm: with the spread algorithm, allocations of small
// jobs go to emptier nodes; with bin-packing they pile onto fuller ones.
// (Only log2 N candidates are scored per placement, so neither is
// perfect: spread must use clearly more nodes.)
func TestSpreadAlgorithm(t *testing.T) {
	distinct := func(algo string) int {
		h := newHarness(t)
		h.algo = algo
		addTestNodes(h, 16, 1)
		nodes := map[string]bool{}
		for i := range 16 {
			job := h.addJob(testJob(fmt.Sprintf("j%d", i), structs.JobTypeService, 1))
			h.process(job, structs.EvalTriggerJobRegister)
			for _, a := range h.live(job) {
				nodes[a.NodeID] = true
			}
		}
		return len(nodes)
	}
	spread, binpack := distinct(AlgorithmSpread), distinct(AlgorithmBinPack)
	if spread < binpack+4 {
		t.Errorf("16 single-allocation jobs on 16 nodes: spread used %d nodes, binpack %d; want spread clearly more", spread, binpack)
	}
	t.Logf("nodes used: spread %d, binpack %d", spread, binpack)
	if _, err := New(structs.JobTypeService, Config{State: state.New().Snapshot(), Planner: newHarness(t), Algorithm: "random"}); err == nil {
		t.Error("an unknown algorithm was accepted")
	}
}
