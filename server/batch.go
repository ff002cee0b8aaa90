package server

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-metrics"
	"github.com/hashicorp/raft"

	"github.com/skiffhq/skiff/fsm"
	"github.com/skiffhq/skiff/structs"
)

// Writes that arrive together are committed together (group commit):
// while batchInFlight raft entries are being committed, new writes queue,
// and the next entry carries every queued write as one batch entry
// (structs.BatchEntryType). Raft's own work per entry (its log store,
// replication, and the apply loop of every server) is a large part of
// what a small write costs, so a batch of n writes costs far less than n
// entries. A write that finds fewer than batchInFlight entries committing
// is sent at once, alone: batching adds no wait to a lone writer.
//
// A background write (raftApplyLater: a worker's evaluation update, the
// reaper's) is not sent while only background writes are queued: it
// waits for a user's write to share its entry with, or until batchLinger
// has passed with no entry committing (while one is, it waits on, a
// timer round at a time: the writer that entry answers is likely to
// write again). So it waits about a commit plus batchLinger at most while
// the cluster is otherwise quiet. A worker writes its evaluation's outcome
// just as the next registration arrives; sent alone, it took raft's
// leader loop (and its fsync) first, and the registration waited a
// whole commit behind it.
const (
	batchInFlight  = 2
	batchMaxWrites = 256
	batchMaxBytes  = 1 << 20
	batchLinger    = time.Millisecond
)

// batcher holds the writes waiting for the next batch entry.
type batcher struct {
	mu       sync.Mutex
	queue    []*batchedWrite // guarded by mu
	inFlight int             // entries handed to raft and not answered; guarded by mu
	// linger sends the queue when background writes have waited
	// batchLinger for company; lingering tells it is armed. Guarded by mu.
	linger    *time.Timer
	lingering bool
	lingerFor time.Duration // batchLinger unless a test set it
	// entries and writes count what was handed to raft: WriteBatches.
	entries, writes atomic.Uint64
}

// WriteBatches returns how many raft entries this server's writes went
// out in, and how many writes those entries carried.
func (s *Server) WriteBatches() (entries, writes uint64) {
	return s.batcher.entries.Load(), s.batcher.writes.Load()
}

// batchedWrite is one write waiting for its commit.
type batchedWrite struct {
	entry []byte               // a plain entry: type byte and msgpack body
	job   structs.NamespacedID // the job it registers or stops (jobOf); zero for other writes
	done  chan writeOutcome    // buffered: the committer never blocks
	later bool                 // a background write: may wait batchLinger for company
}

// jobOf names the job a write registers, stops or reverts; the zero
// value for other writes. Two writes of one job never share an entry:
// each must get a job modify index of its own, or a check-and-set against
// the first writer's index would pass after the second writer's change.
func jobOf(msg any) structs.NamespacedID {
	switch m := msg.(type) {
	case *structs.JobRegisterRequest:
		if m.Job != nil {
			return structs.NamespacedID{Namespace: m.Job.Namespace, ID: m.Job.ID}
		}
	case *structs.JobDeregisterRequest:
		return structs.NamespacedID{Namespace: m.Namespace, ID: m.JobID}
	case *structs.DeploymentUpdateRequest:
		if m.Job != nil {
			return structs.NamespacedID{Namespace: m.Job.Namespace, ID: m.Job.ID}
		}
	}
	return structs.NamespacedID{}
}

// writeOutcome is the answer to one write: its raft index and the FSM's
// response, or why it failed.
type writeOutcome struct {
	index uint64
	resp  any
	err   error
}

// raftApplyResult commits one write and returns its raft index and the
// FSM's response to it (an error is returned as err). Concurrent calls
// share raft entries once every server reads batch entries.
func (s *Server) raftApplyResult(t structs.MessageType, msg any) (uint64, any, error) {
	return s.commitWrite(t, msg, false)
}

// raftApplyLater is raftApply for a background write, one nobody waits
// on interactively: it waits for a user's write to share its entry, or
// for batchLinger with no entry committing (see batchLinger).
func (s *Server) raftApplyLater(t structs.MessageType, msg any) (uint64, error) {
	index, _, err := s.commitWrite(t, msg, true)
	return index, err
}

func (s *Server) commitWrite(t structs.MessageType, msg any, later bool) (uint64, any, error) {
	entry, err := structs.Encode(t, msg)
	if err != nil {
		return 0, nil, fmt.Errorf("encode %T: %w", msg, err)
	}
	w := &batchedWrite{entry: entry, job: jobOf(msg), done: make(chan writeOutcome, 1), later: later}
	s.queueWrite(w)
	select {
	case o := <-w.done:
		return o.index, o.resp, o.err
	case <-s.shutdownCtx.Done():
		return 0, nil, fmt.Errorf("%w: server is shutting down", structs.ErrOutcomeUnknown)
	}
}

// queueWrite queues w, and commits the queue now if fewer than
// batchInFlight entries are committing (nextLocked).
func (s *Server) queueWrite(w *batchedWrite) {
	b := &s.batcher
	b.mu.Lock()
	b.queue = append(b.queue, w)
	ws := b.nextLocked(s, false)
	b.mu.Unlock()
	if ws != nil {
		s.commitWrites(ws)
	}
}

