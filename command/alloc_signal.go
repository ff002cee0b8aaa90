package command

import (
	"fmt"
)

// AllocSignalCommand is "skiff alloc signal": send a signal to tasks.
type AllocSignalCommand struct{ Meta }

func (c *AllocSignalCommand) Synopsis() string { return "Send a signal to an allocation's tasks" }

func (c *AllocSignalCommand) Help() string {
	return helpText("alloc signal [options] ID [TASK]", `
Sends a signal to a task of an allocation, or to every running task of it
when TASK is left out. ID may be a unique prefix.`, `  -s SIGNAL
    The signal to send: a name such as SIGHUP or USR1, or a number
    (default SIGKILL, as Nomad's).`, true)
}

func (c *AllocSignalCommand) Run(args []string) int {
	var sig string
	fs := c.flagSet("alloc signal", c.Help, true)
	fs.StringVar(&sig, "s", "SIGKILL", "")
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
	if err := client.Allocations().Signal(c.ctx, id, task, sig); err != nil {
		return c.fail(err, "signalling allocation %s", shortID(id, false))
	}
	fmt.Fprintf(c.stderr, "Sent %s to %s.\n", sig, taskPhrase(id, task))
	return exitOK
}

// taskPhrase names the tasks a command acted on, for messages.
func taskPhrase(allocID, task string) string {
	if task == "" {
		return "the running tasks of allocation " + shortID(allocID, false)
	}
	return fmt.Sprintf("task %q of allocation %s", task, shortID(allocID, false))
}
