// Package command is Skiff's command-line interface: one file per command,
// each talking to an agent over HTTP through package api (except "agent",
// which runs one).
//
// Run is what main calls. Commands write their result to stdout and every
// message to stderr, and return the exit codes documented in
// ARCHITECTURE.md: 0 success, 1 error; "job run" 2 on placement failure;
// "job plan" 1 when allocations would change and 255 on error.
package command

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/cli"
)

// Run runs the command named by args (os.Args[1:]) against the process's
// environment and standard streams, and returns the exit code. Interrupts
// cancel the running command.
func Run(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args, options{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin, env: os.Environ()})
}

// RunWith is Run with the output streams and environment (KEY=VALUE
// entries) given; standard input reads as empty. Tests and programs that
// embed the CLI use it.
func RunWith(args []string, stdout, stderr io.Writer, env []string) int {
	return run(context.Background(), args, options{stdout: stdout, stderr: stderr, env: env})
}

// options are what a run of the CLI reads from its surroundings.
type options struct {
	stdout, stderr io.Writer
	stdin          io.Reader // nil: nothing to read
	env            []string
	now            func() time.Time // nil: time.Now
	// terminal reports whether a stream is a terminal (progress is then
	// redrawn in place); nil: an *os.File that is a terminal.
	terminal func(io.Writer) bool
}

func run(ctx context.Context, args []string, o options) int {
	base := newMeta(ctx, o)
	c := &cli.CLI{
		Name:        "skiff",
		Args:        args,
		Version:     versionString(),
		Commands:    commands(base),
		HelpFunc:    cli.BasicHelpFunc("skiff"),
		HelpWriter:  o.stdout,
		ErrorWriter: o.stderr,
	}
	code, err := c.Run()
	if err != nil {
		fmt.Fprintf(o.stderr, "Error: %v\n", err)
		return 1
	}
	if code == 127 { // the library's "no such command"
		return 1
	}
	return code
}

