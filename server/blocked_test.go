package server

import (
	"context"
	"testing"
	"time"

	"github.com/skiffhq/skiff/structs"
)

func blockedEval(job string, snapIdx uint64, classes map[string]bool) *structs.Evaluation {
	return &structs.Evaluation{
		ID: structs.GenerateUUID(), Namespace: "default", JobID: job, Type: structs.JobTypeService,
		Status: structs.EvalStatusBlocked, SnapshotIndex: snapIdx, CreateIndex: snapIdx + 1, ClassEligibility: classes,
	}
}

// readyIDs drains what the broker holds ready for service workers.
func readyIDs(t *testing.T, b *evalBroker) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		ev, token, err := b.Dequeue(ctx, []string{structs.JobTypeService})
		cancel()
		if err != nil {
			return out
		}
		out[ev.JobID] = true
		_ = b.Ack(ev.ID, token)
	}
}

// TestBlockedEvalsWakeByClass: capacity on a class wakes only the
// evaluations that found that class feasible (or never saw it); escaped
// evaluations wake on any class.
func TestBlockedEvalsWakeByClass(t *testing.T) {
	broker := newEvalBroker(time.Minute, 3)
	broker.SetEnabled(true)
	b := newBlockedEvals(broker)
	b.SetEnabled(true)

	b.Block(blockedEval("wants-a", 10, map[string]bool{"a": true, "b": false}))
	b.Block(blockedEval("wants-b", 10, map[string]bool{"a": false, "b": true}))
	b.Block(blockedEval("saw-only-a", 10, map[string]bool{"a": false}))
	esc := blockedEval("escaped", 10, map[string]bool{"a": false, "b": false})
	esc.EscapedComputedClass = true
	b.Block(esc)

	if n := b.Unblock("b", 20); n != 3 {
		t.Errorf("Unblock(b) woke %d, want 3 (wants-b, saw-only-a, escaped)", n)
	}
	got := readyIDs(t, broker)
	want := map[string]bool{"wants-b": true, "saw-only-a": true, "escaped": true}
	if len(got) != len(want) {
		t.Fatalf("woken %v, want %v", got, want)
	}
	for j := range want {
		if !got[j] {
			t.Errorf("job %s not woken; woken %v", j, got)
		}
	}
	if b.Len() != 1 {
		t.Errorf("still blocked: %d, want 1 (wants-a)", b.Len())
	}
}

// TestBlockedEvalMissedCapacityWakesAtOnce: capacity that appeared after
// the evaluation's snapshot wakes it as soon as it is blocked.
func TestBlockedEvalMissedCapacityWakesAtOnce(t *testing.T) {
	broker := newEvalBroker(time.Minute, 3)
	broker.SetEnabled(true)
	b := newBlockedEvals(broker)
	b.SetEnabled(true)
	b.Unblock("a", 15)
	b.Block(blockedEval("old-snapshot", 10, map[string]bool{"a": true}))
	b.Block(blockedEval("new-snapshot", 20, map[string]bool{"a": true}))
	b.Block(blockedEval("other-class", 10, map[string]bool{"a": false, "b": true}))
	got := readyIDs(t, broker)
	if !got["old-snapshot"] || got["new-snapshot"] || got["other-class"] || len(got) != 1 {
		t.Fatalf("woken %v, want only old-snapshot", got)
	}
}

// TestBlockedEvalNewerReplacesOlder: one blocked evaluation per job; the
// older is canceled.
func TestBlockedEvalNewerReplacesOlder(t *testing.T) {
	broker := newEvalBroker(time.Minute, 3)
	broker.SetEnabled(true)
	b := newBlockedEvals(broker)
	b.SetEnabled(true)
	older := blockedEval("j", 10, nil)
	newer := blockedEval("j", 30, nil)
	b.Block(older)
	b.Block(newer)
	if c := b.Cancelable(); len(c) != 1 || c[0].ID != older.ID {
		t.Fatalf("canceled %v, want the older eval", c)
	}
	b.Untrack(structs.NamespacedID{Namespace: "default", ID: "j"})
	if c := b.Cancelable(); len(c) != 1 || c[0].ID != newer.ID || b.Len() != 0 {
		t.Fatalf("after untrack: canceled %v, blocked %d; want the newer canceled, none blocked", c, b.Len())
	}
}
