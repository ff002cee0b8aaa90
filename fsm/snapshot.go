package fsm

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"

	"github.com/skiffhq/skiff/state"
	"github.com/skiffhq/skiff/structs"
)

const snapshotMagic = "SKIFFSNP"
const snapshotVersion = 1

// recordType tags each record of a snapshot. Values are part of the
// on-disk format: append, never renumber.
type recordType uint8

const (
	recordJob recordType = iota + 1
	recordJobVersion
	recordJobSummary
	recordEval
	recordAlloc
	recordNode
	recordDeployment
	recordIndex
	// recordAllocJobRef is an allocation written without its job, which
	// is a version the snapshot holds (allocJobRef): a job is kilobytes,
	// and a million allocations each wrote their own copy of it.
	recordAllocJobRef
	recordEnd recordType = 255
)

// allocJobRef is the body of a recordAllocJobRef.
type allocJobRef struct {
	Alloc      *structs.Allocation
	JobVersion uint64
}

// ErrTruncatedSnapshot means a snapshot ended before its end record.
var ErrTruncatedSnapshot = errors.New("snapshot is truncated: it ends before its end record")

type snapshot struct {
	snap    *state.Snapshot
	jobRefs bool
}

// Snapshot captures the current state for raft. It is cheap: the store's
// snapshot is immutable, and Persist writes it out on raft's goroutine.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &snapshot{snap: f.State().Snapshot(), jobRefs: f.JobRefs != nil && f.JobRefs()}, nil
}

// Persist writes every table to sink.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := Write(sink, s.snap, s.jobRefs); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

// Release does nothing; the store snapshot is garbage collected.
func (s *snapshot) Release() {}

// Write encodes a store snapshot in the snapshot format. With jobRefs, an
// allocation whose job is a version the snapshot holds refers to it
// (recordAllocJobRef), which servers of older builds cannot read; without,
// each allocation carries its job.
func Write(w io.Writer, snap *state.Snapshot, jobRefs bool) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	enc := codec.NewEncoder(bw, structs.MsgpackHandle)
	count := uint64(0)
	put := func(t recordType, v any) error {
		if err := bw.WriteByte(byte(t)); err != nil {
			return err
		}
		count++
		return enc.Encode(v)
	}
	if _, err := bw.WriteString(snapshotMagic); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	if err := bw.WriteByte(snapshotVersion); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	if err := writeTables(snap, jobRefs, put); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	if err := bw.WriteByte(byte(recordEnd)); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	if err := enc.Encode(count); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return bw.Flush()
}

// versionKey names one version of a job.
type versionKey struct {
	namespace, id string
	version       uint64
}

func writeTables(snap *state.Snapshot, jobRefs bool, put func(recordType, any) error) error {
	jobs, err := snap.Jobs(nil)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if err := put(recordJob, j); err != nil {
			return err
		}
	}
	versions, err := snap.JobVersions(nil)
	if err != nil {
		return err
	}
	held := map[versionKey]*structs.Job{}
	for _, j := range versions {
		if err := put(recordJobVersion, j); err != nil {
			return err
		}
		held[versionKey{j.Namespace, j.ID, j.Version}] = j
	}
	sums, err := snap.JobSummaries(nil)
	if err != nil {
		return err
	}
	for _, s := range sums {
		if err := put(recordJobSummary, s); err != nil {
			return err
		}
	}
	evals, err := snap.Evals(nil)
	if err != nil {
		return err
	}
	for _, e := range evals {
		if err := put(recordEval, e); err != nil {
			return err
		}
	}
	allocs, err := snap.Allocs(nil)
	if err != nil {
		return err
	}
	var bare structs.Allocation // reused: the encoder does not keep them
	ref := &allocJobRef{Alloc: &bare}
	for _, a := range allocs {
		if j := a.Job; jobRefs && j != nil && j.Namespace == a.Namespace && j.ID == a.JobID {
			// Only the version row itself: a copy of the job (the jobs
			// row, say) may differ from it in status or stability.
			if v := held[versionKey{j.Namespace, j.ID, j.Version}]; v == j {
				bare = *a
				bare.Job = nil
				ref.JobVersion = j.Version
				if err := put(recordAllocJobRef, ref); err != nil {
					return err
				}
				continue
			}
		}
		if err := put(recordAlloc, a); err != nil {
			return err
		}
	}
	nodes, err := snap.Nodes(nil)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		if err := put(recordNode, n); err != nil {
			return err
		}
	}
	deps, err := snap.Deployments(nil)
	if err != nil {
		return err
	}
	for _, d := range deps {
		if err := put(recordDeployment, d); err != nil {
			return err
		}
	}
	idx, err := snap.Indexes()
	if err != nil {
		return err
	}
	for _, e := range idx {
		if err := put(recordIndex, e); err != nil {
			return err
		}
	}
	return nil
}

