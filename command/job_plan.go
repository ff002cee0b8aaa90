package command

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/structs"
)

// Exit codes of "job plan".
const (
	exitPlanNoChange = 0
	exitPlanChanges  = 1
	exitPlanError    = 255
)

// JobPlanCommand is "skiff job plan": a dry run of "job run".
type JobPlanCommand struct{ Meta }

func (c *JobPlanCommand) Synopsis() string { return "Show what running a job file would change" }

func (c *JobPlanCommand) Help() string {
	return helpText("job plan [options] FILE", `
Asks the scheduler what registering the job file would do, without
changing anything, and prints the job modify index to pass to
"skiff job run -check-index".

Exit codes: 0 no allocation would change, 1 allocations would be created,
stopped or replaced, 255 error.`, `  -verbose
    Print full IDs.

`+jobFileOptions, true)
}

func (c *JobPlanCommand) Run(args []string) int {
	var (
		files   jobFileFlags
		verbose bool
	)
	fs := c.flagSet("job plan", c.Help, true)
	fs.BoolVar(&verbose, "verbose", false, "")
	files.register(fs)
	if err := fs.Parse(args); err != nil {
		return exitPlanError
	}
	if fs.NArg() != 1 {
		c.usageError(c.Help(), "expected one argument, the job file")
		return exitPlanError
	}
	path := fs.Arg(0)
	job, err := c.loadJob(path, &files)
	if err != nil {
		reportJobFileError(c.stderr, path, err)
		return exitPlanError
	}
	client, err := c.client()
	if err != nil {
		c.fail(err, "")
		return exitPlanError
	}
	plan, _, err := client.Jobs().Plan(c.ctx, job, true, nil)
	if err != nil {
		c.fail(err, "planning job %q", job.ID)
		return exitPlanError
	}

	changes := false
	diff := plan.Diff
	updates := map[string]*api.DesiredUpdates{}
	if plan.Annotations != nil {
		updates = plan.Annotations.DesiredTGUpdates
		for _, u := range updates {
			changes = changes || u.Changes()
		}
	}
	if diff != nil {
		printJobDiff(c.stdout, diff, updates, verbose)
	} else {
		fmt.Fprintf(c.stdout, "Job: %q\n", job.ID)
		for _, tg := range slices.Sorted(maps.Keys(updates)) {
			fmt.Fprintf(c.stdout, "Task Group: %q (%s)\n", tg, describeUpdates(updates[tg]))
		}
	}
	fmt.Fprintln(c.stdout, "\nScheduler dry-run:")
	if len(plan.FailedTGAllocs) == 0 {
		fmt.Fprintln(c.stdout, "- All task groups successfully allocated.")
	} else {
		changes = true
		fmt.Fprintln(c.stdout, "- WARNING: Failed to place all allocations.")
		for _, tg := range slices.Sorted(maps.Keys(plan.FailedTGAllocs)) {
			m := plan.FailedTGAllocs[tg]
			fmt.Fprintf(c.stdout, "  Task Group %q (failed to place %s):\n", tg, plural(m.CoalescedFailures+1, "allocation"))
			for _, line := range metricLines(m) {
				fmt.Fprintf(c.stdout, "    * %s\n", line)
			}
		}
	}
	if plan.Warnings != "" {
		fmt.Fprintf(c.stderr, "Job Warnings:\n%s\n", indent(plan.Warnings, "  "))
	}
	fmt.Fprintf(c.stdout, "\nJob Modify Index: %d\n", plan.JobModifyIndex)
	fmt.Fprintf(c.stderr, "To submit the job only if it has not changed since, run:\n  skiff job run -check-index %d %s\n",
		plan.JobModifyIndex, path)
	if changes {
		return exitPlanChanges
	}
	return exitPlanNoChange
}

// describeUpdates renders "2 create, 1 in-place update" ("no change" when
// every count is zero).
func describeUpdates(u *api.DesiredUpdates) string {
	var parts []string
	add := func(n uint64, what string) {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, what))
		}
	}
	add(u.Place, "create")
	add(u.Stop, "destroy")
	add(u.Migrate, "migrate")
	add(u.InPlaceUpdate, "in-place update")
	add(u.DestructiveUpdate, "create/destroy update")
	add(u.Canary, "canary")
	add(u.Preemptions, "preemption")
	add(u.Ignore, "ignore")
	if len(parts) == 0 {
		return "no change"
	}
	return strings.Join(parts, ", ")
}

// diffMark is the prefix of a line of the diff, as in Nomad's output:
// "+ ", "- ", "+/- ", or nothing for no change.
func diffMark(typ string) string {
	switch typ {
	case structs.DiffTypeAdded:
		return "+ "
	case structs.DiffTypeDeleted:
		return "- "
	case structs.DiffTypeEdited:
		return "+/- "
	}
	return ""
}

// printJobDiff prints the spec changes with the allocation changes of
// each group. Unchanged tasks are listed only with -verbose.
func printJobDiff(w io.Writer, d *structs.JobDiff, updates map[string]*api.DesiredUpdates, verbose bool) {
	fmt.Fprintf(w, "%sJob: %q\n", diffMark(d.Type), d.ID)
	if d.Type == structs.DiffTypeAdded && !verbose {
		// A new job: every field would be a "+" line; -verbose shows them.
		for _, g := range d.TaskGroups {
			desc := ""
			if u := updates[g.Name]; u != nil {
				desc = " (" + describeUpdates(u) + ")"
			}
			fmt.Fprintf(w, "+ Task Group: %q%s\n", g.Name, desc)
		}
		return
	}
	printFields(w, "", d.Fields)
	for _, g := range d.TaskGroups {
		desc := ""
		if u := updates[g.Name]; u != nil {
			desc = " (" + describeUpdates(u) + ")"
		}
		fmt.Fprintf(w, "%sTask Group: %q%s\n", diffMark(g.Type), g.Name, desc)
		printFields(w, "  ", g.Fields)
		for _, t := range g.Tasks {
			if t.Type == structs.DiffTypeNone && !verbose {
				continue
			}
			fmt.Fprintf(w, "  %sTask: %q\n", diffMark(t.Type), t.Name)
			printFields(w, "    ", t.Fields)
		}
	}
}

func printFields(w io.Writer, indent string, fields []*structs.FieldDiff) {
	for _, f := range fields {
		switch f.Type {
		case structs.DiffTypeAdded:
			fmt.Fprintf(w, "%s  + %s: %q\n", indent, f.Name, f.New)
		case structs.DiffTypeDeleted:
			fmt.Fprintf(w, "%s  - %s: %q\n", indent, f.Name, f.Old)
		default:
			fmt.Fprintf(w, "%s  +/- %s: %q => %q\n", indent, f.Name, f.Old, f.New)
		}
	}
}
