package command

import (
	"context"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/structs"
)

// DeploymentResumeCommand is "skiff deployment resume": continue a paused
// rollout.
type DeploymentResumeCommand struct{ Meta }

func (c *DeploymentResumeCommand) Synopsis() string { return "Resume a paused deployment" }

func (c *DeploymentResumeCommand) Help() string {
	return helpText("deployment resume [options] ID", `
Resumes a paused deployment: the rollout continues, driven by a new
evaluation of the job. Prints the deployment's new status and that
evaluation. ID may be a unique prefix.`, `  -verbose
    Print full IDs.`, true)
}

func (c *DeploymentResumeCommand) Run(args []string) int {
	return runDeploymentUpdate(&c.Meta, "deployment resume", c.Help, args, "resuming",
		func(ctx context.Context, d *api.Deployments, id string) (*structs.DeploymentUpdateResponse, error) {
			resp, _, err := d.Pause(ctx, id, false, nil)
			return resp, err
		})
}
