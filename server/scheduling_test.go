package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/structs"
)

func liveAllocs(t *testing.T, s *Server, jobID string) []*structs.Allocation {
	t.Helper()
	all, err := s.State().AllocsByJob(nil, "default", jobID, false)
	if err != nil {
		t.Fatal(err)
	}
	var live []*structs.Allocation
	for _, a := range all {
		if !a.TerminalStatus() {
			live = append(live, a)
		}
	}
	return live
}

// TestJobsArePlacedThroughRaft: register nodes and a job on a 3-server
// cluster; the leader's workers schedule it, the plan applier commits the
// allocations, and every server sees them. Scaling down and stopping the
// job stop allocations.
func TestJobsArePlacedThroughRaft(t *testing.T) {
	c := newTestCluster(t, 3)
	f := c.follower()
	var nodes []*structs.Node
	for i := range 3 {
		n := testNode()
		n.Name = fmt.Sprintf("n%d", i)
		nodes = append(nodes, n)
		var reply structs.NodeUpdateResponse
		if err := f.RPC("Node.Register", &structs.NodeRegisterRequest{Node: n}, &reply); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() { // the nodes heartbeat
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			for _, n := range nodes {
				_, _ = heartbeat(f, n)
			}
		}
	}()

	job := testJob("web")
	job.TaskGroups[0].Count = 5
	job.TaskGroups[0].Tasks[0].Resources = &structs.Resources{CPU: 500, MemoryMB: 256}
	reply := register(t, f, job)
	var live []*structs.Allocation
	testutil.WaitFor(t, 10*time.Second, "5 allocations placed", func() bool {
		live = liveAllocs(t, c.leader(), "web")
		return len(live) == 5
	})
	perNode := map[string]int{}
	names := map[string]bool{}
	for _, a := range live {
		perNode[a.NodeID]++
		names[a.Name] = true
		if a.ClientStatus != structs.AllocClientStatusPending || a.EvalID != reply.EvalID {
			t.Errorf("alloc %s: client status %q eval %s, want pending and eval %s", a.Name, a.ClientStatus, a.EvalID, reply.EvalID)
		}
	}
	for i := range 5 {
		if !names[fmt.Sprintf("web.web[%d]", i)] {
			t.Errorf("no allocation named web.web[%d]; have %v", i, names)
		}
	}
	if len(perNode) < 2 {
		t.Errorf("allocations on %d node(s); anti-affinity should use more than one of 3", len(perNode))
	}
	testutil.WaitFor(t, 5*time.Second, "the evaluation to complete", func() bool {
		ev, _ := c.leader().State().EvalByID(nil, reply.EvalID)
		return ev != nil && ev.Status == structs.EvalStatusComplete
	})
	// Every server has the same allocations.
	idx, _ := c.leader().State().LatestIndex()
	c.waitForIndex(idx)
	for _, s := range c.servers {
		if got := len(liveAllocs(t, s, "web")); got != 5 {
			t.Errorf("%s sees %d live allocations, want 5", s.config.NodeName, got)
		}
	}

	job.TaskGroups[0].Count = 2
	register(t, f, job)
	testutil.WaitFor(t, 10*time.Second, "scale down to 2", func() bool { return len(liveAllocs(t, c.leader(), "web")) == 2 })

	var dereg structs.JobDeregisterResponse
	if err := f.RPC("Job.Deregister", &structs.JobDeregisterRequest{JobID: "web"}, &dereg); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "all allocations stopped", func() bool { return len(liveAllocs(t, c.leader(), "web")) == 0 })
}

