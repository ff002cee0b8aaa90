package state

import (
	"fmt"
	"sync"
	"unsafe"

	"github.com/hashicorp/go-memdb"

	"github.com/skiffhq/skiff/structs"
)

// Store is the cluster state of one server: every table in memory, indexed,
// with watch channels for blocking queries.
//
// The raft FSM is the only writer. It calls the write methods one at a time,
// each with the raft index of the log entry it applies; a write either
// happens entirely or, when it returns an error, not at all. Reads may run on
// any goroutine at any time, concurrently with a write: each read sees the
// state before or after a write, never half of one. Use Snapshot when
// several reads must agree with each other.
//
// Objects go in by copy and come out shared: a write method never keeps or
// changes the caller's object, and the objects that reads return belong to
// the store and must not be modified (copy them first).
type Store struct {
	reader
	writer

	names    *names    // shared strings, for write transactions
	usageLog *usageLog // the usage rows of the latest commits

	abandonOnce sync.Once
	abandonCh   chan struct{}
}

// Snapshot is an immutable point-in-time view of a Store. It is cheap to
// take and to keep; later writes to the store do not show through it, but
// the watch channels its reads add still fire when the store changes what
// was read.
type Snapshot struct {
	reader
	usageLog *usageLog
	usageSeq uint64
}

// New returns an empty store.
func New() *Store {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		// The schema is a constant of this package; this is a bug.
		panic(fmt.Sprintf("state: invalid schema: %v", err))
	}
	s := &Store{reader: reader{db: db}, names: newNames(), usageLog: newUsageLog(), abandonCh: make(chan struct{})}
	s.writer = writer{run: s.write}
	return s
}

// writer carries the write methods, shared by Store (a transaction per
// write) and Batch (one transaction for many writes).
type writer struct {
	run func(index uint64, fn func(t *txn) error) error
}

// Batch is several writes in one memdb transaction: the FSM applies a
// batch of raft entries through it. Each write takes its own raft index and
// settles summaries and job statuses as if it were alone (table indexes
// once, at Commit, to the highest of the batch), so
// a Batch ends in exactly the state the same writes make one by one through
// the Store; it only commits once, which is much cheaper.
//
// A Batch takes ownership of the objects given to its writes. After a write
// fails the Batch is void: later writes return the same error, and the
// caller must Abort it. Nothing is visible to readers before Commit.
type Batch struct {
	writer
	t   *txn
	err error
	// indexes holds, per table written, the highest index of the batch's
	// writes: readers see only the committed state, so each table's index
	// row is written once, at Commit, rather than after every write.
	indexes map[string]uint64
}

// Batch starts a batch of writes. memdb allows one write transaction at a
// time: commit or abort the batch before writing through the Store again.
func (s *Store) Batch() *Batch {
	b := &Batch{t: s.newTxn(true), indexes: map[string]uint64{}}
	b.t.deferIndexes = b.indexes
	b.writer = writer{run: b.write}
	return b
}

func (b *Batch) write(index uint64, fn func(t *txn) error) error {
	if b.err != nil {
		return b.err
	}
	t := b.t
	t.startWrite(index)
	before := t.changes
	if err := fn(t); err != nil {
		if t.changes != before {
			b.err = err // the batch holds part of this write: it must abort
		}
		return err
	}
	if err := t.settle(); err != nil {
		t.changes++ // settling may have written part of the write's rows
		b.err = err
		return err
	}
	return nil
}

// Changes counts the changes the batch's writes made so far. A write that
// failed without changing it left nothing behind: the batch may go on
// and commit the others, as if that write had been made alone.
func (b *Batch) Changes() uint64 { return b.t.changes }

// Commit makes every write of the batch visible at once. It returns the
// error of a failed write instead, having aborted.
func (b *Batch) Commit() error {
	if b.err != nil {
		b.t.Abort()
		return b.err
	}
	if err := b.t.flushDerived(); err != nil {
		b.t.Abort()
		return err
	}
	for table, index := range b.indexes {
		if err := b.t.setIndex(table, index); err != nil {
			b.t.Abort()
			return err
		}
	}
	b.t.Commit()
	return nil
}

// Abort drops every write of the batch.
func (b *Batch) Abort() { b.t.Abort() }

// JobByID reads a job as the batch sees it: with the batch's own writes.
// The FSM uses it for checks that must be made where the write is applied
// (check-and-set), not against an older state on the leader.
func (b *Batch) JobByID(namespace, id string) (*structs.Job, error) {
	return byID[structs.Job](b.t, TableJobs, namespace, id)
}

// JobVersion reads one tracked version of a job as the batch sees it.
func (b *Batch) JobVersion(namespace, id string, version uint64) (*structs.Job, error) {
	return jobVersion(nil, b.t.Txn, namespace, id, version)
}

// NodeByID reads a node as the batch sees it.
func (b *Batch) NodeByID(id string) (*structs.Node, error) {
	return byID[structs.Node](b.t, TableNodes, id)
}

