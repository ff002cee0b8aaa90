package server

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/skiffhq/skiff/structs"
)

func brokerEval(id, job string, prio int, index uint64) *structs.Evaluation {
	return &structs.Evaluation{ID: id, Namespace: "default", JobID: job, Type: "service",
		Priority: prio, Status: structs.EvalStatusPending, CreateIndex: index}
}

func dequeueNow(t *testing.T, b *evalBroker) (*structs.Evaluation, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	ev, token, err := b.Dequeue(ctx, []string{"service", "batch"})
	if errors.Is(err, context.DeadlineExceeded) {
		return nil, ""
	}
	if err != nil {
		t.Fatalf("dequeue: %v", err)
	}
	return ev, token
}

func TestBrokerPriorityAndOnePerJob(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newEvalBroker(time.Minute, 3)
		b.SetEnabled(true)
		b.Enqueue(brokerEval("a1", "A", 50, 1))
		b.Enqueue(brokerEval("a2", "A", 50, 2))
		b.Enqueue(brokerEval("a3", "A", 50, 3))
		b.Enqueue(brokerEval("b1", "B", 80, 4))
		b.Enqueue(brokerEval("a1", "A", 50, 1)) // a duplicate enqueue is ignored

		if ev, _ := dequeueNow(t, b); ev == nil || ev.ID != "b1" {
			t.Fatalf("first dequeue = %v, want b1 (higher priority)", ev)
		}
		ev, token := dequeueNow(t, b)
		if ev == nil || ev.ID != "a1" {
			t.Fatalf("second dequeue = %v, want a1", ev)
		}
		if ev, _ := dequeueNow(t, b); ev != nil {
			t.Fatalf("dequeued %s while job A has an evaluation in flight", ev.ID)
		}
		if err := b.Ack("a1", token); err != nil {
			t.Fatal(err)
		}
		if ev, _ := dequeueNow(t, b); ev == nil || ev.ID != "a3" {
			t.Fatalf("after ack = %v, want a3, the newest waiting evaluation of A", ev)
		}
		if c := b.Cancelable(); len(c) != 1 || c[0].ID != "a2" {
			t.Fatalf("cancelable = %v, want [a2] (superseded by a3)", c)
		}
	})
}

func TestBrokerNackTimeoutRedelivers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newEvalBroker(5*time.Second, 2)
		b.SetEnabled(true)
		b.Enqueue(brokerEval("e", "J", 50, 1))
		_, first := dequeueNow(t, b)
		time.Sleep(6 * time.Second) // virtual: the worker went silent
		ev, second := dequeueNow(t, b)
		if ev == nil || ev.ID != "e" || second == first {
			t.Fatalf("after the nack timeout: got %v, want e redelivered with a new token", ev)
		}
		if err := b.Ack("e", first); !errors.Is(err, errTokenMismatch) {
			t.Fatalf("ack with the stale token: err = %v, want token mismatch", err)
		}
		// Second delivery nacked: the limit (2) is reached, so it fails.
		if err := b.Nack("e", second); err != nil {
			t.Fatal(err)
		}
		if ev, _ := dequeueNow(t, b); ev != nil {
			t.Fatalf("redelivered %s past the delivery limit", ev.ID)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		failed, token, err := b.Dequeue(ctx, []string{failedQueue})
		if err != nil || failed.ID != "e" {
			t.Fatalf("failed queue: %v %v, want e", failed, err)
		}
		if err := b.Ack("e", token); err != nil {
			t.Fatalf("ack from the failed queue: %v", err)
		}
	})
}

func TestBrokerDelayedAndDisabled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newEvalBroker(time.Minute, 3)
		b.SetEnabled(true)
		ev := brokerEval("later", "J", 50, 1)
		ev.WaitUntil = time.Now().Add(30 * time.Second)
		b.Enqueue(ev)
		start := time.Now()
		got, _, err := b.Dequeue(context.Background(), []string{"service"})
		if err != nil || got.ID != "later" {
			t.Fatalf("dequeue: %v %v", got, err)
		}
		if waited := time.Since(start); waited < 30*time.Second {
			t.Fatalf("delayed evaluation delivered after %s, want >= 30s", waited)
		}

		done := make(chan error, 1)
		go func() {
			_, _, err := b.Dequeue(context.Background(), []string{"batch"})
			done <- err
		}()
		synctest.Wait()
		b.SetEnabled(false) // leadership lost
		if err := <-done; !errors.Is(err, errBrokerDisabled) {
			t.Fatalf("waiting dequeue after disable: err = %v, want errBrokerDisabled", err)
		}
		if s := b.Stats(); s != (brokerStats{}) {
			t.Fatalf("stats after disable = %+v, want empty", s)
		}
	})
}
