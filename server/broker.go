package server

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/skiffhq/skiff/structs"
)

// failedQueue is the scheduler type under which evaluations that used up
// their deliveries wait for the leader to mark them failed.
const failedQueue = "_failed"

var (
	errBrokerDisabled = errors.New("eval broker disabled: this server is not the leader")
	errNotOutstanding = errors.New("evaluation is not outstanding")
	errTokenMismatch  = errors.New("evaluation token does not match: it was redelivered to another worker")
)

// evalBroker hands pending evaluations to scheduler workers. It runs on
// the leader only and is rebuilt from the state store on every leadership
// change (SetEnabled false drops everything).
//
// Rules: at most one evaluation per job is ready or in flight; later ones
// wait, and when the in-flight one is acked the newest waiting one goes
// next while the older ones are superseded (Cancelable). Ready evaluations
// are served by priority, then age. A dequeued evaluation must be acked or
// nacked within the nack timeout, or it is nacked for the worker; after
// deliveryLimit deliveries it moves to the failed queue. Evaluations with
// WaitUntil in the future wait in a timer heap first.
//
// All methods are safe for concurrent use.
type evalBroker struct {
	nackTimeout   time.Duration
	deliveryLimit int

	mu       sync.Mutex
	enabled  bool                               // guarded by mu
	ready    map[string]*evalHeap               // scheduler type -> ready evals; guarded by mu
	unack    map[string]*unackedEval            // eval ID -> in flight; guarded by mu
	jobs     map[structs.NamespacedID]string    // job -> its ready or in-flight eval ID; guarded by mu
	pending  map[structs.NamespacedID]*evalHeap // job -> evals waiting for it; guarded by mu
	delayed  *delayHeap                         // guarded by mu
	timer    *time.Timer                        // fires for the earliest delayed eval; guarded by mu
	attempts map[string]int                     // eval ID -> deliveries; guarded by mu
	canceled []*structs.Evaluation              // superseded, for the leader to cancel; guarded by mu
	wake     chan struct{}                      // closed and replaced when work arrives; guarded by mu
	seq      uint64                             // enqueue order, the tie-breaker; guarded by mu
}

type unackedEval struct {
	eval  *structs.Evaluation
	token string
	timer *time.Timer
}

func newEvalBroker(nackTimeout time.Duration, deliveryLimit int) *evalBroker {
	b := &evalBroker{nackTimeout: nackTimeout, deliveryLimit: deliveryLimit}
	b.resetLocked()
	return b
}

func (b *evalBroker) resetLocked() {
	for _, u := range b.unack {
		u.timer.Stop()
	}
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	b.ready = map[string]*evalHeap{}
	b.unack = map[string]*unackedEval{}
	b.jobs = map[structs.NamespacedID]string{}
	b.pending = map[structs.NamespacedID]*evalHeap{}
	b.delayed = &delayHeap{}
	b.attempts = map[string]int{}
	b.canceled = nil
	if b.wake != nil {
		close(b.wake) // waiters re-check and see the broker disabled
	}
	b.wake = make(chan struct{})
}

// SetEnabled turns the broker on (this server became leader) or off (it
// lost leadership): turning it off drops every evaluation it holds.
func (b *evalBroker) SetEnabled(on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !on {
		b.resetLocked()
	}
	b.enabled = on
}

// Enqueue adds a pending evaluation. It is a no-op while disabled.
func (b *evalBroker) Enqueue(ev *structs.Evaluation) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.enabled {
		return
	}
	if _, dup := b.unack[ev.ID]; dup {
		return
	}
	b.enqueueLocked(ev, time.Now())
}

