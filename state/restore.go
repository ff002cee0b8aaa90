package state

import (
	"fmt"

	"github.com/skiffhq/skiff/structs"
)

// Restore bulk-loads a raft snapshot into a fresh store. Rows go in as they
// are: no summary or status is derived, so a snapshot must hold every
// table, the index table included. Only the tables derived from
// allocations (the lists by job, node and deployment, and node usage) are
// rebuilt, at Commit. Nothing is visible to reads until Commit.
//
// A Restore holds the store's write lock: it must end with Commit or Abort
// before any other write, and is used from one goroutine.
type Restore struct {
	txn *txn
}

// Restore starts a bulk load. The FSM calls it on a store made by New.
func (s *Store) Restore() *Restore {
	return &Restore{txn: s.newTxn(true)}
}

// Commit makes everything restored visible at once, having derived the
// lists of allocations by job, node and deployment. On an error nothing
// is restored.
func (r *Restore) Commit() error {
	if err := r.txn.flushDerived(); err != nil {
		r.txn.Abort()
		return fmt.Errorf("restore: %w", err)
	}
	r.txn.Commit()
	return nil
}

// Abort discards everything restored.
func (r *Restore) Abort() { r.txn.Abort() }

// The restore methods take ownership of the object they are given: the
// caller must not change it afterwards.

// JobRestore restores a row of the jobs table.
func (r *Restore) JobRestore(job *structs.Job) error { return r.put(TableJobs, job) }

// JobVersionRestore restores a row of the job_version table.
func (r *Restore) JobVersionRestore(job *structs.Job) error { return r.put(TableJobVersions, job) }

// JobSummaryRestore restores a row of the job_summary table.
func (r *Restore) JobSummaryRestore(s *structs.JobSummary) error { return r.put(TableJobSummary, s) }

// EvalRestore restores an evaluation.
func (r *Restore) EvalRestore(e *structs.Evaluation) error { return r.put(TableEvals, e) }

// AllocRestore restores an allocation.
func (r *Restore) AllocRestore(a *structs.Allocation) error {
	r.txn.share(a)
	if err := r.put(TableAllocs, a); err != nil {
		return err
	}
	r.txn.refsChanged(nil, a)
	return r.txn.changeUsage(a, +1)
}

// AllocJobRefRestore restores an allocation written without its job,
// which runs the given version of its job: a job_version row restored
// before it.
func (r *Restore) AllocJobRefRestore(a *structs.Allocation, version uint64) error {
	job, err := jobVersion(nil, r.txn.Txn, a.Namespace, a.JobID, version)
	if err != nil {
		return err
	}
	if job == nil {
		return fmt.Errorf("allocation %s runs version %d of job %q, which the snapshot does not hold", a.ID, version, a.JobID)
	}
	a.Job = job
	return r.AllocRestore(a)
}

// NodeRestore restores a node.
func (r *Restore) NodeRestore(n *structs.Node) error {
	r.txn.names.addNode(n)
	if err := r.put(TableNodes, n); err != nil {
		return err
	}
	return r.txn.nodeRegistered(n.ID)
}

// DeploymentRestore restores a deployment.
func (r *Restore) DeploymentRestore(d *structs.Deployment) error {
	return r.put(TableDeployments, d)
}

// IndexRestore restores an entry of the index table.
func (r *Restore) IndexRestore(e *IndexEntry) error { return r.put(TableIndex, e) }

func (r *Restore) put(table string, obj any) error {
	if err := r.txn.Insert(table, obj); err != nil {
		return fmt.Errorf("restore %s row: %w", table, err)
	}
	return nil
}
