package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportDirection keeps the package layering of ARCHITECTURE.md:
// command -> api; command -> agent -> {server, client} -> {fsm, state,
// scheduler, rpc, jobspec, structs}; nothing imports agent or command.
func TestImportDirection(t *testing.T) {
	const mod = "github.com/skiffhq/skiff/"
	rules := []struct {
		pkg       string
		forbidden []string
		why       string
	}{
		{"structs", []string{mod, "github.com/hashicorp/raft", "github.com/hashicorp/go-memdb", "net/http"}, "structs is plain data that every package shares"},
		{"state", []string{mod + "fsm", mod + "server", mod + "agent", mod + "api", mod + "command", "github.com/hashicorp/raft"}, "the store knows nothing of how it is replicated"},
		{"fsm", []string{mod + "server", mod + "rpc", mod + "agent", mod + "api", mod + "command", "net/http", "net"}, "the FSM only applies entries: no network"},
		{"scheduler", []string{"github.com/hashicorp/raft", mod + "server", mod + "rpc", mod + "agent", "net/http", "net"}, "the scheduler is pure: snapshot + eval -> plan"},
		{"jobspec", []string{mod + "server", mod + "state", mod + "fsm", mod + "agent", mod + "api"}, "parsing a job file needs no cluster"},
		{"api", []string{mod + "server", mod + "state", mod + "fsm", mod + "agent", mod + "command", mod + "rpc", "github.com/hashicorp/raft"}, "the API client talks HTTP only"},
		{"command", []string{mod + "server", mod + "state", mod + "fsm", mod + "rpc", mod + "agent", "github.com/hashicorp/raft"}, "the CLI talks to agents over HTTP like any user"},
		{"server", []string{mod + "agent", mod + "command", mod + "api", mod + "client"}, "nothing below the agent imports it; servers run no tasks"},
		{"client", []string{mod + "server", mod + "agent", mod + "command", mod + "api", mod + "fsm", mod + "state"}, "a client reaches the servers only over RPC"},
		{"client/driver/containerd", []string{mod + "server", mod + "agent", mod + "client/allocrunner", mod + "rpc", "github.com/hashicorp/raft"}, "a driver runs containers and knows nothing of the cluster"},
		{"rpc", []string{mod + "server", mod + "agent", mod + "state", mod + "fsm"}, "the transport knows no endpoints"},
	}
	for _, r := range rules {
		imports, ok := moduleImports(t, "./"+r.pkg, mod)
		if !ok {
			continue // the package does not exist yet
		}
		self := mod + r.pkg
		for _, dep := range imports {
			if dep == self || strings.HasPrefix(dep, self+"/") {
				continue
			}
			for _, f := range r.forbidden {
				if matches(dep, f) {
					t.Errorf("%s depends on %s: %s", r.pkg, dep, r.why)
				}
			}
		}
	}
}

// moduleImports returns every import made by the package or by any
// package of this module it depends on. Imports made inside third-party
// packages (raft itself importing net) do not count.
func moduleImports(t *testing.T, pattern, mod string) ([]string, bool) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", pattern).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok && strings.Contains(string(ee.Stderr), "matched no packages") ||
			ok && strings.Contains(string(ee.Stderr), "directory not found") {
			return nil, false
		}
		t.Fatalf("go list %s: %v", pattern, err)
	}
	var imports []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], mod) {
			continue
		}
		imports = append(imports, f[1:]...)
	}
	return imports, true
}

// matches reports whether dep is the forbidden package f or inside it; an
// f ending in "/" forbids everything under that prefix.
func matches(dep, f string) bool {
	if strings.HasSuffix(f, "/") {
		return strings.HasPrefix(dep, f)
	}
	return dep == f || strings.HasPrefix(dep, f+"/")
}
