package server

import (
	"runtime"
	"sync"
	"weak"

	"github.com/skiffhq/skiff/structs"
)

// stubCache keeps each listed job's list entry (structs.JobListStub)
// while its job and summary stay the same, so that a list of 10,000 jobs
// reuses 10,000 stubs, and the JSON the HTTP agent kept with each
// (JobListStub.SetMemo), instead of making and encoding them again: in a
// profile of the list that was 34 ms of server CPU per list, most of it
// cache misses on each job's summary and its map.
//
// Stored jobs and summaries are never changed in place (a write stores a
// new object), so an entry is valid while it is for the same job object
// and summary object. It is keyed by a weak pointer to the job: a job
// that was replaced or deleted, once no snapshot holds it, is collected
// and its entry removed.
type stubCache struct {
	mu sync.Mutex
	m  map[weak.Pointer[structs.Job]]*structs.JobListStub // guarded by mu
}

// stubs returns the list entries of jobs, each with the summary of the
// same index in sums (nil for none).
func (c *stubCache) stubs(jobs []*structs.Job, sums []*structs.JobSummary) []*structs.JobListStub {
	out := make([]*structs.JobListStub, len(jobs))
	keys := make([]weak.Pointer[structs.Job], len(jobs))
	for i, job := range jobs {
		keys[i] = weak.Make(job)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[weak.Pointer[structs.Job]]*structs.JobListStub, len(jobs))
	}
	for i, job := range jobs {
		s, ok := c.m[keys[i]]
		if ok && s.JobSummary == sums[i] {
			out[i] = s
			continue
		}
		s = job.Stub(sums[i]).KeepMemo()
		if !ok {
			runtime.AddCleanup(job, c.forget, keys[i])
		}
		c.m[keys[i]] = s
		out[i] = s
	}
	return out
}

// forget removes the entry of a job that was collected.
func (c *stubCache) forget(key weak.Pointer[structs.Job]) {
	c.mu.Lock()
	delete(c.m, key)
	c.mu.Unlock()
}
