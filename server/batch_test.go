package server

import (
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/structs"
)

// registerAll registers n jobs named prefix-i through s at once and
// returns how many raft entries and writes the leader used meanwhile.
func registerAll(t *testing.T, s *Server, prefix string, n int) (entries, writes uint64) {
	t.Helper()
	e0, w0 := s.WriteBatches()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { register(t, s, testJob(fmt.Sprintf("%s-%d", prefix, i))) })
	}
	wg.Wait()
	e, w := s.WriteBatches()
	return e - e0, w - w0
}

// TestConcurrentWritesShareEntries: writes made at once go to raft in
// batch entries, and each writer still gets its own answer: its job's
// modify index, or its own check-and-set failure.
func TestConcurrentWritesShareEntries(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	first := register(t, l, testJob("cas"))

	const jobs, racers = 40, 8
	replies := make([]*structs.JobRegisterResponse, jobs)
	casErrs := make([]error, racers)
	e0, w0 := l.WriteBatches()
	var wg sync.WaitGroup
	for i := range jobs {
		wg.Go(func() { replies[i] = register(t, l, testJob(fmt.Sprintf("job-%d", i))) })
	}
	for i := range racers {
		wg.Go(func() {
			job := testJob("cas")
			job.TaskGroups[0].Count = 10 + i
			var reply structs.JobRegisterResponse
			casErrs[i] = l.RPC("Job.Register", &structs.JobRegisterRequest{Job: job, EnforceIndex: true, JobModifyIndex: first.JobModifyIndex}, &reply)
		})
	}
	wg.Wait()
	e1, w1 := l.WriteBatches()

	if w1-w0 < jobs+racers {
		t.Fatalf("%d writes counted, want at least %d", w1-w0, jobs+racers)
	}
	if e1-e0 >= w1-w0 {
		t.Fatalf("%d writes went out in %d raft entries: none shared an entry", w1-w0, e1-e0)
	}
	store := l.fsm.State()
	for i, r := range replies {
		j, err := store.JobByID(nil, "default", fmt.Sprintf("job-%d", i))
		if err != nil || j == nil {
			t.Fatalf("job-%d not stored: %v", i, err)
		}
		if r.JobModifyIndex != j.JobModifyIndex || r.Index != j.JobModifyIndex || r.EvalCreateIndex != r.Index {
			t.Fatalf("job-%d: reply has job modify index %d, index %d, eval index %d; stored job modify index %d",
				i, r.JobModifyIndex, r.Index, r.EvalCreateIndex, j.JobModifyIndex)
		}
	}
	won := -1
	for i, err := range casErrs {
		switch {
		case err == nil && won >= 0:
			t.Fatalf("check-and-set registrations %d and %d both won", won, i)
		case err == nil:
			won = i
		case !structs.IsErr(err, structs.ErrIndexMismatch):
			t.Fatalf("check-and-set registration %d: %v, want an index mismatch", i, err)
		}
	}
	if won < 0 {
		t.Fatal("no check-and-set registration won")
	}
	if j, _ := store.JobByID(nil, "default", "cas"); j.TaskGroups[0].Count != 10+won {
		t.Fatalf("cas has count %d, want the winner's %d", j.TaskGroups[0].Count, 10+won)
	}
	if !hasEntryOfType(t, l, first.Index, e1Index(t, l), structs.BatchEntryType) {
		t.Fatal("no batch entry in the leader's raft log")
	}
}

// e1Index returns the leader's last raft index.
func e1Index(t *testing.T, s *Server) uint64 {
	t.Helper()
	last, err := s.raftStore.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	return last
}

// hasEntryOfType reports whether s's raft log holds an entry of type want
// (compressed or not) in [from, to].
func hasEntryOfType(t *testing.T, s *Server, from, to uint64, want structs.MessageType) bool {
	t.Helper()
	for i := from; i <= to; i++ {
		var l raft.Log
		if err := s.raftStore.GetLog(i, &l); err != nil {
			if errors.Is(err, raft.ErrLogNotFound) {
				continue
			}
			t.Fatal(err)
		}
		if l.Type != raft.LogCommand || len(l.Data) == 0 {
			continue
		}
		typ, _, release, err := structs.DecodeEntry(l.Data)
		release()
		if err == nil && typ == want {
			return true
		}
	}
	return false
}

// A leader writes batch entries only while every server gossips that it
// reads them: once one server does not (an older build during a rolling
// upgrade), every write is an entry of its own again.
func TestWritesShareEntriesOnlyWhileEveryServerReadsThem(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	round := 0
	shared := func() bool {
		round++
		entries, writes := registerAll(t, l, fmt.Sprintf("r%d", round), 32)
		return entries < writes
	}
	testutil.WaitFor(t, 20*time.Second, "concurrent writes sharing raft entries", shared)

	old := c.follower()
	tags := maps.Clone(old.serf.LocalMember().Tags)
	tags[tagLogFeatures] = featureCompressed + "," + featureJobRefs
	if err := old.serf.SetTags(tags); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "a round of writes in entries of their own", func() bool { return !shared() })
	for range 3 {
		if shared() {
			t.Fatal("writes shared a raft entry after the leader saw a server that does not read batch entries")
		}
	}
}
