package command

import (
	"context"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/structs"
)

// DeploymentPauseCommand is "skiff deployment pause": hold a rollout.
type DeploymentPauseCommand struct{ Meta }

func (c *DeploymentPauseCommand) Synopsis() string { return "Pause a running deployment" }

func (c *DeploymentPauseCommand) Help() string {
	return helpText("deployment pause [options] ID", `
Pauses a running deployment: no more allocations are replaced with the new
version until "skiff deployment resume". Prints the deployment's new
status. ID may be a unique prefix.`, `  -verbose
    Print full IDs.`, true)
}

func (c *DeploymentPauseCommand) Run(args []string) int {
	return runDeploymentUpdate(&c.Meta, "deployment pause", c.Help, args, "pausing",
		func(ctx context.Context, d *api.Deployments, id string) (*structs.DeploymentUpdateResponse, error) {
			resp, _, err := d.Pause(ctx, id, true, nil)
			return resp, err
		})
}
