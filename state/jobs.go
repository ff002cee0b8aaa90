package state

import (
	"errors"
	"fmt"

	"github.com/skiffhq/skiff/structs"
)

// UpsertJob registers a job, or updates the job with the same namespace and
// ID, at raft index index. Only the FSM calls it. The job is copied; the
// caller's value is not changed.
//
// The store manages Version, Stable, Status, CreateIndex, ModifyIndex and
// JobModifyIndex, ignoring what job says of them:
//   - a new job gets Version 0 and every index set to index;
//   - a job whose spec is unchanged (it differs from the stored job only
//     in those fields, SubmitTime and StatusDescription) keeps the stored
//     job: only ModifyIndex moves, and no version is added;
//   - a changed job gets the next Version, JobModifyIndex index and
//     Stable false, and keeps its CreateIndex.
//
// Each new version is also written to the job_version table, which keeps
// the latest JobTrackedVersions of a job. The job's summary is created if
// needed and gains an entry for every group of the job.
func (w writer) UpsertJob(index uint64, job *structs.Job) error {
	if job == nil {
		return errors.New("upsert job: job is nil")
	}
	if job.Namespace == "" || job.ID == "" {
		return fmt.Errorf("upsert job %q: namespace and ID are required (namespace is %q)", job.ID, job.Namespace)
	}
	return w.run(index, func(t *txn) error {
		if err := t.upsertJob(job, t.owned); err != nil {
			return fmt.Errorf("upsert job %q in namespace %q: %w", job.ID, job.Namespace, err)
		}
		return nil
	})
}

// upsertJob writes a job; with owned it keeps and changes in itself
// rather than a copy.
func (t *txn) upsertJob(in *structs.Job, owned bool) error {
	existing, err := byID[structs.Job](t, TableJobs, in.Namespace, in.ID)
	if err != nil {
		return err
	}
	job := in
	if !owned {
		job = in.Copy()
	}
	newVersion := true
	switch {
	case existing == nil:
		job.Version = 0
		job.CreateIndex = t.index
		job.JobModifyIndex = t.index
		job.Stable = false
	case specEqual(existing, job):
		c := *existing // shallow: only top-level fields change
		job, newVersion = &c, false
	default:
		job.Version = existing.Version + 1
		job.CreateIndex = existing.CreateIndex
		job.JobModifyIndex = t.index
		job.Stable = false
	}
	job.ModifyIndex = t.index
	if job.Status, err = t.jobStatus(job); err != nil {
		return err
	}
	if err := t.insert(TableJobs, job); err != nil {
		return err
	}
	if newVersion {
		if err := t.addVersion(job); err != nil {
			return err
		}
	}
	return t.ensureSummary(job)
}

// addVersion writes job to the job_version table and drops the oldest
// versions beyond JobTrackedVersions.
func (t *txn) addVersion(job *structs.Job) error {
	if err := t.insert(TableJobVersions, job); err != nil {
		return err
	}
	if job.Version < JobTrackedVersions {
		// Versions 0 to job.Version at most: none to drop. (Purging a
		// job drops its versions, so numbers start again from 0.) Not
		// reading spares the table's radix tree the copies a read through
		// the write transaction costs the next insert (see txn.base).
		return nil
	}
	versions, err := jobVersions(nil, t.Txn, job.Namespace, job.ID) // oldest first
	if err != nil {
		return err
	}
	for len(versions) > JobTrackedVersions {
		if err := t.delete(TableJobVersions, versions[0]); err != nil {
			return err
		}
		versions = versions[1:]
	}
	return nil
}

// DeleteJob purges a job at raft index index: the job, its tracked
// versions and its summary. Only the FSM calls it. Its allocations and
// evaluations stay until they are garbage collected. It returns an error
// wrapping structs.ErrNotFound if there is no such job.
func (w writer) DeleteJob(index uint64, namespace, jobID string) error {
	return w.run(index, func(t *txn) error {
		if err := t.deleteJob(namespace, jobID); err != nil {
			return fmt.Errorf("delete job %q in namespace %q: %w", jobID, namespace, err)
		}
		return nil
	})
}

// StopJob marks a job stopped at raft index index (its allocations will be
// stopped by the scheduler). A job already stopped is left as it is. It
// returns an error wrapping structs.ErrNotFound if there is no such job.
func (w writer) StopJob(index uint64, namespace, jobID string) error {
	return w.run(index, func(t *txn) error {
		job, err := byID[structs.Job](t, TableJobs, namespace, jobID)
		if err != nil {
			return err
		}
		if job == nil {
			return fmt.Errorf("stop job %q in namespace %q: %w", jobID, namespace, structs.ErrNotFound)
		}
		if job.Stop {
			return nil
		}
		stopped := job.Copy()
		stopped.Stop = true
		return t.upsertJob(stopped, true)
	})
}

