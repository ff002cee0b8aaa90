package command

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/structs"
)

// ServerMembersCommand is "skiff server members": the servers gossip knows.
type ServerMembersCommand struct{ Meta }

func (c *ServerMembersCommand) Synopsis() string { return "List the servers of the cluster" }

func (c *ServerMembersCommand) Help() string {
	return helpText("server members [options]", `
Lists the servers the agent's gossip pool knows, with their state, and
marks the raft leader.`, `  -json
    Print the members as JSON, as the agent returns them.`, true)
}

func (c *ServerMembersCommand) Run(args []string) int {
	var jsonOut bool
	fs := c.flagSet("server members", c.Help, true)
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
	resp, err := client.Agent().Members(c.ctx)
	if err != nil {
		return c.fail(err, "listing server members")
	}
	members := resp.Members
	slices.SortFunc(members, func(a, b *structs.ServerMember) int { return cmp.Compare(a.Name, b.Name) })
	if jsonOut {
		if err := printJSON(c.stdout, resp); err != nil {
			return c.fail(err, "")
		}
		return exitOK
	}
	leader := leaderAddr(c.ctx, client)
	t := newTable(c.stdout, "Name", "Address", "Port", "Status", "Leader", "Region", "Datacenter")
	for _, m := range members {
		t.row(m.Name, m.Addr, strconv.Itoa(int(m.Port)), m.Status, strconv.FormatBool(isLeader(m, leader)),
			orDash(m.Tags["region"]), orDash(m.Tags["dc"]))
	}
	t.flush()
	if leader == "" {
		fmt.Fprintln(c.stderr, "No cluster leader; check that a quorum of servers is alive")
	}
	return exitOK
}

// leaderAddr returns the raft leader's RPC address, "" when there is none
// or it cannot be read.
func leaderAddr(ctx context.Context, client *api.Client) string {
	addr, err := client.Status().Leader(ctx)
	if err != nil {
		return ""
	}
	return addr
}

// isLeader matches a gossip member to the leader's RPC address, which
// every server gossips in its "rpc_addr" tag (servers may share an IP).
func isLeader(m *structs.ServerMember, leader string) bool {
	if leader == "" {
		return false
	}
	if rpc, ok := m.Tags["rpc_addr"]; ok {
		return rpc == leader
	}
	host, _, err := net.SplitHostPort(leader)
	return err == nil && m.Addr == host
}