func (b *evalBroker) enqueueLocked(ev *structs.Evaluation, now time.Time) {
	b.seq++
	if !ev.WaitUntil.IsZero() && ev.WaitUntil.After(now) {
		heap.Push(b.delayed, &queued{eval: ev, seq: b.seq})
		b.armTimerLocked()
		return
	}
	job := structs.NamespacedID{Namespace: ev.Namespace, ID: ev.JobID}
	if cur, busy := b.jobs[job]; busy {
		if cur == ev.ID {
			return // already ready or in flight
		}
		h := b.pending[job]
		if h == nil {
			h = &evalHeap{}
			b.pending[job] = h
		}
		heap.Push(h, &queued{eval: ev, seq: b.seq})
		return
	}
	b.jobs[job] = ev.ID
	b.pushReadyLocked(ev)
}

func (b *evalBroker) pushReadyLocked(ev *structs.Evaluation) {
	h := b.ready[ev.Type]
	if h == nil {
		h = &evalHeap{}
		b.ready[ev.Type] = h
	}
	b.seq++
	heap.Push(h, &queued{eval: ev, seq: b.seq})
	close(b.wake)
	b.wake = make(chan struct{})
}

// armTimerLocked makes the timer fire when the earliest delayed eval is due.
func (b *evalBroker) armTimerLocked() {
	if b.delayed.Len() == 0 {
		return
	}
	d := time.Until((*b.delayed)[0].eval.WaitUntil)
	if b.timer == nil {
		b.timer = time.AfterFunc(d, b.releaseDelayed)
		return
	}
	b.timer.Reset(d)
}

func (b *evalBroker) releaseDelayed() {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	for b.delayed.Len() > 0 && !(*b.delayed)[0].eval.WaitUntil.After(now) {
		q := heap.Pop(b.delayed).(*queued)
		b.enqueueLocked(q.eval, now)
	}
	b.armTimerLocked()
}

// Dequeue waits for a ready evaluation of one of the scheduler types and
// returns it with the token its ack or nack must carry.
func (b *evalBroker) Dequeue(ctx context.Context, schedulers []string) (*structs.Evaluation, string, error) {
	for {
		b.mu.Lock()
		if !b.enabled {
			b.mu.Unlock()
			return nil, "", errBrokerDisabled
		}
		if ev, token := b.takeLocked(schedulers); ev != nil {
			b.mu.Unlock()
			return ev, token, nil
		}
		wake := b.wake
		b.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, "", ctx.Err()
		case <-wake:
		}
	}
}

// takeLocked pops the best ready eval of the given types: highest
// priority, then first enqueued.
func (b *evalBroker) takeLocked(schedulers []string) (*structs.Evaluation, string) {
	var best *evalHeap
	for _, s := range schedulers {
		h := b.ready[s]
		if h == nil || h.Len() == 0 {
			continue
		}
		if best == nil || h.less((*h)[0], (*best)[0]) {
			best = h
		}
	}
	if best == nil {
		return nil, ""
	}
	ev := heap.Pop(best).(*queued).eval
	token := structs.GenerateUUID()
	b.attempts[ev.ID]++
	u := &unackedEval{eval: ev, token: token}
	u.timer = time.AfterFunc(b.nackTimeout, func() { _ = b.Nack(ev.ID, token) })
	b.unack[ev.ID] = u
	return ev, token
}

// outstandingLocked returns the in-flight evaluation evalID if token is
// the one it was delivered with.
func (b *evalBroker) outstandingLocked(op, evalID, token string) (*unackedEval, error) {
	u, ok := b.unack[evalID]
	if !ok {
		return nil, fmt.Errorf("%s %s: %w", op, evalID, errNotOutstanding)
	}
	if u.token != token {
		return nil, fmt.Errorf("%s %s: %w", op, evalID, errTokenMismatch)
	}
	return u, nil
}

// OutstandingReset restarts an in-flight evaluation's nack timer; workers
// call it while a long evaluation is still being planned.
func (b *evalBroker) OutstandingReset(evalID, token string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	u, err := b.outstandingLocked("reset", evalID, token)
	if err != nil {
		return err
	}
	u.timer.Reset(b.nackTimeout)
	return nil
}

