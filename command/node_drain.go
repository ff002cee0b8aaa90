package command

import (
	"context"
	"fmt"
	"time"

	"github.com/skiffhq/skiff/api"
)

// NodeDrainCommand is "skiff node drain": move allocations off a node.
type NodeDrainCommand struct{ Meta }

func (c *NodeDrainCommand) Synopsis() string { return "Move a node's allocations elsewhere" }

func (c *NodeDrainCommand) Help() string {
	return helpText("node drain -enable|-disable [options] ID", `
Drains a client node: it takes no new allocations, and its allocations move
to other nodes at the pace of each group's migrate block (max_parallel at
a time, each replacement healthy for min_healthy_time before the next one
leaves). Batch allocations may finish until the deadline; system
allocations leave last. At the deadline everything left is moved at once.
Without -detach the command follows the drain until it ends. ID may be a
unique prefix.`, `  -enable
    Start draining the node.

  -disable
    Stop draining; the node stays ineligible unless -keep-ineligible=false.

  -deadline DURATION
    How long to let allocations leave at their own pace (default 1h).

  -no-deadline
    Never force the remaining allocations off.

  -force
    Move everything off now, ignoring migrate blocks.

  -ignore-system
    Leave system allocations on the node.

  -keep-ineligible
    With -disable: keep the node ineligible (default true).

  -detach
    Return once the drain started instead of following it.`, true)
}

func (c *NodeDrainCommand) Run(args []string) int {
	var enable, disable, noDeadline, force, ignoreSystem, detach bool
	keepIneligible := true
	deadline := time.Hour
	fs := c.flagSet("node drain", c.Help, true)
	fs.BoolVar(&enable, "enable", false, "")
	fs.BoolVar(&disable, "disable", false, "")
	fs.DurationVar(&deadline, "deadline", deadline, "")
	fs.BoolVar(&noDeadline, "no-deadline", false, "")
	fs.BoolVar(&force, "force", false, "")
	fs.BoolVar(&ignoreSystem, "ignore-system", false, "")
	fs.BoolVar(&keepIneligible, "keep-ineligible", keepIneligible, "")
	fs.BoolVar(&detach, "detach", false, "")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if enable == disable {
		return c.usageError(c.Help(), "pass exactly one of -enable and -disable")
	}
	if fs.NArg() != 1 {
		return c.usageError(c.Help(), "expected one argument, the node ID")
	}
	if deadline <= 0 && !noDeadline && !force {
		return c.usageError(c.Help(), "-deadline must be positive; use -no-deadline or -force")
	}
	client, id, code := c.resolveArg("node", fs.Arg(0))
	if code != exitOK {
		return code
	}
	var spec *api.DrainSpec
	if enable {
		spec = &api.DrainSpec{Deadline: deadline, IgnoreSystemJobs: ignoreSystem}
		switch {
		case force:
			spec.Deadline = -1
		case noDeadline:
			spec.Deadline = 0
		}
	}
	if _, err := client.Nodes().UpdateDrain(c.ctx, id, spec, disable && !keepIneligible, nil); err != nil {
		return c.fail(err, "updating the drain of node %s", shortID(id, false))
	}
	if disable {
		fmt.Fprintf(c.stderr, "Node %q drain stopped\n", shortID(id, false))
		return exitOK
	}
	fmt.Fprintf(c.stderr, "Node %q drain started\n", shortID(id, false))
	if detach {
		return exitOK
	}
	return c.followDrain(client, id)
}

// followDrain waits until the node's drain ends, printing its live
// allocation count as it falls.
func (c *NodeDrainCommand) followDrain(client *api.Client, id string) int {
	last := -1
	var index uint64
	for {
		ctx, cancel := context.WithTimeout(c.ctx, time.Minute)
		node, qm, err := client.Nodes().Info(ctx, id, &api.QueryOptions{WaitIndex: index, WaitTime: 2 * time.Second})
		cancel()
		if err != nil {
			return c.fail(err, "following the drain of node %s", shortID(id, false))
		}
		allocs, _, err := client.Nodes().Allocations(c.ctx, id, nil)
		if err != nil {
			return c.fail(err, "listing the allocations of node %s", shortID(id, false))
		}
		live := 0
		for _, a := range allocs {
			if !a.TerminalStatus() {
				live++
			}
		}
		if live != last {
			fmt.Fprintf(c.stdout, "%s: %d allocations left on node %q\n", time.Now().Format(time.RFC3339), live, shortID(id, false))
			last = live
		}
		if node.DrainStrategy == nil {
			fmt.Fprintf(c.stdout, "Node %q drain complete\n", shortID(id, false))
			return exitOK
		}
		if qm != nil && qm.LastIndex > index {
			index = qm.LastIndex
		} else {
			select {
			case <-c.ctx.Done():
				return exitError
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
}