// Snapshot returns a view of the latest state. It costs a few pointer
// copies, whatever the size of the state, and waits for a commit that
// wrote node usage rows to finish (see usageLog).
func (s *Store) Snapshot() *Snapshot {
	db, seq := s.usageLog.snapshot(s.db)
	return &Snapshot{reader: reader{db: db, tx: db.Txn(false)}, usageLog: s.usageLog, usageSeq: seq}
}

// Abandon marks the store as replaced: the FSM calls it on the old store
// after restoring a raft snapshot into a new one. It closes AbandonCh, so
// that blocked queries wake and re-run against the new store. Calling it
// more than once is harmless.
func (s *Store) Abandon() {
	s.abandonOnce.Do(func() { close(s.abandonCh) })
}

// AbandonCh returns a channel that is closed when the store is abandoned.
func (s *Store) AbandonCh() <-chan struct{} { return s.abandonCh }

// txn is one write: a memdb write transaction at a raft index, and the
// bookkeeping that every write method shares. Summaries and job statuses
// are settled once, in settle, however many rows changed them.
type txn struct {
	*memdb.Txn
	index uint64

	touched map[string]bool // tables whose index entry moves to index
	// deferIndexes, when set (a Batch), collects the index entries of
	// touched tables for the batch's commit instead of writing them.
	deferIndexes map[string]uint64
	summaries    map[structs.NamespacedID]*structs.JobSummary // private copies changed by this write
	jobs         map[structs.NamespacedID]bool                // jobs whose status may have changed
	evalDelete   bool                                         // evaluations were garbage collected
	names        *names                                       // the store's shared strings
	// owned: write methods keep and change the objects they are given
	// instead of copying them (a Batch: the FSM's objects are decoded for
	// the write; a Restore).
	owned      bool
	lastShared *structs.Allocation // the allocation share saw last
	// refs holds the changes to TableAllocRefs rows not yet written: they
	// are written once, when the transaction commits (or before it reads
	// the row).
	refs map[refKey][]refOp
	// usage holds the transaction's own copies of the node usage rows it
	// changed, written when it commits.
	usage map[string]*structs.NodeUsage
	// usageWritten are the usage rows flushUsage wrote, and usageLog the
	// store's log that commit records them in.
	usageWritten []*structs.NodeUsage
	usageLog     *usageLog

	// base reads the state as it was when the transaction started, and
	// rows holds the rows the transaction wrote to the tables of overlaid,
	// by their ID index key (nil: deleted): together they answer the
	// transaction's reads by ID (byID). A read through the memdb write
	// transaction of a table it changed clones the table's radix
	// transaction, which drops the set of tree nodes the transaction
	// already copied, so that the next insert copies its whole path again:
	// placing a plan read each allocation before writing it, and copied
	// several kilobytes of tree nodes per allocation for it.
	base *memdb.Txn
	rows map[string]map[string]any
	// changes counts the transaction's changes: rows inserted or deleted,
	// and changes held for its commit (allocation lists, node usage). A
	// write that fails having changed nothing leaves a Batch usable.
	changes uint64
}

// overlaid are the tables whose rows txn.rows records, each with the
// indexer of its ID index (the key of a row, and of a lookup). Node usage
// rows are not among them: a transaction edits its own copies
// (txn.usage).
var overlaid = func() map[string]rowKeyer {
	tables := schema().Tables
	m := map[string]rowKeyer{}
	for _, name := range []string{TableJobs, TableJobSummary, TableEvals, TableNodes, TableDeployments, TableAllocs, TableAllocRefs} {
		ix, ok := tables[name].Indexes[indexID].Indexer.(rowKeyer)
		if !ok {
			panic(fmt.Sprintf("state: the ID index of %s cannot key rows", name)) // a bug in the schema
		}
		m[name] = ix
	}
	return m
}()

// byID reads the row of table with the given ID index arguments as the
// transaction sees it: what it wrote, else the state it started from.
func byID[T any](t *txn, table string, args ...any) (*T, error) {
	ix, ok := overlaid[table]
	if !ok {
		return nil, fmt.Errorf("read %s by ID in a write: the transaction does not record its writes to it (a bug: please report it)", table)
	}
	if rows := t.rows[table]; rows != nil {
		key, err := ix.FromArgs(args...)
		if err != nil {
			return nil, fmt.Errorf("read %s by %s: %w", table, indexID, err)
		}
		if row, ok := rows[string(key)]; ok {
			if row == nil {
				return nil, nil
			}
			return row.(*T), nil
		}
	}
	return first[T](nil, t.base, table, indexID, args...)
}