// Restore replaces the state with a snapshot. Nothing changes unless the
// whole snapshot reads cleanly; then the new store replaces the old, whose
// blocked queries wake up through its abandon channel.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st, err := Read(rc)
	if err != nil {
		return err
	}
	old := f.state.Swap(st)
	old.Abandon()
	return nil
}

// Read decodes a snapshot into a new store.
func Read(r io.Reader) (*state.Store, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	head := make([]byte, len(snapshotMagic)+1)
	if _, err := io.ReadFull(br, head); err != nil {
		return nil, fmt.Errorf("read snapshot header: %w", ErrTruncatedSnapshot)
	}
	if string(head[:len(snapshotMagic)]) != snapshotMagic {
		return nil, errors.New("not a Skiff state snapshot (bad magic)")
	}
	if v := head[len(snapshotMagic)]; v != snapshotVersion {
		return nil, fmt.Errorf("snapshot format version %d is not supported by this server (it reads version %d)", v, snapshotVersion)
	}
	st := state.New()
	restore := st.Restore()
	dec := codec.NewDecoder(br, structs.MsgpackHandle)
	var count uint64
	for {
		b, err := br.ReadByte()
		if err == io.EOF {
			restore.Abort()
			return nil, ErrTruncatedSnapshot
		}
		if err != nil {
			restore.Abort()
			return nil, fmt.Errorf("read snapshot: %w", err)
		}
		if recordType(b) == recordEnd {
			var want uint64
			if err := dec.Decode(&want); err != nil {
				restore.Abort()
				return nil, ErrTruncatedSnapshot
			}
			if want != count {
				restore.Abort()
				return nil, fmt.Errorf("snapshot is damaged: it holds %d records but says %d", count, want)
			}
			if err := restore.Commit(); err != nil {
				return nil, err
			}
			return st, nil
		}
		count++
		if err := restoreRecord(restore, dec, recordType(b)); err != nil {
			restore.Abort()
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, ErrTruncatedSnapshot
			}
			return nil, fmt.Errorf("read snapshot record %d: %w", count, err)
		}
	}
}

func restoreRecord(r *state.Restore, dec *codec.Decoder, t recordType) error {
	switch t {
	case recordJob:
		return decodeInto(dec, r.JobRestore)
	case recordJobVersion:
		return decodeInto(dec, r.JobVersionRestore)
	case recordJobSummary:
		return decodeInto(dec, r.JobSummaryRestore)
	case recordEval:
		return decodeInto(dec, r.EvalRestore)
	case recordAlloc:
		return decodeInto(dec, r.AllocRestore)
	case recordNode:
		return decodeInto(dec, r.NodeRestore)
	case recordDeployment:
		return decodeInto(dec, r.DeploymentRestore)
	case recordIndex:
		return decodeInto(dec, r.IndexRestore)
	case recordAllocJobRef:
		return decodeInto(dec, func(ref *allocJobRef) error {
			if ref.Alloc == nil {
				return errors.New("allocation record without an allocation")
			}
			return r.AllocJobRefRestore(ref.Alloc, ref.JobVersion)
		})
	default:
		return fmt.Errorf("unknown record type %d (snapshot from a newer Skiff?)", t)
	}
}

func decodeInto[T any](dec *codec.Decoder, restore func(*T) error) error {
	v := new(T)
	if err := dec.Decode(v); err != nil {
		return err
	}
	return restore(v)
}
