package server

import (
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/structs"
)

// manualJob is a rolling job of two allocations, one replaced at a time,
// whose health only an operator decides.
func manualJob(image string) *structs.Job {
	job := rollingTestJob(image, false)
	job.TaskGroups[0].Count = 2
	job.TaskGroups[0].Update.HealthCheck = structs.UpdateHealthCheckManual
	return job
}

func setAllocHealth(s *Server, deploymentID string, healthy, unhealthy []string) error {
	var reply structs.DeploymentUpdateResponse
	return s.RPC("Deployment.SetAllocHealth", &structs.DeploymentAllocHealthRequest{
		DeploymentID: deploymentID, HealthyAllocationIDs: healthy, UnhealthyAllocationIDs: unhealthy}, &reply)
}

// versionAllocs returns the live allocations of job "web" at version v.
func versionAllocs(t *testing.T, s *Server, v uint64) []*structs.Allocation {
	t.Helper()
	var out []*structs.Allocation
	for _, a := range liveAllocs(t, s, "web") {
		if a.Job.Version == v {
			out = append(out, a)
		}
	}
	return out
}

func allocIDs(as []*structs.Allocation) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, a.ID)
	}
	return out
}

// TestManualAllocHealth: with health_check = "manual" nothing but an
// operator's verdict moves a deployment: healthy verdicts complete it or
// let the next allocation roll, an unhealthy one fails it, and a client's
// later report does not undo a verdict.
func TestManualAllocHealth(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.leader()
	n := smallNode("n1")
	registerNode(t, s, n)

	register(t, s, manualJob("a"))
	testutil.WaitFor(t, 10*time.Second, "version 0 placed", func() bool { return len(versionAllocs(t, s, 0)) == 2 })
	d0 := latestDeployment(t, s)
	if d0 == nil || d0.Status != structs.DeploymentStatusRunning {
		t.Fatalf("version 0's deployment = %+v, want running", d0)
	}
	if err := setAllocHealth(s, d0.ID, allocIDs(versionAllocs(t, s, 0)), nil); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "version 0's deployment successful", func() bool {
		return getDeployment(t, s, d0.ID).Status == structs.DeploymentStatusSuccessful
	})

	register(t, s, manualJob("b"))
	testutil.WaitFor(t, 10*time.Second, "the first replacement", func() bool { return len(versionAllocs(t, s, 1)) == 1 })
	d1 := latestDeployment(t, s)
	first := versionAllocs(t, s, 1)[0]

	for _, tc := range []struct {
		name               string
		healthy, unhealthy []string
		want               string
	}{
		{"nothing named", nil, nil, "names no allocation"},
		{"unknown allocation", []string{structs.GenerateUUID()}, nil, "not found"},
		{"allocation of another deployment", []string{allocIDs(versionAllocs(t, s, 0))[0]}, nil, "is not part of deployment"},
		{"listed twice", []string{first.ID}, []string{first.ID}, "listed twice"},
	} {
		err := setAllocHealth(s, d1.ID, tc.healthy, tc.unhealthy)
		if !structs.IsErr(err, ErrBadRequest) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want a bad request saying %q", tc.name, err, tc.want)
		}
	}
	if got := getDeployment(t, s, d1.ID); got.Status != structs.DeploymentStatusRunning || len(versionAllocs(t, s, 1)) != 1 {
		t.Fatalf("after refused requests: deployment %s with %d new allocations, want running with 1", got.Status, len(versionAllocs(t, s, 1)))
	}

	if err := setAllocHealth(s, d1.ID, []string{first.ID}, nil); err != nil {
		t.Fatal(err)
	}
	// A client's later verdict does not replace the operator's.
	no := false
	var r structs.GenericResponse
	if err := s.RPC("Node.UpdateAlloc", &structs.AllocUpdateRequest{NodeID: n.ID, SecretID: n.SecretID, Alloc: []*structs.Allocation{{
		ID: first.ID, ClientStatus: structs.AllocClientStatusRunning,
		DeploymentStatus: &structs.AllocDeploymentStatus{Healthy: &no, Timestamp: time.Now()}}}}, &r); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the second replacement", func() bool { return len(versionAllocs(t, s, 1)) == 2 })
	if a, _ := s.State().AllocByID(nil, first.ID); a.DeploymentStatus == nil || a.DeploymentStatus.Healthy == nil || !*a.DeploymentStatus.Healthy {
		t.Fatalf("first replacement's health = %+v after a client said unhealthy, want the operator's healthy kept", a.DeploymentStatus)
	}

	var second string
	for _, a := range versionAllocs(t, s, 1) {
		if a.ID != first.ID {
			second = a.ID
		}
	}
	if err := setAllocHealth(s, d1.ID, nil, []string{second}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "version 1's deployment failed", func() bool {
		d := getDeployment(t, s, d1.ID)
		return d.Status == structs.DeploymentStatusFailed && d.StatusDescription == structs.DeploymentDescFailedAllocations
	})
	err := setAllocHealth(s, d1.ID, []string{second}, nil)
	if !structs.IsErr(err, ErrBadRequest) || !strings.Contains(err.Error(), "is failed") {
		t.Fatalf("health on a failed deployment: err = %v, want a bad request saying it is failed", err)
	}
}
