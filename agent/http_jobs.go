package agent

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/skiffhq/skiff/jobspec"
	"github.com/skiffhq/skiff/structs"
)

// jobRegisterBody is the body of PUT /v1/jobs, as Nomad's clients send it.
type jobRegisterBody struct {
	Job               *structs.Job
	EnforceIndex      bool
	JobModifyIndex    uint64
	PreserveCounts    bool
	PolicyOverride    bool
	PreserveResources bool
	EvalPriority      int
	Submission        json.RawMessage // the job file's source; accepted, not stored yet
	Region            string
	Namespace         string
	SecretID          string
}

func (a *Agent) jobRegister(w http.ResponseWriter, r *http.Request) (any, error) {
	var body jobRegisterBody
	raw, warnings, err := a.readJSONWarn(w, r, &body)
	if err != nil {
		return nil, err
	}
	if body.Job == nil {
		return nil, badRequest("request has no \"Job\" object; send {\"Job\": {...}}")
	}
	if id := r.PathValue("id"); id != "" && id != body.Job.ID {
		return nil, badRequest("job ID in the path (%q) does not match the job's ID (%q)", id, body.Job.ID)
	}
	defaultGroupCounts(raw, body.Job)

	args := structs.JobRegisterRequest{
		Job: body.Job, EnforceIndex: body.EnforceIndex, JobModifyIndex: body.JobModifyIndex,
		PreserveCounts: body.PreserveCounts,
	}
	parseWrite(r, &args.WriteRequest)
	if body.Namespace != "" && args.Namespace == "" {
		args.Namespace = body.Namespace
	}
	var reply structs.JobRegisterResponse
	if err := a.rpc("Job.Register", &args, &reply); err != nil {
		return nil, err
	}
	if len(warnings) > 0 {
		reply.Warnings = "Fields Skiff does not know were ignored: " + strings.Join(warnings, ", ")
	}
	setIndex(w, reply.Index)
	return reply, nil
}

// defaultGroupCounts sets Count to 1 for groups whose JSON (raw, the
// request body that decoded into job) left Count out or null, as Nomad's
// API does; an explicit 0 stays 0. Only a group decoded with Count 0 can
// be one, so raw is read again only when there is such a group.
func defaultGroupCounts(raw []byte, job *structs.Job) {
	if !slices.ContainsFunc(job.TaskGroups, func(tg *structs.TaskGroup) bool { return tg != nil && tg.Count == 0 }) {
		return
	}
	var doc any
	_ = json.Unmarshal(raw, &doc) // valid: it decoded into job
	top, _ := doc.(map[string]any)
	jobDoc, _ := lookupFold(top, "Job").(map[string]any)
	groups, _ := lookupFold(jobDoc, "TaskGroups").([]any)
	for i, g := range groups {
		if i >= len(job.TaskGroups) {
			break
		}
		if job.TaskGroups[i] == nil {
			continue // a null group: validation names it
		}
		gm, _ := g.(map[string]any)
		if lookupFold(gm, "Count") == nil {
			job.TaskGroups[i].Count = 1
		}
	}
}

