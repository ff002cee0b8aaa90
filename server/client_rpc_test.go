package server

import (
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/structs"
)

// registerNode registers n and heartbeats it until the test ends.
func registerNode(t *testing.T, s *Server, n *structs.Node) *structs.NodeUpdateResponse {
	t.Helper()
	var reply structs.NodeUpdateResponse
	if err := s.RPC("Node.Register", &structs.NodeRegisterRequest{Node: n}, &reply); err != nil {
		t.Fatalf("register node %s: %v", n.Name, err)
	}
	keepAlive(t, s, n)
	return &reply
}

func smallNode(name string) *structs.Node {
	n := testNode()
	n.Name = name
	n.NodeResources.Cpu.CpuShares = 1000
	n.NodeResources.Memory.MemoryMB = 1024
	return n
}

// TestBlockedEvalWakesWhenANodeJoins: a job that does not fit blocks; a
// node joining places the rest.
func TestBlockedEvalWakesWhenANodeJoins(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.leader()
	registerNode(t, s, smallNode("n1"))
	job := testJob("web")
	job.TaskGroups[0].Count = 2
	job.TaskGroups[0].Tasks[0].Resources = &structs.Resources{CPU: 800, MemoryMB: 512}
	register(t, s, job)
	testutil.WaitFor(t, 10*time.Second, "one allocation placed and one blocked eval", func() bool {
		return len(liveAllocs(t, s, "web")) == 1 && s.blocked.Len() == 1
	})
	registerNode(t, s, smallNode("n2"))
	testutil.WaitFor(t, 10*time.Second, "the second allocation placed after n2 joined", func() bool {
		return len(liveAllocs(t, s, "web")) == 2
	})
	evals, _ := s.State().EvalsByJob(nil, "default", "web")
	for _, ev := range evals {
		if ev.Status == structs.EvalStatusBlocked {
			testutil.WaitFor(t, 5*time.Second, "the woken blocked eval completes", func() bool {
				e, _ := s.State().EvalByID(nil, ev.ID)
				return e.Status == structs.EvalStatusComplete
			})
		}
	}
}

// TestBlockedEvalWakesWhenCapacityFrees: a batch job that does not fit
// waits for another's allocation to complete on the node.
func TestBlockedEvalWakesWhenCapacityFrees(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.leader()
	n := smallNode("n1")
	registerNode(t, s, n)
	first := testJob("first")
	first.Type = structs.JobTypeBatch
	first.TaskGroups[0].Count = 1
	first.TaskGroups[0].Tasks[0].Resources = &structs.Resources{CPU: 800, MemoryMB: 512}
	register(t, s, first)
	testutil.WaitFor(t, 10*time.Second, "first placed", func() bool { return len(liveAllocs(t, s, "first")) == 1 })
	second := testJob("second")
	second.Type = structs.JobTypeBatch
	second.TaskGroups[0].Count = 1
	second.TaskGroups[0].Tasks[0].Resources = &structs.Resources{CPU: 800, MemoryMB: 512}
	register(t, s, second)
	testutil.WaitFor(t, 10*time.Second, "second blocked", func() bool { return s.blocked.Len() == 1 })

	done := liveAllocs(t, s, "first")[0]
	var reply structs.GenericResponse
	err := s.RPC("Node.UpdateAlloc", &structs.AllocUpdateRequest{NodeID: n.ID, SecretID: n.SecretID,
		Alloc: []*structs.Allocation{{ID: done.ID, ClientStatus: structs.AllocClientStatusComplete}}}, &reply)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "second placed once first completed", func() bool {
		return len(liveAllocs(t, s, "second")) == 1
	})
}

// TestSystemJobPlacesOnNodesThatJoinLater: a system job runs on every
// ready node, including one registered after the job.
func TestSystemJobPlacesOnNodesThatJoinLater(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.leader()
	registerNode(t, s, smallNode("n1"))
	job := testJob("agent")
	job.Type = structs.JobTypeSystem
	job.TaskGroups[0].Count = 1
	job.TaskGroups[0].Tasks[0].Resources = &structs.Resources{CPU: 100, MemoryMB: 64}
	register(t, s, job)
	testutil.WaitFor(t, 10*time.Second, "system alloc on n1", func() bool { return len(liveAllocs(t, s, "agent")) == 1 })
	n2 := smallNode("n2")
	reply := registerNode(t, s, n2)
	if len(reply.EvalIDs) != 1 {
		t.Errorf("register of a new node created %d evals, want 1 (the system job)", len(reply.EvalIDs))
	}
	testutil.WaitFor(t, 10*time.Second, "system alloc on n2", func() bool {
		for _, a := range liveAllocs(t, s, "agent") {
			if a.NodeID == n2.ID {
				return true
			}
		}
		return false
	})
	// Re-registering a node that is already ready creates no evaluation.
	if again := registerNode(t, s, n2); len(again.EvalIDs) != 0 {
		t.Errorf("re-register of a ready node created evals %v, want none", again.EvalIDs)
	}
}

