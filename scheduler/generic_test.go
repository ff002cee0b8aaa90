package scheduler

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/skiffhq/skiff/structs"
)

func addTestNodes(h *harness, n, racks int) []*structs.Node {
	var nodes []*structs.Node
	for i := range n {
		nodes = append(nodes, testNode(i, racks))
	}
	h.addNodes(nodes...)
	return nodes
}

func TestCountUpAndDown(t *testing.T) {
	h := newHarness(t)
	addTestNodes(h, 5, 5)
	steps := []struct {
		count       int
		wantLive    []string
		wantStopped []string
	}{
		{3, []string{"web.web[0]", "web.web[1]", "web.web[2]"}, nil},
		{5, []string{"web.web[0]", "web.web[1]", "web.web[2]", "web.web[3]", "web.web[4]"}, nil},
		{2, []string{"web.web[0]", "web.web[1]"}, []string{"web.web[2]", "web.web[3]", "web.web[4]"}},
		{2, []string{"web.web[0]", "web.web[1]"}, nil},
	}
	for i, s := range steps {
		before := len(h.plans)
		job := h.addJob(testJob("web", structs.JobTypeService, s.count))
		eval := h.process(job, structs.EvalTriggerJobRegister)
		if eval.Status != structs.EvalStatusComplete {
			t.Fatalf("step %d: status got %q, want complete", i, eval.Status)
		}
		if got := slices.Sorted(maps.Keys(h.live(job))); !slices.Equal(got, s.wantLive) {
			t.Errorf("step %d: live got %v, want %v", i, got, s.wantLive)
		}
		var gotStopped []string
		if len(h.plans) > before {
			gotStopped = names(stopped(h.lastPlan()))
		}
		if !slices.Equal(gotStopped, s.wantStopped) {
			t.Errorf("step %d: stopped got %v, want %v", i, gotStopped, s.wantStopped)
		}
	}
}

func TestPlacedAllocFields(t *testing.T) {
	h := newHarness(t)
	addTestNodes(h, 3, 3)
	job := testJob("web", structs.JobTypeService, 1)
	job.TaskGroups[0].Networks = []*structs.NetworkResource{{
		ReservedPorts: []structs.Port{{Label: "admin", Value: 9000}},
		DynamicPorts:  []structs.Port{{Label: "http", To: 8080}},
	}}
	job = h.addJob(job)
	h.process(job, structs.EvalTriggerJobRegister)
	got := placed(h.lastPlan())
	if len(got) != 1 {
		t.Fatalf("placed: got %d, want 1", len(got))
	}
	a := got[0]
	if a.ID == "" || a.EvalID == "" || a.NodeName == "" || a.Job == nil || a.Namespace != "default" ||
		a.DesiredStatus != structs.AllocDesiredStatusRun || a.ClientStatus != structs.AllocClientStatusPending ||
		a.CreateTime != testNow.UnixNano() || a.Metrics == nil {
		t.Errorf("alloc fields: got %+v", a)
	}
	r := a.AllocatedResources
	if r.Tasks["app"].Cpu.CpuShares != 500 || r.Tasks["app"].Memory.MemoryMB != 256 || r.Shared.DiskMB != 300 {
		t.Errorf("resources: got cpu %d mem %d disk %d, want 500 256 300",
			r.Tasks["app"].Cpu.CpuShares, r.Tasks["app"].Memory.MemoryMB, r.Shared.DiskMB)
	}
	if len(r.Shared.Ports) != 2 || r.Shared.Ports[0].Value != 9000 ||
		r.Shared.Ports[1].Value < defaultMinDynamicPort || r.Shared.Ports[1].Value > defaultMaxDynamicPort || r.Shared.Ports[1].To != 8080 {
		t.Errorf("ports: got %+v, want admin 9000 and http in the dynamic range to 8080", r.Shared.Ports)
	}
}

