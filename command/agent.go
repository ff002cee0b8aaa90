package command

import "fmt"

// RunAgent runs the agent with the arguments after "skiff agent" and
// returns the exit code. main sets it, so that this package does not
// import the agent (and all of the server and client with it).
var RunAgent func(args []string) int

// AgentCommand is "skiff agent": run a server and/or client.
type AgentCommand struct{ Meta }

func (c *AgentCommand) Synopsis() string { return "Run a Skiff agent (server, client, or both)" }

func (c *AgentCommand) Help() string {
	return helpText("agent [options]", `
Runs a Skiff agent: a server of the control plane, a client that runs
allocations, or both. "skiff agent -dev" runs a single-node cluster with
state in a temporary directory.`, `  -dev
    Run a server and a client in one process, bound to 127.0.0.1.

  -config=<path>
    An HCL configuration file or directory; repeatable, later files win.

  -server, -client, -bootstrap-expect=<n>, -retry-join=<addr>,
  -servers=<addr>, -data-dir=<path>, -bind=<addr>, -node=<name>, -dc=<dc>
    Override the configuration file.`, false)
}

func (c *AgentCommand) Run(args []string) int {
	if RunAgent == nil {
		fmt.Fprintln(c.stderr, "Error: agent not built in: this skiff binary cannot run an agent")
		return exitError
	}
	return RunAgent(args)
}
