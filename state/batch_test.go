package state

import (
	"testing"

	"github.com/skiffhq/skiff/structs"
)

// TestFailedWritesChangeNothingInABatch: the writes a user can make fail
// (a missing node or job, an evaluation without an ID) fail before they
// change anything, so that the FSM goes on with the rest of a batch
// instead of applying it again without them.
func TestFailedWritesChangeNothingInABatch(t *testing.T) {
	s := New()
	must(t, s.UpsertNode(1, &structs.Node{ID: "n1", Name: "n1", SecretID: "s1", Datacenter: "dc1"}))
	must(t, s.UpsertJob(2, testJob("default", "web")))
	b := s.Batch()
	defer b.Abort()
	for name, write := range map[string]func() error{
		"delete a missing node after an existing one": func() error { return b.DeleteNodes(3, []string{"n1", "nope"}) },
		"stop a missing job":                          func() error { return b.StopJob(3, "default", "nope") },
		"an evaluation without an ID":                 func() error { return b.UpsertEvals(3, []*structs.Evaluation{{Namespace: "default", JobID: "web"}}) },
	} {
		before := b.Changes()
		if err := write(); err == nil {
			t.Errorf("%s: no error", name)
		}
		if b.Changes() != before {
			t.Errorf("%s: failed having changed the batch", name)
		}
	}
	if err := b.DeleteNodes(3, []string{"n1", "n1"}); err != nil {
		t.Fatalf("a node named twice: %v", err)
	}
	must(t, b.Commit())
	if n, _ := s.NodeByID(nil, "n1"); n != nil {
		t.Fatal("n1 not deleted")
	}
}

// TestUpsertEvalsCopiesInput: a write through the Store keeps the
// caller's evaluation out of the state (the FSM's own decoded objects are
// stored as they are).
func TestUpsertEvalsCopiesInput(t *testing.T) {
	s := New()
	e := &structs.Evaluation{ID: "00000000-0000-4000-8000-000000000001", Namespace: "default", JobID: "web", Status: "pending"}
	must(t, s.UpsertEvals(5, []*structs.Evaluation{e}))
	if e.CreateIndex != 0 {
		t.Errorf("caller's evaluation changed: CreateIndex %d", e.CreateIndex)
	}
	e.Status = "complete"
	got, err := s.EvalByID(nil, e.ID)
	if err != nil || got == nil || got.Status != "pending" || got == e {
		t.Fatalf("stored %+v (%v), want a copy still pending", got, err)
	}
}
