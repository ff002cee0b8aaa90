package server

import (
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/state"
	"github.com/skiffhq/skiff/structs"
)

// TestMigratingHonoursHealthyDeadline: a migrated allocation's
// replacement that is not yet healthy holds the group's migration up
// until its healthy_deadline; after it, it counts as unhealthy and the
// drain moves on.
func TestMigratingHonoursHealthyDeadline(t *testing.T) {
	st := state.New()
	job := testJob("web")
	job.Canonicalize()
	if err := st.UpsertJob(10, job); err != nil {
		t.Fatal(err)
	}
	stored, _ := st.JobByID(nil, job.Namespace, job.ID)
	placed := time.Now()
	yes := true
	old := &structs.Allocation{ID: structs.GenerateUUID(), Namespace: job.Namespace, JobID: job.ID, Job: stored,
		TaskGroup: "web", Name: "web.web[0]", NodeID: "n1", NextAllocation: "",
		DesiredStatus: structs.AllocDesiredStatusStop, ClientStatus: structs.AllocClientStatusComplete,
		DesiredTransition: structs.DesiredTransition{Migrate: &yes}}
	repl := &structs.Allocation{ID: structs.GenerateUUID(), Namespace: job.Namespace, JobID: job.ID, Job: stored,
		TaskGroup: "web", Name: "web.web[0]", NodeID: "n2", PreviousAllocation: old.ID,
		DesiredStatus: structs.AllocDesiredStatusRun, ClientStatus: structs.AllocClientStatusPending,
		CreateTime: placed.UnixNano()}
	old.NextAllocation = repl.ID
	if err := st.UpsertAllocs(11, []*structs.Allocation{old, repl}); err != nil {
		t.Fatal(err)
	}
	pace := &structs.MigrateStrategy{MaxParallel: 1, MinHealthyTime: 10 * time.Second, HealthyDeadline: time.Minute}
	for _, c := range []struct {
		at   time.Duration
		want int
	}{
		{0, 1},                // pending: still migrating
		{59 * time.Second, 1}, // just before the deadline
		{time.Minute, 0},      // the deadline passed: unhealthy, the drain moves on
	} {
		got, err := migrating(st.Snapshot(), job.NamespacedID(), "web", placed.Add(c.at), pace)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%s after the replacement was placed: migrating = %d, want %d", c.at, got, c.want)
		}
	}
	pace.HealthyDeadline = 0
	if got, _ := migrating(st.Snapshot(), job.NamespacedID(), "web", placed.Add(time.Hour), pace); got != 1 {
		t.Errorf("without a healthy_deadline an unhealthy replacement holds the migration: got %d, want 1", got)
	}
}

// TestEligibleRefusedWhileDraining: marking a draining node eligible is
// refused with the way to do it, instead of being stored and taking
// effect silently when the drain ends.
func TestEligibleRefusedWhileDraining(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.leader()
	n := smallNode("n1")
	registerNode(t, s, n)
	var dr structs.NodeDrainUpdateResponse
	if err := s.RPC("Node.UpdateDrain", &structs.NodeUpdateDrainRequest{NodeID: n.ID,
		DrainStrategy: &structs.DrainStrategy{Deadline: time.Hour}}, &dr); err != nil {
		t.Fatal(err)
	}
	var reply structs.NodeEligibilityUpdateResponse
	err := s.RPC("Node.UpdateEligibility", &structs.NodeUpdateEligibilityRequest{NodeID: n.ID, Eligibility: structs.NodeSchedulingEligible}, &reply)
	if err == nil || !strings.Contains(err.Error(), "-keep-ineligible=false") {
		t.Fatalf("eligible while draining: err = %v, want a refusal that says how", err)
	}
	if got, _ := s.State().NodeByID(nil, n.ID); got.SchedulingEligibility != structs.NodeSchedulingIneligible {
		t.Errorf("eligibility %s after the refusal, want ineligible", got.SchedulingEligibility)
	}
}