func TestResourceExhaustion(t *testing.T) {
	cases := []struct {
		dim  string
		edit func(j *structs.Job)
	}{
		{"cpu", func(j *structs.Job) { j.TaskGroups[0].Tasks[0].Resources.CPU = 15000 }},
		{"memory", func(j *structs.Job) { j.TaskGroups[0].Tasks[0].Resources.MemoryMB = 40000 }},
		{"disk", func(j *structs.Job) { j.TaskGroups[0].EphemeralDisk.SizeMB = 200 * 1024 }},
		{"ports", func(j *structs.Job) {
			j.TaskGroups[0].Networks = []*structs.NetworkResource{{ReservedPorts: []structs.Port{{Label: "ssh", Value: 22}}}}
		}},
	}
	for _, c := range cases {
		t.Run(c.dim, func(t *testing.T) {
			h := newHarness(t)
			nodes := addTestNodes(h, 3, 3)
			for _, n := range nodes {
				n.ReservedResources = &structs.NodeReservedResources{Networks: structs.NodeReservedNetworkResources{ReservedHostPorts: "22"}}
			}
			h.addNodes(nodes...)
			job := testJob("web", structs.JobTypeService, 2)
			c.edit(job)
			job = h.addJob(job)
			eval := h.process(job, structs.EvalTriggerJobRegister)
			m := eval.FailedTGAllocs["web"]
			if m == nil {
				t.Fatalf("FailedTGAllocs: got none, want web")
			}
			if m.NodesExhausted != 3 || m.DimensionExhausted[c.dim] != 3 || m.CoalescedFailures != 1 {
				t.Errorf("metric: got exhausted %d %v coalesced %d, want 3 {%s:3} 1", m.NodesExhausted, m.DimensionExhausted, m.CoalescedFailures, c.dim)
			}
			if eval.QueuedAllocations["web"] != 2 || eval.Status != structs.EvalStatusComplete {
				t.Errorf("eval: got queued %v status %s, want web:2 complete", eval.QueuedAllocations, eval.Status)
			}
			if len(h.created) != 1 || h.created[0].Status != structs.EvalStatusBlocked || eval.BlockedEval != h.created[0].ID ||
				h.created[0].TriggeredBy != structs.EvalTriggerQueuedAllocs || h.created[0].PreviousEval != eval.ID {
				t.Fatalf("blocked eval: got %+v (BlockedEval %q)", h.created, eval.BlockedEval)
			}
			for _, n := range nodes {
				if !h.created[0].ClassEligibility[n.ComputedClass] {
					t.Errorf("ClassEligibility: got %v, want %s (node %s): true", h.created[0].ClassEligibility, n.ComputedClass, n.ID)
				}
			}
			want := "3 nodes exhausted on " + c.dim
			if got := Explain(m); !slices.Contains(got, want) {
				t.Errorf("Explain: got %q, want it to contain %q", got, want)
			}
			// A second evaluation does not create a second blocked eval.
			h.process(job, structs.EvalTriggerJobRegister)
			if len(h.created) != 1 {
				t.Errorf("blocked evals after a second run: got %d, want 1", len(h.created))
			}
		})
	}
}

func TestJobStop(t *testing.T) {
	h := newHarness(t)
	addTestNodes(h, 3, 3)
	job := h.addJob(testJob("web", structs.JobTypeService, 3))
	h.process(job, structs.EvalTriggerJobRegister)
	stop := job.Copy()
	stop.Stop = true
	job = h.addJob(stop)
	h.process(job, structs.EvalTriggerJobDeregister)
	if got := len(stopped(h.lastPlan())); got != 3 {
		t.Errorf("stopped: got %d, want 3", got)
	}
	if got := len(h.live(job)); got != 0 {
		t.Errorf("live after stop: got %d, want 0", got)
	}
}

