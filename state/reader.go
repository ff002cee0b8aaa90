package state

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/go-memdb"

	"github.com/skiffhq/skiff/structs"
)

// reader holds the read methods that Store and Snapshot share. On a Store
// each read sees the latest committed state; on a Snapshot, the state when
// the snapshot was taken.
//
// Every read that takes a memdb.WatchSet adds to it the watch channels of
// what it read: a channel closes when a later write may change the result,
// so a blocking query can wait on the set and read again. ws may be nil.
// Results are sorted by primary key unless a method says otherwise; the
// objects are the store's own and must not be modified.
type reader struct {
	db *memdb.MemDB
	// tx, for a Snapshot, is one read transaction that all its reads share
	// (the data cannot change under it). memdb's read path changes nothing
	// in a transaction, so concurrent reads may share it; a Store has none
	// and starts one per read, to see the latest writes.
	tx *memdb.Txn
}

func (r reader) txn() *memdb.Txn {
	if r.tx != nil {
		return r.tx
	}
	return r.db.Txn(false)
}

// first returns the row of table whose index matches args, or nil.
func first[T any](ws memdb.WatchSet, tx *memdb.Txn, table, index string, args ...any) (*T, error) {
	ch, raw, err := tx.FirstWatch(table, index, args...)
	if err != nil {
		return nil, fmt.Errorf("read %s by %s: %w", table, index, err)
	}
	ws.Add(ch)
	if raw == nil {
		return nil, nil
	}
	return raw.(*T), nil
}

// list returns the rows of table whose index matches args, in index order,
// keeping those for which keep (if not nil) is true.
func list[T any](ws memdb.WatchSet, tx *memdb.Txn, table, index string, keep func(*T) bool, args ...any) ([]*T, error) {
	it, err := tx.Get(table, index, args...)
	if err != nil {
		return nil, fmt.Errorf("read %s by %s: %w", table, index, err)
	}
	ws.Add(it.WatchCh())
	var out []*T
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if v := raw.(*T); keep == nil || keep(v) {
			out = append(out, v)
		}
	}
	return out, nil
}

// inNamespace keeps rows of namespace, or of every namespace for "*".
func inNamespace[T any](namespace string, ns func(*T) string) func(*T) bool {
	if namespace == AllNamespaces {
		return nil
	}
	return func(v *T) bool { return ns(v) == namespace }
}

// JobByID returns the job, or nil if there is none.
func (r reader) JobByID(ws memdb.WatchSet, namespace, id string) (*structs.Job, error) {
	return first[structs.Job](ws, r.txn(), TableJobs, indexID, namespace, id)
}

// JobsByIDPrefix returns the jobs of namespace ("*" for every namespace)
// whose ID starts with prefix, sorted by namespace, then ID.
func (r reader) JobsByIDPrefix(ws memdb.WatchSet, namespace, prefix string) ([]*structs.Job, error) {
	return listByJobPrefix(ws, r.txn(), TableJobs, namespace, prefix, func(j *structs.Job) string { return j.ID })
}

// listByJobPrefix lists the rows of table, keyed by namespace and job ID
// (nsKey), of namespace ("*" for every namespace) whose job ID starts with
// prefix, sorted by namespace, then job ID.
func listByJobPrefix[T any](ws memdb.WatchSet, tx *memdb.Txn, table, namespace, prefix string, jobID func(*T) string) ([]*T, error) {
	if namespace == AllNamespaces {
		return list(ws, tx, table, indexID, func(v *T) bool { return strings.HasPrefix(jobID(v), prefix) })
	}
	return list[T](ws, tx, table, indexID+"_prefix", nil, namespace, prefix)
}

// Jobs returns every job, sorted by namespace, then ID.
func (r reader) Jobs(ws memdb.WatchSet) ([]*structs.Job, error) {
	return list[structs.Job](ws, r.txn(), TableJobs, indexID, nil)
}

