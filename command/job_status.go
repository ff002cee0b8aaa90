package command

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/structs"
)

// JobStatusCommand is "skiff job status": list jobs, or show one.
type JobStatusCommand struct{ Meta }

func (c *JobStatusCommand) Synopsis() string { return "List jobs, or show the status of one" }

func (c *JobStatusCommand) Help() string {
	return helpText("job status [options] [JOB]", `
Without JOB, lists the jobs of the namespace. With JOB (or a unique prefix
of its ID), shows the job, its allocations per task group, its latest
deployment, its latest evaluations and its allocations.`, `  -json
    Print JSON: the list of jobs, or {"Job", "Summary", "LatestDeployment",
    "Evaluations", "Allocations"} for one job (LatestDeployment is null
    when the job has none).

  -verbose
    Print full IDs.`, true)
}

// maxEvals is how many of a job's evaluations "job status" shows.
const maxEvals = 5

func (c *JobStatusCommand) Run(args []string) int {
	var jsonOut, verbose bool
	fs := c.flagSet("job status", c.Help, true)
	fs.BoolVar(&jsonOut, "json", false, "")
	fs.BoolVar(&verbose, "verbose", false, "")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() > 1 {
		return c.usageError(c.Help(), "expected at most one argument, the job ID")
	}
	client, err := c.client()
	if err != nil {
		return c.fail(err, "")
	}
	if fs.NArg() == 0 {
		return c.list(client, jsonOut)
	}
	return c.show(client, fs.Arg(0), jsonOut, verbose)
}

func (c *JobStatusCommand) list(client *api.Client, jsonOut bool) int {
	jobs, _, err := client.Jobs().List(c.ctx, nil)
	if err != nil {
		return c.fail(err, "listing jobs")
	}
	slices.SortFunc(jobs, func(a, b *structs.JobListStub) int { return cmp.Compare(a.ID, b.ID) })
	if jsonOut {
		if jobs == nil {
			jobs = []*structs.JobListStub{}
		}
		if err := printJSON(c.stdout, jobs); err != nil {
			return c.fail(err, "")
		}
		return exitOK
	}
	if len(jobs) == 0 {
		fmt.Fprintln(c.stderr, "No jobs registered")
		return exitOK
	}
	t := newTable(c.stdout, "ID", "Type", "Priority", "Status", "Submit Date")
	for _, j := range jobs {
		t.row(j.ID, jobTypeLabel(j.Type, j.Periodic, j.ParameterizedJob), strconv.Itoa(j.Priority),
			jobStatusLabel(j.Status, j.Stop), formatUnixNano(j.SubmitTime))
	}
	t.flush()
	return exitOK
}

// jobStatus is what "job status JOB -json" prints.
type jobStatus struct {
	Job              *structs.Job
	Summary          *structs.JobSummary
	LatestDeployment *structs.Deployment
	Evaluations      []*structs.Evaluation
	Allocations      []*structs.AllocListStub
}

func (c *JobStatusCommand) show(client *api.Client, arg string, jsonOut, verbose bool) int {
	id, err := client.Jobs().Resolve(c.ctx, arg, nil)
	if err != nil {
		return c.fail(err, "looking up job %q", arg)
	}
	var st jobStatus
	if st.Job, _, err = client.Jobs().Info(c.ctx, id, nil); err != nil {
		return c.fail(err, "reading job %q", id)
	}
	if st.Summary, _, err = client.Jobs().Summary(c.ctx, id, nil); err != nil {
		return c.fail(err, "reading the summary of job %q", id)
	}
	// An agent without deployments (404) shows none.
	if st.LatestDeployment, _, err = client.Jobs().LatestDeployment(c.ctx, id, nil); err != nil && !api.IsNotFound(err) {
		return c.fail(err, "reading the latest deployment of job %q", id)
	}
	if st.Evaluations, _, err = client.Jobs().Evaluations(c.ctx, id, nil); err != nil {
		return c.fail(err, "listing the evaluations of job %q", id)
	}
	if st.Allocations, _, err = client.Jobs().Allocations(c.ctx, id, false, nil); err != nil {
		return c.fail(err, "listing the allocations of job %q", id)
	}
	slices.SortFunc(st.Evaluations, func(a, b *structs.Evaluation) int { return cmp.Compare(b.CreateIndex, a.CreateIndex) })
	slices.SortFunc(st.Allocations, func(a, b *structs.AllocListStub) int {
		return cmp.Or(cmp.Compare(b.CreateIndex, a.CreateIndex), cmp.Compare(a.Name, b.Name))
	})
	if jsonOut {
		if err := printJSON(c.stdout, st); err != nil {
			return c.fail(err, "")
		}
		return exitOK
	}
	c.printJob(&st, verbose)
	return exitOK
}