func TestLostAllocsReplaced(t *testing.T) {
	for _, status := range []string{structs.NodeStatusDown, structs.NodeStatusDisconnected} {
		t.Run(status, func(t *testing.T) {
			h := newHarness(t)
			nodes := addTestNodes(h, 4, 4)
			job := h.addJob(testJob("web", structs.JobTypeService, 4))
			h.process(job, structs.EvalTriggerJobRegister)
			before := h.live(job)
			var onDown []string
			down := nodes[0].ID
			for name, a := range before {
				if a.NodeID == down {
					onDown = append(onDown, name)
				}
			}
			if len(onDown) == 0 {
				t.Fatalf("no allocation on %s to lose (anti-affinity should spread 4 over 4 nodes)", down)
			}
			if err := h.store.UpdateNodeStatus(h.next(), down, status, 1); err != nil {
				t.Fatal(err)
			}
			h.process(job, structs.EvalTriggerNodeUpdate)
			for _, s := range stopped(h.lastPlan()) {
				if s.NodeID != down || s.ClientStatus != structs.AllocClientStatusLost || s.NextAllocation == "" {
					t.Errorf("stop: got node %s client %s next %q, want %s lost with a next allocation", s.NodeID, s.ClientStatus, s.NextAllocation, down)
				}
			}
			after := h.live(job)
			if len(after) != 4 {
				t.Fatalf("live: got %d, want 4", len(after))
			}
			for _, name := range onDown {
				a := after[name]
				if a == nil || a.NodeID == down || a.PreviousAllocation != before[name].ID {
					t.Errorf("%s: got %+v, want a replacement off %s with PreviousAllocation %s", name, a, down, before[name].ID)
				}
			}
		})
	}
}

func TestInPlaceVersusDestructiveUpdate(t *testing.T) {
	cases := []struct {
		name        string
		edit        func(j *structs.Job)
		destructive bool
	}{
		{"meta", func(j *structs.Job) { j.Meta = map[string]string{"owner": "ops"} }, false},
		{"restart policy", func(j *structs.Job) { j.TaskGroups[0].RestartPolicy.Attempts = 9 }, false},
		{"image", func(j *structs.Job) { j.TaskGroups[0].Tasks[0].Config["image"] = "nginx:1.28" }, true},
		{"env", func(j *structs.Job) { j.TaskGroups[0].Tasks[0].Env = map[string]string{"A": "b"} }, true},
		{"memory", func(j *structs.Job) { j.TaskGroups[0].Tasks[0].Resources.MemoryMB = 512 }, true},
		{"constraint", func(j *structs.Job) {
			j.Constraints = []*structs.Constraint{{LTarget: "${attr.kernel.name}", RTarget: "linux", Operand: "="}}
		}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			addTestNodes(h, 3, 3)
			job := h.addJob(testJob("web", structs.JobTypeService, 2))
			h.process(job, structs.EvalTriggerJobRegister)
			old := h.live(job)
			next := job.Copy()
			c.edit(next)
			job = h.addJob(next)
			if job.Version != 1 {
				t.Fatalf("job version: got %d, want 1", job.Version)
			}
			h.process(job, structs.EvalTriggerJobRegister)
			p := h.lastPlan()
			gotStops := len(stopped(p))
			sameIDs := 0
			for _, a := range placed(p) {
				if old[a.Name] != nil && old[a.Name].ID == a.ID {
					sameIDs++
				}
				if a.Job.Version != 1 {
					t.Errorf("%s: job version got %d, want 1", a.Name, a.Job.Version)
				}
			}
			if c.destructive && (gotStops != 2 || sameIDs != 0) {
				t.Errorf("destructive: got %d stops and %d in-place, want 2 and 0", gotStops, sameIDs)
			}
			if !c.destructive && (gotStops != 0 || sameIDs != 2) {
				t.Errorf("in place: got %d stops and %d in-place, want 0 and 2", gotStops, sameIDs)
			}
		})
	}
}

func TestBatchCompleteNotReplaced(t *testing.T) {
	h := newHarness(t)
	addTestNodes(h, 2, 2)
	job := h.addJob(testJob("etl", structs.JobTypeBatch, 2))
	h.process(job, structs.EvalTriggerJobRegister)
	live := h.live(job)
	done := live["etl.web[0]"].Copy()
	done.ClientStatus = structs.AllocClientStatusComplete
	if err := h.store.UpdateAllocsFromClient(h.next(), []*structs.Allocation{done}); err != nil {
		t.Fatal(err)
	}
	plans := len(h.plans)
	h.process(job, structs.EvalTriggerJobRegister)
	if len(h.plans) != plans {
		t.Errorf("plans: got a new plan %v, want none (complete batch allocs are not replaced)", names(placed(h.lastPlan())))
	}
}

