package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	nomad "github.com/hashicorp/nomad/api"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client/allocrunner"
	"github.com/skiffhq/skiff/client/driver/containerd"
	"github.com/skiffhq/skiff/internal/testcontainerd"
	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/structs"
)

// TestMain lets this test binary act as containerd's log process: an
// agent's client runs "<this executable> logmon <spec>", as the skiff
// binary's main does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == containerd.DefaultLoggerArg {
		os.Exit(containerd.LoggerMain(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// syncBuffer collects an agent's log; it is shown when a test fails.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer // guarded by mu
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startTestAgent starts cfg on free loopback ports, shuts it down at
// cleanup and shows its log if the test failed.
func startTestAgent(t *testing.T, cfg *Config) *Agent {
	t.Helper()
	cfg.Ports = &Ports{HTTP: testutil.FreePort(t), RPC: testutil.FreePort(t), Serf: testutil.FreePort(t)}
	cfg.LogLevel = "WARN"
	if err := cfg.finish(); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	a, err := Start(cfg, logs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.Shutdown()
		if t.Failed() {
			t.Logf("log of agent %s:\n%s", cfg.Name, logs)
		}
	})
	return a
}

// testAgentWithClient starts a dev agent whose client runs tasks on the
// test's containerd, and waits until its node is ready.
func testAgentWithClient(t *testing.T, env *testcontainerd.Env) (*Agent, *api.Client) {
	t.Helper()
	a := startTestAgent(t, &Config{dev: true, Name: "exec-test", Client: &ClientConfig{
		Containerd: &ContainerdConfig{Address: env.Address, Namespace: env.Namespace}}})
	c := apiClient(t, a)
	waitNodes(t, c, 1)
	return a, c
}

func apiClient(t *testing.T, a *Agent) *api.Client {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: "http://" + a.HTTPAddr()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitNodes waits until n client nodes are ready.
func waitNodes(t *testing.T, c *api.Client, n int) {
	t.Helper()
	testutil.WaitFor(t, 30*time.Second, "the client nodes ready", func() bool {
		nodes, _, err := c.Nodes().List(context.Background(), nil)
		if err != nil {
			return false
		}
		ready := 0
		for _, nd := range nodes {
			if nd.Status == structs.NodeStatusReady {
				ready++
			}
		}
		return ready == n
	})
}

// execTestJob has two tasks: "main" reports SIGUSR1 on stdout and exits
// on SIGTERM; "side" only waits.
func execTestJob(image string) *structs.Job {
	task := func(name, script string) *structs.Task {
		return &structs.Task{Name: name, Driver: "containerd", KillTimeout: 2 * time.Second,
			Config:    map[string]any{"image": image, "command": "/bin/sh", "args": []any{"-c", script}},
			Resources: &structs.Resources{CPU: 100, MemoryMB: 64}}
	}
	return &structs.Job{ID: "exec", Name: "exec", Type: "service", Datacenters: []string{"dc1"},
		TaskGroups: []*structs.TaskGroup{{Name: "g", Count: 1, Tasks: []*structs.Task{
			task("main", `trap 'echo got-usr1' USR1; trap 'exit 0' TERM; echo ready; while :; do sleep 600 & wait $!; done`),
			task("side", `trap 'exit 0' TERM; while :; do sleep 600 & wait $!; done`),
		}}}}
}

// runningAlloc waits until the job has one allocation with every task
// running, and returns it.
func runningAlloc(t *testing.T, c *api.Client, jobID string) *structs.Allocation {
	t.Helper()
	var alloc *structs.Allocation
	testutil.WaitFor(t, 90*time.Second, "the allocation running", func() bool {
		stubs, _, err := c.Jobs().Allocations(context.Background(), jobID, false, nil)
		if err != nil || len(stubs) != 1 || stubs[0].ClientStatus != structs.AllocClientStatusRunning {
			return false
		}
		alloc, _, err = c.Allocations().Info(context.Background(), stubs[0].ID, nil)
		if err != nil {
			return false
		}
		for _, st := range alloc.TaskStates {
			if st.State != "running" {
				return false
			}
		}
		return len(alloc.TaskStates) == 2
	})
	return alloc
}

// execOut runs a command in a task and returns its exit code and output.
func execOut(t *testing.T, c *api.Client, allocID, task string, tty bool, stdin io.Reader, cmd ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code, err := c.Allocations().Exec(ctx, allocID, task, tty, cmd, stdin, &out, &errb, nil)
	if err != nil {
		t.Fatalf("exec %q: %v", cmd, err)
	}
	return code, out.String(), errb.String()
}

// TestAllocExecSignalRestart runs a two-task job in real containers and
// drives exec, signal and restart through the HTTP API: the api package,
// Nomad's own api package, and raw requests for the refusals; then the
// same through a second agent that proxies to the node of the allocation.
func TestAllocExecSignalRestart(t *testing.T) {
	env := testcontainerd.Start(t)
	image := "oci-archive:" + testcontainerd.BusyboxArchive(t)
	a, c := testAgentWithClient(t, env)
	base := "http://" + a.HTTPAddr()
	ctx := context.Background()
	if _, _, err := c.Jobs().Register(ctx, execTestJob(image), nil, nil); err != nil {
		t.Fatal(err)
	}
	alloc := runningAlloc(t, c, "exec")
	id := alloc.ID
	execURL := base + "/v1/client/allocation/" + id + "/exec"

	t.Run("refusals before the upgrade", func(t *testing.T) {
		cmd := url.QueryEscape(`["/bin/true"]`)
		tests := []struct {
			name, url string
			code      int
			want      string
		}{
			{"missing command", execURL + "?task=main", http.StatusBadRequest, "no command given"},
			{"command not an array", execURL + "?task=main&command=" + url.QueryEscape("ls -l"), http.StatusBadRequest, "JSON array"},
			{"empty command", execURL + "?task=main&command=" + url.QueryEscape("[]"), http.StatusBadRequest, "command is empty"},
			{"bad tty", execURL + "?task=main&tty=maybe&command=" + cmd, http.StatusBadRequest, "tty"},
			{"unknown alloc", base + "/v1/client/allocation/00000000-0000-4000-8000-000000000000/exec?command=" + cmd, http.StatusNotFound, "not found"},
			{"several tasks", execURL + "?command=" + cmd, http.StatusBadRequest, "several tasks (main, side)"},
			{"unknown task", execURL + "?task=nope&command=" + cmd, http.StatusNotFound, `no task "nope"`},
			{"not a websocket", execURL + "?task=main&command=" + cmd, http.StatusBadRequest, "websocket"},
		}
		for _, tt := range tests {
			resp, body := do(t, "GET", tt.url, nil)
			if resp.StatusCode != tt.code || !strings.Contains(body, tt.want) {
				t.Errorf("%s: got %d %q, want %d containing %q", tt.name, resp.StatusCode, body, tt.code, tt.want)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("%s: Content-Type %q, want plain text", tt.name, ct)
			}
		}
		// Through the api package, a refusal is a *StatusError.
		_, err := c.Allocations().Exec(ctx, id, "", false, []string{"true"}, nil, nil, nil, nil)
		if !api.IsStatus(err, http.StatusBadRequest) || !strings.Contains(err.Error(), "several tasks") {
			t.Errorf("exec without a task: %v, want 400 naming the tasks", err)
		}
		_, err = c.Allocations().Exec(ctx, "00000000-0000-4000-8000-000000000000", "main", false, []string{"true"}, nil, nil, nil, nil)
		if !api.IsNotFound(err) {
			t.Errorf("exec in an unknown allocation: %v, want 404", err)
		}
	})

	t.Run("exec without a terminal", func(t *testing.T) {
		code, out, errOut := execOut(t, c, id, "main", false, nil, "/bin/sh", "-c", "echo hi; echo oops >&2; exit 3")
		if code != 3 || out != "hi\n" || errOut != "oops\n" {
			t.Errorf("got code %d, stdout %q, stderr %q; want 3, \"hi\\n\", \"oops\\n\"", code, out, errOut)
		}
		// Output larger than one message arrives whole.
		code, out, _ = execOut(t, c, id, "side", false, nil, "/bin/sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x")
		if code != 0 || len(out) != 300000 || strings.Trim(out, "x") != "" {
			t.Errorf("large output: code %d, %d bytes, want 0 and 300000 x's", code, len(out))
		}
		_, err := c.Allocations().Exec(ctx, id, "main", false, []string{"/no/such/program"}, nil, nil, nil, nil)
		if !api.IsStatus(err, http.StatusBadRequest) || !strings.Contains(err.Error(), `start "/no/such/program"`) {
			t.Errorf("exec of a missing program: %v, want a 400 naming it", err)
		}
	})

	t.Run("exec with a terminal", func(t *testing.T) {
		code, out, _ := execOut(t, c, id, "main", true, nil, "tty")
		if code != 0 || !strings.HasPrefix(out, "/dev/pts/") {
			t.Errorf("tty: code %d, output %q; want 0 and /dev/pts/N", code, out)
		}
		// The terminal takes the size sent; the command polls for it.
		resize := make(chan api.TerminalSize, 1)
		resize <- api.TerminalSize{Height: 33, Width: 111}
		var buf bytes.Buffer
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		code, err := c.Allocations().Exec(cctx, id, "main", true, []string{"/bin/sh", "-c",
			`for i in $(seq 100); do s=$(stty size); [ "$s" = "33 111" ] && break; sleep 0.1; done; echo "size $s"`},
			nil, &buf, nil, resize)
		if err != nil || code != 0 || !strings.Contains(buf.String(), "size 33 111") {
			t.Errorf("resize: code %d, err %v, output %q; want \"size 33 111\"", code, err, buf.String())
		}
	})

	t.Run("stdin", func(t *testing.T) {
		code, out, _ := execOut(t, c, id, "main", false, strings.NewReader("hello stdin\n"), "cat")
		if code != 0 || out != "hello stdin\n" {
			t.Errorf("cat: code %d, output %q; want the input back", code, out)
		}
		big := strings.Repeat("0123456789", 20000)
		code, out, _ = execOut(t, c, id, "main", false, strings.NewReader(big), "wc", "-c")
		if code != 0 || strings.TrimSpace(out) != "200000" {
			t.Errorf("wc -c of 200000 bytes: code %d, output %q", code, out)
		}
	})

	t.Run("closing the websocket kills the command", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		// The command waits for the terminal size, which the driver sets
		// only once the process has started: canceling before that is a
		// different case (see the report of the exec issue).
		started := &signalWriter{want: "started", ch: make(chan struct{})}
		resize := make(chan api.TerminalSize, 1)
		resize <- api.TerminalSize{Height: 7, Width: 77}
		errc := make(chan error, 1)
		go func() {
			_, err := c.Allocations().Exec(cctx, id, "main", true, []string{"/bin/sh", "-c",
				`until [ "$(stty size 2>/dev/null)" = "7 77" ]; do sleep 0.05; done; echo started; exec sleep 601`},
				nil, started, nil, resize)
			errc <- err
		}()
		select {
		case <-started.ch:
		case err := <-errc:
			t.Fatalf("exec ended before it started: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("exec did not start within 30s")
		}
		cancel()
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("canceled exec returned %v, want context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("exec did not return within 10s of its context ending")
		}
		var ps string
		defer func() {
			if t.Failed() {
				t.Logf("ps:\n%s", ps)
			}
		}()
		testutil.WaitFor(t, 20*time.Second, "the command killed", func() bool {
			_, ps, _ = execOut(t, c, id, "main", false, nil, "ps")
			return !strings.Contains(ps, "sleep 601")
		})
	})

	t.Run("Nomad's client", func(t *testing.T) {
		nc, err := nomad.NewClient(&nomad.Config{Address: base})
		if err != nil {
			t.Fatal(err)
		}
		var out, errb bytes.Buffer
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		code, err := nc.Allocations().Exec(cctx, &nomad.Allocation{ID: id, NodeID: alloc.NodeID}, "main", false,
			[]string{"/bin/sh", "-c", "read x; echo got $x; exit 4"}, strings.NewReader("nomad\n"), &out, &errb, nil, nil)
		if err != nil || code != 4 || out.String() != "got nomad\n" {
			t.Errorf("exec through Nomad's client: code %d, err %v, output %q; want 4 and \"got nomad\"", code, err, out.String())
		}
		if err := nc.Allocations().Signal(&nomad.Allocation{ID: id, NodeID: alloc.NodeID}, nil, "main", "SIGUSR1"); err != nil {
			t.Errorf("signal through Nomad's client: %v", err)
		}
		waitLogCount(t, c, id, "main", "got-usr1", 1)
	})

	t.Run("signal", func(t *testing.T) {
		if err := c.Allocations().Signal(ctx, id, "main", "USR1"); err != nil {
			t.Fatal(err)
		}
		waitLogCount(t, c, id, "main", "got-usr1", 2)
		tests := []struct {
			body string
			code int
			want string
		}{
			{`{"Task":"main","Signal":"SIGNOPE"}`, http.StatusBadRequest, "unknown signal"},
			{`{"Task":"main"}`, http.StatusBadRequest, "Signal is empty"},
			{`{"Task":"nope","Signal":"SIGUSR1"}`, http.StatusNotFound, `no task "nope"`},
			{`{"Task":`, http.StatusBadRequest, "not valid JSON"},
		}
		for _, tt := range tests {
			resp, body := do(t, "POST", base+"/v1/client/allocation/"+id+"/signal", strings.NewReader(tt.body))
			if resp.StatusCode != tt.code || !strings.Contains(body, tt.want) {
				t.Errorf("signal %s: got %d %q, want %d containing %q", tt.body, resp.StatusCode, body, tt.code, tt.want)
			}
		}
		resp, body := do(t, "PUT", base+"/v1/client/allocation/"+id+"/signal", strings.NewReader(`{"Task":"main","Signal":"SIGWINCH","Extra":1}`))
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Extra") {
			t.Errorf("signal with an unknown field: got %d %q, want 200 with a warning naming it", resp.StatusCode, body)
		}
	})

	t.Run("through a reverse proxy", func(t *testing.T) {
		// The same proxy as localRunner's, in front of the agent.
		target, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		rp := httputil.NewSingleHostReverseProxy(target)
		rp.FlushInterval = -1
		srv := httptest.NewServer(rp)
		defer srv.Close()
		pc, err := api.NewClient(&api.Config{Address: srv.URL})
		if err != nil {
			t.Fatal(err)
		}
		code, out, _ := execOut(t, pc, id, "main", false, strings.NewReader("via proxy\n"), "cat")
		if code != 0 || out != "via proxy\n" {
			t.Errorf("exec through a reverse proxy: code %d, output %q", code, out)
		}
		code, out, _ = execOut(t, pc, id, "main", true, nil, "tty")
		if code != 0 || !strings.HasPrefix(out, "/dev/pts/") {
			t.Errorf("tty exec through a reverse proxy: code %d, output %q", code, out)
		}
	})

	t.Run("through another agent", func(t *testing.T) {
		// A client-only agent on another containerd namespace: it runs
		// nothing of the job and proxies to the agent that does.
		b := startTestAgent(t, &Config{Name: "proxy-test", DataDir: t.TempDir(), BindAddr: "127.0.0.1", Client: &ClientConfig{
			Enabled: new(true), Servers: []string{a.Server().RPCAddr()},
			Containerd: &ContainerdConfig{Address: env.Address, Namespace: env.Namespace + "-b"}}})
		bc := apiClient(t, b)
		waitNodes(t, c, 2)
		code, out, _ := execOut(t, bc, id, "main", false, strings.NewReader("via proxy\n"), "cat")
		if code != 0 || out != "via proxy\n" {
			t.Errorf("exec through a proxying agent: code %d, output %q", code, out)
		}
		code, out, _ = execOut(t, bc, id, "main", true, nil, "tty")
		if code != 0 || !strings.HasPrefix(out, "/dev/pts/") {
			t.Errorf("tty exec through a proxying agent: code %d, output %q", code, out)
		}
		if err := bc.Allocations().Signal(ctx, id, "main", "SIGUSR1"); err != nil {
			t.Errorf("signal through a proxying agent: %v", err)
		}
		waitLogCount(t, c, id, "main", "got-usr1", 3)
		_, err := bc.Allocations().Exec(ctx, id, "nope", false, []string{"true"}, nil, nil, nil, nil)
		if !api.IsNotFound(err) {
			t.Errorf("exec in an unknown task through a proxying agent: %v, want 404", err)
		}
	})

	t.Run("restart", func(t *testing.T) {
		before := alloc.TaskStates["main"]
		if err := c.Allocations().Restart(ctx, id, "main"); err != nil {
			t.Fatal(err)
		}
		var now *structs.Allocation
		testutil.WaitFor(t, 30*time.Second, "task main restarted and running", func() bool {
			var err error
			now, _, err = c.Allocations().Info(ctx, id, nil)
			if err != nil {
				return false
			}
			st := now.TaskStates["main"]
			return st != nil && st.State == "running" && st.Restarts == before.Restarts+1 && st.StartedAt.After(before.StartedAt)
		})
		if now.ClientStatus != structs.AllocClientStatusRunning {
			t.Errorf("allocation is %s after the restart, want running", now.ClientStatus)
		}
		if side := now.TaskStates["side"]; side.Restarts != 0 || side.State != "running" {
			t.Errorf("task side: %+v, want running and never restarted", side)
		}
		code, out, _ := execOut(t, c, id, "main", false, nil, "echo", "back")
		if code != 0 || out != "back\n" {
			t.Errorf("exec after the restart: code %d, output %q", code, out)
		}
		resp, body := do(t, "POST", base+"/v1/client/allocation/"+id+"/restart", strings.NewReader(`{"TaskName":"nope"}`))
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, `no task "nope"`) {
			t.Errorf("restart of an unknown task: got %d %q, want 404", resp.StatusCode, body)
		}
		resp, body = do(t, "POST", base+"/v1/client/allocation/00000000-0000-4000-8000-000000000000/restart", strings.NewReader(`{}`))
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("restart of an unknown allocation: got %d %q, want 404", resp.StatusCode, body)
		}
	})
}

