package command

import (
	"context"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/structs"
)

// DeploymentPromoteCommand is "skiff deployment promote": promote the
// canaries of a deployment.
type DeploymentPromoteCommand struct{ Meta }

func (c *DeploymentPromoteCommand) Synopsis() string { return "Promote the canaries of a deployment" }

func (c *DeploymentPromoteCommand) Help() string {
	return helpText("deployment promote [options] ID", `
Promotes the canaries of a running deployment: in each task group promoted,
the canaries take the place of old allocations and the rest of the group
rolls to the new version. Without -group, every group with canaries is
promoted. Every canary of a group promoted must be healthy. Prints the
deployment's new status and the evaluation that continues the rollout. ID
may be a unique prefix.`, promoteOptions, true)
}

// promoteOptions is the options part of the help of "deployment promote"
// and "job promote".
const promoteOptions = `  -group=<name>
    Promote the canaries of this task group only. Repeat it to promote
    several groups.

  -verbose
    Print full IDs.`

func (c *DeploymentPromoteCommand) Run(args []string) int {
	var groups []string
	var verbose bool
	fs := c.flagSet("deployment promote", c.Help, true)
	fs.Var((*stringList)(&groups), "group", "")
	fs.BoolVar(&verbose, "verbose", false, "")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() != 1 {
		return c.usageError(c.Help(), "expected one argument, the deployment ID")
	}
	client, id, code := c.resolveArg("deployment", fs.Arg(0))
	if code != exitOK {
		return code
	}
	return updateDeployment(&c.Meta, client, id, verbose, "promoting", promoteGroups(groups))
}

// promoteGroups promotes the groups named, or every group with canaries
// if none is.
func promoteGroups(groups []string) func(context.Context, *api.Deployments, string) (*structs.DeploymentUpdateResponse, error) {
	return func(ctx context.Context, d *api.Deployments, id string) (*structs.DeploymentUpdateResponse, error) {
		resp, _, err := d.Promote(ctx, id, len(groups) == 0, groups, nil)
		return resp, err
	}
}
