package command

import "fmt"

// ServerJoinCommand is "skiff server join": join gossip pools.
type ServerJoinCommand struct{ Meta }

func (c *ServerJoinCommand) Synopsis() string { return "Join the agent's server to other servers" }

func (c *ServerJoinCommand) Help() string {
	return helpText("server join [options] ADDR...", `
Asks the agent's server to join the gossip pool of the servers at the given
addresses (host or host:port, the gossip port, 4648 by default).`, "", true)
}

func (c *ServerJoinCommand) Run(args []string) int {
	fs := c.flagSet("server join", c.Help, true)
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() == 0 {
		return c.usageError(c.Help(), "expected at least one address to join")
	}
	client, err := c.client()
	if err != nil {
		return c.fail(err, "")
	}
	n, err := client.Agent().Join(c.ctx, fs.Args()...)
	if err != nil {
		if n > 0 {
			fmt.Fprintf(c.stdout, "Joined %s\n", plural(n, "server"))
		}
		return c.fail(err, "joining %v", fs.Args())
	}
	fmt.Fprintf(c.stdout, "Joined %s\n", plural(n, "server"))
	return exitOK
}
