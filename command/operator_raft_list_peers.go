package command

import (
	"strconv"
)

// RaftListPeersCommand is "skiff operator raft list-peers".
type RaftListPeersCommand struct{ Meta }

func (c *RaftListPeersCommand) Synopsis() string { return "List the raft peers of the servers" }

func (c *RaftListPeersCommand) Help() string {
	return helpText("operator raft list-peers [options]", `
Lists the servers in the raft configuration, as the leader has it, with
their state and whether they vote.`, `  -json
    Print the raft configuration as JSON.`, true)
}

func (c *RaftListPeersCommand) Run(args []string) int {
	var jsonOut bool
	fs := c.flagSet("operator raft list-peers", c.Help, true)
	fs.BoolVar(&jsonOut, "json", false, "")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() != 0 {
		return c.usageError(c.Help(), "expected no arguments")
	}
	client, err := c.client()
	if err != nil {
		return c.fail(err, "")
	}
	conf, err := client.Operator().RaftGetConfiguration(c.ctx, nil)
	if err != nil {
		return c.fail(err, "reading the raft configuration")
	}
	if jsonOut {
		if err := printJSON(c.stdout, conf); err != nil {
			return c.fail(err, "")
		}
		return exitOK
	}
	t := newTable(c.stdout, "Node", "ID", "Address", "State", "Voter", "RaftProtocol")
	for _, s := range conf.Servers {
		state := "follower"
		if s.Leader {
			state = "leader"
		}
		t.row(s.Node, s.ID, s.Address, state, strconv.FormatBool(s.Voter), orDash(s.RaftProtocol))
	}
	t.flush()
	return exitOK
}