func TestRescheduleFailed(t *testing.T) {
	cases := []struct {
		name      string
		failedAgo time.Duration
		events    int
		wantPlace bool
		wantWait  time.Duration // from the failure; 0: no follow-up
	}{
		{"delay not yet passed", time.Second, 0, false, 30 * time.Second},
		{"delay passed", time.Minute, 0, true, 0},
		{"exponential second attempt", 10 * time.Second, 1, false, 60 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			addTestNodes(h, 3, 3)
			job := testJob("web", structs.JobTypeService, 1) // exponential, 30s, unlimited
			job = h.addJob(job)
			h.process(job, structs.EvalTriggerJobRegister)
			a := h.live(job)["web.web[0]"].Copy()
			a.ClientStatus = structs.AllocClientStatusFailed
			failed := testNow.Add(-c.failedAgo)
			a.TaskStates = map[string]*structs.TaskState{"app": {State: "dead", Failed: true, FinishedAt: failed}}
			h.addAllocs(a) // keeps stored client status; set it from the client
			if err := h.store.UpdateAllocsFromClient(h.next(), []*structs.Allocation{a}); err != nil {
				t.Fatal(err)
			}
			if c.events > 0 {
				stored, _ := h.store.AllocByID(nil, a.ID)
				up := stored.Copy()
				up.RescheduleTracker = &structs.RescheduleTracker{Events: []*structs.RescheduleEvent{{RescheduleTime: failed.Add(-time.Hour).UnixNano(), Delay: 30 * time.Second}}}
				h.addAllocs(up)
			}
			plans := len(h.plans)
			eval := h.process(job, structs.EvalTriggerReschedule)
			var repl *structs.Allocation
			if len(h.plans) > plans {
				for _, x := range placed(h.lastPlan()) {
					if x.ID != a.ID {
						repl = x
					}
				}
			}
			if got := repl != nil; got != c.wantPlace {
				t.Fatalf("replacement placed: got %v, want %v", got, c.wantPlace)
			}
			if repl != nil {
				if repl.PreviousAllocation != a.ID || repl.RescheduleTracker == nil || len(repl.RescheduleTracker.Events) != 1 ||
					repl.NodeID == a.NodeID || repl.Name != a.Name {
					t.Errorf("replacement: got prev %q tracker %+v node %s name %s", repl.PreviousAllocation, repl.RescheduleTracker, repl.NodeID, repl.Name)
				}
				st := stopped(h.lastPlan())
				if len(st) != 1 || st[0].NextAllocation != repl.ID {
					t.Errorf("failed alloc: got stops %v, want it stopped with NextAllocation %s", st, repl.ID)
				}
			}
			if c.wantWait == 0 {
				if len(h.created) != 0 {
					t.Errorf("follow-up evals: got %d, want 0", len(h.created))
				}
				return
			}
			if len(h.created) != 1 || !h.created[0].WaitUntil.Equal(failed.Add(c.wantWait)) {
				t.Fatalf("follow-up: got %+v, want one eval waiting until %v", h.created, failed.Add(c.wantWait))
			}
			if eval.BlockedEval != "" {
				t.Errorf("BlockedEval: got %q, want none", eval.BlockedEval)
			}
			// The same evaluation again does not create a second follow-up.
			h.process(job, structs.EvalTriggerJobRegister)
			if len(h.created) != 1 {
				t.Errorf("follow-ups after a second run: got %d, want 1", len(h.created))
			}
		})
	}
}

func TestDistinctHosts(t *testing.T) {
	h := newHarness(t)
	addTestNodes(h, 2, 2)
	job := testJob("web", structs.JobTypeService, 3)
	job.TaskGroups[0].Constraints = []*structs.Constraint{{Operand: structs.ConstraintDistinctHosts}}
	job = h.addJob(job)
	eval := h.process(job, structs.EvalTriggerJobRegister)
	nodes := map[string]bool{}
	for _, a := range h.live(job) {
		nodes[a.NodeID] = true
	}
	if len(nodes) != 2 || len(h.live(job)) != 2 {
		t.Errorf("placed: got %d allocs on %d nodes, want 2 on 2", len(h.live(job)), len(nodes))
	}
	m := eval.FailedTGAllocs["web"]
	if m == nil || m.ConstraintFiltered[filterDistinctHosts] != 2 {
		t.Errorf("metric: got %+v, want 2 nodes filtered by distinct_hosts", m)
	}
}