// TestPlacementFailureIsExplained: a job asking more memory than any node
// has is not placed, and its evaluation says why.
func TestPlacementFailureIsExplained(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.leader()
	n := testNode()
	var nr structs.NodeUpdateResponse
	if err := s.RPC("Node.Register", &structs.NodeRegisterRequest{Node: n}, &nr); err != nil {
		t.Fatal(err)
	}
	job := testJob("huge")
	job.TaskGroups[0].Tasks[0].Resources = &structs.Resources{CPU: 100, MemoryMB: 64000}
	reply := register(t, s, job)
	var ev *structs.Evaluation
	testutil.WaitFor(t, 10*time.Second, "the evaluation to complete", func() bool {
		ev, _ = s.State().EvalByID(nil, reply.EvalID)
		return ev != nil && ev.Status == structs.EvalStatusComplete
	})
	m := ev.FailedTGAllocs["web"]
	if m == nil || m.DimensionExhausted["memory"] == 0 || ev.BlockedEval == "" {
		t.Fatalf("eval = %+v, want a memory failure for group web and a blocked eval", ev)
	}
	if got := len(liveAllocs(t, s, "huge")); got != 0 {
		t.Fatalf("%d allocations placed for a job that cannot fit", got)
	}
}

// TestPlanApplierRefusesOvercommit: two plans made against the same
// snapshot that each fit alone but not together: the second is refused
// for that node and told to refresh.
func TestPlanApplierRefusesOvercommit(t *testing.T) {
	s, n, job := planTestCluster(t)
	first := &structs.Plan{EvalID: "e1", Job: job}
	first.AppendAlloc(planTestAlloc(job, n, "a.web[0]", 600))
	second := &structs.Plan{EvalID: "e2", Job: job}
	second.AppendAlloc(planTestAlloc(job, n, "a.web[1]", 600))

	r1, err := s.applyPlan(first)
	if err != nil || r1.RefreshIndex != 0 || len(r1.NodeAllocation[n.ID]) != 1 {
		t.Fatalf("first plan: %+v %v, want it committed", r1, err)
	}
	r2, err := s.applyPlan(second)
	if err != nil || r2.RefreshIndex == 0 || len(r2.NodeAllocation[n.ID]) != 0 {
		t.Fatalf("second plan: %+v %v, want the node refused and a refresh index", r2, err)
	}
	if got := len(liveAllocs(t, s, "a")); got != 1 {
		t.Fatalf("%d allocations committed, want 1 (the node has room for one)", got)
	}
}

// TestWorkersScheduleOnEveryServer: followers' workers take evaluations
// from the leader's broker, schedule on their own state and commit
// through the leader's plan applier.
func TestWorkersScheduleOnEveryServer(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	n := testNode()
	registerNode(t, l, n)
	const jobs = 20
	for i := range jobs {
		job := testJob(fmt.Sprintf("j%02d", i))
		job.TaskGroups[0].Count = 1
		job.TaskGroups[0].Tasks[0].Resources = &structs.Resources{CPU: 10, MemoryMB: 10}
		register(t, l, job)
	}
	testutil.WaitFor(t, 20*time.Second, "every job placed", func() bool {
		for i := range jobs {
			if len(liveAllocs(t, l, fmt.Sprintf("j%02d", i))) != 1 {
				return false
			}
		}
		return true
	})
	var byFollowers uint64
	for _, s := range c.servers {
		if s != l {
			byFollowers += s.evalsProcessed.Load()
		}
	}
	if byFollowers == 0 {
		t.Fatalf("followers' workers processed no evaluation of %d (leader: %d)", jobs, l.evalsProcessed.Load())
	}
	t.Logf("evaluations processed: by followers %d, by the leader %d", byFollowers, l.evalsProcessed.Load())
}

// applyPlan verifies a plan and commits it, waiting for the commit (the
// serial path, for tests).
func (s *Server) applyPlan(plan *structs.Plan) (*structs.PlanResult, error) {
	c, res, err := s.verifyPlan(plan, nil)
	if err != nil || c == nil {
		return res, err
	}
	p := &pendingPlan{plan: plan, result: make(chan planOutcome, 1)}
	s.commitPlan(c, p)
	o := <-p.result
	return o.result, o.err
}

// commitPlan commits a verified plan, waiting for it, and answers its
// worker.
func (s *Server) commitPlan(c *planCommit, p *pendingPlan) {
	a, err := s.raftSubmit(structs.ApplyPlanResultsRequestType, c.req)
	s.finishCommit(c, p, a, err)
}