// JobVersionsByID returns the tracked versions of a job, newest first.
func (r reader) JobVersionsByID(ws memdb.WatchSet, namespace, id string) ([]*structs.Job, error) {
	versions, err := jobVersions(ws, r.txn(), namespace, id)
	slices.Reverse(versions)
	return versions, err
}

// jobVersions returns the tracked versions of a job, oldest first: a
// prefix scan of the (namespace, ID, version) index. (An index by job
// would cost every version one more index entry.)
func jobVersions(ws memdb.WatchSet, tx *memdb.Txn, namespace, id string) ([]*structs.Job, error) {
	return list[structs.Job](ws, tx, TableJobVersions, indexID+"_prefix", nil, namespace, id)
}

// JobByIDAndVersion returns one version of a job, or nil if it is not
// tracked.
func (r reader) JobByIDAndVersion(ws memdb.WatchSet, namespace, id string, version uint64) (*structs.Job, error) {
	return jobVersion(ws, r.txn(), namespace, id, version)
}

// jobVersion returns one tracked version of a job, or nil.
func jobVersion(ws memdb.WatchSet, tx *memdb.Txn, namespace, id string, version uint64) (*structs.Job, error) {
	return first[structs.Job](ws, tx, TableJobVersions, indexID, namespace, id, version)
}

// JobVersions returns every tracked version of every job (for snapshots).
func (r reader) JobVersions(ws memdb.WatchSet) ([]*structs.Job, error) {
	return list[structs.Job](ws, r.txn(), TableJobVersions, indexID, nil)
}

// JobSummaryByID returns the summary of a job, or nil if there is none.
func (r reader) JobSummaryByID(ws memdb.WatchSet, namespace, id string) (*structs.JobSummary, error) {
	return first[structs.JobSummary](ws, r.txn(), TableJobSummary, indexID, namespace, id)
}

// JobSummariesByIDPrefix returns the summaries of the jobs of namespace
// ("*" for every namespace) whose ID starts with prefix, sorted by
// namespace, then job ID, as JobsByIDPrefix sorts the jobs: one pass over
// the table, and one watch, where a lookup per job costs a microsecond
// and a watch channel each.
func (r reader) JobSummariesByIDPrefix(ws memdb.WatchSet, namespace, prefix string) ([]*structs.JobSummary, error) {
	return listByJobPrefix(ws, r.txn(), TableJobSummary, namespace, prefix, func(s *structs.JobSummary) string { return s.JobID })
}

// JobSummaries returns the summary of every job.
func (r reader) JobSummaries(ws memdb.WatchSet) ([]*structs.JobSummary, error) {
	return list[structs.JobSummary](ws, r.txn(), TableJobSummary, indexID, nil)
}

// EvalByID returns the evaluation, or nil if there is none.
func (r reader) EvalByID(ws memdb.WatchSet, id string) (*structs.Evaluation, error) {
	return first[structs.Evaluation](ws, r.txn(), TableEvals, indexID, id)
}

// EvalsByIDPrefix returns the evaluations of namespace ("*" for every
// namespace) whose ID starts with prefix.
func (r reader) EvalsByIDPrefix(ws memdb.WatchSet, namespace, prefix string) ([]*structs.Evaluation, error) {
	keep := inNamespace(namespace, func(e *structs.Evaluation) string { return e.Namespace })
	return list(ws, r.txn(), TableEvals, indexID+"_prefix", keep, prefix)
}

// EvalsByJob returns the evaluations of a job.
func (r reader) EvalsByJob(ws memdb.WatchSet, namespace, jobID string) ([]*structs.Evaluation, error) {
	return list[structs.Evaluation](ws, r.txn(), TableEvals, indexJob, nil, namespace, jobID)
}

// Evals returns every evaluation.
func (r reader) Evals(ws memdb.WatchSet) ([]*structs.Evaluation, error) {
	return list[structs.Evaluation](ws, r.txn(), TableEvals, indexID, nil)
}

