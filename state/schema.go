package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"github.com/hashicorp/go-memdb"

	"github.com/skiffhq/skiff/structs"
)

// Table names. They are also the keys of the index table, whose entry for a
// table is the raft index of the last write to it.
const (
	TableJobs        = "jobs"
	TableJobVersions = "job_version"
	TableJobSummary  = "job_summary"
	TableEvals       = "evals"
	TableAllocs      = "allocs"
	TableNodes       = "nodes"
	TableDeployments = "deployment"
	TableIndex       = "index"
)

// AllNamespaces, passed as the namespace of a prefix lookup, matches every
// namespace.
const AllNamespaces = structs.AllNamespaces

// JobTrackedVersions is how many versions of a job the job_version table
// keeps; older ones are dropped as new ones are written.
const JobTrackedVersions = 6

// IndexEntry is a row of the index table: the raft index (Value) of the
// last write to the table named Key.
type IndexEntry struct {
	Key   string
	Value uint64
}

// Index names used in the schema.
const (
	indexID       = "id"
	indexJob      = "job"
	indexSecretID = "secret_id"
	indexActive   = "active"
)

func str(field string) memdb.Indexer { return &memdb.StringFieldIndex{Field: field} }

// nsKey indexes rows by a (namespace, ID) pair, such as a job's
// (Namespace, ID) or an evaluation's (Namespace, JobID). The key is
// "namespace\x00id\x00", byte for byte what memdb's CompoundIndex of two
// StringFieldIndex makes, but in one allocation and without reflection
// (those were a sixth of the objects a job registration allocated). A
// row with either string empty is not indexed. Lookups take both
// strings; prefix lookups one (a namespace prefix) or both (the ID a
// prefix).
type nsKey[T any] struct {
	pair func(*T) (namespace, id string)
}

func (ix nsKey[T]) FromObject(obj any) (bool, []byte, error) {
	v, ok := obj.(*T)
	if !ok {
		return false, nil, fmt.Errorf("want %T, got %T", (*T)(nil), obj)
	}
	ns, id := ix.pair(v)
	if ns == "" || id == "" {
		return false, nil, nil
	}
	return true, nsKeyBytes(ns, id, true, 0), nil
}

func (nsKey[T]) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("want a namespace and an ID, got %d arguments", len(args))
	}
	ns, id, err := nsKeyStrings(args)
	if err != nil {
		return nil, err
	}
	return nsKeyBytes(ns, id, true, 0), nil
}

func (nsKey[T]) PrefixFromArgs(args ...any) ([]byte, error) { return nsPrefix(args, false) }

// nsPrefix is the prefix of (namespace, ID) keys that args give: none,
// a namespace prefix, or a namespace and an ID, which is a prefix too
// unless whole (then it ends with its NUL).
func nsPrefix(args []any, whole bool) ([]byte, error) {
	ns, id, err := nsKeyStrings(args)
	switch {
	case err != nil:
		return nil, err
	case len(args) == 0:
		return nil, nil
	case len(args) == 1:
		return []byte(ns), nil
	case len(args) == 2:
		return nsKeyBytes(ns, id, whole, 0), nil
	}
	return nil, fmt.Errorf("want a namespace and an ID, got %d arguments", len(args))
}

// nsKeyStrings returns the namespace and ID among args (each "" when
// absent), which must be strings.
func nsKeyStrings(args []any) (ns, id string, err error) {
	ok := true
	if len(args) > 0 {
		ns, ok = args[0].(string)
	}
	if ok && len(args) > 1 {
		id, ok = args[1].(string)
	}
	if !ok {
		return "", "", fmt.Errorf("want a string namespace and ID, got %T and %T", args[0], args[min(1, len(args)-1)])
	}
	return ns, id, nil
}

// nsKeyBytes is "ns\x00id\x00", or without the last NUL for a prefix,
// with room for spare bytes more.
func nsKeyBytes(ns, id string, terminated bool, spare int) []byte {
	n := len(ns) + 1 + len(id) + spare
	if terminated {
		n++
	}
	out := make([]byte, 0, n)
	out = append(append(append(out, ns...), 0), id...)
	if terminated {
		out = append(out, 0)
	}
	return out
}

// idKey indexes rows by a unique string ID, with the ID's own bytes as the
// key: memdb's StringFieldIndex copies the ID and appends a NUL byte (which
// only non-unique indexes need, to end the value before the primary key),
// 48 bytes more per row, and allocates a key for every lookup. The bytes
// are the string's, shared, never written: the radix tree keeps keys and
// slices of them, and neither it nor memdb writes into a key.
type idKey[T any] struct{ id func(*T) string }

func (ix idKey[T]) FromObject(obj any) (bool, []byte, error) {
	v, ok := obj.(*T)
	if !ok {
		return false, nil, fmt.Errorf("want %T, got %T", (*T)(nil), obj)
	}
	id := ix.id(v)
	return id != "", bytesOf(id), nil
}

func (idKey[T]) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("want one ID, got %d arguments", len(args))
	}
	id, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("want a string ID, got %T", args[0])
	}
	return bytesOf(id), nil
}

// PrefixFromArgs makes the index answer "id_prefix" lookups.
func (ix idKey[T]) PrefixFromArgs(args ...any) ([]byte, error) { return ix.FromArgs(args...) }

