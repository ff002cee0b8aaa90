package command

import (
	"fmt"
)

// AllocRestartCommand is "skiff alloc restart": restart tasks in place.
type AllocRestartCommand struct{ Meta }

func (c *AllocRestartCommand) Synopsis() string { return "Restart an allocation's tasks in place" }

func (c *AllocRestartCommand) Help() string {
	return helpText("alloc restart [options] ID [TASK]", `
Restarts a task of an allocation, or every running task of it when TASK is
left out, on the same node: each is stopped with its kill signal and
started again. The restart does not count against the task's restart
policy. ID may be a unique prefix.`, "", true)
}

func (c *AllocRestartCommand) Run(args []string) int {
	fs := c.flagSet("alloc restart", c.Help, true)
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		return c.usageError(c.Help(), "expected the allocation ID and optionally the task name")
	}
	task := fs.Arg(1)
	client, id, code := c.resolveArg("allocation", fs.Arg(0))
	if code != exitOK {
		return code
	}
	if err := client.Allocations().Restart(c.ctx, id, task); err != nil {
		return c.fail(err, "restarting allocation %s", shortID(id, false))
	}
	fmt.Fprintf(c.stderr, "Restarting %s.\n", taskPhrase(id, task))
	return exitOK
}
