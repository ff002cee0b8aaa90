package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/skiffhq/skiff/structs"
)

// Deployments is the deployment endpoints, /v1/deployments and
// /v1/deployment/...
type Deployments struct{ c *Client }

// Deployments returns the deployment endpoints.
func (c *Client) Deployments() *Deployments { return &Deployments{c} }

// List lists deployments, newest first, by ID prefix when q.Prefix is set
// (GET /v1/deployments).
func (d *Deployments) List(ctx context.Context, q *QueryOptions) ([]*structs.Deployment, *QueryMeta, error) {
	var out []*structs.Deployment
	qm, err := d.c.query(ctx, "/v1/deployments", q, &out)
	return out, qm, err
}

// Resolve returns the full ID of the one deployment whose ID starts with
// id.
func (d *Deployments) Resolve(ctx context.Context, id string, q *QueryOptions) (string, error) {
	return resolve(ctx, "deployment", id, true, q, d.List, func(dep *structs.Deployment) string { return dep.ID })
}

// Info returns a deployment (GET /v1/deployment/:id). With q.WaitIndex set
// it blocks until the deployment changes past that index.
func (d *Deployments) Info(ctx context.Context, id string, q *QueryOptions) (*structs.Deployment, *QueryMeta, error) {
	var out structs.Deployment
	qm, err := d.c.query(ctx, "/v1/deployment/"+url.PathEscape(id), q, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, qm, nil
}

// Allocations lists the allocations placed for a deployment (GET
// /v1/deployment/allocations/:id).
func (d *Deployments) Allocations(ctx context.Context, id string, q *QueryOptions) ([]*structs.AllocListStub, *QueryMeta, error) {
	var out []*structs.AllocListStub
	qm, err := d.c.query(ctx, "/v1/deployment/allocations/"+url.PathEscape(id), q, &out)
	return out, qm, err
}

// Fail marks a running, paused or blocked deployment failed (PUT
// /v1/deployment/fail/:id). When a group has auto_revert, the job's latest
// stable version is registered again and RevertedJobVersion says which.
func (d *Deployments) Fail(ctx context.Context, id string, w *WriteOptions) (*structs.DeploymentUpdateResponse, *WriteMeta, error) {
	var out structs.DeploymentUpdateResponse
	wm, err := d.c.write(ctx, http.MethodPut, "/v1/deployment/fail/"+url.PathEscape(id),
		map[string]string{"DeploymentID": id}, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

// Pause pauses a running deployment, or with pause false resumes a paused
// one (PUT /v1/deployment/pause/:id). A resume creates an evaluation.
func (d *Deployments) Pause(ctx context.Context, id string, pause bool, w *WriteOptions) (*structs.DeploymentUpdateResponse, *WriteMeta, error) {
	var out structs.DeploymentUpdateResponse
	wm, err := d.c.write(ctx, http.MethodPut, "/v1/deployment/pause/"+url.PathEscape(id),
		map[string]any{"DeploymentID": id, "Pause": pause}, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

// Promote promotes the canaries of a running deployment: of every group
// that has canaries when all is set, else of the groups named (PUT
// /v1/deployment/promote/:id). Every canary of a group promoted must be
// healthy. It creates an evaluation, so the rollout continues.
func (d *Deployments) Promote(ctx context.Context, id string, all bool, groups []string, w *WriteOptions) (*structs.DeploymentUpdateResponse, *WriteMeta, error) {
	var out structs.DeploymentUpdateResponse
	wm, err := d.c.write(ctx, http.MethodPut, "/v1/deployment/promote/"+url.PathEscape(id),
		map[string]any{"DeploymentID": id, "All": all, "Groups": groups}, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

// SetAllocHealth gives an operator's verdict on allocations of a running
// or paused deployment (PUT /v1/deployment/allocation-health/:id): how
// health is decided for groups with update { health_check = "manual" }.
func (d *Deployments) SetAllocHealth(ctx context.Context, id string, healthy, unhealthy []string, w *WriteOptions) (*structs.DeploymentUpdateResponse, *WriteMeta, error) {
	var out structs.DeploymentUpdateResponse
	wm, err := d.c.write(ctx, http.MethodPut, "/v1/deployment/allocation-health/"+url.PathEscape(id),
		map[string]any{"DeploymentID": id, "HealthyAllocationIDs": healthy, "UnhealthyAllocationIDs": unhealthy}, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

// Deployments lists a job's deployments, newest first (GET
// /v1/job/:id/deployments); all includes those of earlier jobs purged
// under the same ID.
func (j *Jobs) Deployments(ctx context.Context, id string, all bool, q *QueryOptions) ([]*structs.Deployment, *QueryMeta, error) {
	if all {
		q = withParam(q, "all", strconv.FormatBool(all))
	}
	var out []*structs.Deployment
	qm, err := j.c.query(ctx, jobPath(id, "deployments"), q, &out)
	return out, qm, err
}

// LatestDeployment returns a job's newest deployment, nil when it has none
// (GET /v1/job/:id/deployment).
func (j *Jobs) LatestDeployment(ctx context.Context, id string, q *QueryOptions) (*structs.Deployment, *QueryMeta, error) {
	var out *structs.Deployment
	qm, err := j.c.query(ctx, jobPath(id, "deployment"), q, &out)
	if err != nil {
		return nil, nil, err
	}
	return out, qm, nil
}