// TestClientPullsAndReportsAllocations: the client RPCs through a
// follower: a blocking pull wakes on a placement, the changed allocations
// are fetched, status reports land in state, and a failed allocation is
// rescheduled.
func TestClientPullsAndReportsAllocations(t *testing.T) {
	c := newTestCluster(t, 3)
	f := c.follower()
	n := testNode()
	registerNode(t, f, n)
	var pull structs.NodeClientAllocsResponse
	req := &structs.NodeClientAllocsRequest{NodeID: n.ID, SecretID: n.SecretID}
	if err := f.RPC("Node.GetClientAllocs", req, &pull); err != nil || len(pull.Allocs) != 0 {
		t.Fatalf("first pull: %v %v, want no allocations", pull.Allocs, err)
	}

	woke := make(chan error, 1)
	var blocked structs.NodeClientAllocsResponse
	go func() {
		r := &structs.NodeClientAllocsRequest{NodeID: n.ID, SecretID: n.SecretID,
			QueryOptions: structs.QueryOptions{MinQueryIndex: pull.Index, MaxQueryTime: 20 * time.Second}}
		woke <- f.RPC("Node.GetClientAllocs", r, &blocked)
	}()
	job := testJob("web")
	job.TaskGroups[0].Count = 1
	job.TaskGroups[0].ReschedulePolicy = &structs.ReschedulePolicy{Unlimited: true, Delay: time.Millisecond, DelayFunction: "constant"}
	register(t, f, job)
	select {
	case err := <-woke:
		if err != nil || len(blocked.Allocs) != 1 {
			t.Fatalf("blocking pull: %v %v, want one allocation", blocked.Allocs, err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("blocking pull did not wake on the placement")
	}
	var ids []string
	for id := range blocked.Allocs {
		ids = append(ids, id)
	}
	var got structs.AllocsGetResponse
	err := f.RPC("Alloc.GetAllocs", &structs.AllocsGetRequest{AllocIDs: ids,
		QueryOptions: structs.QueryOptions{MinQueryIndex: blocked.Index - 1, AllowStale: true}}, &got)
	if err != nil || len(got.Allocs) != 1 || got.Allocs[0].Job == nil {
		t.Fatalf("GetAllocs: %v %v, want the allocation with its job", got.Allocs, err)
	}
	first := got.Allocs[0]

	update := func(secret, status string) error {
		var r structs.GenericResponse
		return f.RPC("Node.UpdateAlloc", &structs.AllocUpdateRequest{NodeID: n.ID, SecretID: secret,
			Alloc: []*structs.Allocation{{ID: first.ID, ClientStatus: status,
				TaskStates: map[string]*structs.TaskState{"server": {State: "running"}}}}}, &r)
	}
	if err := update("wrong", structs.AllocClientStatusRunning); err == nil || !strings.Contains(err.Error(), "secret") {
		t.Fatalf("update with a wrong secret: %v, want a secret error", err)
	}
	if err := update(n.SecretID, structs.AllocClientStatusRunning); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 5*time.Second, "running recorded on the leader", func() bool {
		a, _ := c.leader().State().AllocByID(nil, first.ID)
		return a.ClientStatus == structs.AllocClientStatusRunning && a.TaskStates["server"] != nil
	})
	if err := update(n.SecretID, structs.AllocClientStatusFailed); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "a replacement for the failed allocation", func() bool {
		for _, a := range liveAllocs(t, c.leader(), "web") {
			if a.ID != first.ID && a.PreviousAllocation == first.ID {
				return true
			}
		}
		return false
	})
}

// TestNodeEligibility: an ineligible node gets no new placements (what
// runs there stays); made eligible again, the blocked job is placed.
func TestNodeEligibility(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.leader()
	n := smallNode("n1")
	registerNode(t, s, n)
	first := testJob("first")
	first.TaskGroups[0].Count = 1
	first.TaskGroups[0].Tasks[0].Resources = &structs.Resources{CPU: 100, MemoryMB: 64}
	register(t, s, first)
	testutil.WaitFor(t, 10*time.Second, "first placed", func() bool { return len(liveAllocs(t, s, "first")) == 1 })

	var reply structs.NodeEligibilityUpdateResponse
	if err := s.RPC("Node.UpdateEligibility", &structs.NodeUpdateEligibilityRequest{NodeID: n.ID, Eligibility: "maybe"}, &reply); err == nil {
		t.Fatal("eligibility \"maybe\" accepted")
	}
	if err := s.RPC("Node.UpdateEligibility", &structs.NodeUpdateEligibilityRequest{NodeID: n.ID, Eligibility: structs.NodeSchedulingIneligible}, &reply); err != nil {
		t.Fatal(err)
	}
	second := testJob("second")
	second.TaskGroups[0].Count = 1
	second.TaskGroups[0].Tasks[0].Resources = &structs.Resources{CPU: 100, MemoryMB: 64}
	reg := register(t, s, second)
	testutil.WaitFor(t, 10*time.Second, "second's evaluation processed", func() bool {
		ev, _ := s.State().EvalByID(nil, reg.EvalID)
		return ev != nil && ev.Status == structs.EvalStatusComplete
	})
	if got := len(liveAllocs(t, s, "second")); got != 0 {
		t.Fatalf("%d allocations placed on an ineligible node", got)
	}
	if got := len(liveAllocs(t, s, "first")); got != 1 {
		t.Fatalf("the allocation already there: %d live, want 1 (ineligibility stops nothing)", got)
	}
	if err := s.RPC("Node.UpdateEligibility", &structs.NodeUpdateEligibilityRequest{NodeID: n.ID, Eligibility: structs.NodeSchedulingEligible}, &reply); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "second placed once the node is eligible", func() bool {
		return len(liveAllocs(t, s, "second")) == 1
	})
}