// AllocByID returns the allocation, or nil if there is none.
func (r reader) AllocByID(ws memdb.WatchSet, id string) (*structs.Allocation, error) {
	return first[structs.Allocation](ws, r.txn(), TableAllocs, indexID, id)
}

// AllocsByIDPrefix returns the allocations of namespace ("*" for every
// namespace) whose ID starts with prefix.
func (r reader) AllocsByIDPrefix(ws memdb.WatchSet, namespace, prefix string) ([]*structs.Allocation, error) {
	keep := inNamespace(namespace, func(a *structs.Allocation) string { return a.Namespace })
	return list(ws, r.txn(), TableAllocs, indexID+"_prefix", keep, prefix)
}

// AllocsByJob returns the allocations of a job. Unless anyCreateIndex is
// set, it keeps only those of the job's current incarnation: a job purged
// and registered again is a new job, and the allocations of the old one
// (whose Job has another CreateIndex) are left out. When the job does not
// exist, every allocation under its ID is returned.
func (r reader) AllocsByJob(ws memdb.WatchSet, namespace, jobID string, anyCreateIndex bool) ([]*structs.Allocation, error) {
	return allocsOfJob(ws, r.txn(), namespace, jobID, anyCreateIndex)
}

func allocsOfJob(ws memdb.WatchSet, tx *memdb.Txn, namespace, jobID string, anyCreateIndex bool) ([]*structs.Allocation, error) {
	var keep func(*structs.Allocation) bool
	if !anyCreateIndex {
		job, err := first[structs.Job](ws, tx, TableJobs, indexID, namespace, jobID)
		if err != nil {
			return nil, err
		}
		if job != nil {
			keep = func(a *structs.Allocation) bool { return sameIncarnation(a, job) }
		}
	}
	return allocsIn(ws, tx, jobRef(namespace, jobID), keep)
}

// sameIncarnation reports whether the allocation was placed for this
// incarnation of the job (not for an earlier job purged under the same ID).
func sameIncarnation(a *structs.Allocation, job *structs.Job) bool {
	return a.Job != nil && a.Job.CreateIndex == job.CreateIndex
}

// AllocsByNode returns the allocations placed on a node, sorted by ID.
func (r reader) AllocsByNode(ws memdb.WatchSet, nodeID string) ([]*structs.Allocation, error) {
	return allocsIn(ws, r.txn(), nodeRef(nodeID), nil)
}

// AllocsByEval returns the allocations an evaluation placed or changed,
// sorted by ID: its job's allocations that name it. (An index by
// evaluation would cost every allocation one more index entry, about
// half a kilobyte, for this one API read.) An evaluation that is not
// stored has none.
func (r reader) AllocsByEval(ws memdb.WatchSet, evalID string) ([]*structs.Allocation, error) {
	tx := r.txn()
	ev, err := first[structs.Evaluation](ws, tx, TableEvals, indexID, evalID)
	if err != nil || ev == nil {
		return nil, err
	}
	return allocsIn(ws, tx, jobRef(ev.Namespace, ev.JobID), func(a *structs.Allocation) bool { return a.EvalID == evalID })
}

// AllocsByDeployment returns the allocations of a deployment.
func (r reader) AllocsByDeployment(ws memdb.WatchSet, deploymentID string) ([]*structs.Allocation, error) {
	return allocsIn(ws, r.txn(), refKey{'d', "", deploymentID}, nil)
}

// Allocs returns every allocation.
func (r reader) Allocs(ws memdb.WatchSet) ([]*structs.Allocation, error) {
	return list[structs.Allocation](ws, r.txn(), TableAllocs, indexID, nil)
}

// NodeByID returns the node, or nil if there is none.
func (r reader) NodeByID(ws memdb.WatchSet, id string) (*structs.Node, error) {
	return first[structs.Node](ws, r.txn(), TableNodes, indexID, id)
}

// NodesByIDPrefix returns the nodes whose ID starts with prefix.
func (r reader) NodesByIDPrefix(ws memdb.WatchSet, prefix string) ([]*structs.Node, error) {
	return list[structs.Node](ws, r.txn(), TableNodes, indexID+"_prefix", nil, prefix)
}

