package command

import (
	"context"
	"fmt"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/structs"
)

// DeploymentFailCommand is "skiff deployment fail": mark a deployment
// failed.
type DeploymentFailCommand struct{ Meta }

func (c *DeploymentFailCommand) Synopsis() string { return "Mark a deployment failed" }

func (c *DeploymentFailCommand) Help() string {
	return helpText("deployment fail [options] ID", `
Marks a running, paused or blocked deployment failed: its rollout stops.
If a task group of the deployment has auto_revert, the job's latest stable
version is registered again, as a new version. Prints the deployment's new
status and the evaluation that acts on it. ID may be a unique prefix.`, `  -verbose
    Print full IDs.`, true)
}

func (c *DeploymentFailCommand) Run(args []string) int {
	return runDeploymentUpdate(&c.Meta, "deployment fail", c.Help, args, "failing",
		func(ctx context.Context, d *api.Deployments, id string) (*structs.DeploymentUpdateResponse, error) {
			resp, _, err := d.Fail(ctx, id, nil)
			return resp, err
		})
}

// runDeploymentUpdate is the body of "deployment fail", "pause" and
// "resume": parse ID (a unique prefix), change the deployment with update,
// then print its new status and the evaluation, if any, on stdout.
func runDeploymentUpdate(m *Meta, name string, help func() string, args []string, doing string,
	update func(context.Context, *api.Deployments, string) (*structs.DeploymentUpdateResponse, error)) int {
	var verbose bool
	fs := m.flagSet(name, help, true)
	fs.BoolVar(&verbose, "verbose", false, "")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() != 1 {
		return m.usageError(help(), "expected one argument, the deployment ID")
	}
	client, id, code := m.resolveArg("deployment", fs.Arg(0))
	if code != exitOK {
		return code
	}
	return updateDeployment(m, client, id, verbose, doing, update)
}

// updateDeployment changes deployment id with update, then prints its new
// status and the evaluation, if any, on stdout.
func updateDeployment(m *Meta, client *api.Client, id string, verbose bool, doing string,
	update func(context.Context, *api.Deployments, string) (*structs.DeploymentUpdateResponse, error)) int {
	resp, err := update(m.ctx, client.Deployments(), id)
	if err != nil {
		return m.fail(err, "%s deployment %q", doing, shortID(id, verbose))
	}
	d, _, err := client.Deployments().Info(m.ctx, id, nil)
	if err != nil {
		return m.fail(err, "reading deployment %q", shortID(id, verbose))
	}
	fmt.Fprintf(m.stdout, "Deployment %q is %s: %s\n", shortID(id, verbose), d.Status, orDash(d.StatusDescription))
	if resp.EvalID != "" {
		fmt.Fprintf(m.stdout, "Evaluation ID: %s\n", resp.EvalID)
	}
	return exitOK
}
