package command

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/structs"
)

// NodeStatusCommand is "skiff node status": list client nodes, or show one.
type NodeStatusCommand struct{ Meta }

func (c *NodeStatusCommand) Synopsis() string { return "List client nodes, or show one" }

func (c *NodeStatusCommand) Help() string {
	return helpText("node status [options] [ID]", `
Without ID, lists the client nodes. With ID (or a unique prefix), shows the
node, its drivers and its allocations.`, `  -json
    Print the node list, or the node, as JSON.

  -verbose
    Print full IDs.`, true)
}

func (c *NodeStatusCommand) Run(args []string) int {
	var jsonOut, verbose bool
	fs := c.flagSet("node status", c.Help, true)
	fs.BoolVar(&jsonOut, "json", false, "")
	fs.BoolVar(&verbose, "verbose", false, "")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() > 1 {
		return c.usageError(c.Help(), "expected at most one argument, the node ID")
	}
	client, err := c.client()
	if err != nil {
		return c.fail(err, "")
	}
	if fs.NArg() == 1 {
		return c.show(client, fs.Arg(0), jsonOut, verbose)
	}
	nodes, _, err := client.Nodes().List(c.ctx, nil)
	if err != nil {
		return c.fail(err, "listing nodes")
	}
	slices.SortFunc(nodes, func(a, b *structs.NodeListStub) int { return cmp.Compare(a.Name, b.Name) })
	if jsonOut {
		if nodes == nil {
			nodes = []*structs.NodeListStub{}
		}
		if err := printJSON(c.stdout, nodes); err != nil {
			return c.fail(err, "")
		}
		return exitOK
	}
	if len(nodes) == 0 {
		fmt.Fprintln(c.stderr, "No client nodes registered")
		return exitOK
	}
	t := newTable(c.stdout, "ID", "Node Pool", "DC", "Name", "Class", "Address", "Drain", "Eligibility", "Status")
	for _, n := range nodes {
		t.row(shortID(n.ID, verbose), orDash(n.NodePool), n.Datacenter, n.Name, orDash(n.NodeClass),
			orDash(n.Address), strconv.FormatBool(n.Drain), n.SchedulingEligibility, n.Status)
	}
	t.flush()
	return exitOK
}

func (c *NodeStatusCommand) show(client *api.Client, arg string, jsonOut, verbose bool) int {
	id, err := client.Nodes().Resolve(c.ctx, arg, nil)
	if err != nil {
		return c.fail(err, "looking up node %q", arg)
	}
	n, _, err := client.Nodes().Info(c.ctx, id, nil)
	if err != nil {
		return c.fail(err, "reading node %q", id)
	}
	if jsonOut {
		if err := printJSON(c.stdout, n); err != nil {
			return c.fail(err, "")
		}
		return exitOK
	}
	allocs, _, err := client.Nodes().Allocations(c.ctx, id, nil)
	if err != nil {
		return c.fail(err, "listing the allocations of node %q", id)
	}
	var drivers []string
	for _, name := range slices.Sorted(maps.Keys(n.Drivers)) {
		if d := n.Drivers[name]; d != nil && d.Detected && d.Healthy {
			drivers = append(drivers, name)
		}
	}
	w, now := c.stdout, c.now()
	printKV(w, []kv{
		{"ID", shortID(n.ID, verbose)},
		{"Name", n.Name},
		{"Node Pool", orDash(n.NodePool)},
		{"Class", orDash(n.NodeClass)},
		{"DC", n.Datacenter},
		{"HTTP Addr", orDash(n.HTTPAddr)},
		{"Drain", strconv.FormatBool(n.DrainStrategy != nil)},
		{"Eligibility", n.SchedulingEligibility},
		{"Status", n.Status},
		{"Status Updated", agoUnixNano(n.StatusUpdatedAt*1e9, now)},
		{"Drivers", orDash(strings.Join(drivers, ","))},
	})
	fmt.Fprintln(w, "\nAllocations")
	if len(allocs) == 0 {
		fmt.Fprintln(w, "No allocations placed")
		return exitOK
	}
	slices.SortFunc(allocs, func(a, b *structs.Allocation) int { return cmp.Compare(b.CreateIndex, a.CreateIndex) })
	t := newTable(w, "ID", "Eval ID", "Job ID", "Task Group", "Desired", "Status", "Created")
	for _, a := range allocs {
		t.row(shortID(a.ID, verbose), shortID(a.EvalID, verbose), a.JobID, a.TaskGroup, a.DesiredStatus,
			a.ClientStatus, agoUnixNano(a.CreateTime, now))
	}
	t.flush()
	return exitOK
}
