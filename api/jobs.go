package api

import (
	"context"
	"maps"
	"net/http"
	"net/url"
	"time"

	"github.com/skiffhq/skiff/structs"
)

// Jobs is the job endpoints, /v1/jobs and /v1/job/:id.
type Jobs struct{ c *Client }

// Jobs returns the job endpoints.
func (c *Client) Jobs() *Jobs { return &Jobs{c} }

func jobPath(id string, sub ...string) string {
	p := "/v1/job/" + url.PathEscape(id)
	for _, s := range sub {
		p += "/" + s
	}
	return p
}

// RegisterOptions make a register conditional.
type RegisterOptions struct {
	// EnforceIndex registers only if the job's JobModifyIndex is still
	// ModifyIndex; 0 means "only if the job does not exist".
	EnforceIndex   bool
	ModifyIndex    uint64
	PreserveCounts bool // keep the running groups' counts
}

type registerRequest struct {
	Job            *structs.Job
	EnforceIndex   bool   `json:",omitempty"`
	JobModifyIndex uint64 `json:",omitempty"`
	PreserveCounts bool   `json:",omitempty"`
}

// Register creates or updates a job (PUT /v1/jobs). The answer names the
// evaluation the change created.
func (j *Jobs) Register(ctx context.Context, job *structs.Job, opts *RegisterOptions, w *WriteOptions) (*structs.JobRegisterResponse, *WriteMeta, error) {
	req := registerRequest{Job: job}
	if opts != nil {
		req.EnforceIndex, req.JobModifyIndex, req.PreserveCounts = opts.EnforceIndex, opts.ModifyIndex, opts.PreserveCounts
	}
	var resp structs.JobRegisterResponse
	wm, err := j.c.write(ctx, http.MethodPut, "/v1/jobs", req, &resp, w)
	if err != nil {
		return nil, nil, err
	}
	return &resp, wm, nil
}

// ParseRequest asks the agent to parse a job file.
type ParseRequest struct {
	JobHCL       string
	Variables    string `json:",omitempty"` // content of a variables file
	Canonicalize bool
}

// Parse has the agent turn HCL into a job (POST /v1/jobs/parse).
func (j *Jobs) Parse(ctx context.Context, req *ParseRequest, w *WriteOptions) (*structs.Job, error) {
	var job structs.Job
	if _, err := j.c.write(ctx, http.MethodPost, "/v1/jobs/parse", req, &job, w); err != nil {
		return nil, err
	}
	return &job, nil
}

// List lists jobs, by ID prefix when q.Prefix is set (GET /v1/jobs).
func (j *Jobs) List(ctx context.Context, q *QueryOptions) ([]*structs.JobListStub, *QueryMeta, error) {
	var out []*structs.JobListStub
	qm, err := j.c.query(ctx, "/v1/jobs", q, &out)
	return out, qm, err
}

// Resolve returns the ID of the job named id, or else of the one job whose
// ID starts with it.
func (j *Jobs) Resolve(ctx context.Context, id string, q *QueryOptions) (string, error) {
	return resolve(ctx, "job", id, false, q, j.List, func(s *structs.JobListStub) string { return s.ID })
}

