package command

import (
	"fmt"
)

// NodeEligibilityCommand is "skiff node eligibility": allow or stop new
// placements on a node.
type NodeEligibilityCommand struct{ Meta }

func (c *NodeEligibilityCommand) Synopsis() string {
	return "Allow or stop new placements on a node"
}

func (c *NodeEligibilityCommand) Help() string {
	return helpText("node eligibility -enable|-disable ID", `
Marks a client node eligible or ineligible for new allocations. The
allocations already on it keep running; to move them away, drain the node.
Making a node eligible again places system jobs on it and wakes jobs that
wait for capacity. ID may be a unique prefix.`, `  -enable
    Allow new placements on the node.

  -disable
    Place nothing new on the node.`, true)
}

func (c *NodeEligibilityCommand) Run(args []string) int {
	var enable, disable bool
	fs := c.flagSet("node eligibility", c.Help, true)
	fs.BoolVar(&enable, "enable", false, "")
	fs.BoolVar(&disable, "disable", false, "")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if enable == disable {
		return c.usageError(c.Help(), "pass exactly one of -enable and -disable")
	}
	if fs.NArg() != 1 {
		return c.usageError(c.Help(), "expected one argument, the node ID")
	}
	client, id, code := c.resolveArg("node", fs.Arg(0))
	if code != exitOK {
		return code
	}
	if _, err := client.Nodes().ToggleEligibility(c.ctx, id, enable, nil); err != nil {
		return c.fail(err, "changing the eligibility of node %s", shortID(id, false))
	}
	state := "ineligible"
	if enable {
		state = "eligible"
	}
	fmt.Fprintf(c.stderr, "Node %q scheduling eligibility set: %s\n", shortID(id, false), state)
	return exitOK
}
