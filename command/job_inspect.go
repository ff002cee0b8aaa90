package command

import (
	"fmt"
	"strconv"

	"github.com/skiffhq/skiff/structs"
)

// JobInspectCommand is "skiff job inspect": print a job as JSON.
type JobInspectCommand struct{ Meta }

func (c *JobInspectCommand) Synopsis() string { return "Print a job's specification as JSON" }

func (c *JobInspectCommand) Help() string {
	return helpText("job inspect [options] JOB", `
Prints the job as the cluster holds it, as JSON in the shape "skiff job run
-json" reads back: {"Job": {...}}. JOB may be a unique prefix of the ID.`, `  -version=<n>
    Print version <n> of the job rather than the latest.

  -json
    Accepted for symmetry with other commands; the output is always JSON.`, true)
}

func (c *JobInspectCommand) Run(args []string) int {
	var (
		jsonOut bool
		version string
	)
	fs := c.flagSet("job inspect", c.Help, true)
	fs.BoolVar(&jsonOut, "json", false, "")
	fs.StringVar(&version, "version", "", "")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() != 1 {
		return c.usageError(c.Help(), "expected one argument, the job ID")
	}
	var want *uint64
	if version != "" {
		v, err := strconv.ParseUint(version, 10, 64)
		if err != nil {
			return c.usageError(c.Help(), "-version wants a version number, got %q", version)
		}
		want = &v
	}
	client, id, code := c.resolveArg("job", fs.Arg(0))
	if code != exitOK {
		return code
	}

	var job *structs.Job
	var err error
	if want == nil {
		if job, _, err = client.Jobs().Info(c.ctx, id, nil); err != nil {
			return c.fail(err, "reading job %q", id)
		}
	} else {
		versions, _, err := client.Jobs().Versions(c.ctx, id, nil)
		if err != nil {
			return c.fail(err, "reading the versions of job %q", id)
		}
		for _, v := range versions {
			if v.Version == *want {
				job = v
			}
		}
		if job == nil {
			fmt.Fprintf(c.stderr, "Error: job %q has no version %d (see \"skiff job history %s\")\n", id, *want, id)
			return exitError
		}
	}
	if err := printJSON(c.stdout, struct{ Job *structs.Job }{job}); err != nil {
		return c.fail(err, "")
	}
	return exitOK
}
