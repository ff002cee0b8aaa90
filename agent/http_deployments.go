package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/skiffhq/skiff/structs"
)

// The deployment endpoints and a job's deployments and revert, on Nomad's
// paths and JSON shapes.

func (a *Agent) deploymentList(w http.ResponseWriter, r *http.Request) (any, error) {
	var args structs.DeploymentListRequest
	var reply structs.DeploymentListResponse
	if err := a.read(w, r, "Deployment.List", &args, &args.QueryOptions, &reply, &reply.QueryMeta); err != nil {
		return nil, err
	}
	return nonNil(reply.Deployments), nil
}

func (a *Agent) deploymentGet(w http.ResponseWriter, r *http.Request) (any, error) {
	args := structs.DeploymentSpecificRequest{DeploymentID: r.PathValue("id")}
	var reply structs.SingleDeploymentResponse
	if err := a.read(w, r, "Deployment.GetDeployment", &args, &args.QueryOptions, &reply, &reply.QueryMeta); err != nil {
		return nil, err
	}
	if reply.Deployment == nil {
		return nil, &httpError{http.StatusNotFound, fmt.Sprintf("deployment %q not found", args.DeploymentID)}
	}
	return reply.Deployment, nil
}

func (a *Agent) deploymentAllocations(w http.ResponseWriter, r *http.Request) (any, error) {
	args := structs.DeploymentSpecificRequest{DeploymentID: r.PathValue("id")}
	var reply structs.JobAllocationsResponse
	if err := a.read(w, r, "Deployment.Allocations", &args, &args.QueryOptions, &reply, &reply.QueryMeta); err != nil {
		return nil, err
	}
	return nonNil(reply.Allocations), nil
}

// deploymentFail is PUT /v1/deployment/fail/:id. Nomad's clients send
// {"DeploymentID": ...}; the body may also be empty.
func (a *Agent) deploymentFail(w http.ResponseWriter, r *http.Request) (any, error) {
	var body struct{ DeploymentID string }
	if err := a.readOptionalJSON(w, r, &body); err != nil {
		return nil, err
	}
	id, err := bodyMatchesPath(r, "deployment", "DeploymentID", body.DeploymentID)
	if err != nil {
		return nil, err
	}
	args := structs.DeploymentFailRequest{DeploymentID: id}
	parseWrite(r, &args.WriteRequest)
	var reply structs.DeploymentUpdateResponse
	if err := a.rpc("Deployment.Fail", &args, &reply); err != nil {
		return nil, err
	}
	setIndex(w, reply.Index)
	return reply, nil
}

// deploymentPause is PUT /v1/deployment/pause/:id {"DeploymentID": ...,
// "Pause": true|false}; false resumes the deployment.
func (a *Agent) deploymentPause(w http.ResponseWriter, r *http.Request) (any, error) {
	var body struct {
		DeploymentID string
		Pause        *bool
	}
	if _, err := a.readJSON(w, r, &body); err != nil {
		return nil, err
	}
	if body.Pause == nil {
		return nil, badRequest(`request has no "Pause" field; send {"Pause": true} to pause, {"Pause": false} to resume`)
	}
	id, err := bodyMatchesPath(r, "deployment", "DeploymentID", body.DeploymentID)
	if err != nil {
		return nil, err
	}
	args := structs.DeploymentPauseRequest{DeploymentID: id, Pause: *body.Pause}
	parseWrite(r, &args.WriteRequest)
	var reply structs.DeploymentUpdateResponse
	if err := a.rpc("Deployment.Pause", &args, &reply); err != nil {
		return nil, err
	}
	setIndex(w, reply.Index)
	return reply, nil
}

// deploymentPromote is PUT /v1/deployment/promote/:id {"DeploymentID":
// ..., "All": true} or {"DeploymentID": ..., "Groups": ["web"]}: promote
// the canaries of every group, or of those named.
func (a *Agent) deploymentPromote(w http.ResponseWriter, r *http.Request) (any, error) {
	var body struct {
		DeploymentID string
		All          bool
		Groups       []string
	}
	if _, err := a.readJSON(w, r, &body); err != nil {
		return nil, err
	}
	id, err := bodyMatchesPath(r, "deployment", "DeploymentID", body.DeploymentID)
	if err != nil {
		return nil, err
	}
	args := structs.DeploymentPromoteRequest{DeploymentID: id, All: body.All, Groups: body.Groups}
	parseWrite(r, &args.WriteRequest)
	var reply structs.DeploymentUpdateResponse
	if err := a.rpc("Deployment.Promote", &args, &reply); err != nil {
		return nil, err
	}
	setIndex(w, reply.Index)
	return reply, nil
}