// planTestCluster is a one-server cluster with one node of 1,000 MHz and
// job "a" registered with no allocations, for plans made by hand.
func planTestCluster(t *testing.T) (*Server, *structs.Node, *structs.Job) {
	t.Helper()
	c := newTestCluster(t, 1)
	s := c.leader()
	n := testNode()
	n.NodeResources.Cpu.CpuShares = 1000
	registerNode(t, s, n)
	idle := testJob("a")
	idle.TaskGroups[0].Count = 0
	register(t, s, idle)
	// The job's evaluation must be done before plans are made by hand: run
	// after them, it would stop their allocations (the group's count is 0).
	testutil.WaitFor(t, 10*time.Second, "job a's evaluations done", func() bool {
		evals, err := s.State().EvalsByJob(nil, "default", "a")
		if err != nil || len(evals) == 0 {
			return false
		}
		for _, e := range evals {
			if e.Status == structs.EvalStatusPending {
				return false
			}
		}
		return true
	})
	job, _ := s.State().JobByID(nil, "default", "a")
	return s, n, job
}

// planTestAlloc is a new allocation of job's group "web" on n, asking cpu
// MHz and 100 MB.
func planTestAlloc(job *structs.Job, n *structs.Node, name string, cpu int64) *structs.Allocation {
	return &structs.Allocation{ID: structs.GenerateUUID(), Namespace: "default", JobID: job.ID, Job: job, TaskGroup: "web",
		Name: name, NodeID: n.ID, DesiredStatus: structs.AllocDesiredStatusRun, ClientStatus: structs.AllocClientStatusPending,
		AllocatedResources: &structs.AllocatedResources{Tasks: map[string]*structs.AllocatedTaskResources{
			"server": {Cpu: structs.AllocatedCpuResources{CpuShares: cpu}, Memory: structs.AllocatedMemoryResources{MemoryMB: 100}}}}}
}

// TestPlanVerifiedAgainstPlansInFlight: a plan verified while another is
// still being committed counts that one's allocations, so the two cannot
// together overcommit a node.
func TestPlanVerifiedAgainstPlansInFlight(t *testing.T) {
	s, n, job := planTestCluster(t)
	first := &structs.Plan{EvalID: "e1", Job: job}
	first.AppendAlloc(planTestAlloc(job, n, "a.web[0]", 600))
	second := &structs.Plan{EvalID: "e2", Job: job}
	second.AppendAlloc(planTestAlloc(job, n, "a.web[1]", 600))

	c1, _, err := s.verifyPlan(first, nil)
	if err != nil || c1 == nil {
		t.Fatalf("verify first: %v %v", c1, err)
	}
	p1 := &pendingPlan{plan: first, result: make(chan planOutcome, 1)}
	go s.commitPlan(c1, p1) // in flight while the second is verified
	c2, r2, err := s.verifyPlan(second, []*planCommit{c1})
	if err != nil || c2 != nil || r2.RefreshIndex == 0 || len(r2.NodeAllocation[n.ID]) != 0 {
		t.Fatalf("second plan verified with the first in flight: commit %v result %+v err %v; want the node refused", c2, r2, err)
	}
	if o := <-p1.result; o.err != nil || o.result.AllocIndex == 0 {
		t.Fatalf("first plan commit: %+v %v", o.result, o.err)
	}
	if r2.RefreshIndex < c1.index {
		t.Errorf("refresh index %d is before the in-flight plan's commit %d", r2.RefreshIndex, c1.index)
	}
}

