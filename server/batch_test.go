package server

import (
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/skiffhq/skiff/fsm"
	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/structs"
)

// registerAll registers jobs through s at once, and returns the replies
// and how many raft entries and writes the leader used meanwhile.
func registerAll(t *testing.T, s *Server, jobs []*structs.Job) (replies []*structs.JobRegisterResponse, entries, writes uint64) {
	t.Helper()
	e0, w0 := s.WriteBatches()
	replies = make([]*structs.JobRegisterResponse, len(jobs))
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, job := range jobs {
		wg.Go(func() { replies[i], errs[i] = tryRegister(t, s, &structs.JobRegisterRequest{Job: job}) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	e, w := s.WriteBatches()
	return replies, e - e0, w - w0
}

// jobsNamed returns n test jobs named prefix-0, prefix-1, ...
func jobsNamed(prefix string, n int) []*structs.Job {
	jobs := make([]*structs.Job, n)
	for i := range jobs {
		jobs[i] = testJob(fmt.Sprintf("%s-%d", prefix, i))
	}
	return jobs
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
	errs := make([]error, jobs)
	casErrs := make([]error, racers)
	e0, w0 := l.WriteBatches()
	var wg sync.WaitGroup
	for i := range jobs {
		wg.Go(func() {
			replies[i], errs[i] = tryRegister(t, l, &structs.JobRegisterRequest{Job: testJob(fmt.Sprintf("job-%d", i))})
		})
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
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
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
	if !hasEntryOfType(t, l, first.Index, lastIndex(t, l), structs.BatchEntryType) {
		t.Fatal("no batch entry in the leader's raft log")
	}
}

// lastIndex returns the last index of s's raft log.
func lastIndex(t *testing.T, s *Server) uint64 {
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

// TestWritesOfOneJobGetIndexesOfTheirOwn: writes of the same job never
// share an entry, so each writer's job modify index is its own, and a
// check-and-set against it fails once another writer changed the job.
func TestWritesOfOneJobGetIndexesOfTheirOwn(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	var jobs []*structs.Job
	for i := range 16 {
		job := testJob("same")
		job.TaskGroups[0].Count = 1 + i
		jobs = append(jobs, job, testJob(fmt.Sprintf("other-%d", i)))
	}
	replies, _, _ := registerAll(t, l, jobs)
	seen := map[uint64]int{}
	newest := 0
	for i := 0; i < len(replies); i += 2 {
		idx := replies[i].JobModifyIndex
		if j, dup := seen[idx]; dup {
			t.Fatalf("registrations %d and %d of one job both got job modify index %d", j, i, idx)
		}
		seen[idx] = i
		if idx > replies[newest].JobModifyIndex {
			newest = i
		}
	}
	for i := 0; i < len(replies); i += 2 {
		job := testJob("same")
		job.TaskGroups[0].Count = 100
		var reply structs.JobRegisterResponse
		err := l.RPC("Job.Register", &structs.JobRegisterRequest{Job: job, EnforceIndex: true, JobModifyIndex: replies[i].JobModifyIndex}, &reply)
		if i != newest && !structs.IsErr(err, structs.ErrIndexMismatch) {
			t.Fatalf("check-and-set against registration %d's index, which a later one replaced: %v, want an index mismatch", i, err)
		}
	}
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
		_, entries, writes := registerAll(t, l, jobsNamed(fmt.Sprintf("r%d", round), 32))
		return entries < writes
	}
	testutil.WaitFor(t, 20*time.Second, "concurrent writes sharing raft entries", shared)

	old := c.follower()
	tags := maps.Clone(old.serf.LocalMember().Tags)
	tags[tagLogFeatures] = featureCompressed + "," + featureJobRefs
	if err := old.serf.SetTags(tags); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "the leader to see a server that does not read batch entries", func() bool { return !l.readable().batches })
	for range 3 {
		if shared() {
			t.Fatal("writes shared a raft entry after the leader saw a server that does not read batch entries")
		}
	}
}

// fakeFuture is a raft.ApplyFuture that raft has already answered.
type fakeFuture struct {
	err   error
	index uint64
	resp  any
}

func (f fakeFuture) Error() error  { return f.err }
func (f fakeFuture) Index() uint64 { return f.index }
func (f fakeFuture) Response() any { return f.resp }

// TestBackgroundWritesWaitForCompany: a background write (a worker's
// evaluation update) that finds no entry committing waits for the next
// write and shares its entry; alone, it is committed after the linger.
func TestBackgroundWritesWaitForCompany(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()

	// Alone: committed once the linger is over.
	lone := &structs.Evaluation{ID: structs.GenerateUUID(), Namespace: "default", JobID: "lone", Type: "service", Priority: 50,
		Status: structs.EvalStatusComplete, TriggeredBy: structs.EvalTriggerJobRegister}
	index, err := l.raftApplyLater(structs.EvalUpdateRequestType, &structs.EvalUpdateRequest{Evals: []*structs.Evaluation{lone}})
	if err != nil {
		t.Fatal(err)
	}
	if ev, err := l.fsm.State().EvalByID(nil, lone.ID); err != nil || ev == nil || ev.ModifyIndex != index {
		t.Fatalf("the lone background write: stored %+v (%v), want it at index %d", ev, err, index)
	}

	// With company: a linger longer than the test makes the sharing
	// certain; the registration takes the waiting write along (as one
	// batch entry, once every server reads them).
	testutil.WaitFor(t, 10*time.Second, "every server reading batch entries", func() bool { return l.readable().batches })
	setLinger := func(d time.Duration) {
		l.batcher.mu.Lock()
		l.batcher.lingerFor = d
		l.batcher.mu.Unlock()
	}
	setLinger(time.Hour)
	defer setLinger(0)
	waiting := &structs.Evaluation{ID: structs.GenerateUUID(), Namespace: "default", JobID: "waiting", Type: "service", Priority: 50,
		Status: structs.EvalStatusComplete, TriggeredBy: structs.EvalTriggerJobRegister}
	answered := make(chan uint64, 1)
	go func() {
		index, err := l.raftApplyLater(structs.EvalUpdateRequestType, &structs.EvalUpdateRequest{Evals: []*structs.Evaluation{waiting}})
		if err != nil {
			t.Error(err)
		}
		answered <- index
	}()
	testutil.WaitFor(t, 10*time.Second, "the background write queued", func() bool {
		l.batcher.mu.Lock()
		defer l.batcher.mu.Unlock()
		return len(l.batcher.queue) == 1 && l.batcher.queue[0].later
	})
	select {
	case index := <-answered:
		t.Fatalf("the background write was committed at index %d before the registration it should wait for", index)
	case <-time.After(50 * time.Millisecond):
	}
	reply := register(t, l, testJob("company"))
	select {
	case index := <-answered:
		if index != reply.Index {
			t.Fatalf("the background write was committed at index %d, the registration at %d: want one entry", index, reply.Index)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the background write was not committed with the registration")
	}
}

// TestBatchAnswers: each write of a batch entry gets the entry's index and
// its own answer; a commit that failed is every write's failure, in the
// words that say whether it may be sent again.
func TestBatchAnswers(t *testing.T) {
	s := &Server{logger: hclog.NewNullLogger()}
	writes := func(n int) []*batchedWrite {
		ws := make([]*batchedWrite, n)
		for i := range ws {
			ws[i] = &batchedWrite{done: make(chan writeOutcome, 1)}
		}
		return ws
	}
	mismatch := fmt.Errorf("%w: someone else changed it", structs.ErrIndexMismatch)
	for _, c := range []struct {
		name   string
		future fakeFuture
		n      int
		want   func(i int, o writeOutcome) bool
	}{
		{"answers in order", fakeFuture{index: 7, resp: fsm.BatchResults{&fsm.RegisterResult{JobModifyIndex: 7}, mismatch, nil}}, 3,
			func(i int, o writeOutcome) bool {
				switch i {
				case 0:
					r, ok := o.resp.(*fsm.RegisterResult)
					return o.err == nil && ok && r.JobModifyIndex == 7 && o.index == 7
				case 1:
					return errors.Is(o.err, structs.ErrIndexMismatch) && o.resp == nil
				}
				return o.err == nil && o.resp == nil && o.index == 7
			}},
		{"a lone write's answer is the entry's", fakeFuture{index: 3, resp: mismatch}, 1,
			func(_ int, o writeOutcome) bool { return errors.Is(o.err, structs.ErrIndexMismatch) && o.index == 3 }},
		{"not the leader: may be sent again", fakeFuture{err: raft.ErrNotLeader}, 3,
			func(_ int, o writeOutcome) bool { return errors.Is(o.err, errNotApplied) }},
		{"leadership lost: outcome unknown", fakeFuture{err: raft.ErrLeadershipLost}, 3,
			func(_ int, o writeOutcome) bool { return structs.IsErr(o.err, structs.ErrOutcomeUnknown) }},
		{"a wrong answer: outcome unknown", fakeFuture{index: 9, resp: fsm.BatchResults{nil}}, 2,
			func(_ int, o writeOutcome) bool { return structs.IsErr(o.err, structs.ErrOutcomeUnknown) }},
	} {
		ws := writes(c.n)
		s.answer(ws, c.future)
		for i, w := range ws {
			select {
			case o := <-w.done:
				if !c.want(i, o) {
					t.Errorf("%s: write %d got %+v", c.name, i, o)
				}
			default:
				t.Errorf("%s: write %d not answered", c.name, i)
			}
		}
	}
}
