package command

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"

	"github.com/skiffhq/skiff/structs"
)

// DeploymentStatusCommand is "skiff deployment status": show one
// deployment and its progress per task group.
type DeploymentStatusCommand struct{ Meta }

func (c *DeploymentStatusCommand) Synopsis() string {
	return "Show a deployment and its progress per task group"
}

func (c *DeploymentStatusCommand) Help() string {
	return helpText("deployment status [options] ID", `
Shows a deployment: the job version it rolls out, its status and why, and
per task group how many allocations are wanted, placed, healthy and
unhealthy, the canaries placed, and the time by which the group must make
progress. ID may be a unique prefix.`, `  -json
    Print the deployment as JSON.

  -verbose
    Print full IDs.`, true)
}

func (c *DeploymentStatusCommand) Run(args []string) int {
	var jsonOut, verbose bool
	fs := c.flagSet("deployment status", c.Help, true)
	fs.BoolVar(&jsonOut, "json", false, "")
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
	d, _, err := client.Deployments().Info(c.ctx, id, nil)
	if err != nil {
		return c.fail(err, "reading deployment %q", shortID(id, verbose))
	}
	if jsonOut {
		if err := printJSON(c.stdout, d); err != nil {
			return c.fail(err, "")
		}
		return exitOK
	}
	printKV(c.stdout, []kv{
		{"ID", shortID(d.ID, verbose)},
		{"Job ID", d.JobID},
		{"Job Version", strconv.FormatUint(d.JobVersion, 10)},
		{"Status", d.Status},
		{"Description", orDash(d.StatusDescription)},
	})
	fmt.Fprintln(c.stdout, "\nDeployed")
	printDeploymentGroups(c.stdout, d)
	return exitOK
}

// printDeploymentGroups writes the per-group progress of a deployment as a
// table, groups by name. The Auto Revert column is shown only when a group
// has auto_revert.
func printDeploymentGroups(w io.Writer, d *structs.Deployment) {
	autoRevert := false
	for _, s := range d.TaskGroups {
		autoRevert = autoRevert || (s != nil && s.AutoRevert)
	}
	header := []string{"Task Group"}
	if autoRevert {
		header = append(header, "Auto Revert")
	}
	header = append(header, "Desired", "Placed", "Healthy", "Unhealthy", "Canaries", "Progress Deadline")
	t := newTable(w, header...)
	for _, name := range slices.Sorted(maps.Keys(d.TaskGroups)) {
		s := d.TaskGroups[name]
		if s == nil {
			continue
		}
		row := []string{name}
		if autoRevert {
			row = append(row, strconv.FormatBool(s.AutoRevert))
		}
		canaries := "-"
		if s.DesiredCanaries > 0 || len(s.PlacedCanaries) > 0 {
			canaries = fmt.Sprintf("%d/%d", len(s.PlacedCanaries), s.DesiredCanaries)
		}
		row = append(row, itoa(s.DesiredTotal), itoa(s.PlacedAllocs), itoa(s.HealthyAllocs), itoa(s.UnhealthyAllocs),
			canaries, formatTime(s.RequireProgressBy))
		t.row(row...)
	}
	t.flush()
}