// record notes in t.rows that obj was written to table (deleted: removed).
func (t *txn) record(table string, obj any, deleted bool) error {
	ix, ok := overlaid[table]
	if !ok {
		return nil
	}
	// memdb has refused a row without an ID already: ok is true here.
	_, key, err := ix.FromObject(obj)
	if err != nil {
		return fmt.Errorf("key of a row of %s: %w", table, err)
	}
	if t.rows == nil {
		t.rows = map[string]map[string]any{}
	}
	rows := t.rows[table]
	if rows == nil {
		rows = map[string]any{}
		t.rows[table] = rows
	}
	if deleted {
		obj = nil
	}
	// The key's bytes are never written after this: an ID index shares the
	// ID's own (bytesOf), a compound one built them for this call.
	rows[unsafe.String(unsafe.SliceData(key), len(key))] = obj
	return nil
}

// newTxn starts a write transaction, with its reader of the state it
// starts from. owned: its writes keep and change the objects they are
// given (see txn.owned).
func (s *Store) newTxn(owned bool) *txn {
	tx := s.db.Txn(true) // holds the write lock: nothing commits before base is taken
	return &txn{Txn: tx, base: s.db.Txn(false), names: s.names, owned: owned, usageLog: s.usageLog}
}

// startWrite resets what one write of the transaction settles on its own
// (a Batch holds several writes) and sets its raft index.
func (t *txn) startWrite(index uint64) {
	t.index, t.evalDelete = index, false
	t.touched = map[string]bool{}
	t.summaries = map[structs.NamespacedID]*structs.JobSummary{}
	t.jobs = map[structs.NamespacedID]bool{}
}

// allocByID returns an allocation as the transaction sees it, or nil.
func (t *txn) allocByID(id string) (*structs.Allocation, error) {
	return byID[structs.Allocation](t, TableAllocs, id)
}

// Commit commits the transaction, recording the usage rows it wrote in
// the store's usage log. It shadows memdb's Commit, which would not.
func (t *txn) Commit() {
	t.usageLog.commit(t.Txn, t.usageWritten)
	t.usageWritten = nil
}

// flushDerived writes the derived rows the transaction changed: the
// lists of allocations and the node usage rows.
func (t *txn) flushDerived() error {
	if err := t.flushRefs(); err != nil {
		return err
	}
	return t.flushUsage()
}

// write runs fn in a write transaction at index and commits it if fn
// succeeds. memdb serialises write transactions, so a write waits for any
// other (or for an open Restore) to finish.
func (s *Store) write(index uint64, fn func(t *txn) error) error {
	t := s.newTxn(false)
	t.startWrite(index)
	defer t.Abort() // no-op after Commit
	if err := fn(t); err != nil {
		return err
	}
	if err := t.settle(); err != nil {
		return err
	}
	if err := t.flushDerived(); err != nil {
		return err
	}
	t.Commit()
	return nil
}

// settle writes what the rows changed in this write imply: job statuses,
// summaries, and the index entry of every table written.
func (t *txn) settle() error {
	for id := range t.jobs {
		if err := t.updateJobStatus(id); err != nil {
			return err
		}
	}
	for _, s := range t.summaries {
		if err := t.insert(TableJobSummary, s); err != nil {
			return err
		}
	}
	for table := range t.touched {
		if t.deferIndexes != nil {
			if t.index > t.deferIndexes[table] {
				t.changes++ // the commit moves the table's index
			}
			t.deferIndexes[table] = max(t.deferIndexes[table], t.index)
			continue
		}
		if err := t.setIndex(table, t.index); err != nil {
			return err
		}
	}
	return nil
}

// setIndex moves the index entry of table to index; indexes never go back.
func (t *txn) setIndex(table string, index uint64) error {
	raw, err := t.First(TableIndex, indexID, table)
	if err != nil {
		return fmt.Errorf("read index of %s: %w", table, err)
	}
	if cur, ok := raw.(*IndexEntry); ok && cur.Value >= index {
		return nil
	}
	if err := t.Insert(TableIndex, &IndexEntry{Key: table, Value: index}); err != nil {
		return fmt.Errorf("write index of %s: %w", table, err)
	}
	return nil
}

// touch marks tables as written, so that their index moves even when the
// write turned out to change no row (a delete of rows already gone).
func (t *txn) touch(tables ...string) {
	for _, table := range tables {
		t.touched[table] = true
	}
}

// Insert and Delete shadow memdb's, to count the transaction's changes.
func (t *txn) Insert(table string, obj any) error {
	t.changes++
	return t.Txn.Insert(table, obj)
}

func (t *txn) Delete(table string, obj any) error {
	t.changes++
	return t.Txn.Delete(table, obj)
}

func (t *txn) insert(table string, obj any) error {
	if err := t.Insert(table, obj); err != nil {
		return fmt.Errorf("insert into %s: %w", table, err)
	}
	t.touched[table] = true
	return t.record(table, obj, false)
}

func (t *txn) delete(table string, obj any) error {
	if err := t.Delete(table, obj); err != nil {
		return fmt.Errorf("delete from %s: %w", table, err)
	}
	t.touched[table] = true
	return t.record(table, obj, true)
}

// markJob asks commit to recompute the job's status.
func (t *txn) markJob(namespace, jobID string) {
	if jobID != "" {
		t.jobs[structs.NamespacedID{Namespace: namespace, ID: jobID}] = true
	}
}