// lookupFold returns m[key], matching the key as encoding/json does
// (exact first, then case-insensitively); nil when absent or null.
func lookupFold(m map[string]any, key string) any {
	if v, ok := m[key]; ok {
		return v
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return nil
}

// jobParseBody is the body of /v1/jobs/parse.
type jobParseBody struct {
	JobHCL       string
	Variables    string
	Canonicalize bool
	HCLv1        bool
}

func (a *Agent) jobParse(w http.ResponseWriter, r *http.Request) (any, error) {
	var body jobParseBody
	if _, err := a.readJSON(w, r, &body); err != nil {
		return nil, err
	}
	if body.HCLv1 {
		return nil, badRequest("HCL1 job files are not supported; Skiff reads HCL2 job files")
	}
	job, err := jobspec.Parse([]byte(body.JobHCL), jobspec.Options{Filename: "job.hcl", VarContent: body.Variables, NoFileAccess: true})
	if err != nil {
		return nil, badRequest("%v", err)
	}
	return job, nil
}

func (a *Agent) jobGet(w http.ResponseWriter, r *http.Request) (any, error) {
	args := structs.JobSpecificRequest{JobID: r.PathValue("id")}
	var reply structs.SingleJobResponse
	if err := a.read(w, r, "Job.GetJob", &args, &args.QueryOptions, &reply, &reply.QueryMeta); err != nil {
		return nil, err
	}
	if reply.Job == nil {
		return nil, &httpError{http.StatusNotFound, fmt.Sprintf("job %q not found", args.JobID)}
	}
	return reply.Job, nil
}

func (a *Agent) jobList(w http.ResponseWriter, r *http.Request) (any, error) {
	var args structs.JobListRequest
	var reply structs.JobListResponse
	if err := a.read(w, r, "Job.List", &args, &args.QueryOptions, &reply, &reply.QueryMeta); err != nil {
		return nil, err
	}
	per := max(a.stubBytes.Load(), 512)
	buf := listBuffers.Get().(*[]byte)
	if need := int(per+per/8)*len(reply.Jobs) + 3; cap(*buf) < need {
		*buf = make([]byte, 0, need)
	}
	out := append(appendJobList((*buf)[:0], reply.Jobs), '\n')
	if len(reply.Jobs) > 0 {
		a.stubBytes.Store(int64(len(out) / len(reply.Jobs)))
	}
	*buf = out
	return &pooledJSON{json: out, release: func() { listBuffers.Put(buf) }}, nil
}

// listBuffers holds the job list's output buffers between lists: a list
// of 10,000 jobs is about 5 MB, and a new buffer of that size each time
// is zeroed and faulted in page by page.
var listBuffers = sync.Pool{New: func() any { return new([]byte) }}

func (a *Agent) jobDeregister(w http.ResponseWriter, r *http.Request) (any, error) {
	args := structs.JobDeregisterRequest{JobID: r.PathValue("id")}
	parseWrite(r, &args.WriteRequest)
	args.Purge = r.URL.Query().Get("purge") == "true"
	var reply structs.JobDeregisterResponse
	if err := a.rpc("Job.Deregister", &args, &reply); err != nil {
		return nil, err
	}
	setIndex(w, reply.Index)
	return reply, nil
}

func (a *Agent) jobVersions(w http.ResponseWriter, r *http.Request) (any, error) {
	args := structs.JobSpecificRequest{JobID: r.PathValue("id")}
	var reply structs.JobVersionsResponse
	if err := a.read(w, r, "Job.GetJobVersions", &args, &args.QueryOptions, &reply, &reply.QueryMeta); err != nil {
		return nil, err
	}
	if len(reply.Versions) == 0 {
		return nil, &httpError{http.StatusNotFound, fmt.Sprintf("job %q not found", args.JobID)}
	}
	var diffs []*structs.JobDiff
	if r.URL.Query().Get("diffs") == "true" {
		// As Nomad: Diffs[i] is what Versions[i] (newest first) changed
		// from Versions[i+1].
		diffs = make([]*structs.JobDiff, 0, len(reply.Versions)-1)
		for i := 0; i+1 < len(reply.Versions); i++ {
			diffs = append(diffs, structs.DiffJobs(reply.Versions[i+1], reply.Versions[i]))
		}
	}
	return map[string]any{"Versions": reply.Versions, "Diffs": diffs}, nil
}

func (a *Agent) jobAllocations(w http.ResponseWriter, r *http.Request) (any, error) {
	args := structs.JobSpecificRequest{JobID: r.PathValue("id"), All: r.URL.Query().Get("all") == "true"}
	var reply structs.JobAllocationsResponse
	if err := a.read(w, r, "Job.Allocations", &args, &args.QueryOptions, &reply, &reply.QueryMeta); err != nil {
		return nil, err
	}
	return reply.Allocations, nil
}

func (a *Agent) jobEvaluations(w http.ResponseWriter, r *http.Request) (any, error) {
	args := structs.JobSpecificRequest{JobID: r.PathValue("id")}
	var reply structs.JobEvaluationsResponse
	if err := a.read(w, r, "Job.Evaluations", &args, &args.QueryOptions, &reply, &reply.QueryMeta); err != nil {
		return nil, err
	}
	return reply.Evaluations, nil
}

func (a *Agent) jobSummary(w http.ResponseWriter, r *http.Request) (any, error) {
	args := structs.JobSpecificRequest{JobID: r.PathValue("id")}
	var reply structs.JobSummaryResponse
	if err := a.read(w, r, "Job.Summary", &args, &args.QueryOptions, &reply, &reply.QueryMeta); err != nil {
		return nil, err
	}
	if reply.JobSummary == nil {
		return nil, &httpError{http.StatusNotFound, fmt.Sprintf("job %q not found", args.JobID)}
	}
	return reply.JobSummary, nil
}

// jobPlanBody is the JSON of PUT /v1/job/:id/plan.
type jobPlanBody struct {
	Job            *structs.Job
	Diff           bool
	PolicyOverride bool
	Region         string
	Namespace      string
}

// jobPlan dry-runs a register: what the scheduler would place, stop or
// update, and why anything would not be placed.
func (a *Agent) jobPlan(w http.ResponseWriter, r *http.Request) (any, error) {
	var body jobPlanBody
	raw, warnings, err := a.readJSONWarn(w, r, &body)
	if err != nil {
		return nil, err
	}
	if body.Job == nil {
		return nil, badRequest("request has no \"Job\" object; send {\"Job\": {...}}")
	}
	if id := r.PathValue("id"); id != body.Job.ID {
		return nil, badRequest("job ID in the path (%q) does not match the job's ID (%q)", id, body.Job.ID)
	}
	defaultGroupCounts(raw, body.Job)
	args := structs.JobPlanRequest{Job: body.Job, Diff: body.Diff}
	parseWrite(r, &args.WriteRequest)
	if body.Namespace != "" && args.Namespace == "" {
		args.Namespace = body.Namespace
	}
	var reply structs.JobPlanResponse
	if err := a.rpc("Job.Plan", &args, &reply); err != nil {
		return nil, err
	}
	if len(warnings) > 0 {
		reply.Warnings = "Fields Skiff does not know were ignored: " + strings.Join(warnings, ", ")
	}
	setIndex(w, reply.Index)
	return reply, nil
}
