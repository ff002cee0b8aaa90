package command

import "fmt"

// RaftRemovePeerCommand is "skiff operator raft remove-peer".
type RaftRemovePeerCommand struct{ Meta }

func (c *RaftRemovePeerCommand) Synopsis() string {
	return "Remove a server from the raft configuration"
}

func (c *RaftRemovePeerCommand) Help() string {
	return helpText("operator raft remove-peer [options] -peer-id=ID", `
Removes a server from the raft configuration, for a server that is gone
for good and was not removed automatically. The ID is the one
"skiff operator raft list-peers" prints.`, `  -peer-id=<id>
    The raft ID of the server to remove.`, true)
}

func (c *RaftRemovePeerCommand) Run(args []string) int {
	var peerID string
	fs := c.flagSet("operator raft remove-peer", c.Help, true)
	fs.StringVar(&peerID, "peer-id", "", "")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() != 0 || peerID == "" {
		return c.usageError(c.Help(), "expected -peer-id and no arguments")
	}
	client, err := c.client()
	if err != nil {
		return c.fail(err, "")
	}
	if err := client.Operator().RaftRemovePeerByID(c.ctx, peerID, nil); err != nil {
		return c.fail(err, "removing raft peer %q", peerID)
	}
	fmt.Fprintf(c.stdout, "Removed peer with ID %q\n", peerID)
	return exitOK
}
