package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testutil"

	"github.com/skiffhq/skiff/structs"
)

// skiffBin is the binary under test, built once by TestMain.
var skiffBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "skiff-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	skiffBin = filepath.Join(dir, "skiff")
	cmd := exec.Command("go", "build", "-tags", "hashicorpmetrics", "-o", skiffBin, "..")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build skiff:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// agentProc is one skiff agent process.
type agentProc struct {
	t               testing.TB
	name            string
	dir             string
	configPath      string
	http, rpc, serf int
	cmd             *exec.Cmd
	extraArgs       []string // more agent flags, e.g. another -config
	logs            *bytes.Buffer
	exited          chan struct{}
	mu              sync.Mutex
	ip              string // address it binds to; empty means 127.0.0.1
	netns           string // network namespace it runs in (ip netns exec); empty means the test's own
}

func (a *agentProc) addr() string { return fmt.Sprintf("http://%s:%d", a.host(), a.http) }

// host is the IP address the agent binds to.
func (a *agentProc) host() string {
	if a.ip == "" {
		return "127.0.0.1"
	}
	return a.ip
}

// cluster is n server processes that bootstrap together.
type cluster struct {
	t      testing.TB
	agents []*agentProc
}

// clusterOpts tune the servers' config.
type clusterOpts struct {
	extraServer string // extra lines inside server { }
	// ips and netns, when set, give server i its bind address and the
	// network namespace it runs in (see agentProc.ip and agentProc.netns).
	ips, netns []string
}

func newCluster(t testing.TB, n int, opts clusterOpts) *cluster {
	t.Helper()
	c := &cluster{t: t}
	for i := range n {
		a := &agentProc{t: t, name: fmt.Sprintf("s%d", i+1), dir: t.TempDir(),
			http: testutil.FreePort(t), rpc: testutil.FreePort(t), serf: testutil.FreePort(t)}
		if i < len(opts.ips) {
			a.ip = opts.ips[i]
		}
		if i < len(opts.netns) {
			a.netns = opts.netns[i]
		}
		c.agents = append(c.agents, a)
	}
	joins := make([]string, 0, n)
	for _, a := range c.agents {
		joins = append(joins, fmt.Sprintf("%q", fmt.Sprintf("%s:%d", a.host(), a.serf)))
	}
	for _, a := range c.agents {
		a.configPath = filepath.Join(a.dir, "agent.hcl")
		cfg := fmt.Sprintf(`
name      = %q
data_dir  = %q
bind_addr = %q
log_level = "DEBUG"
ports {
  http = %d
  rpc  = %d
  serf = %d
}
server {
  enabled          = true
  bootstrap_expect = %d
  gossip_profile   = "local"
  server_join {
    retry_join     = [%s]
    retry_interval = "200ms"
  }
  %s
}
`, a.name, filepath.Join(a.dir, "data"), a.host(), a.http, a.rpc, a.serf, n, strings.Join(joins, ", "), opts.extraServer)
		if err := os.WriteFile(a.configPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		a.start()
	}
	t.Cleanup(func() {
		for _, a := range c.agents {
			a.kill()
		}
		if t.Failed() {
			for _, a := range c.agents {
				t.Logf("---- logs of %s ----\n%s", a.name, a.tail(80))
			}
		}
	})
	return c
}

func (a *agentProc) start() {
	a.t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.logs == nil {
		a.logs = &bytes.Buffer{}
	}
	args := append([]string{"agent", "-config", a.configPath}, a.extraArgs...)
	cmd := exec.Command(skiffBin, args...)
	if a.netns != "" {
		// ip netns exec execs the agent in place: the PID and process
		// group stay the agent's, so kill still reaches it.
		cmd = exec.Command("ip", append([]string{"netns", "exec", a.netns, skiffBin}, args...)...)
	}
	cmd.Stdout = lockedWriter{&a.mu, a.logs}
	cmd.Stderr = lockedWriter{&a.mu, a.logs}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		a.t.Fatalf("start %s: %v", a.name, err)
	}
	a.cmd = cmd
	a.exited = make(chan struct{})
	go func(exited chan struct{}) { _ = cmd.Wait(); close(exited) }(a.exited)
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// signal sends sig to the agent's process group.
func (a *agentProc) signal(sig syscall.Signal) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd != nil && a.cmd.Process != nil {
		_ = syscall.Kill(-a.cmd.Process.Pid, sig)
	}
}

