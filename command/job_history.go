package command

import (
	"fmt"
	"strconv"

	"github.com/skiffhq/skiff/structs"
)

// JobHistoryCommand is "skiff job history": list a job's versions.
type JobHistoryCommand struct{ Meta }

func (c *JobHistoryCommand) Synopsis() string { return "List the versions of a job" }

func (c *JobHistoryCommand) Help() string {
	return helpText("job history [options] JOB", `
Lists the versions of a job, newest first. JOB may be a unique prefix of
the ID.`, `  -json
    Print the versions as a JSON array of jobs.`, true)
}

func (c *JobHistoryCommand) Run(args []string) int {
	var jsonOut bool
	fs := c.flagSet("job history", c.Help, true)
	fs.BoolVar(&jsonOut, "json", false, "")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() != 1 {
		return c.usageError(c.Help(), "expected one argument, the job ID")
	}
	client, err := c.client()
	if err != nil {
		return c.fail(err, "")
	}
	id, err := client.Jobs().Resolve(c.ctx, fs.Arg(0), nil)
	if err != nil {
		return c.fail(err, "looking up job %q", fs.Arg(0))
	}
	versions, _, err := client.Jobs().Versions(c.ctx, id, nil)
	if err != nil {
		return c.fail(err, "reading the versions of job %q", id)
	}
	if jsonOut {
		if versions == nil {
			versions = []*structs.Job{}
		}
		if err := printJSON(c.stdout, versions); err != nil {
			return c.fail(err, "")
		}
		return exitOK
	}
	t := newTable(c.stdout, "Version", "Stable", "Stopped", "Submit Date", "Modify Index")
	for _, v := range versions {
		t.row(strconv.FormatUint(v.Version, 10), strconv.FormatBool(v.Stable), strconv.FormatBool(v.Stop),
			formatUnixNano(v.SubmitTime), fmt.Sprint(v.JobModifyIndex))
	}
	t.flush()
	return exitOK
}
