package command

import (
	"context"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/structs"
)

// DeploymentHealthCommand is "skiff deployment health": an operator's
// verdict on allocations of a deployment (update { health_check =
// "manual" }).
type DeploymentHealthCommand struct{ Meta }

func (c *DeploymentHealthCommand) Synopsis() string {
	return "Mark allocations of a deployment healthy or unhealthy"
}

func (c *DeploymentHealthCommand) Help() string {
	return helpText("deployment health [options] -healthy|-unhealthy DEPLOYMENT ALLOC...", `
Marks allocations of a running or paused deployment healthy or unhealthy.
This is how a task group with update { health_check = "manual" } makes
progress; for other groups the verdict replaces the client's. Healthy
allocations let the rollout replace the next ones; an unhealthy one fails
the deployment (and, with auto_revert, rolls the job back). IDs may be
unique prefixes.`, `  -healthy
    Mark the allocations healthy.

  -unhealthy
    Mark the allocations unhealthy.

  -verbose
    Print full IDs.`, true)
}

func (c *DeploymentHealthCommand) Run(args []string) int {
	var healthy, unhealthy, verbose bool
	fs := c.flagSet("deployment health", c.Help, true)
	fs.BoolVar(&healthy, "healthy", false, "")
	fs.BoolVar(&unhealthy, "unhealthy", false, "")
	fs.BoolVar(&verbose, "verbose", false, "")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if healthy == unhealthy {
		return c.usageError(c.Help(), "give exactly one of -healthy and -unhealthy")
	}
	if fs.NArg() < 2 {
		return c.usageError(c.Help(), "expected the deployment ID and at least one allocation ID")
	}
	client, id, code := c.resolveArg("deployment", fs.Arg(0))
	if code != exitOK {
		return code
	}
	allocs := make([]string, 0, fs.NArg()-1)
	for _, prefix := range fs.Args()[1:] {
		a, err := client.Allocations().Resolve(c.ctx, prefix, nil)
		if err != nil {
			return c.fail(err, "looking up allocation %q", prefix)
		}
		allocs = append(allocs, a)
	}
	doing := "marking allocations healthy in"
	if unhealthy {
		doing = "marking allocations unhealthy in"
	}
	return updateDeployment(&c.Meta, client, id, verbose, doing,
		func(ctx context.Context, d *api.Deployments, id string) (*structs.DeploymentUpdateResponse, error) {
			var resp *structs.DeploymentUpdateResponse
			var err error
			if healthy {
				resp, _, err = d.SetAllocHealth(ctx, id, allocs, nil, nil)
			} else {
				resp, _, err = d.SetAllocHealth(ctx, id, nil, allocs, nil)
			}
			return resp, err
		})
}
