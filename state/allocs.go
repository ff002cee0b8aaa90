package state

import (
	"fmt"
	"maps"
	"time"

	"github.com/skiffhq/skiff/structs"
)

// UpsertAllocs writes allocations from the scheduler's plans (through the
// plan applier) at raft index index. Only the FSM calls it. Each allocation
// is copied and must have an ID, a namespace and a job ID.
//
// A new allocation gets CreateIndex, ModifyIndex and AllocModifyIndex
// index; if its Job is nil the stored job is attached (an error if there is
// none). An existing allocation keeps its CreateIndex, and the client stays
// the authority on what it reports: the stored TaskStates are kept, and so
// are ClientStatus and ClientDescription, unless the servers mark the
// allocation lost or unknown. A nil Job or DeploymentStatus keeps the
// stored one.
//
// The summaries and statuses of the jobs concerned are updated.
func (w writer) UpsertAllocs(index uint64, allocs []*structs.Allocation) error {
	return w.run(index, func(t *txn) error {
		t.touch(TableAllocs)
		for _, a := range allocs {
			if err := t.upsertAlloc(a); err != nil {
				return fmt.Errorf("upsert allocation %q: %w", a.ID, err)
			}
		}
		return nil
	})
}

func (t *txn) upsertAlloc(in *structs.Allocation) error {
	if in.ID == "" || in.Namespace == "" || in.JobID == "" {
		return fmt.Errorf("ID, namespace and job ID are required (namespace %q, job %q)", in.Namespace, in.JobID)
	}
	existing, err := t.allocByID(in.ID)
	if err != nil {
		return err
	}
	a := in
	if !t.owned { // the caller keeps its object: change a copy
		a = in.Copy()
	}
	if existing == nil {
		a.CreateIndex = t.index
		if a.Job == nil {
			if a.Job, err = byID[structs.Job](t, TableJobs, a.Namespace, a.JobID); err != nil {
				return err
			}
			if a.Job == nil {
				return fmt.Errorf("it has no job, and job %q is not in namespace %q", a.JobID, a.Namespace)
			}
		}
		t.share(a)
	} else {
		a.CreateIndex = existing.CreateIndex
		a.TaskStates = existing.TaskStates
		if a.ClientStatus != structs.AllocClientStatusLost && a.ClientStatus != structs.AllocClientStatusUnknown {
			a.ClientStatus = existing.ClientStatus
			a.ClientDescription = existing.ClientDescription
		}
		if a.Job == nil {
			a.Job = existing.Job
		}
		if a.DeploymentStatus == nil {
			a.DeploymentStatus = existing.DeploymentStatus
		}
		if a.CreateTime == 0 {
			a.CreateTime = existing.CreateTime
		}
	}
	a.ModifyIndex = t.index
	a.AllocModifyIndex = t.index
	return t.putAlloc(existing, a)
}

// putAlloc writes a over existing (nil for a new allocation), or deletes
// existing when a is nil, and updates what depends on it.
func (t *txn) putAlloc(existing, a *structs.Allocation) error {
	if a != nil {
		if err := t.insert(TableAllocs, a); err != nil {
			return err
		}
	} else if err := t.delete(TableAllocs, existing); err != nil {
		return err
	}
	if err := t.allocChanged(existing, a); err != nil {
		return err
	}
	for _, x := range []*structs.Allocation{existing, a} {
		if x != nil {
			t.markJob(x.Namespace, x.JobID)
		}
	}
	return nil
}

// UpdateAllocsFromClient applies what clients report about their
// allocations, at raft index index. Only the FSM calls it. Of each update
// only ClientStatus, ClientDescription, TaskStates, ModifyTime and the
// health in DeploymentStatus (Healthy, Timestamp) are taken; an empty
// ClientStatus keeps the stored one. Allocations that are no longer in the
// store (garbage collected) are skipped.
func (w writer) UpdateAllocsFromClient(index uint64, allocs []*structs.Allocation) error {
	return w.run(index, func(t *txn) error {
		t.touch(TableAllocs)
		for _, u := range allocs {
			if err := t.updateAllocFromClient(u); err != nil {
				return fmt.Errorf("update allocation %q from client: %w", u.ID, err)
			}
		}
		return nil
	})
}

func (t *txn) updateAllocFromClient(u *structs.Allocation) error {
	existing, err := t.allocByID(u.ID)
	if err != nil || existing == nil {
		return err
	}
	a := existing.Copy()
	if u.ClientStatus != "" {
		a.ClientStatus = u.ClientStatus
	}
	a.ClientDescription = u.ClientDescription
	a.TaskStates = maps.Clone(u.TaskStates)
	a.ModifyTime = u.ModifyTime
	if h := u.DeploymentStatus; h != nil && h.Healthy != nil && (a.DeploymentStatus == nil || a.DeploymentStatus.Healthy == nil) {
		// Health is judged once: a verdict stored already (the client's
		// earlier report, or an operator's) is not replaced, and a report
		// without one does not erase it.
		a.DeploymentStatus = judged(a.DeploymentStatus, *h.Healthy, h.Timestamp, t.index)
	}
	a.ModifyIndex = t.index
	return t.putAlloc(existing, a)
}

// judged returns a copy of ds (which may be nil) with the verdict healthy
// given at ts, at raft index index; it keeps Canary, which the servers set.
func judged(ds *structs.AllocDeploymentStatus, healthy bool, ts time.Time, index uint64) *structs.AllocDeploymentStatus {
	out := &structs.AllocDeploymentStatus{}
	if ds != nil {
		*out = *ds
	}
	out.Healthy, out.Timestamp, out.ModifyIndex = &healthy, ts, index
	return out
}

// SetAllocHealth records an operator's verdict on allocations of
// deployment deploymentID (manual health), replacing any verdict they
// had. Allocations that are gone or belong to another deployment are
// skipped; the server checked them before the entry was written.
func (w writer) SetAllocHealth(index uint64, deploymentID string, healthy, unhealthy []string, ts time.Time) error {
	return w.run(index, func(t *txn) error {
		t.touch(TableAllocs)
		set := func(ids []string, verdict bool) error {
			for _, id := range ids {
				existing, err := t.allocByID(id)
				if err != nil {
					return err
				}
				if existing == nil || existing.DeploymentID != deploymentID {
					continue
				}
				a := existing.Copy()
				a.DeploymentStatus = judged(a.DeploymentStatus, verdict, ts, t.index)
				a.ModifyIndex = t.index
				if err := t.putAlloc(existing, a); err != nil {
					return fmt.Errorf("set health of allocation %q: %w", id, err)
				}
			}
			return nil
		}
		if err := set(healthy, true); err != nil {
			return err
		}
		return set(unhealthy, false)
	})
}
