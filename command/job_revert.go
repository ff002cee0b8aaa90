package command

import (
	"fmt"
	"strconv"
	"time"
)

// JobRevertCommand is "skiff job revert": register an earlier version of
// a job again.
type JobRevertCommand struct{ Meta }

func (c *JobRevertCommand) Synopsis() string { return "Revert a job to an earlier version" }

func (c *JobRevertCommand) Help() string {
	return helpText("job revert [options] JOB VERSION", `
Registers VERSION of the job again, as a new version (see "skiff job
history" for the versions kept), and follows the evaluation the change
created, as "skiff job run" does. JOB may be a unique prefix of the ID.

Exit codes: 0 the job was placed, 2 placement failed, 1 any other error.
With -detach, 0 once the revert is registered.`, `  -detach
    Return once the revert is registered, printing "Evaluation ID: <id>".

  -check-version=<version>
    Revert only if the job's current version is still <version>.

  -monitor-timeout=<duration>
    How long to follow the evaluation (default 5s).

  -verbose
    Print full IDs.`, true)
}

func (c *JobRevertCommand) Run(args []string) int {
	var (
		detach, verbose bool
		checkVersion    *uint64
		monitorTimeout  = 5 * time.Second
	)
	fs := c.flagSet("job revert", c.Help, true)
	fs.BoolVar(&detach, "detach", false, "")
	fs.BoolVar(&verbose, "verbose", false, "")
	fs.DurationVar(&monitorTimeout, "monitor-timeout", monitorTimeout, "")
	fs.Func("check-version", "", func(s string) error {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return fmt.Errorf("want a job version, a number >= 0")
		}
		checkVersion = &v
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() != 2 {
		return c.usageError(c.Help(), "expected two arguments, the job ID and the version to revert to")
	}
	version, err := strconv.ParseUint(fs.Arg(1), 10, 64)
	if err != nil {
		return c.usageError(c.Help(), "VERSION must be a job version, a number >= 0 (got %q)", fs.Arg(1))
	}
	client, id, code := c.resolveArg("job", fs.Arg(0))
	if code != exitOK {
		return code
	}
	resp, wm, err := client.Jobs().Revert(c.ctx, id, version, checkVersion, nil)
	if err != nil {
		return c.fail(err, "reverting job %q to version %d", id, version)
	}
	if resp.Warnings != "" {
		fmt.Fprintf(c.stderr, "Job Warnings:\n%s\n", indent(resp.Warnings, "  "))
	}
	if resp.EvalID == "" {
		// Periodic and parameterized jobs create no evaluation.
		fmt.Fprintf(c.stdout, "==> Job %q reverted to version %d, index %d; it has no evaluation to follow\n", id, version, wm.LastIndex)
		return exitOK
	}
	if detach {
		fmt.Fprintf(c.stderr, "==> Job %q reverted to version %d, index %d\n", id, version, wm.LastIndex)
		fmt.Fprintf(c.stdout, "Evaluation ID: %s\n", resp.EvalID)
		return exitOK
	}
	fmt.Fprintf(c.stderr, "==> Job %q reverted to version %d: evaluation ID %s, index %d\n",
		id, version, shortID(resp.EvalID, verbose), wm.LastIndex)
	mon := &monitor{Meta: &c.Meta, client: client, timeout: monitorTimeout, verbose: verbose, listAllocs: true,
		jobID: id, jobModifyIndex: resp.JobModifyIndex}
	return mon.run(resp.EvalID)
}
