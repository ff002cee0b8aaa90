package server

import (
	"testing"
	"time"
)

// Linearizable reads on the leader share the VerifyLeader round of the
// read lease instead of one round each; ending the lease (a leadership
// change, a transfer) makes the next read ask the followers again.
func TestReadLeaseSharesVerifyRounds(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	register(t, l, testJob("web"))

	const reads = 200
	before := l.lease.rounds.Load()
	for range reads {
		if j := getJob(t, l, "web", false); j == nil {
			t.Fatal("the leader does not see the job it acknowledged")
		}
	}
	rounds := l.lease.rounds.Load() - before
	if rounds == 0 || rounds > reads/4 {
		t.Fatalf("%d linearizable reads made %d VerifyLeader rounds: want at least 1 and at most %d", reads, rounds, reads/4)
	}

	settled := func() { // no background renewal still counting
		for l.lease.renewing.Load() {
			time.Sleep(time.Millisecond)
		}
	}
	settled()
	l.lease.end(false)
	before = l.lease.rounds.Load()
	getJob(t, l, "web", false)
	if got := l.lease.rounds.Load() - before; got != 1 {
		t.Fatalf("first read after the lease ended made %d rounds, want 1", got)
	}

	// Once off (Leave, before a leadership transfer), no round grants a
	// lease: every read asks the followers.
	settled()
	l.lease.end(true)
	before = l.lease.rounds.Load()
	for range 5 {
		getJob(t, l, "web", false)
	}
	if got := l.lease.rounds.Load() - before; got != 5 {
		t.Fatalf("5 reads with the lease off made %d rounds, want 5", got)
	}
}

// With read_lease = false every linearizable read makes its own round.
func TestNoReadLeaseConfirmsEveryRead(t *testing.T) {
	c := newTestCluster(t, 1)
	l := c.leader()
	l.lease.disabled = true // server { read_lease = false }; set before any read
	register(t, l, testJob("web"))
	before := l.lease.rounds.Load()
	for range 10 {
		getJob(t, l, "web", false)
	}
	if got := l.lease.rounds.Load() - before; got != 10 {
		t.Fatalf("10 reads without a lease made %d rounds, want 10", got)
	}
}
