package state

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/go-memdb"

	"github.com/skiffhq/skiff/structs"
)

// TableAllocRefs finds allocations by job, by node and by deployment. It
// holds one row per job, node or deployment with allocations: their IDs,
// sorted; and one per registered node, empty while it has none. It is
// derived from the allocations table (and the nodes table): written with
// every allocation change, rebuilt on restore, never snapshotted.
//
// A registered node's row exists even when empty because a client's pull
// (Node.GetClientAllocs) watches it: go-memdb's watch on a missing key is
// the channel of the nearest radix node above it, which fires when any
// nearby row changes. An empty row costs about one memdb entry (some 600
// bytes: a few MB at 10,000 nodes). With 5,000 simulated nodes reporting their
// allocations (S3, clients=report), 984,060 of the 1,074,538 runs of
// blocking queries woke for another node's placement and found nothing
// new; with a row per node, none of 95,510 did.
//
// It replaces memdb secondary indexes on the allocations table, which cost
// an index entry of about 600 bytes per allocation and per index (a radix
// node, a leaf, a watch channel for each, and a key holding the
// allocation's ID): at a million allocations, two thirds of the server's
// heap went to the job and node indexes. A row costs 16 bytes per
// allocation. A transaction rewrites the rows it changes when it commits
// (a plan of a hundred placements rewrites its job's row and its nodes'
// rows once each); a job's row also when the transaction reads the job's
// allocations, which settling the job's status does after each write of
// a batch. It rewrites the row of every job, node and deployment of an
// allocation it changes even when the IDs stay the same (sharing the
// list), so that a blocking query on the row wakes as it did on the
// index.
//
// A row keeps its IDs in chunks of at most refChunkMax, and a write copies
// only the chunks it changes (and the list of chunks): bin-packing fills a
// node with hundreds of allocations, and copying a whole node's list for
// each allocation that joined it was a seventh of the bytes the C1M
// benchmark's server allocated for 300,000 allocations.
const TableAllocRefs = "alloc_refs"

// refChunkMax is the most IDs a chunk of a row holds; a chunk that grows
// past it is split. (A variable so that tests can make chunks small.)
var refChunkMax = 64

// allocRefs is a row of TableAllocRefs. Rows and their chunks are never
// changed in place: a write replaces the row (readers may hold the old
// one), sharing the chunks it did not change.
type allocRefs struct {
	Key    string     // refKey.String()
	Chunks [][]string // the allocations' IDs, sorted, in chunks of 1 to refChunkMax IDs
}

// refKey names a row of TableAllocRefs: a job (namespace and ID), a node
// or a deployment.
type refKey struct {
	kind byte // 'j', 'n' or 'd'
	ns   string
	id   string
}

func jobRef(namespace, jobID string) refKey { return refKey{'j', namespace, jobID} }

func nodeRef(nodeID string) refKey { return refKey{'n', "", nodeID} }

// String is the row's key: the kind, the namespace (jobs) and the ID,
// separated by NUL bytes, which IDs do not hold.
func (k refKey) String() string {
	if k.kind == 'j' {
		return "j\x00" + k.ns + "\x00" + k.id
	}
	return string(k.kind) + "\x00" + k.id
}

// describe names the job, node or deployment of k for messages.
func (k refKey) describe() string {
	switch k.kind {
	case 'j':
		return "job " + k.ns + "/" + k.id
	case 'n':
		return "node " + k.id
	}
	return "deployment " + k.id
}

// refsOf returns the rows an allocation is listed in (zero keys for a
// node or deployment it has none of).
func refsOf(a *structs.Allocation) [3]refKey {
	var keys [3]refKey
	if a == nil {
		return keys
	}
	keys[0] = jobRef(a.Namespace, a.JobID)
	if a.NodeID != "" {
		keys[1] = nodeRef(a.NodeID)
	}
	if a.DeploymentID != "" {
		keys[2] = refKey{'d', "", a.DeploymentID}
	}
	return keys
}

// refOp is a pending change to a row: the allocation id is now in it
// (present) or no longer.
type refOp struct {
	id      string
	present bool
	// Set by applyRefOps: whether id is in the old list, and where it is
	// or would go (int32 keeps an op at 24 bytes; a row holds far fewer
	// IDs than that counts).
	found bool
	at    int32
}

// refsChanged records, for the transaction's end, that allocation old
// became updated (nil for a new allocation, or for one deleted): the rows
// it leaves, the rows it joins, and the rows it stays in, which are
// rewritten as they are, to wake their watchers.
func (t *txn) refsChanged(old, updated *structs.Allocation) {
	from, to := refsOf(old), refsOf(updated)
	t.changes++
	if t.refs == nil {
		t.refs = map[refKey][]refOp{}
	}
	for _, k := range from {
		if k.kind != 0 && !slices.Contains(to[:], k) {
			t.refs[k] = append(t.refs[k], refOp{id: old.ID})
		}
	}
	for _, k := range to {
		if k.kind != 0 {
			t.refs[k] = append(t.refs[k], refOp{id: updated.ID, present: true})
		}
	}
}

