package command

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/skiffhq/skiff/api"
)

// JobRunCommand is "skiff job run": parse a job file locally, register it,
// and follow its evaluation.
type JobRunCommand struct{ Meta }

func (c *JobRunCommand) Synopsis() string { return "Submit a job file and follow its placement" }

func (c *JobRunCommand) Help() string {
	return helpText("job run [options] FILE", `
Parses the job file, registers the job with the cluster, and follows the
evaluation that the change created until the scheduler has processed it.
Then, for a service job with an update block, it follows the new
version's deployment until it ends, showing each group's desired, placed,
healthy and unhealthy allocations (redrawn in place on a terminal, one
line per change when piped); otherwise it follows the placed allocations
until they run.

Exit codes: 0 the job was placed (its deployment successful), 2 placement
failed, an allocation failed or the deployment failed (also when it
rolled back), 1 any other error, including an evaluation still pending
when -monitor-timeout ends or a deployment cancelled by a newer version.
With -detach, 0 once the job is registered.`, `  -detach
    Return once the job is registered, printing "Evaluation ID: <id>".

  -check-index=<index>
    Register only if the job's modify index is still <index>, as printed by
    "skiff job plan"; 0 means only if the job does not exist yet.

  -monitor-timeout=<duration>
    How long to follow the evaluation (default 5s). An evaluation still
    pending then is reported, with exit code 1.

  -verbose
    Print full IDs.

`+jobFileOptions, true)
}

func (c *JobRunCommand) Run(args []string) int {
	var (
		detach, verbose bool
		checkIndex      *uint64
		monitorTimeout  = 5 * time.Second
		files           jobFileFlags
	)
	fs := c.flagSet("job run", c.Help, true)
	fs.BoolVar(&detach, "detach", false, "")
	fs.BoolVar(&verbose, "verbose", false, "")
	fs.DurationVar(&monitorTimeout, "monitor-timeout", monitorTimeout, "")
	fs.Func("check-index", "", func(s string) error {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return fmt.Errorf("want a raft index, a number >= 0")
		}
		checkIndex = &v
		return nil
	})
	files.register(fs)
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() != 1 {
		return c.usageError(c.Help(), "expected one argument, the job file")
	}
	path := fs.Arg(0)

	job, err := c.loadJob(path, &files)
	if err != nil {
		reportJobFileError(c.stderr, path, err)
		return exitError
	}
	client, err := c.client()
	if err != nil {
		return c.fail(err, "")
	}
	opts := &api.RegisterOptions{}
	if checkIndex != nil {
		opts.EnforceIndex, opts.ModifyIndex = true, *checkIndex
	}
	resp, wm, err := client.Jobs().Register(c.ctx, job, opts, nil)
	if err != nil {
		return c.fail(err, "registering job %q", job.ID)
	}
	if resp.Warnings != "" {
		fmt.Fprintf(c.stderr, "Job Warnings:\n%s\n", indent(resp.Warnings, "  "))
	}
	if resp.EvalID == "" {
		// Periodic and parameterized jobs create no evaluation.
		fmt.Fprintf(c.stdout, "==> Job %q registered, index %d; it has no evaluation to follow\n", job.ID, wm.LastIndex)
		return exitOK
	}
	if detach {
		fmt.Fprintf(c.stderr, "==> Job %q registered, index %d\n", job.ID, wm.LastIndex)
		fmt.Fprintf(c.stdout, "Evaluation ID: %s\n", resp.EvalID)
		return exitOK
	}
	fmt.Fprintf(c.stderr, "==> Job %q registered: evaluation ID %s, index %d\n",
		job.ID, shortID(resp.EvalID, verbose), wm.LastIndex)
	mon := &monitor{Meta: &c.Meta, client: client, timeout: monitorTimeout, verbose: verbose, listAllocs: true}
	if rollsOut(job) {
		mon.jobID, mon.jobModifyIndex = job.ID, resp.JobModifyIndex
	}
	return mon.run(resp.EvalID)
}

// indent prefixes every line of s.
func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "\n")
}
