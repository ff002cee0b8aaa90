package server

import (
	"sync"
	"sync/atomic"
	"time"
)

// readLease lets a leader answer linearizable reads without a round of
// heartbeats for each.
//
// Confirming takes a round of heartbeats to the followers (raft's
// VerifyLeader), which under load waits behind the replication of writes.
// A round that succeeds also gives a read lease: a quorum of followers
// answered, and a follower refuses to vote for another candidate until
// its heartbeat timeout has passed since it last heard from this leader.
// So for a tenth of the heartbeat timeout from the start of the round no
// other server can become leader and commit a write, and reads need no
// new round. This holds under two assumptions, which raft's API leaves:
//   - raft may count, for a round, the answer to a heartbeat or append it
//     sent shortly before the round began; the lease is safe as long as
//     such an answer reaches this leader less than 9/10 of the heartbeat
//     timeout after the follower handled it (360 ms with the default
//     400 ms), and every server runs with the same heartbeat timeout;
//   - a follower that restarts knows no leader and may vote at once; it
//     would have to restart, and a new leader be elected and commit,
//     inside the lease (40 ms by default).
//
// A leadership transfer skips the followers' wait: Leave ends the lease,
// for good, before it starts one.
type readLease struct {
	epoch    time.Time     // time.Since(epoch) is the lease's clock (monotonic)
	length   time.Duration // a tenth of the heartbeat timeout
	disabled bool          // server { read_lease = false }: a round per read

	until atomic.Int64 // on the lease's clock; 0: no lease
	// mu orders grants against ends: a round that began before an end (gen
	// moved) grants nothing, and none does once off is set (a leadership
	// transfer is under way).
	mu       sync.Mutex
	gen      uint64
	off      bool
	renewing atomic.Bool   // a background renewal runs
	rounds   atomic.Uint64 // rounds made for reads (tests)
}

func newReadLease(heartbeatTimeout time.Duration, disabled bool) *readLease {
	return &readLease{epoch: time.Now(), length: heartbeatTimeout / 10, disabled: disabled}
}

// confirm returns nil when a read may be answered now: under the lease,
// renewing it in the background once half of it is gone so that a steady
// stream of reads seldom waits; else after a round (verify) that succeeds.
func (l *readLease) confirm(verify func() error) error {
	left := time.Duration(l.until.Load()) - time.Since(l.epoch)
	if left <= 0 {
		return l.renew(verify)
	}
	if left < l.length/2 && l.renewing.CompareAndSwap(false, true) {
		go func() {
			defer l.renewing.Store(false)
			_ = l.renew(verify)
		}()
	}
	return nil
}

// renew makes a round and, when no lease ended meanwhile, extends the
// lease from the round's start.
func (l *readLease) renew(verify func() error) error {
	start := time.Since(l.epoch)
	l.mu.Lock()
	gen := l.gen
	l.mu.Unlock()
	l.rounds.Add(1)
	if err := verify(); err != nil {
		return err
	}
	until := int64(start + l.length)
	l.mu.Lock()
	if gen == l.gen && !l.off && !l.disabled && until > l.until.Load() {
		l.until.Store(until)
	}
	l.mu.Unlock()
	return nil
}

// end makes the next read make a round again; for good (until the server
// stops) when off is set.
func (l *readLease) end(off bool) {
	l.mu.Lock()
	l.gen++
	l.off = l.off || off
	l.until.Store(0)
	l.mu.Unlock()
}
