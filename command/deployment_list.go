package command

import (
	"fmt"
	"strconv"

	"github.com/skiffhq/skiff/structs"
)

// DeploymentListCommand is "skiff deployment list": list deployments.
type DeploymentListCommand struct{ Meta }

func (c *DeploymentListCommand) Synopsis() string { return "List deployments" }

func (c *DeploymentListCommand) Help() string {
	return helpText("deployment list [options]", `
Lists the deployments of the namespace, newest first: the job and version
each rolls out, its status and why.`, `  -json
    Print the deployments as a JSON array.

  -verbose
    Print full IDs.`, true)
}

func (c *DeploymentListCommand) Run(args []string) int {
	var jsonOut, verbose bool
	fs := c.flagSet("deployment list", c.Help, true)
	fs.BoolVar(&jsonOut, "json", false, "")
	fs.BoolVar(&verbose, "verbose", false, "")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() != 0 {
		return c.usageError(c.Help(), "expected no arguments")
	}
	client, err := c.client()
	if err != nil {
		return c.fail(err, "")
	}
	deps, _, err := client.Deployments().List(c.ctx, nil)
	if err != nil {
		return c.fail(err, "listing deployments")
	}
	if jsonOut {
		if deps == nil {
			deps = []*structs.Deployment{}
		}
		if err := printJSON(c.stdout, deps); err != nil {
			return c.fail(err, "")
		}
		return exitOK
	}
	if len(deps) == 0 {
		fmt.Fprintln(c.stderr, "No deployments found")
		return exitOK
	}
	t := newTable(c.stdout, "ID", "Job ID", "Job Version", "Status", "Description")
	for _, d := range deps {
		t.row(shortID(d.ID, verbose), d.JobID, strconv.FormatUint(d.JobVersion, 10), d.Status, orDash(d.StatusDescription))
	}
	t.flush()
	return exitOK
}
