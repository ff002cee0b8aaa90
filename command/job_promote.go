package command

import "errors"

// JobPromoteCommand is "skiff job promote": promote the canaries of a
// job's latest deployment.
type JobPromoteCommand struct{ Meta }

func (c *JobPromoteCommand) Synopsis() string {
	return "Promote the canaries of a job's latest deployment"
}

func (c *JobPromoteCommand) Help() string {
	return helpText("job promote [options] JOB", `
Promotes the canaries of the job's latest deployment, as "skiff deployment
promote" does: without -group, every group with canaries. Every canary of a
group promoted must be healthy. Prints the deployment's new status and the
evaluation that continues the rollout. JOB may be a unique prefix of the
ID.`, promoteOptions, true)
}

func (c *JobPromoteCommand) Run(args []string) int {
	var groups []string
	var verbose bool
	fs := c.flagSet("job promote", c.Help, true)
	fs.Var((*stringList)(&groups), "group", "")
	fs.BoolVar(&verbose, "verbose", false, "")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() != 1 {
		return c.usageError(c.Help(), "expected one argument, the job ID")
	}
	client, id, code := c.resolveArg("job", fs.Arg(0))
	if code != exitOK {
		return code
	}
	d, _, err := client.Jobs().LatestDeployment(c.ctx, id, nil)
	if err != nil {
		return c.fail(err, "reading the latest deployment of job %q", id)
	}
	if d == nil {
		return c.fail(errors.New("it has no deployment to promote; only a service job whose update block sets canary gets canaries to promote"), "promoting job %q", id)
	}
	return updateDeployment(&c.Meta, client, d.ID, verbose, "promoting", promoteGroups(groups))
}
