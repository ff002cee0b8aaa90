package command

import (
	"fmt"
	"strconv"
)

// EvalStatusCommand is "skiff eval status": show one evaluation.
type EvalStatusCommand struct{ Meta }

func (c *EvalStatusCommand) Synopsis() string {
	return "Show an evaluation and why it placed what it did"
}

func (c *EvalStatusCommand) Help() string {
	return helpText("eval status [options] ID", `
Shows an evaluation: its status, what triggered it, why any allocations
could not be placed, and the allocations it placed. ID may be a unique
prefix.`, `  -json
    Print the evaluation as JSON.

  -verbose
    Print full IDs.`, true)
}

func (c *EvalStatusCommand) Run(args []string) int {
	var jsonOut, verbose bool
	fs := c.flagSet("eval status", c.Help, true)
	fs.BoolVar(&jsonOut, "json", false, "")
	fs.BoolVar(&verbose, "verbose", false, "")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() != 1 {
		return c.usageError(c.Help(), "expected one argument, the evaluation ID")
	}
	client, id, code := c.resolveArg("evaluation", fs.Arg(0))
	if code != exitOK {
		return code
	}
	ev, _, err := client.Evaluations().Info(c.ctx, id, nil)
	if err != nil {
		return c.fail(err, "reading evaluation %q", id)
	}
	if jsonOut {
		if err := printJSON(c.stdout, ev); err != nil {
			return c.fail(err, "")
		}
		return exitOK
	}
	allocs, _, err := client.Evaluations().Allocations(c.ctx, id, nil)
	if err != nil {
		return c.fail(err, "listing the allocations of evaluation %q", id)
	}

	w, now := c.stdout, c.now()
	rows := []kv{
		{"ID", shortID(ev.ID, verbose)},
		{"Create Time", agoUnixNano(ev.CreateTime, now)},
		{"Modify Time", agoUnixNano(ev.ModifyTime, now)},
		{"Status", ev.Status},
		{"Status Description", orDash(ev.StatusDescription)},
		{"Type", ev.Type},
		{"TriggeredBy", ev.TriggeredBy},
		{"Job ID", ev.JobID},
		{"Namespace", ev.Namespace},
		{"Priority", strconv.Itoa(ev.Priority)},
		{"Placement Failures", strconv.FormatBool(len(ev.FailedTGAllocs) > 0)},
	}
	if ev.NodeID != "" {
		rows = append(rows, kv{"Node ID", shortID(ev.NodeID, verbose)})
	}
	if ev.DeploymentID != "" {
		rows = append(rows, kv{"Deployment ID", shortID(ev.DeploymentID, verbose)})
	}
	for _, rel := range []kv{{"Previous Eval", ev.PreviousEval}, {"Next Eval", ev.NextEval}, {"Blocked Eval", ev.BlockedEval}} {
		if rel.v != "" {
			rows = append(rows, kv{rel.k, shortID(rel.v, verbose)})
		}
	}
	if !ev.WaitUntil.IsZero() {
		rows = append(rows, kv{"Wait Until", formatTime(ev.WaitUntil)})
	}
	printKV(w, rows)

	if len(ev.FailedTGAllocs) > 0 {
		fmt.Fprintln(w, "\nFailed Placements")
		printPlacementFailures(w, ev, "")
	}
	if len(allocs) > 0 {
		fmt.Fprintln(w, "\nPlaced Allocations")
		t := newTable(w, "ID", "Node ID", "Task Group", "Desired", "Status", "Created")
		for _, a := range allocs {
			t.row(shortID(a.ID, verbose), shortID(a.NodeID, verbose), a.TaskGroup, a.DesiredStatus,
				a.ClientStatus, agoUnixNano(a.CreateTime, now))
		}
		t.flush()
	}
	return exitOK
}