// signalAndWait sends sig to the agent's process group and reports
// whether the process exited within timeout (true when none runs).
func (a *agentProc) signalAndWait(sig syscall.Signal, timeout time.Duration) bool {
	a.mu.Lock()
	exited := a.exited
	a.mu.Unlock()
	if exited == nil {
		return true
	}
	a.signal(sig)
	select {
	case <-exited:
		return true
	case <-time.After(timeout):
		return false
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (a *agentProc) kill() {
	if !a.signalAndWait(syscall.SIGKILL, 10*time.Second) {
		a.t.Errorf("%s did not exit after SIGKILL", a.name)
	}
}

// stop sends SIGTERM and waits for the process to exit by itself (a
// server finishes what raft is writing, e.g. a log compaction); after 20 s
// it kills it and fails the test.
func (a *agentProc) stop() {
	if !a.signalAndWait(syscall.SIGTERM, 20*time.Second) {
		a.t.Errorf("%s did not exit within 20s of SIGTERM", a.name)
		a.kill()
	}
}

// running reports whether the process is alive; safe to call while
// another goroutine restarts it.
func (a *agentProc) running() bool {
	a.mu.Lock()
	exited := a.exited
	a.mu.Unlock()
	select {
	case <-exited:
		return false
	default:
		return true
	}
}

func (a *agentProc) tail(lines int) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	all := strings.Split(a.logs.String(), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

var httpClient = &http.Client{Timeout: 15 * time.Second}

// httpError is an answer of call with a status other than 2xx.
type httpError struct {
	method, url string
	code        int
	body        string
}

func (e *httpError) Error() string {
	return fmt.Sprintf("%s %s: %d: %s", e.method, e.url, e.code, e.body)
}

// statusOf returns the HTTP status of an error of call, or 0 when the
// request got no answer.
func statusOf(err error) int {
	var he *httpError
	if errors.As(err, &he) {
		return he.code
	}
	return 0
}

// call does one HTTP request and decodes a JSON answer into out.
func call(ctx context.Context, method, url string, body, out any) (http.Header, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return resp.Header, &httpError{method: method, url: url, code: resp.StatusCode, body: strings.TrimSpace(string(b))}
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.Header, fmt.Errorf("decode %s: %w", url, err)
		}
	}
	return resp.Header, nil
}

// leader waits until the running agents agree on a leader and returns it.
func (c *cluster) leader() *agentProc {
	c.t.Helper()
	var l *agentProc
	testutil.WaitFor(c.t, 20*time.Second, "an agreed leader", func() bool {
		var addr string
		for _, a := range c.agents {
			if !a.running() {
				continue
			}
			var got string
			if _, err := call(context.Background(), "GET", a.addr()+"/v1/status/leader", nil, &got); err != nil || got == "" {
				return false
			}
			if addr != "" && got != addr {
				return false
			}
			addr = got
		}
		for _, a := range c.agents {
			if a.running() && addr == fmt.Sprintf("%s:%d", a.host(), a.rpc) {
				l = a
				return true
			}
		}
		return false
	})
	return l
}

func job(id string) *structs.Job {
	return &structs.Job{
		ID: id, Datacenters: []string{"dc1"},
		TaskGroups: []*structs.TaskGroup{{
			Name: "web", Count: 1,
			Tasks: []*structs.Task{{Name: "server", Driver: "containerd", Config: map[string]any{"image": "busybox:1.36"}}},
		}},
	}
}

// register puts a job through an agent's HTTP API.
func register(ctx context.Context, a *agentProc, id string) (uint64, error) {
	var reply structs.JobRegisterResponse
	_, err := call(ctx, "PUT", a.addr()+"/v1/jobs", map[string]any{"Job": job(id)}, &reply)
	return reply.Index, err
}

// registerRetrying registers job id through a, retrying for up to 30 s
// while the cluster answers 503 (no leader yet, or leadership changed
// while committing), as a user would: registering a job is idempotent. The
// tests that use it check what happens to acknowledged writes, not that a
// cluster on a starved machine keeps its leader (elections under CPU steal
// failed them); the leader-kill test keeps its own retries.
func registerRetrying(t testing.TB, a *agentProc, id string) uint64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		idx, err := register(context.Background(), a, id)
		if err == nil {
			return idx
		}
		if statusOf(err) != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("register %s: %v", id, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// jobIDs lists the job IDs an agent has in its own state (a stale read).
func jobIDs(t testing.TB, a *agentProc) map[string]bool {
	t.Helper()
	var stubs []*structs.JobListStub
	if _, err := call(context.Background(), "GET", a.addr()+"/v1/jobs?stale", nil, &stubs); err != nil {
		t.Fatalf("list jobs on %s: %v", a.name, err)
	}
	out := map[string]bool{}
	for _, s := range stubs {
		out[s.ID] = true
	}
	return out
}

// waitApplied waits until a's own state has reached index.
func waitApplied(t testing.TB, a *agentProc, index uint64) {
	t.Helper()
	testutil.WaitFor(t, 30*time.Second, fmt.Sprintf("%s to apply index %d", a.name, index), func() bool {
		h, err := call(context.Background(), "GET", a.addr()+"/v1/jobs?stale", nil, nil)
		if err != nil {
			return false
		}
		var idx uint64
		fmt.Sscan(h.Get("X-Nomad-Index"), &idx)
		return idx >= index
	})
}
