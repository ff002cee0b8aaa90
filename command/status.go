package command

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/skiffhq/skiff/api"
)

// StatusCommand is "skiff status": a one-screen overview of the cluster,
// or "job status JOB" when given a job.
type StatusCommand struct{ Meta }

func (c *StatusCommand) Synopsis() string { return "Show an overview of the cluster" }

func (c *StatusCommand) Help() string {
	return helpText("status [options] [JOB]", `
Without JOB, shows the cluster at a glance: the agent, the raft leader, the
servers, the client nodes and the jobs, counted by status. With JOB, is
"skiff job status JOB".`, `  -json
    Print the overview as JSON.`, true)
}

// overview is what "skiff status -json" prints.
type overview struct {
	Address string
	Leader  string
	Servers map[string]int // by gossip status
	Nodes   map[string]int // by node status
	Jobs    map[string]int // by job status
	Errors  []string       `json:",omitempty"`
}

func (c *StatusCommand) Run(args []string) int {
	var jsonOut, verbose bool
	fs := c.flagSet("status", c.Help, true)
	fs.BoolVar(&jsonOut, "json", false, "")
	fs.BoolVar(&verbose, "verbose", false, "") // for job status
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	switch fs.NArg() {
	case 0:
	case 1:
		js := &JobStatusCommand{Meta: c.Meta}
		return js.Run(args)
	default:
		return c.usageError(c.Help(), "expected at most one argument, a job ID")
	}
	client, err := c.client()
	if err != nil {
		return c.fail(err, "")
	}

	// The leader is read first: an unreachable agent fails here, once.
	ov := overview{Address: client.Address(), Servers: map[string]int{}, Nodes: map[string]int{}, Jobs: map[string]int{}}
	leader, err := client.Status().Leader(c.ctx)
	if api.IsUnreachable(err) {
		return c.fail(err, "")
	}
	ov.Leader = leader
	if err != nil {
		ov.Errors = append(ov.Errors, errorLine(err, "reading the leader"))
	}
	if m, err := client.Agent().Members(c.ctx); err != nil {
		ov.Errors = append(ov.Errors, errorLine(err, "listing servers"))
	} else {
		for _, s := range m.Members {
			ov.Servers[s.Status]++
		}
	}
	if nodes, _, err := client.Nodes().List(c.ctx, nil); err != nil {
		ov.Errors = append(ov.Errors, errorLine(err, "listing nodes"))
	} else {
		for _, n := range nodes {
			ov.Nodes[n.Status]++
		}
	}
	if jobs, _, err := client.Jobs().List(c.ctx, nil); err != nil {
		ov.Errors = append(ov.Errors, errorLine(err, "listing jobs"))
	} else {
		for _, j := range jobs {
			ov.Jobs[j.Status]++
		}
	}

	if jsonOut {
		if err := printJSON(c.stdout, ov); err != nil {
			return c.fail(err, "")
		}
	} else {
		printKV(c.stdout, []kv{
			{"Address", ov.Address},
			{"Leader", cmp.Or(ov.Leader, "none")},
			{"Servers", countLine(ov.Servers)},
			{"Nodes", countLine(ov.Nodes)},
			{"Jobs", countLine(ov.Jobs)},
		})
		for _, e := range ov.Errors {
			fmt.Fprintln(c.stderr, e)
		}
	}
	if len(ov.Errors) > 0 {
		return exitError
	}
	return exitOK
}

// countLine renders counts by status: "3 (alive 2, failed 1)".
func countLine(by map[string]int) string {
	total := 0
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(by)) {
		total += by[k]
		parts = append(parts, fmt.Sprintf("%s %d", k, by[k]))
	}
	if total == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}