func TestDistinctProperty(t *testing.T) {
	h := newHarness(t)
	addTestNodes(h, 6, 3)
	job := testJob("web", structs.JobTypeService, 6)
	job.Constraints = []*structs.Constraint{{LTarget: "${meta.rack}", RTarget: "1", Operand: structs.ConstraintDistinctProperty}}
	job = h.addJob(job)
	h.process(job, structs.EvalTriggerJobRegister)
	racks := map[string]int{}
	for _, a := range h.live(job) {
		n, _ := h.store.NodeByID(nil, a.NodeID)
		racks[n.Meta["rack"]]++
	}
	if len(racks) != 3 || racks["r0"] != 1 || racks["r1"] != 1 || racks["r2"] != 1 {
		t.Errorf("per rack: got %v, want one on each of 3 racks", racks)
	}
}

func TestSpreadEven(t *testing.T) {
	h := newHarness(t)
	// Uneven racks: r0 has 30 nodes, r1..r4 five each. Without spread most
	// allocations would land in r0.
	var nodes []*structs.Node
	for i := range 50 {
		n := testNode(i, 1)
		if i >= 30 {
			n.Meta["rack"] = fmt.Sprintf("r%d", 1+(i-30)%4)
		}
		nodes = append(nodes, n)
	}
	h.addNodes(nodes...)
	job := testJob("web", structs.JobTypeService, 20)
	job.TaskGroups[0].Spreads = []*structs.Spread{{Attribute: "${meta.rack}", Weight: 100}}
	job = h.addJob(job)
	h.process(job, structs.EvalTriggerJobRegister)
	racks := map[string]int{}
	for _, a := range h.live(job) {
		n, _ := h.store.NodeByID(nil, a.NodeID)
		racks[n.Meta["rack"]]++
	}
	for r, n := range racks {
		if n < 3 || n > 5 {
			t.Errorf("rack %s: got %d allocs, want 4±1 (%v)", r, n, racks)
		}
	}
	if len(racks) != 5 {
		t.Errorf("racks used: got %d, want 5 (%v)", len(racks), racks)
	}
}

func TestSpreadTargets(t *testing.T) {
	h := newHarness(t)
	addTestNodes(h, 20, 2)
	job := testJob("web", structs.JobTypeService, 10)
	job.TaskGroups[0].Spreads = []*structs.Spread{{Attribute: "${meta.rack}", Weight: 100,
		SpreadTarget: []*structs.SpreadTarget{{Value: "r0", Percent: 80}, {Value: "r1", Percent: 20}}}}
	job = h.addJob(job)
	h.process(job, structs.EvalTriggerJobRegister)
	racks := map[string]int{}
	for _, a := range h.live(job) {
		n, _ := h.store.NodeByID(nil, a.NodeID)
		racks[n.Meta["rack"]]++
	}
	if racks["r0"] < 7 || racks["r0"] > 9 {
		t.Errorf("r0: got %d, want 8±1 (%v)", racks["r0"], racks)
	}
}

func TestAffinity(t *testing.T) {
	h := newHarness(t)
	addTestNodes(h, 20, 4)
	job := testJob("web", structs.JobTypeService, 4)
	job.Affinities = []*structs.Affinity{{LTarget: "${meta.rack}", RTarget: "r2", Operand: "=", Weight: 100}}
	job = h.addJob(job)
	h.process(job, structs.EvalTriggerJobRegister)
	for _, a := range h.live(job) {
		n, _ := h.store.NodeByID(nil, a.NodeID)
		if n.Meta["rack"] != "r2" {
			t.Errorf("%s: got rack %s, want r2", a.Name, n.Meta["rack"])
		}
	}
}

