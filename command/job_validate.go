package command

import "fmt"

// JobValidateCommand is "skiff job validate": parse and check a job file
// without contacting an agent.
type JobValidateCommand struct{ Meta }

func (c *JobValidateCommand) Synopsis() string { return "Check a job file for errors" }

func (c *JobValidateCommand) Help() string {
	return helpText("job validate [options] FILE", `
Parses and validates a job file locally, reporting every problem with its
file:line:col on stderr. Exit code 0 when the file is valid, 1 otherwise.`, jobFileOptions, false)
}

func (c *JobValidateCommand) Run(args []string) int {
	var files jobFileFlags
	fs := c.flagSet("job validate", c.Help, false)
	files.register(fs)
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() != 1 {
		return c.usageError(c.Help(), "expected one argument, the job file")
	}
	path := fs.Arg(0)
	if _, err := c.loadJob(path, &files); err != nil {
		reportJobFileError(c.stderr, path, err)
		return exitError
	}
	fmt.Fprintln(c.stdout, "Job validation successful")
	return exitOK
}
