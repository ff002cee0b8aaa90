package server

import (
	"fmt"
	"sync"
	"sync/atomic"

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
const (
	batchInFlight  = 2
	batchMaxWrites = 256
	batchMaxBytes  = 1 << 20
)

// batcher holds the writes waiting for the next batch entry.
type batcher struct {
	mu       sync.Mutex
	queue    []*batchedWrite // guarded by mu
	inFlight int             // entries handed to raft and not answered; guarded by mu
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
	entry []byte            // a plain entry: type byte and msgpack body
	done  chan writeOutcome // buffered: the committer never blocks
}

// writeOutcome is the answer to one write: its raft index and the FSM's
// response, or why it failed.
type writeOutcome struct {
	index uint64
	resp  any
	err   error
}

// raftApplyResult commits one entry and returns its index and the FSM's
// response to it (an error is returned as err). Concurrent calls share
// raft entries once every server reads batch entries.
func (s *Server) raftApplyResult(t structs.MessageType, msg any) (uint64, any, error) {
	if !s.batchEntries() {
		a, err := s.raftSubmit(t, msg)
		if err != nil {
			return 0, nil, err
		}
		return a.wait()
	}
	entry, err := structs.Encode(t, msg)
	if err != nil {
		return 0, nil, fmt.Errorf("encode %T: %w", msg, err)
	}
	w := &batchedWrite{entry: entry, done: make(chan writeOutcome, 1)}
	s.queueWrite(w)
	select {
	case o := <-w.done:
		return o.index, o.resp, o.err
	case <-s.shutdownCtx.Done():
		return 0, nil, fmt.Errorf("%w: server is shutting down", structs.ErrOutcomeUnknown)
	}
}

// queueWrite queues w, and commits the queue now if fewer than
// batchInFlight entries are committing.
func (s *Server) queueWrite(w *batchedWrite) {
	b := &s.batcher
	b.mu.Lock()
	b.queue = append(b.queue, w)
	if b.inFlight >= batchInFlight {
		b.mu.Unlock()
		return
	}
	b.inFlight++
	ws := b.takeLocked()
	b.mu.Unlock()
	s.commitWrites(ws)
}

// takeLocked removes and returns the writes of the next entry: the oldest
// queued, up to batchMaxWrites and batchMaxBytes (at least one).
func (b *batcher) takeLocked() []*batchedWrite {
	n, size := 0, 0
	for n < len(b.queue) && n < batchMaxWrites && (n == 0 || size+len(b.queue[n].entry) <= batchMaxBytes) {
		size += len(b.queue[n].entry)
		n++
	}
	ws := b.queue[:n:n]
	if b.queue = b.queue[n:]; len(b.queue) == 0 {
		b.queue = nil
	}
	return ws
}

// commitWrites hands ws to raft as one entry and answers each write once
// raft has. It then commits what queued meanwhile, or gives up its place
// in flight.
func (s *Server) commitWrites(ws []*batchedWrite) {
	compress := s.compressEntries()
	var entry []byte
	if len(ws) == 1 {
		entry = structs.CompressEntry(ws[0].entry, compress)
	} else {
		size := 0
		for _, w := range ws {
			size += len(w.entry) + 4
		}
		body := make([]byte, 0, size)
		for _, w := range ws {
			body = structs.AppendBatchEntry(body, w.entry)
		}
		entry = structs.BatchEntry(body, compress)
	}
	s.batcher.entries.Add(1)
	s.batcher.writes.Add(uint64(len(ws)))
	metrics.AddSample([]string{"server", "write_batch_size"}, float32(len(ws)))
	future := s.raft.Apply(entry, raftApplyTimeout)
	// raft (1.7, with BatchApplyCh) may take an entry into its buffered
	// apply channel after it shut down, and then never answer its future;
	// the writers stop waiting at shutdown (raftApplyResult).
	go func() {
		answer(ws, future)
		b := &s.batcher
		b.mu.Lock()
		if len(b.queue) == 0 {
			b.inFlight--
			b.mu.Unlock()
			return
		}
		next := b.takeLocked()
		b.mu.Unlock()
		s.commitWrites(next)
	}()
}

// answer waits for future, the entry of ws, and sends each write its
// outcome.
func answer(ws []*batchedWrite, future raft.ApplyFuture) {
	index, resp, err := raftOutcome(future)
	if err != nil || len(ws) == 1 {
		for _, w := range ws {
			w.done <- outcome(index, resp, err)
		}
		return
	}
	results, ok := resp.(fsm.BatchResults)
	if !ok || len(results) != len(ws) {
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
