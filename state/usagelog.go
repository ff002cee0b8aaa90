package state

import (
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-memdb"

	"github.com/skiffhq/skiff/structs"
)

// usageLog keeps, for the latest commits that wrote node usage rows, the
// rows each wrote. A reader holding every row as of an earlier snapshot
// brings them up to date from it (the scheduler does once per
// evaluation) instead of reading the whole table again: at 5,000 nodes
// that read was about a millisecond, a twentieth of the scheduler's time.
//
// A commit's memdb transaction and its entry go in under the lock, and a
// snapshot takes its memdb view and the log's position under it too, so
// a snapshot's position counts exactly the commits its view holds.
//
// Positions are comparable only within one store: each log starts at its
// own base, 2^32 apart, so that a position of another store (a snapshot
// taken before a restore replaced the store) is never within reach of
// since and never equal to one of this store.
//
// The lock is held while memdb commits, which includes closing the watch
// channels of what changed: nothing in that path may take a snapshot of
// this store (memdb's Txn.Defer callbacks included), or it deadlocks.
type usageLog struct {
	mu   sync.RWMutex
	seq  uint64                            // guarded by mu: the position after the latest commit
	rows [usageLogLen][]*structs.NodeUsage // guarded by mu: rows[p % usageLogLen] is what the commit at position p wrote
}

// usageLogBases hands each new log its base position.
var usageLogBases atomic.Uint64

func newUsageLog() *usageLog {
	return &usageLog{seq: usageLogBases.Add(1) << 32}
}

// usageLogLen is how many commits the log keeps: a reader further behind
// reads the table.
const usageLogLen = 256

// commit commits tx, which wrote rows (none: an ordinary commit).
func (l *usageLog) commit(tx *memdb.Txn, rows []*structs.NodeUsage) {
	if len(rows) == 0 {
		tx.Commit()
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	tx.Commit()
	l.seq++
	l.rows[l.seq%usageLogLen] = rows
}

// snapshot returns a view of db and the log's position for it.
func (l *usageLog) snapshot(db *memdb.MemDB) (*memdb.MemDB, uint64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return db.Snapshot(), l.seq
}

// since returns the rows written by the commits after from, up to and
// including upTo, oldest first; false when the log no longer holds them
// all, or from is past upTo.
func (l *usageLog) since(from, upTo uint64) ([][]*structs.NodeUsage, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if from > upTo || l.seq-from > usageLogLen { // upTo, a snapshot's position, is never past l.seq
		return nil, false
	}
	out := make([][]*structs.NodeUsage, 0, upTo-from)
	for s := from + 1; s <= upTo; s++ {
		out = append(out, l.rows[s%usageLogLen])
	}
	return out, true
}

// UsageSeq is the position of the snapshot in its store's usage log: the
// number of commits before it that wrote node usage rows.
func (s *Snapshot) UsageSeq() uint64 { return s.usageSeq }

// UsageSince returns the node usage rows written after the snapshot at
// position seq of the same store, up to this snapshot, oldest first (a
// row written twice is in both; the later is the one this snapshot
// holds). It returns false when the store no longer knows them: read
// NodeUsages instead.
func (s *Snapshot) UsageSince(seq uint64) ([][]*structs.NodeUsage, bool) {
	return s.usageLog.since(seq, s.usageSeq)
}
