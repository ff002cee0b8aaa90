package state

import (
	"slices"
	"testing"

	"github.com/skiffhq/skiff/structs"
)

// TestUpsertPlanDeployment: a plan's copy of a deployment, computed from
// an older snapshot, changes only what the scheduler owns: desired totals,
// canaries placed, and running <-> blocked. What the watcher or an
// operator set since is kept.
func TestUpsertPlanDeployment(t *testing.T) {
	s := New()
	must(t, s.UpsertJob(1, testJob("default", "web")))
	job := getJob(t, s, "default", "web")
	stored := func(status string) *structs.Deployment {
		d := testDeployment(job, "d1")
		d.Status = status
		d.TaskGroups = map[string]*structs.DeploymentState{"web": {
			DesiredTotal: 3, DesiredCanaries: 1, Promoted: true, PlacedCanaries: []string{"c1"},
			PlacedAllocs: 3, HealthyAllocs: 2, UnhealthyAllocs: 0,
		}}
		return d
	}
	plan := func(status string) *structs.Deployment {
		d := testDeployment(job, "d1")
		d.Status, d.StatusDescription = status, "from the plan"
		d.TaskGroups = map[string]*structs.DeploymentState{
			"web": {DesiredTotal: 5, DesiredCanaries: 1, PlacedCanaries: []string{"c1", "c2"}},
			"api": {DesiredTotal: 1},
		}
		return d
	}
	tests := []struct {
		stored, planned, want string
	}{
		{structs.DeploymentStatusRunning, structs.DeploymentStatusBlocked, structs.DeploymentStatusBlocked},
		{structs.DeploymentStatusBlocked, structs.DeploymentStatusRunning, structs.DeploymentStatusRunning},
		{structs.DeploymentStatusFailed, structs.DeploymentStatusRunning, structs.DeploymentStatusFailed},
		{structs.DeploymentStatusPaused, structs.DeploymentStatusBlocked, structs.DeploymentStatusPaused},
		{structs.DeploymentStatusSuccessful, structs.DeploymentStatusBlocked, structs.DeploymentStatusSuccessful},
	}
	for i, tt := range tests {
		index := uint64(10 + 2*i)
		must(t, s.UpsertDeployment(index, stored(tt.stored)))
		must(t, s.UpsertPlanDeployment(index+1, plan(tt.planned)))
		got, err := s.DeploymentByID(nil, "d1")
		must(t, err)
		if got.Status != tt.want || (tt.want == tt.planned) != (got.StatusDescription == "from the plan") {
			t.Errorf("stored %s, plan %s: got %s %q, want %s", tt.stored, tt.planned, got.Status, got.StatusDescription, tt.want)
		}
		w := got.TaskGroups["web"]
		if w.DesiredTotal != 5 || !w.Promoted || w.PlacedAllocs != 3 || w.HealthyAllocs != 2 || !slices.Equal(w.PlacedCanaries, []string{"c1", "c2"}) {
			t.Errorf("stored %s: group web = %+v; want desired 5 from the plan, promoted and counts kept, canaries c1 c2", tt.stored, w)
		}
		if a := got.TaskGroups["api"]; a == nil || a.DesiredTotal != 1 {
			t.Errorf("stored %s: group api = %+v, want the plan's", tt.stored, a)
		}
		if got.ModifyIndex != index+1 {
			t.Errorf("modify index %d, want %d", got.ModifyIndex, index+1)
		}
	}
	// A new deployment is written as planned.
	fresh := plan(structs.DeploymentStatusRunning)
	fresh.ID = "d2"
	must(t, s.UpsertPlanDeployment(30, fresh))
	if got, _ := s.DeploymentByID(nil, "d2"); got == nil || got.Status != structs.DeploymentStatusRunning || got.TaskGroups["web"].DesiredTotal != 5 {
		t.Fatalf("new deployment from a plan = %+v", got)
	}
}
