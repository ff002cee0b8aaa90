package state

import (
	"maps"

	"github.com/skiffhq/skiff/structs"
)

// A job's summary counts its allocations by state, per task group. It is
// kept incrementally: every write of an allocation takes the old row out of
// the count and puts the new one in. An allocation counts towards the
// summary of its job only while the job exists and the allocation belongs
// to the job's current incarnation (see sameIncarnation), so that at every
// index the summary equals a recount of AllocsByJob(ns, id, false).
//
// Queued is not derived from allocations: it is what the scheduler last
// reported in an evaluation's QueuedAllocations.

// bucket is the summary counter an allocation falls in.
type bucket int

const (
	bucketNone bucket = iota // pending but told to stop: counted nowhere
	bucketStarting
	bucketRunning
	bucketComplete
	bucketFailed
	bucketLost
	bucketUnknown
)

// bucketOf returns the counter of an allocation. A client status not yet
// reported ("") counts as pending.
func bucketOf(a *structs.Allocation) bucket {
	switch a.ClientStatus {
	case structs.AllocClientStatusPending, "":
		if a.DesiredStatus == structs.AllocDesiredStatusRun {
			return bucketStarting
		}
	case structs.AllocClientStatusRunning:
		return bucketRunning
	case structs.AllocClientStatusComplete:
		return bucketComplete
	case structs.AllocClientStatusFailed:
		return bucketFailed
	case structs.AllocClientStatusLost:
		return bucketLost
	case structs.AllocClientStatusUnknown:
		return bucketUnknown
	}
	return bucketNone
}

// add adds d to counter b.
func (b bucket) add(s *structs.TaskGroupSummary, d int) {
	switch b {
	case bucketStarting:
		s.Starting += d
	case bucketRunning:
		s.Running += d
	case bucketComplete:
		s.Complete += d
	case bucketFailed:
		s.Failed += d
	case bucketLost:
		s.Lost += d
	case bucketUnknown:
		s.Unknown += d
	}
}

// slot is where an allocation is counted: job, group and counter.
type slot struct {
	job    structs.NamespacedID
	group  string
	bucket bucket
}

// slotOf returns where a is counted, and false if it is counted nowhere.
func (t *txn) slotOf(a *structs.Allocation) (slot, bool, error) {
	if a == nil {
		return slot{}, false, nil
	}
	b := bucketOf(a)
	if b == bucketNone {
		return slot{}, false, nil
	}
	job, err := byID[structs.Job](t, TableJobs, a.Namespace, a.JobID)
	if err != nil || job == nil || !sameIncarnation(a, job) {
		return slot{}, false, err
	}
	return slot{job: job.NamespacedID(), group: a.TaskGroup, bucket: b}, true, nil
}

// allocChanged moves an allocation's count from where old was counted to
// where updated is. Either may be nil (insert, delete).
func (t *txn) allocChanged(old, updated *structs.Allocation) error {
	t.refsChanged(old, updated)
	if !sameUse(old, updated) { // most client reports change no usage
		if err := t.changeUsage(old, -1); err != nil {
			return err
		}
		if err := t.changeUsage(updated, +1); err != nil {
			return err
		}
	}
	from, inFrom, err := t.slotOf(old)
	if err != nil {
		return err
	}
	to, inTo, err := t.slotOf(updated)
	if err != nil {
		return err
	}
	if inFrom && inTo && from == to {
		return nil
	}
	if inFrom {
		if err := t.count(from, -1); err != nil {
			return err
		}
	}
	if inTo {
		return t.count(to, +1)
	}
	return nil
}

func (t *txn) count(s slot, d int) error {
	sum, err := t.editSummary(s.job)
	if err != nil || sum == nil {
		return err
	}
	g := sum.Summary[s.group]
	s.bucket.add(&g, d)
	sum.Summary[s.group] = g
	return nil
}

// summary returns the job's summary as this write sees it, or nil.
func (t *txn) summary(id structs.NamespacedID) (*structs.JobSummary, error) {
	if s, ok := t.summaries[id]; ok {
		return s, nil
	}
	return byID[structs.JobSummary](t, TableJobSummary, id.Namespace, id.ID)
}

// editSummary returns a private copy of the job's summary for this write to
// change (settle writes it), or nil if the job has no summary.
func (t *txn) editSummary(id structs.NamespacedID) (*structs.JobSummary, error) {
	if s, ok := t.summaries[id]; ok {
		return s, nil
	}
	stored, err := byID[structs.JobSummary](t, TableJobSummary, id.Namespace, id.ID)
	if err != nil || stored == nil {
		return nil, err
	}
	c := *stored
	c.Summary = maps.Clone(stored.Summary)
	if c.Summary == nil {
		c.Summary = map[string]structs.TaskGroupSummary{}
	}
	c.ModifyIndex = t.index
	t.summaries[id] = &c
	return &c, nil
}

// ensureSummary gives a job a summary if it has none (counting its
// allocations) and an entry for each of its groups. Entries of groups the
// job no longer has are kept: their allocations may still be counted.
func (t *txn) ensureSummary(job *structs.Job) error {
	id := job.NamespacedID()
	sum, err := t.summary(id)
	if err != nil {
		return err
	}
	if sum == nil {
		sum = &structs.JobSummary{
			JobID: job.ID, Namespace: job.Namespace, Summary: map[string]structs.TaskGroupSummary{},
			CreateIndex: t.index, ModifyIndex: t.index,
		}
		t.summaries[id] = sum
		err = t.eachAllocOfJob(job, func(a *structs.Allocation) bool {
			if b := bucketOf(a); b != bucketNone {
				g := sum.Summary[a.TaskGroup]
				b.add(&g, 1)
				sum.Summary[a.TaskGroup] = g
			}
			return true
		})
		if err != nil {
			return err
		}
	}
	for _, tg := range job.TaskGroups {
		if _, ok := sum.Summary[tg.Name]; ok {
			continue
		}
		if sum, err = t.editSummary(id); err != nil {
			return err
		}
		sum.Summary[tg.Name] = structs.TaskGroupSummary{}
	}
	return nil
}

// setQueued records the scheduler's count of allocations it could not yet
// place, per group, from an evaluation.
func (t *txn) setQueued(e *structs.Evaluation) error {
	if len(e.QueuedAllocations) == 0 || e.JobID == "" {
		return nil
	}
	sum, err := t.editSummary(structs.NamespacedID{Namespace: e.Namespace, ID: e.JobID})
	if err != nil || sum == nil {
		return err
	}
	for group, n := range e.QueuedAllocations {
		g := sum.Summary[group]
		g.Queued = n
		sum.Summary[group] = g
	}
	return nil
}