// TestPlansCommittedTogetherNeverOvercommit: plans submitted at once are
// handed to raft without waiting for each other's commit; still, no two
// of them take the same room, and each worker is answered only once its
// allocations are in the state.
func TestPlansCommittedTogetherNeverOvercommit(t *testing.T) {
	s, n, job := planTestCluster(t)
	const plans, fit = 2*maxPlansInFlight + 1, 3 // 300 MHz each on 1,000
	type outcome struct {
		alloc  *structs.Allocation
		result *structs.PlanResult
		stored bool
		err    error
	}
	out := make(chan outcome, plans)
	for i := range plans {
		a := planTestAlloc(job, n, fmt.Sprintf("a.web[%d]", i), 300)
		plan := &structs.Plan{EvalID: fmt.Sprintf("e%d", i), Job: job}
		plan.AppendAlloc(a)
		go func() {
			res, err := s.submitPlan(context.Background(), plan, "")
			stored := false
			if err == nil {
				got, _ := s.State().AllocByID(nil, a.ID)
				stored = got != nil
			}
			out <- outcome{a, res, stored, err}
		}()
	}
	placed := 0
	for range plans {
		o := <-out
		if o.err != nil {
			t.Fatalf("plan of %s: %v", o.alloc.Name, o.err)
		}
		if len(o.result.NodeAllocation[n.ID]) == 0 {
			if o.result.RefreshIndex == 0 {
				t.Errorf("plan of %s refused without a refresh index", o.alloc.Name)
			}
			continue
		}
		placed++
		if !o.stored || o.result.AllocIndex == 0 {
			t.Errorf("plan of %s answered before its commit was applied: stored %v, alloc index %d", o.alloc.Name, o.stored, o.result.AllocIndex)
		}
	}
	if placed != fit {
		t.Errorf("%d of %d plans placed, want %d (the node has room for %d)", placed, plans, fit, fit)
	}
	allocs, err := s.State().AllocsByNode(nil, n.ID)
	if err != nil {
		t.Fatal(err)
	}
	var cpu int64
	for _, a := range allocs {
		if !a.TerminalStatus() {
			cpu += a.AllocatedResources.Tasks["server"].Cpu.CpuShares
		}
	}
	if cpu > 1000 {
		t.Errorf("node holds %d MHz of allocations, over its 1,000", cpu)
	}
}

// keepAlive heartbeats the node until the test ends.
func keepAlive(t *testing.T, s *Server, n *structs.Node) {
	every(t, 100*time.Millisecond, func() {
		_, _ = heartbeat(s, n)
	})
}

// An allocation updated in place replaces its stored version on the node:
// the check counts the update instead of the stored one, so it fits a
// node that has no room for a second allocation. A placement that claims
// to be new (no CreateIndex) while reusing a stored ID is counted on top
// of the stored one: refused here, where the node cannot hold both; never
// an overcommit.
func TestInPlaceUpdateReplacesTheStoredAllocation(t *testing.T) {
	s, n, job := planTestCluster(t)
	first := &structs.Plan{EvalID: "e1", Job: job}
	first.AppendAlloc(planTestAlloc(job, n, "a.web[0]", 600))
	if r, err := s.applyPlan(first); err != nil || r.RefreshIndex != 0 {
		t.Fatalf("first plan: %+v %v, want it committed", r, err)
	}
	stored := liveAllocs(t, s, "a")[0]

	update := stored.Copy()
	update.AllocatedResources = planTestAlloc(job, n, "", 700).AllocatedResources
	inPlace := &structs.Plan{EvalID: "e2", Job: job}
	inPlace.AppendAlloc(update)
	if r, err := s.applyPlan(inPlace); err != nil || r.RefreshIndex != 0 || len(r.NodeAllocation[n.ID]) != 1 {
		t.Fatalf("in-place update to 700 of 1,000 MHz: %+v %v, want it committed", r, err)
	}

	claimsNew := stored.Copy()
	claimsNew.CreateIndex = 0
	bogus := &structs.Plan{EvalID: "e3", Job: job}
	bogus.AppendAlloc(claimsNew)
	if r, err := s.applyPlan(bogus); err != nil || r.RefreshIndex == 0 {
		t.Fatalf("a stored allocation placed again as new: %+v %v, want it refused", r, err)
	}
	if got := liveAllocs(t, s, "a"); len(got) != 1 || got[0].AllocatedResources.Tasks["server"].Cpu.CpuShares != 700 {
		t.Fatalf("live allocations %v, want one of 700 MHz", got)
	}
}