func TestPartialCommitRetries(t *testing.T) {
	cases := []struct {
		name       string
		refuse     int // times each node is refused; -1 always
		wantStatus string
		wantLive   int
	}{
		{"refused once", 1, structs.EvalStatusComplete, 4},
		{"refused always", -1, structs.EvalStatusFailed, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			nodes := addTestNodes(h, 4, 4)
			for _, n := range nodes {
				h.refuse[n.ID] = c.refuse
			}
			job := h.addJob(testJob("web", structs.JobTypeService, 4))
			eval := h.process(job, structs.EvalTriggerJobRegister)
			if eval.Status != c.wantStatus {
				t.Errorf("status: got %s (%s), want %s", eval.Status, eval.StatusDescription, c.wantStatus)
			}
			if got := len(h.live(job)); got != c.wantLive {
				t.Errorf("live: got %d, want %d", got, c.wantLive)
			}
			if c.refuse < 0 && len(h.plans) != 5 {
				t.Errorf("plans: got %d, want 5 (MaxPlanAttempts)", len(h.plans))
			}
		})
	}
}

func TestDrainMigratesAndGroupRemoval(t *testing.T) {
	h := newHarness(t)
	nodes := addTestNodes(h, 3, 3)
	job := testJob("web", structs.JobTypeService, 3)
	extra := *job.TaskGroups[0]
	extra.Name = "extra"
	extra.Count = 1
	job.TaskGroups = append(job.TaskGroups, &extra)
	job = h.addJob(job)
	h.process(job, structs.EvalTriggerJobRegister)
	var onDrained []*structs.Allocation
	for _, a := range h.liveAllocs(job) {
		if a.NodeID == nodes[0].ID && a.TaskGroup == "web" {
			onDrained = append(onDrained, a)
		}
	}
	if len(onDrained) == 0 {
		t.Fatalf("no web allocation on %s", nodes[0].ID)
	}
	// Re-registering keeps the stored drain state, so register it afresh.
	if err := h.store.DeleteNodes(h.next(), []string{nodes[0].ID}); err != nil {
		t.Fatal(err)
	}
	nodes[0].DrainStrategy = &structs.DrainStrategy{}
	h.addNodes(nodes[0])
	// First nothing is marked to migrate: the allocations stay.
	h.process(job, structs.EvalTriggerNodeDrain)
	for _, a := range onDrained {
		if got, _ := h.store.AllocByID(nil, a.ID); got.TerminalStatus() {
			t.Fatalf("%s left the draining node before the drainer marked it", a.Name)
		}
	}
	// The drainer marks them.
	migrate := true
	marks := map[string]*structs.DesiredTransition{}
	for _, a := range onDrained {
		marks[a.ID] = &structs.DesiredTransition{Migrate: &migrate}
	}
	if err := h.store.UpdateAllocsDesiredTransitions(h.next(), marks); err != nil {
		t.Fatal(err)
	}
	// The new version drops group "extra" (a count-only change for "web").
	next := job.Copy()
	next.TaskGroups = next.TaskGroups[:1]
	job = h.addJob(next)
	h.process(job, structs.EvalTriggerNodeDrain)
	descs := map[string]int{}
	for _, s := range stopped(h.lastPlan()) {
		descs[s.DesiredDescription]++
	}
	if descs[descMigrating] != len(onDrained) || descs[descGroupRemoved] != 1 {
		t.Errorf("stops: got %v, want %d migrating and 1 group removed", descs, len(onDrained))
	}
	live := h.liveAllocs(job)
	if len(live) != 3 {
		t.Errorf("live: got %d, want 3", len(live))
	}
	for _, a := range live {
		if a.NodeID == nodes[0].ID || a.TaskGroup != "web" {
			t.Errorf("%s: got node %s group %s, want off the draining node, group web", a.Name, a.NodeID, a.TaskGroup)
		}
	}
}

func TestInPlaceKeepsNode(t *testing.T) {
	h := newHarness(t)
	addTestNodes(h, 5, 5)
	job := h.addJob(testJob("web", structs.JobTypeService, 3))
	h.process(job, structs.EvalTriggerJobRegister)
	before := h.live(job)
	next := job.Copy()
	next.TaskGroups[0].Meta = map[string]string{"v": "2"}
	job = h.addJob(next)
	h.process(job, structs.EvalTriggerJobRegister)
	for name, a := range h.live(job) {
		if a.ID != before[name].ID || a.NodeID != before[name].NodeID || a.Job.Version != job.Version {
			t.Errorf("%s: got id %s node %s version %d, want %s on %s at version %d",
				name, a.ID, a.NodeID, a.Job.Version, before[name].ID, before[name].NodeID, job.Version)
		}
	}
}