// bytesOf returns the bytes of s without copying them; they must not be
// changed. It is never nil: memdb reads a nil key as "the first row".
func bytesOf(s string) []byte {
	if s == "" {
		return []byte{}
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// versionKey indexes job versions by (namespace, ID, version): the
// job's nsKey followed by the version as 8 big-endian bytes, byte for
// byte what memdb's CompoundIndex of two StringFieldIndex and a
// UintFieldIndex makes, without reflection (a third of the cost of
// writing a version). Lookups take all three; prefix lookups a namespace
// (a prefix) or a namespace and an ID (every version of that job, and of
// no other).
type versionKey struct{}

func (versionKey) FromObject(obj any) (bool, []byte, error) {
	j, ok := obj.(*structs.Job)
	if !ok {
		return false, nil, fmt.Errorf("want *structs.Job, got %T", obj)
	}
	if j.Namespace == "" || j.ID == "" {
		return false, nil, errors.New("a job version needs a namespace and an ID")
	}
	return true, versionKeyBytes(j.Namespace, j.ID, j.Version), nil
}

func (versionKey) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 3 {
		return nil, fmt.Errorf("want a namespace, an ID and a version, got %d arguments", len(args))
	}
	ns, id, err := nsKeyStrings(args[:2])
	if err != nil {
		return nil, err
	}
	v, ok := args[2].(uint64)
	if !ok {
		return nil, fmt.Errorf("want a uint64 version, got %T", args[2])
	}
	return versionKeyBytes(ns, id, v), nil
}

func (versionKey) PrefixFromArgs(args ...any) ([]byte, error) { return nsPrefix(args, true) }

// versionKeyBytes is "ns\x00id\x00" and the version, 8 bytes big-endian.
func versionKeyBytes(ns, id string, version uint64) []byte {
	return binary.BigEndian.AppendUint64(nsKeyBytes(ns, id, true, 8), version)
}

func idIndex(ix memdb.Indexer) *memdb.IndexSchema {
	return &memdb.IndexSchema{Name: indexID, Unique: true, Indexer: ix}
}

// secondary is a non-unique index; rows without a value are left out of it.
func secondary(name string, ix memdb.Indexer) *memdb.IndexSchema {
	return &memdb.IndexSchema{Name: name, AllowMissing: true, Indexer: ix}
}

func table(name string, indexes ...*memdb.IndexSchema) *memdb.TableSchema {
	t := &memdb.TableSchema{Name: name, Indexes: map[string]*memdb.IndexSchema{}}
	for _, ix := range indexes {
		t.Indexes[ix.Name] = ix
	}
	return t
}

// schema returns the tables and indexes of the store. Non-unique indexes
// order rows with equal keys by primary key, which the reads rely on (job
// versions come out oldest first).
func schema() *memdb.DBSchema {
	deploymentActive := &memdb.ConditionalIndex{Conditional: func(obj any) (bool, error) {
		d, ok := obj.(*structs.Deployment)
		if !ok {
			return false, fmt.Errorf("want *structs.Deployment, got %T", obj)
		}
		return d.Active(), nil
	}}
	tables := []*memdb.TableSchema{
		table(TableIndex, idIndex(idKey[IndexEntry]{func(e *IndexEntry) string { return e.Key }})),
		table(TableJobs, idIndex(nsKey[structs.Job]{func(j *structs.Job) (string, string) { return j.Namespace, j.ID }})),
		table(TableJobVersions,
			idIndex(versionKey{}),
		),
		table(TableJobSummary, idIndex(nsKey[structs.JobSummary]{func(j *structs.JobSummary) (string, string) { return j.Namespace, j.JobID }})),
		table(TableEvals,
			idIndex(idKey[structs.Evaluation]{func(e *structs.Evaluation) string { return e.ID }}),
			secondary(indexJob, nsKey[structs.Evaluation]{func(e *structs.Evaluation) (string, string) { return e.Namespace, e.JobID }}),
		),
		// Allocations have no secondary index: TableAllocRefs lists
		// them by job, node and deployment (see refs.go).
		table(TableAllocs, idIndex(idKey[structs.Allocation]{func(a *structs.Allocation) string { return a.ID }})),
		table(TableAllocRefs, idIndex(idKey[allocRefs]{func(r *allocRefs) string { return r.Key }})),
		table(TableNodes,
			idIndex(idKey[structs.Node]{func(n *structs.Node) string { return n.ID }}),
			&memdb.IndexSchema{Name: indexSecretID, Unique: true, AllowMissing: true, Indexer: str("SecretID")},
		),
		table(TableNodeUsage, idIndex(idKey[structs.NodeUsage]{func(u *structs.NodeUsage) string { return u.NodeID }})),
		table(TableDeployments,
			idIndex(idKey[structs.Deployment]{func(d *structs.Deployment) string { return d.ID }}),
			secondary(indexJob, nsKey[structs.Deployment]{func(d *structs.Deployment) (string, string) { return d.Namespace, d.JobID }}),
			secondary(indexActive, deploymentActive),
		),
	}
	s := &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{}}
	for _, t := range tables {
		s.Tables[t.Name] = t
	}
	return s
}

// rowKeyer is an ID index's indexer: the key of a row, and of a lookup.
type rowKeyer interface {
	memdb.SingleIndexer
	memdb.Indexer
}