// flushRefs writes every row the transaction changed.
func (t *txn) flushRefs() error {
	for k := range t.refs {
		if err := t.flushRef(k); err != nil {
			return err
		}
	}
	return nil
}

// flushRef writes the row k with the transaction's pending changes to it,
// or deletes it when no allocation is left in it, unless it is a
// registered node's (keepsEmptyRow).
func (t *txn) flushRef(k refKey) error {
	ops, ok := t.refs[k]
	if !ok {
		return nil
	}
	delete(t.refs, k)
	key := k.String()
	cur, err := t.refRow(key)
	if err != nil {
		return err
	}
	var old [][]string
	if cur != nil {
		old = cur.Chunks
	}
	chunks := applyRefChunks(old, ops)
	if len(chunks) == 0 {
		keep, err := t.keepsEmptyRow(k)
		if err != nil {
			return err
		}
		if !keep {
			return t.deleteRefRow(k, cur)
		}
	}
	return t.writeRefRow(k, &allocRefs{Key: key, Chunks: chunks})
}

// keepsEmptyRow says whether row k stays when it has no allocations: the
// row of a registered node does. (A Restore does not record the nodes it
// puts, so this would not see them; but a restore only adds allocations
// to rows and never empties one, so it never asks.)
func (t *txn) keepsEmptyRow(k refKey) (bool, error) {
	if k.kind != 'n' {
		return false, nil
	}
	n, err := byID[structs.Node](t, TableNodes, k.id)
	return n != nil, err
}

// writeRefRow writes row, the row of k. Not t.insert nor t.delete (in
// deleteRefRow): a derived table has no entry in the index table, which
// snapshots hold.
func (t *txn) writeRefRow(k refKey, row *allocRefs) error {
	if err := t.Insert(TableAllocRefs, row); err != nil {
		return fmt.Errorf("write the list of allocations of %s: %w", k.describe(), err)
	}
	return t.record(TableAllocRefs, row, false)
}

// deleteRefRow deletes cur, the row of k, if there is one.
func (t *txn) deleteRefRow(k refKey, cur *allocRefs) error {
	if cur == nil {
		return nil
	}
	if err := t.Delete(TableAllocRefs, cur); err != nil {
		return fmt.Errorf("delete the list of allocations of %s: %w", k.describe(), err)
	}
	return t.record(TableAllocRefs, cur, true)
}

// nodeRegistered gives a node that was just registered (or restored) its
// row, empty, unless it has one or the transaction is about to write it.
func (t *txn) nodeRegistered(nodeID string) error {
	k := nodeRef(nodeID)
	if _, pending := t.refs[k]; pending {
		return nil
	}
	cur, err := t.refRow(k.String())
	if err != nil || cur != nil {
		return err
	}
	return t.writeRefRow(k, &allocRefs{Key: k.String()})
}

// nodeDeregistered deletes the row of a node that was just deleted, if it
// is empty; one with allocations goes once they do (flushRef).
func (t *txn) nodeDeregistered(nodeID string) error {
	k := nodeRef(nodeID)
	if _, pending := t.refs[k]; pending {
		return nil
	}
	cur, err := t.refRow(k.String())
	if err != nil || cur == nil || len(cur.Chunks) > 0 {
		return err
	}
	return t.deleteRefRow(k, cur)
}

// refRow returns row key of TableAllocRefs as the transaction sees it.
func (t *txn) refRow(key string) (*allocRefs, error) {
	return byID[allocRefs](t, TableAllocRefs, key)
}

// applyRefChunks returns a row's new chunks: old (sorted IDs in chunks)
// with the IDs of ops that are present added and those that are not
// removed, or old itself when that changes nothing (rows never change in
// place, so they may share it). Only the chunks an op falls in are
// copied; a chunk that grows past refChunkMax is split, one that empties
// is dropped, and one that shrinks below a quarter of it is merged into
// the chunk before it when they fit in one. Of several ops on one ID the last
// counts. old is not changed; ops is reordered.
func applyRefChunks(old [][]string, ops []refOp) [][]string {
	ops = lastOps(ops)
	if len(old) == 0 {
		return appendChunk(nil, applyRefOps(nil, ops))
	}
	var out [][]string // nil while no chunk changed
	next := 0          // the old chunks before next are in out
	for i := 0; i < len(ops); {
		// The chunk of ops[i]: the first whose last ID is not before it,
		// or the last chunk for an ID after them all.
		c, _ := slices.BinarySearchFunc(old, ops[i].id, func(chunk []string, id string) int {
			return strings.Compare(chunk[len(chunk)-1], id)
		})
		c = min(c, len(old)-1)
		j := i + 1
		for j < len(ops) && (c == len(old)-1 || ops[j].id <= old[c][len(old[c])-1]) {
			j++
		}
		updated := applyRefOps(old[c], ops[i:j])
		i = j
		if len(updated) > 0 && &updated[0] == &old[c][0] {
			continue // unchanged
		}
		if out == nil {
			out = make([][]string, 0, len(old)+1)
		}
		out = appendChunk(append(out, old[next:c]...), updated)
		next = c + 1
	}
	if out == nil {
		return old
	}
	return append(out, old[next:]...)
}