// reportRunning plays a client on node n: every live allocation placed on
// it is reported running, until the test ends.
func reportRunning(t *testing.T, s *Server, n *structs.Node) {
	every(t, 20*time.Millisecond, func() {
		allocs, _ := s.State().AllocsByNode(nil, n.ID)
		var up []*structs.Allocation
		for _, a := range allocs {
			if !a.TerminalStatus() && a.ClientStatus == structs.AllocClientStatusPending {
				up = append(up, &structs.Allocation{ID: a.ID, ClientStatus: structs.AllocClientStatusRunning,
					TaskStates: map[string]*structs.TaskState{"server": {State: "running", StartedAt: time.Now()}}})
			}
		}
		if len(up) > 0 {
			var r structs.GenericResponse
			_ = s.RPC("Node.UpdateAlloc", &structs.AllocUpdateRequest{NodeID: n.ID, SecretID: n.SecretID, Alloc: up}, &r)
		}
	})
}

// TestDrainMigratesAtMigratePace: draining a node moves its service
// allocations to the other node one at a time (max_parallel 1, each
// replacement healthy for min_healthy_time before the next leaves), its
// system allocation last, then ends the drain with the node ineligible.
func TestDrainMigratesAtMigratePace(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.leader()
	n1, n2 := smallNode("n1"), smallNode("n2")
	registerNode(t, s, n1)
	reportRunning(t, s, n1)
	job := testJob("web")
	job.TaskGroups[0].Count = 3
	job.TaskGroups[0].Tasks[0].Resources = &structs.Resources{CPU: 100, MemoryMB: 64}
	job.TaskGroups[0].Migrate = &structs.MigrateStrategy{MaxParallel: 1, HealthCheck: "task_states", MinHealthyTime: 300 * time.Millisecond, HealthyDeadline: time.Minute}
	register(t, s, job)
	sys := testJob("agent")
	sys.Type = structs.JobTypeSystem
	sys.TaskGroups[0].Count = 1
	sys.TaskGroups[0].Tasks[0].Resources = &structs.Resources{CPU: 10, MemoryMB: 10}
	register(t, s, sys)
	testutil.WaitFor(t, 10*time.Second, "3 web and 1 system allocation running on n1", func() bool {
		return len(liveAllocs(t, s, "web")) == 3 && len(liveAllocs(t, s, "agent")) == 1
	})
	registerNode(t, s, n2)
	reportRunning(t, s, n2)

	var reply structs.NodeDrainUpdateResponse
	if err := s.RPC("Node.UpdateDrain", &structs.NodeUpdateDrainRequest{NodeID: n1.ID,
		DrainStrategy: &structs.DrainStrategy{Deadline: time.Minute}}, &reply); err != nil {
		t.Fatal(err)
	}
	maxInFlight := 0
	testutil.WaitFor(t, 30*time.Second, "the drain to end", func() bool {
		inFlight, webOnN1 := 0, 0
		all, _ := s.State().AllocsByJob(nil, "default", "web", true)
		for _, a := range all {
			if a.NodeID == n1.ID && !a.TerminalStatus() {
				webOnN1++
			}
			if !a.DesiredTransition.ShouldMigrate() {
				continue
			}
			if !a.TerminalStatus() {
				inFlight++
				continue
			}
			if r, _ := s.State().AllocByID(nil, a.NextAllocation); r != nil && !healthyFor(r, time.Now(), 300*time.Millisecond) {
				inFlight++
			}
		}
		maxInFlight = max(maxInFlight, inFlight)
		sysOnN1 := 0
		for _, a := range liveAllocs(t, s, "agent") {
			if a.NodeID == n1.ID {
				sysOnN1++
			}
		}
		if sysOnN1 == 0 && webOnN1 > 0 {
			t.Fatalf("the system allocation left n1 while %d web allocations were still there", webOnN1)
		}
		node, _ := s.State().NodeByID(nil, n1.ID)
		return node.DrainStrategy == nil && webOnN1 == 0 && sysOnN1 == 0
	})
	if maxInFlight > 1 {
		t.Errorf("up to %d web allocations migrated at once, want at most max_parallel 1", maxInFlight)
	}
	node, _ := s.State().NodeByID(nil, n1.ID)
	if node.SchedulingEligibility != structs.NodeSchedulingIneligible {
		t.Errorf("after the drain n1 is %s, want ineligible", node.SchedulingEligibility)
	}
	for _, a := range liveAllocs(t, s, "web") {
		if a.NodeID != n2.ID {
			t.Errorf("%s still on %s after the drain", a.Name, a.NodeID)
		}
	}
}
