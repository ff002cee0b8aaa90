package server

import (
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
