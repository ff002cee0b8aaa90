package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/skiffhq/skiff/structs"
)

// schemaVersion is the layout version written to the meta bucket. Open
// refuses a file written with another version rather than misread it.
const schemaVersion = "1"

// lockTimeout bounds the wait for the file lock another process holds.
// A variable so that tests can shorten it.
var lockTimeout = 5 * time.Second

// Bucket layout:
//
//	meta/version                   schemaVersion
//	allocs/<allocID>/alloc         msgpack Allocation (with its Job)
//	allocs/<allocID>/tasks/<task>  msgpack LocalTaskState
var (
	bucketMeta   = []byte("meta")
	bucketAllocs = []byte("allocs")
	bucketTasks  = []byte("tasks")
	keyVersion   = []byte("version")
	keyAlloc     = []byte("alloc")
)

// BoltDB is the DB kept in one bolt file. Every write is a transaction
// that is fsynced before it returns.
type BoltDB struct {
	path string
	db   *bolt.DB
}

var _ DB = (*BoltDB)(nil)

// Open opens or creates the state file at path (its directory is created
// if needed). It fails when another process holds the file (usually a
// second agent with the same data_dir), and when the file is damaged or of
// another layout version: the error names the file and says it may be
// deleted.
func Open(path string) (*BoltDB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open client state: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open client state %s: another process holds its lock after %s; is a second agent running with the same data_dir?", path, lockTimeout)
	}
	if err != nil {
		return nil, damaged(path, err)
	}
	b := &BoltDB{path: path, db: db}
	if err := b.init(); err != nil {
		db.Close()
		return nil, err
	}
	return b, nil
}

// damaged explains a state file that cannot be read, and what to do.
func damaged(path string, err error) error {
	return fmt.Errorf("client state %s cannot be read (%w): it is damaged or not a Skiff client state file; "+
		"stop the agent, delete the file and start the agent again: the node then fetches its allocations "+
		"from the servers anew and removes the containers of the old ones as orphans", path, err)
}

// init creates the buckets of a new file and checks the version of an
// existing one.
func (b *BoltDB) init() error {
	return b.update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if v := meta.Get(keyVersion); v == nil {
			if err := meta.Put(keyVersion, []byte(schemaVersion)); err != nil {
				return err
			}
		} else if string(v) != schemaVersion {
			return fmt.Errorf("client state %s has layout version %q, this agent reads %q; "+
				"stop the agent, delete the file and start it again (running tasks are then cleaned up as orphans)",
				b.path, v, schemaVersion)
		}
		_, err = tx.CreateBucketIfNotExists(bucketAllocs)
		return err
	})
}

// Path returns the file the state is kept in.
func (b *BoltDB) Path() string { return b.path }

// PutAlloc implements DB.
func (b *BoltDB) PutAlloc(alloc *structs.Allocation) error {
	buf, err := encode(alloc)
	if err != nil {
		return err
	}
	err = b.update(func(tx *bolt.Tx) error {
		ab, err := allocBucket(tx, alloc.ID)
		if err != nil {
			return err
		}
		return ab.Put(keyAlloc, buf)
	})
	if err != nil {
		return fmt.Errorf("store alloc %s: %w", alloc.ID, err)
	}
	return nil
}

// Allocs implements DB.
func (b *BoltDB) Allocs() ([]*structs.Allocation, error) {
	var out []*structs.Allocation
	err := b.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAllocs).ForEachBucket(func(id []byte) error {
			buf := tx.Bucket(bucketAllocs).Bucket(id).Get(keyAlloc)
			if buf == nil {
				return nil // task states written before the alloc: not an alloc yet
			}
			a := new(structs.Allocation)
			if err := decode(buf, a); err != nil {
				return damaged(b.path, fmt.Errorf("alloc %s: %w", id, err))
			}
			out = append(out, a)
			return nil
		})
	})
	return out, err
}

// PutTaskState implements DB.
func (b *BoltDB) PutTaskState(allocID, task string, s *LocalTaskState) error {
	buf, err := encode(s)
	if err != nil {
		return err
	}
	err = b.update(func(tx *bolt.Tx) error {
		ab, err := allocBucket(tx, allocID)
		if err != nil {
			return err
		}
		tb, err := ab.CreateBucketIfNotExists(bucketTasks)
		if err != nil {
			return err
		}
		return tb.Put([]byte(task), buf)
	})
	if err != nil {
		return fmt.Errorf("store state of task %q of alloc %s: %w", task, allocID, err)
	}
	return nil
}

// TaskStates implements DB.
func (b *BoltDB) TaskStates(allocID string) (map[string]*LocalTaskState, error) {
	out := map[string]*LocalTaskState{}
	err := b.view(func(tx *bolt.Tx) error {
		ab := tx.Bucket(bucketAllocs).Bucket([]byte(allocID))
		if ab == nil || ab.Bucket(bucketTasks) == nil {
			return nil
		}
		return ab.Bucket(bucketTasks).ForEach(func(k, v []byte) error {
			s := new(LocalTaskState)
			if err := decode(v, s); err != nil {
				return damaged(b.path, fmt.Errorf("task %q of alloc %s: %w", k, allocID, err))
			}
			out[string(k)] = s
			return nil
		})
	})
	return out, err
}

// DeleteAlloc implements DB.
func (b *BoltDB) DeleteAlloc(allocID string) error {
	err := b.update(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketAllocs).DeleteBucket([]byte(allocID))
		if errors.Is(err, bolterrors.ErrBucketNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("delete alloc %s: %w", allocID, err)
	}
	return nil
}

// Close implements DB.
func (b *BoltDB) Close() error {
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("close client state %s: %w", b.path, err)
	}
	return nil
}

// allocBucket returns the bucket of allocID, creating it if needed.
func allocBucket(tx *bolt.Tx, allocID string) (*bolt.Bucket, error) {
	if allocID == "" {
		return nil, errors.New("the allocation has no ID")
	}
	return tx.Bucket(bucketAllocs).CreateBucketIfNotExists([]byte(allocID))
}

// update runs fn in a write transaction. bolt panics on some kinds of
// damage it finds while walking pages; those become an error naming the
// file instead of taking the agent down.
func (b *BoltDB) update(fn func(*bolt.Tx) error) (err error) {
	defer b.recoverDamage(&err)
	return b.db.Update(fn)
}

// view runs fn in a read transaction, converting bolt's panics on damaged
// pages into errors like update.
func (b *BoltDB) view(fn func(*bolt.Tx) error) (err error) {
	defer b.recoverDamage(&err)
	return b.db.View(fn)
}

func (b *BoltDB) recoverDamage(err *error) {
	if r := recover(); r != nil {
		*err = damaged(b.path, fmt.Errorf("%v", r))
	}
}