// deploymentAllocHealth is PUT /v1/deployment/allocation-health/:id
// {"DeploymentID": ..., "HealthyAllocationIDs": [...],
// "UnhealthyAllocationIDs": [...]}: an operator's verdict on allocations
// of the deployment (health_check = "manual").
func (a *Agent) deploymentAllocHealth(w http.ResponseWriter, r *http.Request) (any, error) {
	var body struct {
		DeploymentID           string
		HealthyAllocationIDs   []string
		UnhealthyAllocationIDs []string
	}
	if _, err := a.readJSON(w, r, &body); err != nil {
		return nil, err
	}
	id, err := bodyMatchesPath(r, "deployment", "DeploymentID", body.DeploymentID)
	if err != nil {
		return nil, err
	}
	args := structs.DeploymentAllocHealthRequest{DeploymentID: id, HealthyAllocationIDs: body.HealthyAllocationIDs, UnhealthyAllocationIDs: body.UnhealthyAllocationIDs}
	parseWrite(r, &args.WriteRequest)
	var reply structs.DeploymentUpdateResponse
	if err := a.rpc("Deployment.SetAllocHealth", &args, &reply); err != nil {
		return nil, err
	}
	setIndex(w, reply.Index)
	return reply, nil
}

// jobDeployments is GET /v1/job/:id/deployments; ?all=true includes the
// deployments of earlier jobs purged under the same ID.
func (a *Agent) jobDeployments(w http.ResponseWriter, r *http.Request) (any, error) {
	args := structs.JobSpecificRequest{JobID: r.PathValue("id"), All: r.URL.Query().Get("all") == "true"}
	var reply structs.DeploymentListResponse
	if err := a.read(w, r, "Job.Deployments", &args, &args.QueryOptions, &reply, &reply.QueryMeta); err != nil {
		return nil, err
	}
	return nonNil(reply.Deployments), nil
}

// jobLatestDeployment is GET /v1/job/:id/deployment: the job's newest
// deployment, or null when it has none (as Nomad answers).
func (a *Agent) jobLatestDeployment(w http.ResponseWriter, r *http.Request) (any, error) {
	args := structs.JobSpecificRequest{JobID: r.PathValue("id")}
	var reply structs.SingleDeploymentResponse
	if err := a.read(w, r, "Job.LatestDeployment", &args, &args.QueryOptions, &reply, &reply.QueryMeta); err != nil {
		return nil, err
	}
	if reply.Deployment == nil {
		return json.RawMessage("null"), nil
	}
	return reply.Deployment, nil
}

// jobRevertBody is the body of PUT /v1/job/:id/revert, as Nomad's
// clients send it.
type jobRevertBody struct {
	JobID               string
	JobVersion          *uint64
	EnforcePriorVersion *uint64
	ConsulToken         string
	VaultToken          string
	Region              string
	Namespace           string
	SecretID            string
	IdempotencyToken    string
}

func (a *Agent) jobRevert(w http.ResponseWriter, r *http.Request) (any, error) {
	var body jobRevertBody
	_, warnings, err := a.readJSONWarn(w, r, &body)
	if err != nil {
		return nil, err
	}
	if body.JobVersion == nil {
		return nil, badRequest(`request has no "JobVersion"; send {"JobVersion": N} with the version to revert to (see "skiff job history")`)
	}
	id, err := bodyMatchesPath(r, "job", "JobID", body.JobID)
	if err != nil {
		return nil, err
	}
	for _, f := range []struct{ name, v string }{{"ConsulToken", body.ConsulToken}, {"VaultToken", body.VaultToken}} {
		if f.v != "" {
			warnings = append(warnings, f.name)
		}
	}
	args := structs.JobRevertRequest{JobID: id, JobVersion: *body.JobVersion, EnforcePriorVersion: body.EnforcePriorVersion}
	parseWrite(r, &args.WriteRequest)
	if body.Namespace != "" && args.Namespace == "" {
		args.Namespace = body.Namespace
	}
	var reply structs.JobRegisterResponse
	if err := a.rpc("Job.Revert", &args, &reply); err != nil {
		return nil, err
	}
	if len(warnings) > 0 {
		reply.Warnings = "Fields Skiff does not know were ignored: " + strings.Join(warnings, ", ")
	}
	setIndex(w, reply.Index)
	return reply, nil
}

// bodyMatchesPath returns the ID in the request's path; an ID the body
// also gives must be the same.
func bodyMatchesPath(r *http.Request, kind, field, inBody string) (string, error) {
	id := r.PathValue("id")
	if inBody != "" && inBody != id {
		return "", badRequest("%s ID in the path (%q) does not match the body's %s (%q)", kind, id, field, inBody)
	}
	return id, nil
}

// readOptionalJSON is readJSON for endpoints whose body may be empty.
func (a *Agent) readOptionalJSON(w http.ResponseWriter, r *http.Request, out any) error {
	if r.ContentLength == 0 {
		return nil
	}
	if _, err := a.readJSON(w, r, out); !errors.Is(err, errEmptyBody) {
		return err
	}
	return nil // a chunked body that turned out empty
}

// nonNil makes an empty list encode as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
