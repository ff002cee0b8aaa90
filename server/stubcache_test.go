package server

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/structs"
)

// TestStubCacheKeepsAStubWhileItsJobAndSummaryStay: the same job and
// summary objects give the same stub; a new summary or a new job object
// (stored objects are replaced, never changed) gives a new one.
func TestStubCacheKeepsAStubWhileItsJobAndSummaryStay(t *testing.T) {
	var c stubCache
	job := testJob("web")
	sum := &structs.JobSummary{JobID: "web", Namespace: "default"}
	first := c.stubs([]*structs.Job{job}, []*structs.JobSummary{sum})[0]
	if again := c.stubs([]*structs.Job{job}, []*structs.JobSummary{sum})[0]; again != first {
		t.Fatal("the same job and summary gave a new stub")
	}
	sum2 := &structs.JobSummary{JobID: "web", Namespace: "default", ModifyIndex: 9}
	if s := c.stubs([]*structs.Job{job}, []*structs.JobSummary{sum2})[0]; s == first || s.JobSummary != sum2 {
		t.Fatalf("a new summary gave stub %+v, want a new stub with it", s)
	}
	job2 := job.Copy()
	job2.Status = structs.JobStatusRunning
	if s := c.stubs([]*structs.Job{job2}, []*structs.JobSummary{sum2})[0]; s.Status != structs.JobStatusRunning {
		t.Fatalf("a new job object gave a stub with status %q, want running", s.Status)
	}
	if s := c.stubs([]*structs.Job{job}, []*structs.JobSummary{nil})[0]; s.JobSummary != nil {
		t.Fatal("no summary gave a stub with one")
	}
	runtime.KeepAlive(job)
	runtime.KeepAlive(job2)
}

// TestStubCacheForgetsCollectedJobs: the cache does not keep jobs alive,
// and drops the entries of jobs that were collected.
func TestStubCacheForgetsCollectedJobs(t *testing.T) {
	var c stubCache
	func() {
		jobs := make([]*structs.Job, 100)
		for i := range jobs {
			jobs[i] = testJob(fmt.Sprintf("job-%d", i))
		}
		c.stubs(jobs, make([]*structs.JobSummary, len(jobs)))
	}()
	if n := c.len(); n != 100 {
		t.Fatalf("the cache holds %d entries, want 100", n)
	}
	testutil.WaitFor(t, 10*time.Second, "the collected jobs' entries dropped", func() bool {
		runtime.GC()
		return c.len() == 0
	})
}

// TestJobListShowsEachChange: a list after a job's update shows the new
// version, though the list before it cached the old one's entry.
func TestJobListShowsEachChange(t *testing.T) {
	c := newTestCluster(t, 1)
	l := c.leader()
	list := func() *structs.JobListStub {
		t.Helper()
		var reply structs.JobListResponse
		if err := l.RPC("Job.List", &structs.JobListRequest{}, &reply); err != nil {
			t.Fatal(err)
		}
		if len(reply.Jobs) != 1 {
			t.Fatalf("listed %d jobs, want 1", len(reply.Jobs))
		}
		return reply.Jobs[0]
	}
	job := testJob("web")
	job.Meta = map[string]string{"v": "1"}
	register(t, l, job)
	if s := list(); s.Meta["v"] != "1" {
		t.Fatalf("listed meta %v, want v=1", s.Meta)
	}
	job = testJob("web")
	job.Meta = map[string]string{"v": "2"}
	reply := register(t, l, job)
	s := list()
	if s.Meta["v"] != "2" || s.JobModifyIndex != reply.JobModifyIndex {
		t.Fatalf("after the update the list shows meta %v and job modify index %d, want v=2 and %d", s.Meta, s.JobModifyIndex, reply.JobModifyIndex)
	}
	// The worker may change the summary meanwhile: compare a list made
	// while the stored summary stayed the same.
	summary := func() *structs.JobSummary {
		sum, err := l.fsm.State().JobSummaryByID(nil, "default", "web")
		if err != nil {
			t.Fatal(err)
		}
		return sum
	}
	testutil.WaitFor(t, 10*time.Second, "a list with the stored summary", func() bool {
		before := summary()
		listed := list().JobSummary
		return before == summary() && listed == before
	})
}

// len returns how many entries the cache holds.
func (c *stubCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
