package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiffhq/skiff/structs"
)

// skiff runs the CLI against an agent and returns stdout, stderr and the
// exit code.
func skiff(t *testing.T, a *agentProc, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(skiffBin, args...)
	cmd.Env = append(os.Environ(), "SKIFF_ADDR="+a.addr())
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run skiff %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// TestCLIAgainstACluster walks the user story with the real
// binary: members, peers, job run/status/inspect/stop, snapshot save and
// restore, against three server processes.
func TestCLIAgainstACluster(t *testing.T) {
	c := newCluster(t, 3, clusterOpts{})
	leader := c.leader()
	var follower *agentProc
	for _, a := range c.agents {
		if a != leader {
			follower = a
			break
		}
	}

	out, _, code := skiff(t, follower, "server", "members")
	if code != 0 || strings.Count(out, "alive") != 3 || strings.Count(out, "true") != 1 {
		t.Fatalf("server members (exit %d):\n%s\nwant three alive members, one leader", code, out)
	}
	out, _, code = skiff(t, follower, "operator", "raft", "list-peers", "-json")
	var peers structs.RaftConfigurationResponse
	if code != 0 || json.Unmarshal([]byte(out), &peers) != nil || len(peers.Servers) != 3 {
		t.Fatalf("list-peers -json (exit %d): %s", code, out)
	}
	for _, p := range peers.Servers {
		if !p.Voter {
			t.Errorf("peer %s is not a voter", p.Node)
		}
	}

	jobFile, _ := filepath.Abs("../examples/web.hcl")
	out, errOut, code := skiff(t, follower, "job", "run", "-detach", jobFile)
	if code != 0 || !strings.Contains(out, "Evaluation ID:") {
		t.Fatalf("job run -detach (exit %d): stdout %q stderr %q", code, out, errOut)
	}
	out, _, code = skiff(t, leader, "job", "status", "web")
	if code != 0 || !strings.Contains(out, "ID            = web") || !strings.Contains(out, "job-register") {
		t.Fatalf("job status web (exit %d):\n%s", code, out)
	}
	out, _, code = skiff(t, follower, "job", "inspect", "web")
	var inspected struct{ Job *structs.Job }
	if code != 0 || json.Unmarshal([]byte(out), &inspected) != nil || inspected.Job.ID != "web" || inspected.Job.TaskGroups[0].Count != 2 {
		t.Fatalf("job inspect (exit %d): %.300s", code, out)
	}

	snap := filepath.Join(t.TempDir(), "cluster.snap")
	if _, errOut, code := skiff(t, follower, "operator", "snapshot", "save", snap); code != 0 {
		t.Fatalf("snapshot save (exit %d): %s", code, errOut)
	}
	if _, errOut, code := skiff(t, follower, "job", "stop", "-purge", "-detach", "web"); code != 0 {
		t.Fatalf("job stop -purge (exit %d): %s", code, errOut)
	}
	if _, _, code := skiff(t, leader, "job", "status", "web"); code == 0 {
		t.Fatal("job status of a purged job exited 0")
	}

	// A damaged file is refused and changes nothing.
	data, _ := os.ReadFile(snap)
	bad := filepath.Join(t.TempDir(), "bad.snap")
	os.WriteFile(bad, data[:len(data)/2], 0o600)
	if _, errOut, code := skiff(t, follower, "operator", "snapshot", "restore", bad); code == 0 || !strings.Contains(errOut, "nothing was changed") {
		t.Fatalf("restore of a truncated file (exit %d): %s", code, errOut)
	}

	if _, errOut, code := skiff(t, follower, "operator", "snapshot", "restore", snap); code != 0 {
		t.Fatalf("snapshot restore (exit %d): %s", code, errOut)
	}
	for _, a := range c.agents {
		out, _, code := skiff(t, a, "job", "status", "web")
		if code != 0 || !strings.Contains(out, "ID            = web") {
			t.Fatalf("after restore, %s: job status web (exit %d):\n%s", a.name, code, out)
		}
	}

	// An unreachable agent is explained.
	_, errOut, code = skiff(t, &agentProc{http: 1}, "job", "status")
	if code != 1 || !strings.Contains(errOut, "is \"skiff agent\" running?") {
		t.Fatalf("unreachable agent (exit %d): %s", code, errOut)
	}
}
