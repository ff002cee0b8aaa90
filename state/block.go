package state

import (
	"context"
	"time"

	"github.com/hashicorp/go-memdb"
)

// QueryFn runs a read against a snapshot-consistent view, adding watch
// channels to ws, and returns the index of its result. It keeps its result
// itself (in a closure), so that the last run is what the caller answers
// with.
type QueryFn func(ws memdb.WatchSet, s *Snapshot) (index uint64, err error)

// Blocking-query limits.
const (
	// MaxWaitLimit caps the maxWait of Block. Defaults and jitter are the
	// RPC layer's.
	MaxWaitLimit = 10 * time.Minute
	// watchLimit caps the channels one run of a query may watch. A query
	// that adds more waits on any write to the store instead (every write
	// moves the index table), which wakes it more often but costs one
	// channel instead of a goroutine per 32 channels.
	watchLimit = 2048
)

// Block runs fn on a fresh snapshot. If minIndex is 0, or fn returns an
// index above minIndex, it returns at once. Otherwise it waits until a
// channel fn watched closes and runs fn again, until the index passes
// minIndex, maxWait passes (at most MaxWaitLimit; a maxWait that is not
// positive means no wait at all, so that a caller passing the time left
// before its deadline never waits past it), ctx ends, or the store is
// abandoned. It never runs fn again without a change to wait for.
//
// Block returns fn's error if fn fails, ctx.Err() if ctx ends, and nil
// otherwise: on a timeout or an abandoned store the last run's result
// stands, with an index that may not pass minIndex. After an abandon the
// caller should read the FSM's new store (AbandonCh tells it apart).
//
// Block may be called from any goroutine.
func (s *Store) Block(ctx context.Context, minIndex uint64, maxWait time.Duration, fn QueryFn) error {
	waitCtx, cancel := context.WithTimeout(ctx, min(maxWait, MaxWaitLimit))
	defer cancel()
	for {
		snap := s.Snapshot()
		ws := memdb.NewWatchSet()
		idx, err := fn(ws, snap)
		if err != nil {
			return err
		}
		if minIndex == 0 || idx > minIndex || maxWait <= 0 {
			return nil
		}
		if len(ws) > watchLimit {
			ws = memdb.NewWatchSet()
			it, err := snap.txn().Get(TableIndex, indexID)
			if err != nil {
				return err
			}
			ws.Add(it.WatchCh())
		}
		ws.Add(s.abandonCh)
		if err := ws.WatchCtx(waitCtx); err != nil {
			return ctx.Err() // nil when maxWait ran out
		}
		select {
		case <-s.abandonCh:
			return nil
		default:
		}
	}
}
