package command

import (
	"errors"
	"io"
	"os/signal"
	"syscall"

	"github.com/skiffhq/skiff/api"
)

// AllocLogsCommand is "skiff alloc logs": print a task's output.
type AllocLogsCommand struct{ Meta }

func (c *AllocLogsCommand) Synopsis() string { return "Print a task's stdout or stderr" }

func (c *AllocLogsCommand) Help() string {
	return helpText("alloc logs [options] ID [TASK]", `
Prints what a task of an allocation wrote to stdout (or stderr). ID may be
a unique prefix; TASK may be left out when the allocation has one task.`, `  -f
    Follow: keep printing new output until the task ends or Ctrl-C.

  -stderr
    Print stderr instead of stdout.

  -tail
    Start near the end (see -n), not at the beginning.

  -n BYTES
    With -tail, how many bytes before the end to start (default 4096).`, true)
}

func (c *AllocLogsCommand) Run(args []string) int {
	var o api.LogsOptions
	var n int64
	fs := c.flagSet("alloc logs", c.Help, true)
	fs.BoolVar(&o.Follow, "f", false, "")
	fs.BoolVar(&o.Stderr, "stderr", false, "")
	fs.BoolVar(&o.Tail, "tail", false, "")
	fs.Int64Var(&n, "n", 4096, "")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		return c.usageError(c.Help(), "expected the allocation ID and optionally the task name")
	}
	if fs.NArg() == 2 {
		o.Task = fs.Arg(1)
	}
	if o.Tail {
		o.Offset = n
	}
	client, id, code := c.resolveArg("allocation", fs.Arg(0))
	if code != exitOK {
		return code
	}
	ctx, stop := signal.NotifyContext(c.ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	body, err := client.Allocations().Logs(ctx, id, o)
	if err != nil {
		return c.fail(err, "reading the logs of allocation %q", id)
	}
	defer body.Close()
	if _, err := io.Copy(c.stdout, body); err != nil && ctx.Err() == nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return c.fail(err, "streaming the logs of allocation %q", id)
	}
	return exitOK
}