// NodesIndex returns the index of the last write to the nodes table.
func (r reader) NodesIndex() (uint64, error) { return r.Index(TableNodes) }

// Nodes returns every node.
func (r reader) Nodes(ws memdb.WatchSet) ([]*structs.Node, error) {
	return list[structs.Node](ws, r.txn(), TableNodes, indexID, nil)
}

// NodeBySecretID returns the node with that secret ID, or nil.
func (r reader) NodeBySecretID(ws memdb.WatchSet, secretID string) (*structs.Node, error) {
	if secretID == "" {
		return nil, nil // nodes without a secret are not indexed by it
	}
	return first[structs.Node](ws, r.txn(), TableNodes, indexSecretID, secretID)
}

// DeploymentByID returns the deployment, or nil if there is none.
func (r reader) DeploymentByID(ws memdb.WatchSet, id string) (*structs.Deployment, error) {
	return first[structs.Deployment](ws, r.txn(), TableDeployments, indexID, id)
}

// DeploymentsByJobID returns the deployments of a job, newest (highest
// CreateIndex) first.
func (r reader) DeploymentsByJobID(ws memdb.WatchSet, namespace, jobID string) ([]*structs.Deployment, error) {
	ds, err := list[structs.Deployment](ws, r.txn(), TableDeployments, indexJob, nil, namespace, jobID)
	slices.SortStableFunc(ds, func(a, b *structs.Deployment) int { return cmp.Compare(b.CreateIndex, a.CreateIndex) })
	return ds, err
}

// LatestDeploymentByJobID returns the job's deployment with the highest
// CreateIndex, or nil if it has none.
func (r reader) LatestDeploymentByJobID(ws memdb.WatchSet, namespace, jobID string) (*structs.Deployment, error) {
	ds, err := r.DeploymentsByJobID(ws, namespace, jobID)
	if err != nil || len(ds) == 0 {
		return nil, err
	}
	return ds[0], nil
}

// Deployments returns every deployment.
func (r reader) Deployments(ws memdb.WatchSet) ([]*structs.Deployment, error) {
	return list[structs.Deployment](ws, r.txn(), TableDeployments, indexID, nil)
}

// ActiveDeployments returns the deployments that may still make progress
// (running, blocked or paused), by ID: the leader's watcher reads these
// without going through every deployment that ever ended.
func (r reader) ActiveDeployments(ws memdb.WatchSet) ([]*structs.Deployment, error) {
	return list[structs.Deployment](ws, r.txn(), TableDeployments, indexActive, nil, true)
}

// Index returns the raft index of the last write to table, or 0 if the
// table was never written.
func (r reader) Index(table string) (uint64, error) {
	e, err := first[IndexEntry](nil, r.txn(), TableIndex, indexID, table)
	if err != nil || e == nil {
		return 0, err
	}
	return e.Value, nil
}

// MaxIndex returns the highest index of the given tables, and 1 when none
// of them was ever written: a blocking query reports it to its client,
// which sends it back, and an index of 0 would not block.
func (r reader) MaxIndex(tables ...string) (uint64, error) {
	highest := uint64(1)
	for _, table := range tables {
		idx, err := r.Index(table)
		if err != nil {
			return 0, err
		}
		highest = max(highest, idx)
	}
	return highest, nil
}

// LatestIndex returns the highest index of any table: the raft index of the
// last write to the store, or 0 for an empty store.
func (r reader) LatestIndex() (uint64, error) {
	entries, err := r.Indexes()
	var latest uint64
	for _, e := range entries {
		latest = max(latest, e.Value)
	}
	return latest, err
}

// Indexes returns every entry of the index table, sorted by table name.
func (r reader) Indexes() ([]*IndexEntry, error) {
	return list[IndexEntry](nil, r.txn(), TableIndex, indexID, nil)
}
