package state

import (
	"fmt"
	"testing"

	"github.com/skiffhq/skiff/structs"
)

// testJob returns a canonical service job with one group "web" of one task.
func testJob(namespace, id string) *structs.Job {
	j := &structs.Job{
		Namespace: namespace,
		ID:        id,
		Type:      structs.JobTypeService,
		TaskGroups: []*structs.TaskGroup{{
			Name:  "web",
			Count: 2,
			Tasks: []*structs.Task{{
				Name:   "server",
				Driver: "containerd",
				Config: map[string]any{"image": "nginx:1.27", "ports": []any{"http"}, "init": true},
				Env:    map[string]string{"MODE": "prod"},
			}},
		}},
	}
	j.Canonicalize()
	return j
}

// testAlloc returns a running allocation of job's first group on node.
func testAlloc(job *structs.Job, id, nodeID string) *structs.Allocation {
	return &structs.Allocation{
		ID:            id,
		Namespace:     job.Namespace,
		JobID:         job.ID,
		Job:           job,
		TaskGroup:     job.TaskGroups[0].Name,
		NodeID:        nodeID,
		EvalID:        "eval-" + id,
		DesiredStatus: structs.AllocDesiredStatusRun,
		ClientStatus:  structs.AllocClientStatusPending,
	}
}

func testEval(namespace, jobID, id, status string) *structs.Evaluation {
	return &structs.Evaluation{
		ID: id, Namespace: namespace, JobID: jobID, Status: status,
		Type: structs.JobTypeService, TriggeredBy: structs.EvalTriggerJobRegister, Priority: 50,
	}
}

func testNode(id string) *structs.Node {
	return &structs.Node{
		ID: id, SecretID: "secret-" + id, Name: "node-" + id, Datacenter: "dc1",
		Status: structs.NodeStatusReady, SchedulingEligibility: structs.NodeSchedulingEligible,
		Attributes: map[string]string{"kernel.name": "linux"},
	}
}

func testDeployment(job *structs.Job, id string) *structs.Deployment {
	return &structs.Deployment{
		ID: id, Namespace: job.Namespace, JobID: job.ID, JobVersion: job.Version,
		Status: structs.DeploymentStatusRunning,
		TaskGroups: map[string]*structs.DeploymentState{
			"web": {DesiredTotal: 2, PlacedCanaries: []string{}},
		},
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// get returns a stored job, failing the test if it is missing.
func getJob(t *testing.T, s *Store, namespace, id string) *structs.Job {
	t.Helper()
	j, err := s.JobByID(nil, namespace, id)
	must(t, err)
	if j == nil {
		t.Fatalf("job %s/%s is not in the store", namespace, id)
	}
	return j
}

func ids[T any](rows []*T, id func(*T) string) []string {
	out := []string{}
	for _, r := range rows {
		out = append(out, id(r))
	}
	return out
}

func jobKey(j *structs.Job) string { return fmt.Sprintf("%s/%s", j.Namespace, j.ID) }