// Info returns a job (GET /v1/job/:id).
func (j *Jobs) Info(ctx context.Context, id string, q *QueryOptions) (*structs.Job, *QueryMeta, error) {
	var out structs.Job
	qm, err := j.c.query(ctx, jobPath(id), q, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, qm, nil
}

// Versions returns a job's versions, newest first (GET /v1/job/:id/versions).
func (j *Jobs) Versions(ctx context.Context, id string, q *QueryOptions) ([]*structs.Job, *QueryMeta, error) {
	var out struct{ Versions []*structs.Job }
	qm, err := j.c.query(ctx, jobPath(id, "versions"), q, &out)
	return out.Versions, qm, err
}

// Allocations lists a job's allocations; all includes those of earlier
// instances of a job ID that was purged and registered again.
func (j *Jobs) Allocations(ctx context.Context, id string, all bool, q *QueryOptions) ([]*structs.AllocListStub, *QueryMeta, error) {
	if all {
		q = withParam(q, "all", "true")
	}
	var out []*structs.AllocListStub
	qm, err := j.c.query(ctx, jobPath(id, "allocations"), q, &out)
	return out, qm, err
}

// Evaluations lists a job's evaluations (GET /v1/job/:id/evaluations).
func (j *Jobs) Evaluations(ctx context.Context, id string, q *QueryOptions) ([]*structs.Evaluation, *QueryMeta, error) {
	var out []*structs.Evaluation
	qm, err := j.c.query(ctx, jobPath(id, "evaluations"), q, &out)
	return out, qm, err
}

// Summary counts a job's allocations by state per group.
func (j *Jobs) Summary(ctx context.Context, id string, q *QueryOptions) (*structs.JobSummary, *QueryMeta, error) {
	var out structs.JobSummary
	qm, err := j.c.query(ctx, jobPath(id, "summary"), q, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, qm, nil
}

// Deregister stops a job, and with purge removes it (DELETE /v1/job/:id).
func (j *Jobs) Deregister(ctx context.Context, id string, purge bool, w *WriteOptions) (*structs.JobDeregisterResponse, *WriteMeta, error) {
	r := j.c.newRequest(http.MethodDelete, jobPath(id))
	r.setWrite(w)
	if purge {
		r.params.Set("purge", "true")
	}
	var out structs.JobDeregisterResponse
	wm, err := j.c.send(ctx, r, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

// PlanRequest asks what registering Job would change.
type PlanRequest struct {
	Job            *structs.Job
	Diff           bool
	PolicyOverride bool `json:",omitempty"`
}

// PlanResponse is the scheduler's dry run of a register.
type PlanResponse struct {
	JobModifyIndex     uint64
	CreatedEvals       []*structs.Evaluation
	Diff               *structs.JobDiff
	Annotations        *PlanAnnotations
	FailedTGAllocs     map[string]*structs.AllocMetric
	NextPeriodicLaunch time.Time
	Warnings           string
}

// PlanAnnotations explain a plan per task group.
type PlanAnnotations = structs.PlanAnnotations

// DesiredUpdates counts what a plan would do to one group's allocations.
type DesiredUpdates = structs.DesiredUpdates

// Plan dry-runs a register (PUT /v1/job/:id/plan).
func (j *Jobs) Plan(ctx context.Context, job *structs.Job, diff bool, w *WriteOptions) (*PlanResponse, *WriteMeta, error) {
	var out PlanResponse
	wm, err := j.c.write(ctx, http.MethodPut, jobPath(job.ID, "plan"), &PlanRequest{Job: job, Diff: diff}, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

// ScaleRequest sets the count of one group.
type ScaleRequest struct {
	Count   *int64
	Target  map[string]string // {"Group": name}
	Message string            `json:",omitempty"`
	Error   bool              `json:",omitempty"`
}

// Scale sets a group's count (PUT /v1/job/:id/scale).
func (j *Jobs) Scale(ctx context.Context, id, group string, count int64, message string, w *WriteOptions) (*structs.JobRegisterResponse, *WriteMeta, error) {
	req := &ScaleRequest{Count: &count, Target: map[string]string{"Group": group}, Message: message}
	var out structs.JobRegisterResponse
	wm, err := j.c.write(ctx, http.MethodPut, jobPath(id, "scale"), req, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

type revertRequest struct {
	JobID               string
	JobVersion          uint64
	EnforcePriorVersion *uint64 `json:",omitempty"`
}

// Revert registers an earlier version of a job again (PUT
// /v1/job/:id/revert). enforcePrior, when set, makes it conditional on the
// current version.
func (j *Jobs) Revert(ctx context.Context, id string, version uint64, enforcePrior *uint64, w *WriteOptions) (*structs.JobRegisterResponse, *WriteMeta, error) {
	req := &revertRequest{JobID: id, JobVersion: version, EnforcePriorVersion: enforcePrior}
	var out structs.JobRegisterResponse
	wm, err := j.c.write(ctx, http.MethodPut, jobPath(id, "revert"), req, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

type dispatchRequest struct {
	JobID   string
	Payload []byte            `json:",omitempty"`
	Meta    map[string]string `json:",omitempty"`
}

// DispatchResponse names the job a dispatch created and its evaluation.
type DispatchResponse struct {
	DispatchedJobID string
	EvalID          string
	EvalCreateIndex uint64
	JobCreateIndex  uint64
}

// Dispatch starts an instance of a parameterized job (PUT
// /v1/job/:id/dispatch).
func (j *Jobs) Dispatch(ctx context.Context, id string, meta map[string]string, payload []byte, w *WriteOptions) (*DispatchResponse, *WriteMeta, error) {
	var out DispatchResponse
	wm, err := j.c.write(ctx, http.MethodPut, jobPath(id, "dispatch"), &dispatchRequest{JobID: id, Payload: payload, Meta: meta}, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

// withParam returns a copy of q with one more query parameter.
func withParam(q *QueryOptions, k, v string) *QueryOptions {
	var c QueryOptions
	if q != nil {
		c = *q
	}
	params := maps.Clone(c.Params)
	if params == nil {
		params = map[string]string{}
	}
	params[k] = v
	c.Params = params
	return &c
}
