package server

import (
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/structs"
)

// An evaluation that places nothing is written once: complete, with its
// blocked evaluation, in the same raft entry.
func TestBlockedEvalWrittenWithItsEvaluation(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.leader()
	reply := register(t, s, testJob("web")) // no nodes: nothing fits
	var orig, blocked *structs.Evaluation
	testutil.WaitFor(t, 10*time.Second, "the evaluation completes with a blocked evaluation", func() bool {
		evals, err := s.State().EvalsByJob(nil, "default", "web")
		if err != nil {
			t.Fatal(err)
		}
		orig, blocked = nil, nil
		for _, e := range evals {
			switch {
			case e.ID == reply.EvalID && e.Status == structs.EvalStatusComplete:
				orig = e
			case e.Status == structs.EvalStatusBlocked:
				blocked = e
			}
		}
		return orig != nil && blocked != nil
	})
	if orig.BlockedEval != blocked.ID {
		t.Fatalf("evaluation names blocked evaluation %q, want %q", orig.BlockedEval, blocked.ID)
	}
	if blocked.CreateIndex != orig.ModifyIndex {
		t.Fatalf("blocked evaluation written at index %d, the evaluation's completion at %d: want one entry", blocked.CreateIndex, orig.ModifyIndex)
	}
}
