package command

import (
	"fmt"
	"io"
	"strconv"

	"github.com/skiffhq/skiff/structs"
)

// JobHistoryCommand is "skiff job history": list a job's versions.
type JobHistoryCommand struct{ Meta }

func (c *JobHistoryCommand) Synopsis() string { return "List the versions of a job" }

func (c *JobHistoryCommand) Help() string {
	return helpText("job history [options] JOB", `
Lists the versions of a job, newest first, and whether each is stable (a
deployment of it succeeded). JOB may be a unique prefix of the ID. With
-p, each version is shown with what changed from the version before it;
"skiff job revert JOB VERSION" registers a version again.`, `  -p
    Show each version's changes to the job against the previous version.

  -json
    Print the versions as a JSON array of jobs; with -p, an object
    {"Versions": [...], "Diffs": [...]} where Diffs[i] compares Versions[i]
    with Versions[i+1] (null for the oldest).

  -verbose
    With -p, also list the tasks that did not change.`, true)
}

func (c *JobHistoryCommand) Run(args []string) int {
	var jsonOut, diffs, verbose bool
	fs := c.flagSet("job history", c.Help, true)
	fs.BoolVar(&jsonOut, "json", false, "")
	fs.BoolVar(&diffs, "p", false, "")
	fs.BoolVar(&verbose, "verbose", false, "")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() != 1 {
		return c.usageError(c.Help(), "expected one argument, the job ID")
	}
	client, id, code := c.resolveArg("job", fs.Arg(0))
	if code != exitOK {
		return code
	}
	versions, _, err := client.Jobs().Versions(c.ctx, id, nil)
	if err != nil {
		return c.fail(err, "reading the versions of job %q", id)
	}
	if versions == nil {
		versions = []*structs.Job{}
	}
	switch {
	case jsonOut && diffs:
		err = printJSON(c.stdout, struct {
			Versions []*structs.Job
			Diffs    []*structs.JobDiff
		}{versions, versionDiffs(versions)})
	case jsonOut:
		err = printJSON(c.stdout, versions)
	case diffs:
		printVersionDiffs(c.stdout, versions, verbose)
	default:
		t := newTable(c.stdout, "Version", "Stable", "Stopped", "Submit Date", "Modify Index")
		for _, v := range versions {
			t.row(strconv.FormatUint(v.Version, 10), strconv.FormatBool(v.Stable), strconv.FormatBool(v.Stop),
				formatUnixNano(v.SubmitTime), fmt.Sprint(v.JobModifyIndex))
		}
		t.flush()
	}
	if err != nil {
		return c.fail(err, "")
	}
	return exitOK
}

// versionDiffs compares each version (newest first) with the one after it
// in the list, the previous version; the oldest has no diff (nil).
func versionDiffs(versions []*structs.Job) []*structs.JobDiff {
	out := make([]*structs.JobDiff, len(versions))
	for i := 0; i+1 < len(versions); i++ {
		out[i] = structs.DiffJobs(versions[i+1], versions[i])
	}
	return out
}

// printVersionDiffs writes one block per version, newest first, with the
// changes from the previous version as "job plan" prints them.
func printVersionDiffs(w io.Writer, versions []*structs.Job, verbose bool) {
	diffs := versionDiffs(versions)
	for i, v := range versions {
		if i > 0 {
			fmt.Fprintln(w)
		}
		rows := []kv{
			{"Version", strconv.FormatUint(v.Version, 10)},
			{"Stable", strconv.FormatBool(v.Stable)},
			{"Stopped", strconv.FormatBool(v.Stop)},
			{"Submit Date", formatUnixNano(v.SubmitTime)},
		}
		d := diffs[i]
		switch {
		case d == nil:
			printKV(w, rows) // the oldest version kept: nothing to compare with
		case d.Type == structs.DiffTypeNone:
			printKV(w, append(rows, kv{"Diff", "none (the spec did not change)"}))
		default:
			printKV(w, append(rows, kv{"Diff", ""}))
			printJobDiff(w, changedGroups(d), nil, verbose)
		}
	}
}

// changedGroups returns d without the task groups that did not change, so
// a version's diff shows only what it changed.
func changedGroups(d *structs.JobDiff) *structs.JobDiff {
	c := *d
	c.TaskGroups = nil
	for _, g := range d.TaskGroups {
		if g.Type != structs.DiffTypeNone {
			c.TaskGroups = append(c.TaskGroups, g)
		}
	}
	return &c
}