// Ack completes an in-flight evaluation. The job's next evaluation (the
// newest waiting one) becomes ready; older waiting ones are superseded.
func (b *evalBroker) Ack(evalID, token string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	u, err := b.outstandingLocked("ack", evalID, token)
	if err != nil {
		return err
	}
	u.timer.Stop()
	delete(b.unack, evalID)
	delete(b.attempts, evalID)
	job := structs.NamespacedID{Namespace: u.eval.Namespace, ID: u.eval.JobID}
	delete(b.jobs, job)
	if h := b.pending[job]; h != nil && h.Len() > 0 {
		newest := h.newest()
		for _, q := range *h {
			if q.eval != newest {
				b.canceled = append(b.canceled, q.eval)
			}
		}
		delete(b.pending, job)
		b.jobs[job] = newest.ID
		b.pushReadyLocked(newest)
	}
	return nil
}

// Nack returns an in-flight evaluation for another delivery, or to the
// failed queue once it has been delivered deliveryLimit times.
func (b *evalBroker) Nack(evalID, token string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	u, err := b.outstandingLocked("nack", evalID, token)
	if err != nil {
		return err
	}
	u.timer.Stop()
	delete(b.unack, evalID)
	if b.attempts[evalID] >= b.deliveryLimit {
		failed := u.eval.Copy()
		failed.Type = failedQueue
		b.pushReadyLocked(failed)
		return nil
	}
	b.pushReadyLocked(u.eval)
	return nil
}

// Cancelable returns and forgets the evaluations superseded so far; the
// leader marks them canceled through raft.
func (b *evalBroker) Cancelable() []*structs.Evaluation {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.canceled
	b.canceled = nil
	return out
}

// brokerStats counts what the broker holds.
type brokerStats struct {
	Ready, Unacked, Pending, Delayed int
}

// Stats returns the current counts.
func (b *evalBroker) Stats() brokerStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	var s brokerStats
	for _, h := range b.ready {
		s.Ready += h.Len()
	}
	for _, h := range b.pending {
		s.Pending += h.Len()
	}
	s.Unacked = len(b.unack)
	s.Delayed = b.delayed.Len()
	return s
}

// queued is an evaluation in a heap, with its enqueue order.
type queued struct {
	eval *structs.Evaluation
	seq  uint64
}

// evalHeap orders by priority (high first), then enqueue order.
type evalHeap []*queued

func (h evalHeap) less(a, b *queued) bool {
	if a.eval.Priority != b.eval.Priority {
		return a.eval.Priority > b.eval.Priority
	}
	return a.seq < b.seq
}
func (h evalHeap) Len() int           { return len(h) }
func (h evalHeap) Less(i, j int) bool { return h.less(h[i], h[j]) }
func (h evalHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *evalHeap) Push(x any)        { *h = append(*h, x.(*queued)) }
func (h *evalHeap) Pop() any {
	old := *h
	q := old[len(old)-1]
	*h = old[:len(old)-1]
	return q
}

// newest returns the waiting evaluation created last: of the highest raft
// index, and of those (evaluations written in one batch entry) the one
// enqueued last.
func (h evalHeap) newest() *structs.Evaluation {
	var n *queued
	for _, q := range h {
		if n == nil || q.eval.CreateIndex > n.eval.CreateIndex || (q.eval.CreateIndex == n.eval.CreateIndex && q.seq > n.seq) {
			n = q
		}
	}
	if n == nil {
		return nil
	}
	return n.eval
}

// delayHeap orders delayed evaluations by WaitUntil.
type delayHeap []*queued

func (h delayHeap) Len() int { return len(h) }
func (h delayHeap) Less(i, j int) bool {
	if !h[i].eval.WaitUntil.Equal(h[j].eval.WaitUntil) {
		return h[i].eval.WaitUntil.Before(h[j].eval.WaitUntil)
	}
	return h[i].seq < h[j].seq
}
func (h delayHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *delayHeap) Push(x any)   { *h = append(*h, x.(*queued)) }
func (h *delayHeap) Pop() any {
	old := *h
	q := old[len(old)-1]
	*h = old[:len(old)-1]
	return q
}