// appendChunk appends the IDs of a changed chunk to chunks: nothing when
// it is empty, split in chunks of at most refChunkMax when it is larger,
// merged with the chunk before when it is small and they fit in one.
func appendChunk(chunks [][]string, ids []string) [][]string {
	switch {
	case len(ids) == 0:
		return chunks
	case len(ids) > refChunkMax:
		// Pieces of their own, so that no piece keeps the others alive.
		n := (len(ids) + refChunkMax - 1) / refChunkMax
		for k := range n {
			chunks = append(chunks, slices.Clone(ids[k*len(ids)/n:(k+1)*len(ids)/n]))
		}
		return chunks
	case len(chunks) > 0 && len(ids) < refChunkMax/4 && len(chunks[len(chunks)-1])+len(ids) <= refChunkMax:
		prev := chunks[len(chunks)-1]
		chunks[len(chunks)-1] = append(slices.Clip(prev), ids...) // a new array: prev may be shared
		return chunks
	}
	return append(chunks, ids)
}

// lastOps sorts ops by ID and keeps the last op of each ID, in place.
func lastOps(ops []refOp) []refOp {
	slices.SortStableFunc(ops, func(a, b refOp) int { return strings.Compare(a.id, b.id) })
	n := 0
	for i, op := range ops {
		if i+1 < len(ops) && ops[i+1].id == op.id {
			continue
		}
		ops[n] = op
		n++
	}
	return ops[:n]
}

// applyRefOps returns a new sorted list: old (sorted) with the IDs of ops
// (sorted by ID, one op per ID: lastOps) that are present added and those
// that are not removed, or old itself when that changes nothing. old is
// not changed.
func applyRefOps(old []string, ops []refOp) []string {
	size, changed := len(old), false
	for k := range ops {
		op := &ops[k]
		at, found := slices.BinarySearch(old, op.id)
		op.at, op.found = int32(at), found
		switch {
		case op.present && !op.found:
			size, changed = size+1, true
		case !op.present && op.found:
			size, changed = size-1, true
		}
	}
	if !changed {
		return old
	}
	// Copy the runs of old between the changes in one go: a binary search
	// per change instead of a comparison per ID kept.
	out := make([]string, 0, size)
	i := 0
	for _, op := range ops {
		out = append(out, old[i:op.at]...)
		i = int(op.at)
		if op.found {
			if op.present {
				out = append(out, old[i])
			}
			i++
			continue
		}
		if op.present {
			out = append(out, op.id)
		}
	}
	return append(out, old[i:]...)
}

// allocsIn returns the allocations listed in row key, sorted by ID,
// keeping those for which keep (if not nil) is true. The row's watch
// covers them all: a write to any of them rewrites the row.
func allocsIn(ws memdb.WatchSet, tx *memdb.Txn, key refKey, keep func(*structs.Allocation) bool) ([]*structs.Allocation, error) {
	row, err := first[allocRefs](ws, tx, TableAllocRefs, indexID, key.String())
	if err != nil || row == nil {
		return nil, err
	}
	var out []*structs.Allocation
	err = eachAlloc(row, key, func(id string) (*structs.Allocation, error) {
		return first[structs.Allocation](nil, tx, TableAllocs, indexID, id)
	}, func(a *structs.Allocation) bool {
		if keep == nil || keep(a) {
			out = append(out, a)
		}
		return true
	})
	return out, err
}

// eachAlloc calls fn with the allocation of each ID of row (the row of
// key), read with get, in ID order, until fn returns false.
func eachAlloc(row *allocRefs, key refKey, get func(string) (*structs.Allocation, error), fn func(*structs.Allocation) bool) error {
	for _, chunk := range row.Chunks {
		for _, id := range chunk {
			a, err := get(id)
			if err != nil {
				return err
			}
			if a == nil {
				return fmt.Errorf("allocation %s is listed among the allocations of %s but is not stored (a bug: please report it)", id, key.describe())
			}
			if !fn(a) {
				return nil
			}
		}
	}
	return nil
}

// eachAllocOfJob calls fn with each allocation of the job's current
// incarnation as the transaction sees them (its pending changes to the
// job's row written first), in ID order, until fn returns false.
func (t *txn) eachAllocOfJob(job *structs.Job, fn func(*structs.Allocation) bool) error {
	k := jobRef(job.Namespace, job.ID)
	if err := t.flushRef(k); err != nil {
		return err
	}
	row, err := t.refRow(k.String())
	if err != nil || row == nil {
		return err
	}
	return eachAlloc(row, k, t.allocByID, func(a *structs.Allocation) bool { return !sameIncarnation(a, job) || fn(a) })
}