// nextLocked returns the writes of the next entry to send now, taking a
// place in flight for it, or nil: when the queue is empty, when
// batchInFlight entries are committing (the first to finish sends the
// queue), or when the queue holds only background writes and late is
// false (they wait for company, and the linger timer is armed: lingered).
func (b *batcher) nextLocked(s *Server, late bool) []*batchedWrite {
	if len(b.queue) == 0 || b.inFlight >= batchInFlight {
		return nil
	}
	if s.shutdownCtx.Err() != nil {
		return nil // the writers were told (commitWrite)
	}
	if !late && b.onlyLaterLocked() {
		if !b.lingering {
			b.lingering = true
			d := b.lingerDuration()
			if b.linger == nil {
				b.linger = time.AfterFunc(d, s.lingered)
			} else {
				b.linger.Reset(d)
			}
		}
		return nil
	}
	if b.lingering && b.linger.Stop() {
		b.lingering = false
	}
	b.inFlight++
	return b.takeLocked()
}

// stopLinger stops the linger timer, at shutdown.
func (b *batcher) stopLinger() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.linger != nil {
		b.linger.Stop()
	}
}

func (b *batcher) lingerDuration() time.Duration {
	if b.lingerFor > 0 {
		return b.lingerFor
	}
	return batchLinger
}

// onlyLaterLocked tells whether every queued write is a background one.
func (b *batcher) onlyLaterLocked() bool {
	for _, q := range b.queue {
		if !q.later {
			return false
		}
	}
	return true
}

// lingered sends the background writes that waited batchLinger with no
// entry committing. While one is, they wait on (nextLocked arms the timer
// again, or the entry's end does): the writer it answers may be about to
// write again.
func (s *Server) lingered() {
	b := &s.batcher
	b.mu.Lock()
	b.lingering = false
	ws := b.nextLocked(s, b.inFlight == 0)
	b.mu.Unlock()
	if ws != nil {
		s.commitWrites(ws)
	}
}

// takeLocked removes and returns the writes of the next entry: the oldest
// queued, up to batchMaxWrites and batchMaxBytes and up to the second
// write of a job (at least one write).
func (b *batcher) takeLocked() []*batchedWrite {
	n, size := 0, 0
	var jobs map[structs.NamespacedID]bool
	for n < len(b.queue) && n < batchMaxWrites && (n == 0 || size+len(b.queue[n].entry) <= batchMaxBytes) {
		if job := b.queue[n].job; job.ID != "" {
			if jobs[job] {
				break
			}
			if jobs == nil {
				jobs = map[structs.NamespacedID]bool{}
			}
			jobs[job] = true
		}
		size += len(b.queue[n].entry)
		n++
	}
	ws := b.queue[:n:n]
	if b.queue = b.queue[n:]; len(b.queue) == 0 {
		b.queue = nil
	}
	return ws
}

// commitWrites hands ws to raft, as one batch entry or (when some server
// does not read batch entries, or there is one write) an entry each, and
// answers each write once raft has. It then commits what queued
// meanwhile, or gives up its place in flight.
func (s *Server) commitWrites(ws []*batchedWrite) {
	forms := s.readable()
	var futures []raft.ApplyFuture
	var groups [][]*batchedWrite
	if len(ws) == 1 || !forms.batches {
		for i, w := range ws {
			futures = append(futures, s.raft.Apply(structs.CompressEntry(w.entry, forms.compressed), raftApplyTimeout))
			groups = append(groups, ws[i:i+1])
		}
	} else {
		size := 0
		for _, w := range ws {
			size += len(w.entry) + binary.MaxVarintLen32
		}
		body := make([]byte, 0, size)
		for _, w := range ws {
			body = structs.AppendBatchEntry(body, w.entry)
		}
		futures = append(futures, s.raft.Apply(structs.BatchEntry(body, forms.compressed), raftApplyTimeout))
		groups = append(groups, ws)
	}
	s.batcher.entries.Add(uint64(len(futures)))
	s.batcher.writes.Add(uint64(len(ws)))
	for _, g := range groups {
		metrics.AddSample([]string{"server", "write_batch_size"}, float32(len(g)))
	}
	// raft (1.7, with BatchApplyCh) may take an entry into its buffered
	// apply channel after it shut down, and then never answer its future;
	// the writers stop waiting at shutdown (commitWrite), and this
	// goroutine ends with the process.
	go func() {
		for i, f := range futures {
			s.answer(groups[i], f)
		}
		b := &s.batcher
		b.mu.Lock()
		b.inFlight--
		next := b.nextLocked(s, false)
		b.mu.Unlock()
		if next != nil {
			s.commitWrites(next)
		}
	}()
}

// answer waits for future, the entry of ws, and sends each write its
// outcome.
func (s *Server) answer(ws []*batchedWrite, future raft.ApplyFuture) {
	index, resp, err := raftOutcome(future)
	if err != nil || len(ws) == 1 {
		for _, w := range ws {
			w.done <- outcome(index, resp, err)
		}
		return
	}
	results, ok := resp.(fsm.BatchResults)
	if !ok || len(results) != len(ws) {
		s.logger.Error("the state machine answered a batch entry wrongly; its writes are reported as of unknown outcome",
			"index", index, "writes", len(ws), "answer", fmt.Sprintf("%T", resp))
		err = fmt.Errorf("%w: the state machine answered a batch of %d writes with %T", structs.ErrOutcomeUnknown, len(ws), resp)
	}
	for i, w := range ws {
		if err != nil {
			w.done <- outcome(index, nil, err)
		} else {
			w.done <- outcome(index, results[i], nil)
		}
	}
}

// outcome is a write's outcome from its entry's index, the FSM's response
// and the commit error: an error response is the write's error.
func outcome(index uint64, resp any, err error) writeOutcome {
	if err != nil {
		return writeOutcome{index: index, err: err}
	}
	if e, ok := resp.(error); ok && e != nil {
		return writeOutcome{index: index, err: e}
	}
	return writeOutcome{index: index, resp: resp}
}
