package command

import (
	"cmp"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/skiffhq/skiff/structs"
)

// AllocStatusCommand is "skiff alloc status": show one allocation.
type AllocStatusCommand struct{ Meta }

func (c *AllocStatusCommand) Synopsis() string { return "Show an allocation and its tasks" }

func (c *AllocStatusCommand) Help() string {
	return helpText("alloc status [options] ID", `
Shows an allocation: where it runs, what the servers want of it, what its
client reports, and the recent events of each task. ID may be a unique
prefix.`, `  -json
    Print the allocation as JSON.

  -verbose
    Print full IDs and every task event.`, true)
}

// maxTaskEvents is how many recent events per task are shown.
const maxTaskEvents = 10

func (c *AllocStatusCommand) Run(args []string) int {
	var jsonOut, verbose bool
	fs := c.flagSet("alloc status", c.Help, true)
	fs.BoolVar(&jsonOut, "json", false, "")
	fs.BoolVar(&verbose, "verbose", false, "")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() != 1 {
		return c.usageError(c.Help(), "expected one argument, the allocation ID")
	}
	client, id, code := c.resolveArg("allocation", fs.Arg(0))
	if code != exitOK {
		return code
	}
	a, _, err := client.Allocations().Info(c.ctx, id, nil)
	if err != nil {
		return c.fail(err, "reading allocation %q", id)
	}
	if jsonOut {
		if err := printJSON(c.stdout, a); err != nil {
			return c.fail(err, "")
		}
		return exitOK
	}

	w, now := c.stdout, c.now()
	var version uint64
	if a.Job != nil {
		version = a.Job.Version
	}
	rows := []kv{
		{"ID", shortID(a.ID, verbose)},
		{"Eval ID", shortID(a.EvalID, verbose)},
		{"Name", a.Name},
		{"Node ID", orDash(shortID(a.NodeID, verbose))},
		{"Node Name", orDash(a.NodeName)},
		{"Job ID", a.JobID},
		{"Job Version", strconv.FormatUint(version, 10)},
		{"Client Status", a.ClientStatus},
		{"Client Description", orDash(a.ClientDescription)},
		{"Desired Status", a.DesiredStatus},
		{"Desired Description", orDash(a.DesiredDescription)},
		{"Created", agoUnixNano(a.CreateTime, now)},
		{"Modified", agoUnixNano(a.ModifyTime, now)},
	}
	if a.DeploymentID != "" {
		health := "unset"
		if ds := a.DeploymentStatus; ds != nil && ds.Healthy != nil {
			health = map[bool]string{true: "healthy", false: "unhealthy"}[*ds.Healthy]
		}
		rows = append(rows, kv{"Deployment ID", shortID(a.DeploymentID, verbose)}, kv{"Deployment Health", health})
	}
	printKV(w, rows)
	if r := a.AllocatedResources; r != nil && len(r.Shared.Ports) > 0 {
		fmt.Fprintln(w, "\nAllocation Addresses")
		t := newTable(w, "Label", "Address", "To")
		for _, p := range r.Shared.Ports {
			host := cmp.Or(p.HostIP, "127.0.0.1")
			to := "-"
			if p.To > 0 {
				to = strconv.Itoa(p.To)
			}
			t.row("*"+p.Label, net.JoinHostPort(host, strconv.Itoa(p.Value)), to)
		}
		t.flush()
	}

	for _, name := range slices.Sorted(maps.Keys(a.TaskStates)) {
		ts := a.TaskStates[name]
		fmt.Fprintf(w, "\nTask %q is %q\n", name, ts.State)
		events := slices.Clone(ts.Events)
		slices.SortStableFunc(events, func(x, y *structs.TaskEvent) int { return cmp.Compare(y.Time, x.Time) })
		if len(events) > maxTaskEvents && !verbose {
			events = events[:maxTaskEvents]
		}
		if len(events) == 0 {
			continue
		}
		t := newTable(w, "Time", "Type", "Description")
		for _, e := range events {
			desc := cmp.Or(e.DisplayMessage, e.Message)
			t.row(formatTime(time.Unix(0, e.Time)), e.Type, orDash(desc))
		}
		t.flush()
	}
	return exitOK
}