func (c *JobStatusCommand) printJob(st *jobStatus, verbose bool) {
	j, w, now := st.Job, c.stdout, c.now()
	dcs := strings.Join(j.Datacenters, ",")
	printKV(w, []kv{
		{"ID", j.ID},
		{"Name", j.Name},
		{"Submit Date", formatUnixNano(j.SubmitTime)},
		{"Type", j.Type},
		{"Priority", strconv.Itoa(j.Priority)},
		{"Datacenters", orDash(dcs)},
		{"Namespace", j.Namespace},
		{"Node Pool", orDash(j.NodePool)},
		{"Status", jobStatusLabel(j.Status, j.Stop)},
		{"Version", strconv.FormatUint(j.Version, 10)},
		{"Periodic", strconv.FormatBool(j.Periodic != nil)},
		{"Parameterized", strconv.FormatBool(j.ParameterizedJob != nil)},
	})

	fmt.Fprintln(w, "\nSummary")
	t := newTable(w, "Task Group", "Queued", "Starting", "Running", "Failed", "Complete", "Lost", "Unknown")
	groups := make([]string, 0, len(j.TaskGroups))
	for _, tg := range j.TaskGroups {
		groups = append(groups, tg.Name)
	}
	if st.Summary != nil {
		for name := range st.Summary.Summary {
			if !slices.Contains(groups, name) {
				groups = append(groups, name) // a group an older version had
			}
		}
	}
	for _, name := range groups {
		var s structs.TaskGroupSummary
		if st.Summary != nil {
			s = st.Summary.Summary[name]
		}
		t.row(name, itoa(s.Queued), itoa(s.Starting), itoa(s.Running), itoa(s.Failed),
			itoa(s.Complete), itoa(s.Lost), itoa(s.Unknown))
	}
	t.flush()

	if d := st.LatestDeployment; d != nil {
		fmt.Fprintln(w, "\nLatest Deployment")
		printKV(w, []kv{
			{"ID", shortID(d.ID, verbose)},
			{"Job Version", strconv.FormatUint(d.JobVersion, 10)},
			{"Status", d.Status},
			{"Description", orDash(d.StatusDescription)},
		})
		fmt.Fprintln(w, "\nDeployed")
		printDeploymentGroups(w, d)
	}

	evals := st.Evaluations
	if len(evals) > maxEvals && !verbose {
		evals = evals[:maxEvals]
	}
	if len(evals) > 0 {
		fmt.Fprintln(w, "\nLatest Evaluations")
		t = newTable(w, "ID", "Priority", "Triggered By", "Status", "Placement Failures", "Created")
		for _, e := range evals {
			t.row(shortID(e.ID, verbose), itoa(e.Priority), e.TriggeredBy, e.Status,
				strconv.FormatBool(len(e.FailedTGAllocs) > 0), agoUnixNano(e.CreateTime, now))
		}
		t.flush()
	}
	if failed := standingFailure(st.Evaluations); failed != nil {
		fmt.Fprintln(w, "\nPlacement Failure")
		printPlacementFailures(w, failed, "")
	}

	fmt.Fprintln(w, "\nAllocations")
	if len(st.Allocations) == 0 {
		fmt.Fprintln(w, "No allocations placed")
		return
	}
	t = newTable(w, "ID", "Node ID", "Task Group", "Version", "Desired", "Status", "Created", "Modified")
	for _, a := range st.Allocations {
		t.row(shortID(a.ID, verbose), shortID(a.NodeID, verbose), a.TaskGroup, strconv.FormatUint(a.JobVersion, 10),
			a.DesiredStatus, a.ClientStatus, agoUnixNano(a.CreateTime, now), agoUnixNano(a.ModifyTime, now))
	}
	t.flush()
}

// standingFailure returns the evaluation (of evals, newest first) whose
// failed placements still stand, or nil: the newest evaluation the
// scheduler finished, if it failed to place. Blocked, pending and
// canceled evaluations are passed over: the scheduler writes a blocked
// evaluation with the one that failed, so the blocked one is newer and has
// no failures of its own; and a blocked one stays blocked after a newer
// version of the job placed everything.
func standingFailure(evals []*structs.Evaluation) *structs.Evaluation {
	for _, e := range evals {
		switch e.Status {
		case structs.EvalStatusBlocked, structs.EvalStatusPending, structs.EvalStatusCanceled:
			continue
		}
		if len(e.FailedTGAllocs) > 0 {
			return e
		}
		return nil
	}
	return nil
}

// jobStatusLabel shows a stopped job that still has allocations as
// "dead (stopped)", as Nomad does.
func jobStatusLabel(status string, stop bool) string {
	if stop && status != structs.JobStatusDead {
		return status + " (stopping)"
	}
	if stop {
		return status + " (stopped)"
	}
	return status
}

// jobTypeLabel marks periodic and parameterized jobs: "batch/periodic".
func jobTypeLabel(typ string, periodic, parameterized bool) string {
	switch {
	case periodic:
		return typ + "/periodic"
	case parameterized:
		return typ + "/parameterized"
	}
	return typ
}

func itoa(n int) string { return strconv.Itoa(n) }