// waitLogCount waits until the task's stdout holds want at least n times.
func waitLogCount(t *testing.T, c *api.Client, allocID, task, want string, n int) {
	t.Helper()
	testutil.WaitFor(t, 20*time.Second, "the task's stdout to show "+want, func() bool {
		body, err := c.Allocations().Logs(context.Background(), allocID, api.LogsOptions{Task: task})
		if err != nil {
			return false
		}
		defer body.Close()
		b, _ := io.ReadAll(body)
		return strings.Count(string(b), want) >= n
	})
}

// signalWriter closes ch once what was written contains want.
type signalWriter struct {
	want string
	ch   chan struct{}
	buf  bytes.Buffer
	once sync.Once
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.ch) })
	}
	return len(p), nil
}

// TestExecFailure: failures after the upgrade get a close code a client
// can map back to a status, and a reason that fits a close message.
func TestExecFailure(t *testing.T) {
	const alloc = "a1b2c3d4-0000-4000-8000-000000000001"
	prefix := `exec in task "` + alloc + `/web": `
	tests := []struct {
		err  error
		code int
		want string
	}{
		{fmt.Errorf("task %q is dead: %w", "web", allocrunner.ErrTaskNotRunning), 4409, `task "web" is dead: task is not running`},
		{errors.New(prefix + `start "nosuch": exec: "nosuch": executable file not found in $PATH`), 4400, `start "nosuch": exec: "nosuch": executable file not found in $PATH`},
		{errors.New(prefix + "wait: connection reset"), 4500, "wait: connection reset"},
	}
	for _, tt := range tests {
		code, msg := execFailure(tt.err, alloc, "web", "nosuch")
		if code != tt.code || msg != tt.want {
			t.Errorf("execFailure(%v) = %d %q, want %d %q", tt.err, code, msg, tt.code, tt.want)
		}
	}
	long := "start: " + strings.Repeat("é", 100) + " the cause"
	if got := closeReason(long); len(got) > maxCloseReason || !strings.HasPrefix(got, "start: ") ||
		!strings.HasSuffix(got, " the cause") || !utf8.ValidString(got) {
		t.Errorf("closeReason of %d bytes = %q (%d bytes), want at most %d valid UTF-8 bytes keeping start and end",
			len(long), got, len(got), maxCloseReason)
	}
}
