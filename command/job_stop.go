package command

import (
	"fmt"
	"time"
)

// JobStopCommand is "skiff job stop": deregister a job.
type JobStopCommand struct{ Meta }

func (c *JobStopCommand) Synopsis() string { return "Stop a job and its allocations" }

func (c *JobStopCommand) Help() string {
	return helpText("job stop [options] JOB", `
Stops a running job: its allocations are stopped and it is not scheduled
again, though it stays in "skiff job status" (and its history) until
garbage collected, or at once with -purge. JOB may be a unique prefix of
the ID; stopping a job named by prefix asks for confirmation.`, `  -purge
    Remove the job from the cluster's state as well.

  -detach
    Return once the job is deregistered, printing "Evaluation ID: <id>".

  -yes
    Do not ask for confirmation.

  -monitor-timeout=<duration>
    How long to follow the evaluation (default 5s).

  -verbose
    Print full IDs.`, true)
}

func (c *JobStopCommand) Run(args []string) int {
	var purge, detach, yes, verbose bool
	monitorTimeout := 5 * time.Second
	fs := c.flagSet("job stop", c.Help, true)
	fs.BoolVar(&purge, "purge", false, "")
	fs.BoolVar(&detach, "detach", false, "")
	fs.BoolVar(&yes, "yes", false, "")
	fs.BoolVar(&verbose, "verbose", false, "")
	fs.DurationVar(&monitorTimeout, "monitor-timeout", monitorTimeout, "")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() != 1 {
		return c.usageError(c.Help(), "expected one argument, the job ID")
	}
	arg := fs.Arg(0)
	client, err := c.client()
	if err != nil {
		return c.fail(err, "")
	}
	id, err := client.Jobs().Resolve(c.ctx, arg, nil)
	if err != nil {
		return c.fail(err, "looking up job %q", arg)
	}
	if id != arg && !yes {
		if !c.confirm(fmt.Sprintf("Stop job %q (matched by prefix %q)?", id, arg)) {
			fmt.Fprintf(c.stderr, "Job %q not stopped (give its full ID or -yes to skip this question)\n", id)
			return exitError
		}
	}
	resp, wm, err := client.Jobs().Deregister(c.ctx, id, purge, nil)
	if err != nil {
		return c.fail(err, "stopping job %q", id)
	}
	verb := "stopped"
	if purge {
		verb = "stopped and purged"
	}
	if resp.EvalID == "" {
		fmt.Fprintf(c.stdout, "==> Job %q %s, index %d\n", id, verb, wm.LastIndex)
		return exitOK
	}
	if detach {
		fmt.Fprintf(c.stderr, "==> Job %q %s, index %d\n", id, verb, wm.LastIndex)
		fmt.Fprintf(c.stdout, "Evaluation ID: %s\n", resp.EvalID)
		return exitOK
	}
	fmt.Fprintf(c.stderr, "==> Job %q %s: evaluation ID %s, index %d\n", id, verb, shortID(resp.EvalID, verbose), wm.LastIndex)
	mon := &monitor{Meta: &c.Meta, client: client, timeout: monitorTimeout, verbose: verbose}
	return mon.run(resp.EvalID)
}