func (t *txn) deleteJob(namespace, jobID string) error {
	job, err := byID[structs.Job](t, TableJobs, namespace, jobID)
	if err != nil {
		return err
	}
	if job == nil {
		return structs.ErrNotFound
	}
	if err := t.delete(TableJobs, job); err != nil {
		return err
	}
	versions, err := jobVersions(nil, t.Txn, namespace, jobID)
	if err != nil {
		return err
	}
	for _, v := range versions {
		if err := t.delete(TableJobVersions, v); err != nil {
			return fmt.Errorf("delete from %s: %w", TableJobVersions, err)
		}
	}
	key := structs.NamespacedID{Namespace: namespace, ID: jobID}
	delete(t.summaries, key)
	sum, err := byID[structs.JobSummary](t, TableJobSummary, namespace, jobID)
	if err != nil {
		return err
	}
	if sum != nil {
		if err := t.delete(TableJobSummary, sum); err != nil {
			return err
		}
	}
	t.touch(TableJobs, TableJobVersions, TableJobSummary)
	return nil
}

// jobStatus derives a job's status from its allocations and evaluations:
//
//   - system, periodic and parameterized jobs are running until stopped,
//     then dead;
//   - running, if any allocation of the job is not terminal;
//   - else dead, if the job is stopped;
//   - else pending, if an evaluation is not terminal, or if the job has
//     neither allocations nor evaluations (it was just registered);
//   - else dead: everything ran to an end (a batch job that completed, a
//     service whose allocations all failed), or its evaluations were
//     garbage collected in this write.
func (t *txn) jobStatus(job *structs.Job) (string, error) {
	if job.Type == structs.JobTypeSystem || job.Periodic != nil || (job.ParameterizedJob != nil && !job.Dispatched) {
		if job.Stop {
			return structs.JobStatusDead, nil
		}
		return structs.JobStatusRunning, nil
	}
	hasAllocs, live := false, false
	err := t.eachAllocOfJob(job, func(a *structs.Allocation) bool {
		hasAllocs, live = true, !a.TerminalStatus()
		return !live // one live allocation is enough
	})
	if err != nil {
		return "", err
	}
	if live {
		return structs.JobStatusRunning, nil
	}
	if job.Stop {
		return structs.JobStatusDead, nil
	}
	evals, err := list[structs.Evaluation](nil, t.Txn, TableEvals, indexJob, nil, job.Namespace, job.ID)
	if err != nil {
		return "", err
	}
	for _, e := range evals {
		if !e.TerminalStatus() {
			return structs.JobStatusPending, nil
		}
	}
	if !hasAllocs && len(evals) == 0 && !t.evalDelete {
		return structs.JobStatusPending, nil
	}
	return structs.JobStatusDead, nil
}

// updateJobStatus recomputes the status of a job whose allocations or
// evaluations changed, and writes a copy of the job if it differs.
func (t *txn) updateJobStatus(id structs.NamespacedID) error {
	job, err := byID[structs.Job](t, TableJobs, id.Namespace, id.ID)
	if err != nil || job == nil {
		return err
	}
	status, err := t.jobStatus(job)
	if err != nil {
		return fmt.Errorf("status of job %q in namespace %q: %w", id.ID, id.Namespace, err)
	}
	if status == job.Status {
		return nil
	}
	c := *job // shallow: only top-level fields change
	c.Status = status
	c.ModifyIndex = t.index
	return t.insert(TableJobs, &c)
}

// SetJobStable marks one version of a job stable (its deployment
// succeeded) at raft index index: the tracked version, and the job itself
// when that is its current version. Only the FSM calls it. A version no
// longer tracked is skipped.
func (w writer) SetJobStable(index uint64, namespace, jobID string, version uint64) error {
	return w.run(index, func(t *txn) error {
		v, err := jobVersion(nil, t.Txn, namespace, jobID, version)
		if err != nil {
			return fmt.Errorf("mark job %q version %d stable: %w", jobID, version, err)
		}
		if v != nil && !v.Stable {
			c := *v
			c.Stable = true
			if err := t.insert(TableJobVersions, &c); err != nil {
				return err
			}
		}
		cur, err := byID[structs.Job](t, TableJobs, namespace, jobID)
		if err != nil {
			return fmt.Errorf("mark job %q version %d stable: %w", jobID, version, err)
		}
		if cur != nil && cur.Version == version && !cur.Stable {
			c := *cur
			c.Stable = true
			c.ModifyIndex = t.index
			if err := t.insert(TableJobs, &c); err != nil {
				return err
			}
		}
		return nil
	})
}
