package command

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/term"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/structs"
)

// AllocExecCommand is "skiff alloc exec": run a command in a running task.
type AllocExecCommand struct{ Meta }

func (c *AllocExecCommand) Synopsis() string { return "Run a command in a running task" }

func (c *AllocExecCommand) Help() string {
	return helpText("alloc exec [options] ID [TASK] COMMAND [ARGS...]", `
Runs a command inside a running task of an allocation, with this terminal's
input and output, and exits with the command's exit code. ID may be a
unique prefix. TASK (or -task) may be left out when the allocation has one
task. Options go before ID: what follows it is the task and the command.

  skiff alloc exec a1b2c3d4 /bin/sh
  skiff alloc exec -i=false a1b2c3d4 web cat /etc/hostname`, `  -task NAME
    The task to run the command in; every argument after ID is then the
    command.

  -i
    Pass standard input to the command (default true). With -i=false the
    command's input is empty.

  -t
    Give the command a terminal (default: when standard input is a
    terminal). This terminal is put in raw mode until the command exits,
    and the command sees its size changes.`, true)
}

func (c *AllocExecCommand) Run(args []string) int {
	stdinFile, stdinIsTerm := terminalFile(c.stdin)
	var task string
	interactive, tty := true, stdinIsTerm
	fs := c.flagSet("alloc exec", c.Help, true)
	fs.StringVar(&task, "task", "", "")
	fs.BoolVar(&interactive, "i", true, "")
	fs.BoolVar(&tty, "t", stdinIsTerm, "")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() < 2 {
		return c.usageError(c.Help(), "expected the allocation ID and a command")
	}
	client, id, code := c.resolveArg("allocation", fs.Arg(0))
	if code != exitOK {
		return code
	}
	alloc, _, err := client.Allocations().Info(c.ctx, id, nil)
	if err != nil {
		return c.fail(err, "reading allocation %q", id)
	}
	task, command, err := execTarget(alloc, task, fs.Args()[1:])
	if err != nil {
		fmt.Fprintf(c.stderr, "Error: %v\n", err)
		return exitError
	}

	ctx, stop := signal.NotifyContext(c.ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var stdin io.Reader
	if interactive {
		stdin = c.stdin
	}
	var resize chan api.TerminalSize
	restore := func() {}
	if tty && stdinIsTerm {
		if restore, err = rawTerminal(stdinFile); err != nil {
			return c.fail(err, "putting the terminal in raw mode")
		}
		defer restore() // also on a panic
		resize = make(chan api.TerminalSize, 1)
		stopResize := followTerminalSize(stdinFile, resize)
		defer stopResize()
	}
	code, err = client.Allocations().Exec(ctx, id, task, tty, command, stdin, c.stdout, c.stderr, resize)
	restore() // before printing: a raw terminal does not start new lines at the left
	if err != nil {
		return c.fail(err, "running %q in task %q of allocation %s", command[0], task, shortID(id, false))
	}
	return code
}

// execTarget splits the arguments after the allocation ID into the task
// and the command. Without -task, the first argument is the task when it
// names one of the allocation's tasks and a command follows it; else the
// allocation must have a single task.
func execTarget(alloc *structs.Allocation, task string, rest []string) (string, []string, error) {
	names := alloc.TaskNames()
	list := strings.Join(names, ", ")
	switch {
	case task != "":
		if !slices.Contains(names, task) {
			return "", nil, fmt.Errorf("allocation %s has no task %q; its tasks are: %s", shortID(alloc.ID, false), task, list)
		}
		return task, rest, nil
	case len(rest) >= 2 && slices.Contains(names, rest[0]):
		return rest[0], rest[1:], nil
	case len(names) == 1:
		return names[0], rest, nil
	case len(names) == 0:
		return "", nil, fmt.Errorf("allocation %s has no tasks to run a command in", shortID(alloc.ID, false))
	}
	return "", nil, fmt.Errorf("allocation %s has several tasks (%s); name one: skiff alloc exec %s TASK COMMAND..., or -task TASK",
		shortID(alloc.ID, false), list, shortID(alloc.ID, false))
}

// terminalFile returns r as a file and whether it is a terminal.
func terminalFile(r io.Reader) (*os.File, bool) {
	f, ok := r.(*os.File)
	if !ok || f == nil {
		return nil, false
	}
	return f, term.IsTerminal(int(f.Fd()))
}

// rawTerminal puts the terminal f in raw mode, so that every key goes to
// the remote command, and returns what restores it. The caller restores
// on every way out: the command exits, fails, or SIGINT/SIGTERM cancel it;
// restore may be called more than once.
func rawTerminal(f *os.File) (restore func(), err error) {
	old, err := term.MakeRaw(int(f.Fd()))
	if err != nil {
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(func() { _ = term.Restore(int(f.Fd()), old) }) }, nil
}

// followTerminalSize sends f's size to ch now and on every SIGWINCH, until
// the returned function is called (which waits for the follower to end).
// ch has capacity 1; a size not yet taken is replaced by the newer one.
func followTerminalSize(f *os.File, ch chan api.TerminalSize) (stop func()) {
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	done, exited := make(chan struct{}), make(chan struct{})
	send := func() {
		w, h, err := term.GetSize(int(f.Fd()))
		if err != nil {
			return
		}
		sz := api.TerminalSize{Width: w, Height: h}
		select {
		case <-ch: // drop the size the session did not take yet
		default:
		}
		ch <- sz
	}
	send()
	go func() {
		defer close(exited)
		for {
			select {
			case <-done:
				return
			case <-winch:
				send()
			}
		}
	}()
	return func() {
		signal.Stop(winch)
		close(done)
		<-exited
	}
}