// commands maps each command line to its command. Every command gets its
// own copy of base, so flags parsed by one never leak into another.
func commands(base *Meta) map[string]cli.CommandFactory {
	type runner = cli.Command
	mk := func(f func(Meta) runner) cli.CommandFactory {
		return func() (cli.Command, error) { return f(*base), nil }
	}
	group := func(usage, synopsis string) cli.CommandFactory {
		return func() (cli.Command, error) { return &groupCommand{usage: usage, synopsis: synopsis}, nil }
	}
	return map[string]cli.CommandFactory{
		"alloc":                     group("alloc <subcommand> [options] [args]", "Inspect allocations, read their logs, run commands in them"),
		"deployment":                group("deployment <subcommand> [options] [args]", "Inspect, fail, pause, resume and promote deployments, and judge their allocations"),
		"eval":                      group("eval <subcommand> [options] [args]", "Inspect evaluations"),
		"job":                       group("job <subcommand> [options] [args]", "Submit, inspect and stop jobs"),
		"node":                      group("node <subcommand> [options] [args]", "Inspect client nodes"),
		"operator":                  group("operator <subcommand> [options] [args]", "Operate the cluster: raft, snapshots"),
		"operator raft":             group("operator raft <subcommand> [options]", "Inspect and change the raft peers"),
		"operator snapshot":         group("operator snapshot <subcommand> [options] FILE", "Save and restore cluster state"),
		"server":                    group("server <subcommand> [options] [args]", "Inspect and join servers"),
		"agent":                     mk(func(m Meta) runner { return &AgentCommand{Meta: m} }),
		"alloc exec":                mk(func(m Meta) runner { return &AllocExecCommand{Meta: m} }),
		"alloc logs":                mk(func(m Meta) runner { return &AllocLogsCommand{Meta: m} }),
		"alloc restart":             mk(func(m Meta) runner { return &AllocRestartCommand{Meta: m} }),
		"alloc signal":              mk(func(m Meta) runner { return &AllocSignalCommand{Meta: m} }),
		"alloc status":              mk(func(m Meta) runner { return &AllocStatusCommand{Meta: m} }),
		"deployment fail":           mk(func(m Meta) runner { return &DeploymentFailCommand{Meta: m} }),
		"deployment health":         mk(func(m Meta) runner { return &DeploymentHealthCommand{Meta: m} }),
		"deployment list":           mk(func(m Meta) runner { return &DeploymentListCommand{Meta: m} }),
		"deployment pause":          mk(func(m Meta) runner { return &DeploymentPauseCommand{Meta: m} }),
		"deployment promote":        mk(func(m Meta) runner { return &DeploymentPromoteCommand{Meta: m} }),
		"deployment resume":         mk(func(m Meta) runner { return &DeploymentResumeCommand{Meta: m} }),
		"deployment status":         mk(func(m Meta) runner { return &DeploymentStatusCommand{Meta: m} }),
		"eval status":               mk(func(m Meta) runner { return &EvalStatusCommand{Meta: m} }),
		"job history":               mk(func(m Meta) runner { return &JobHistoryCommand{Meta: m} }),
		"job inspect":               mk(func(m Meta) runner { return &JobInspectCommand{Meta: m} }),
		"job plan":                  mk(func(m Meta) runner { return &JobPlanCommand{Meta: m} }),
		"job promote":               mk(func(m Meta) runner { return &JobPromoteCommand{Meta: m} }),
		"job revert":                mk(func(m Meta) runner { return &JobRevertCommand{Meta: m} }),
		"job run":                   mk(func(m Meta) runner { return &JobRunCommand{Meta: m} }),
		"job status":                mk(func(m Meta) runner { return &JobStatusCommand{Meta: m} }),
		"job stop":                  mk(func(m Meta) runner { return &JobStopCommand{Meta: m} }),
		"job validate":              mk(func(m Meta) runner { return &JobValidateCommand{Meta: m} }),
		"node drain":                mk(func(m Meta) runner { return &NodeDrainCommand{Meta: m} }),
		"node eligibility":          mk(func(m Meta) runner { return &NodeEligibilityCommand{Meta: m} }),
		"node status":               mk(func(m Meta) runner { return &NodeStatusCommand{Meta: m} }),
		"operator raft list-peers":  mk(func(m Meta) runner { return &RaftListPeersCommand{Meta: m} }),
		"operator raft remove-peer": mk(func(m Meta) runner { return &RaftRemovePeerCommand{Meta: m} }),
		"operator snapshot save":    mk(func(m Meta) runner { return &SnapshotSaveCommand{Meta: m} }),
		"operator snapshot restore": mk(func(m Meta) runner { return &SnapshotRestoreCommand{Meta: m} }),
		"server join":               mk(func(m Meta) runner { return &ServerJoinCommand{Meta: m} }),
		"server members":            mk(func(m Meta) runner { return &ServerMembersCommand{Meta: m} }),
		"status":                    mk(func(m Meta) runner { return &StatusCommand{Meta: m} }),
		"version":                   mk(func(m Meta) runner { return &VersionCommand{Meta: m} }),
	}
}

// groupCommand is a command that only groups subcommands ("job"): run
// alone, it prints its help, listing them, and fails.
type groupCommand struct{ usage, synopsis string }

func (g *groupCommand) Synopsis() string { return g.synopsis }
func (g *groupCommand) Help() string {
	return helpText(g.usage, g.synopsis+".", "", false)
}
func (g *groupCommand) Run([]string) int { return cli.RunResultHelp }

// helpText formats a command's help: usage line, description, the
// command's own options, then (for commands that talk to an agent) the
// options they all share.
func helpText(usage, description, opts string, global bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: skiff %s\n\n%s\n", usage, indent(strings.TrimSpace(description), "  "))
	if opts = strings.Trim(opts, "\n"); opts != "" {
		fmt.Fprintf(&b, "\nOptions:\n\n%s\n", opts)
	}
	if global {
		b.WriteString(globalOptions)
	}
	return strings.TrimRight(b.String(), "\n")
}

const globalOptions = `
General Options:

  -address=<addr>
    The agent's HTTP address. Overrides SKIFF_ADDR; the default is
    http://127.0.0.1:4646.

  -token=<token>
    The ACL token sent with each request. Overrides SKIFF_TOKEN.

  -namespace=<namespace>
    The namespace to act in. Overrides SKIFF_NAMESPACE.

  -region=<region>
    The region to send the request to. Overrides SKIFF_REGION.
`
