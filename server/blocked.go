package server

import (
	"sync"

	"github.com/skiffhq/skiff/structs"
)

// blockedEvals holds, on the leader, the evaluations that could not place
// every allocation, until capacity appears that they could use: a node
// joins or becomes ready, or allocations stop. It is keyed by computed
// node class: a blocked evaluation records which classes were feasible
// (ClassEligibility), and capacity on a class it found infeasible does not
// wake it. Evaluations of jobs constrained on node-unique values
// (EscapedComputedClass) wake on any capacity.
//
// A woken evaluation goes to the broker; the worker that processes it
// either places everything or creates the next blocked evaluation.
//
// Capacity can appear while an evaluation is being scheduled, after the
// snapshot it used: Block compares the evaluation's SnapshotIndex with the
// last index at which each class gained capacity and wakes it at once if
// it missed one.
//
// All methods are safe for concurrent use.
type blockedEvals struct {
	broker *evalBroker

	mu           sync.Mutex
	enabled      bool                                         // guarded by mu
	byJob        map[structs.NamespacedID]*structs.Evaluation // guarded by mu
	unblockIndex map[string]uint64                            // class -> index capacity last appeared; guarded by mu
	maxUnblock   uint64                                       // highest of unblockIndex; guarded by mu
	canceled     []*structs.Evaluation                        // replaced or untracked, to mark canceled; guarded by mu
}

func newBlockedEvals(broker *evalBroker) *blockedEvals {
	return &blockedEvals{
		broker: broker, byJob: map[structs.NamespacedID]*structs.Evaluation{}, unblockIndex: map[string]uint64{},
	}
}

// SetEnabled turns tracking on when this server becomes leader, and off
// (dropping everything) when it stops being leader.
func (b *blockedEvals) SetEnabled(on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.enabled = on
	if !on {
		b.byJob = map[structs.NamespacedID]*structs.Evaluation{}
		b.unblockIndex = map[string]uint64{}
		b.maxUnblock = 0
		b.canceled = nil
	}
}

// Block tracks a blocked evaluation. If its job already has one, the
// older of the two is canceled (the newer carries the newer job).
func (b *blockedEvals) Block(ev *structs.Evaluation) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.enabled {
		return
	}
	job := structs.NamespacedID{Namespace: ev.Namespace, ID: ev.JobID}
	if cur := b.byJob[job]; cur != nil {
		if cur.ID == ev.ID {
			return
		}
		if cur.CreateIndex > ev.CreateIndex {
			b.canceled = append(b.canceled, ev)
			return
		}
		b.canceled = append(b.canceled, cur)
		delete(b.byJob, job)
	}
	if b.missedLocked(ev) {
		b.broker.Enqueue(ev)
		return
	}
	b.byJob[job] = ev
}

// missedLocked reports whether capacity the evaluation could use appeared
// after the snapshot it was scheduled on.
func (b *blockedEvals) missedLocked(ev *structs.Evaluation) bool {
	if ev.EscapedComputedClass {
		return b.maxUnblock > ev.SnapshotIndex
	}
	for class, idx := range b.unblockIndex {
		if idx > ev.SnapshotIndex && wants(ev, class) {
			return true
		}
	}
	return false
}

// wants reports whether capacity on class may let ev place more: the
// class was feasible for it, or it never saw a node of that class.
func wants(ev *structs.Evaluation, class string) bool {
	if ev.EscapedComputedClass {
		return true
	}
	ok, seen := ev.ClassEligibility[class]
	return ok || !seen
}

// Unblock records that capacity appeared on nodes of class at index and
// hands every blocked evaluation that could use it to the broker. It
// returns how many it woke.
func (b *blockedEvals) Unblock(class string, index uint64) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.enabled {
		return 0
	}
	if index > b.unblockIndex[class] {
		b.unblockIndex[class] = index
	}
	b.maxUnblock = max(b.maxUnblock, index)
	woken := 0
	for job, ev := range b.byJob {
		if wants(ev, class) {
			delete(b.byJob, job)
			b.broker.Enqueue(ev)
			woken++
		}
	}
	return woken
}

// Untrack stops tracking the job's blocked evaluation (the job was
// stopped or purged); it is canceled.
func (b *blockedEvals) Untrack(job structs.NamespacedID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ev := b.byJob[job]; ev != nil {
		delete(b.byJob, job)
		b.canceled = append(b.canceled, ev)
	}
}

// Cancelable returns and forgets the evaluations to mark canceled.
func (b *blockedEvals) Cancelable() []*structs.Evaluation {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.canceled
	b.canceled = nil
	return out
}

// Len returns how many evaluations are blocked.
func (b *blockedEvals) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.byJob)
}
