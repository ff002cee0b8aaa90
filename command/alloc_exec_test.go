package command

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/structs"
)

// execCall is what the fake agent saw of one exec session.
type execCall struct {
	task, tty string
	command   []string
	stdin     string
	closed    bool // the client closed stdin
}

// execFake is a fake agent that serves the allocation allocID1 (with the
// given tasks) and answers exec over a websocket with respond.
type execFake struct {
	*fakeAgent
	mu    sync.Mutex
	calls []execCall // guarded by mu
}

func newExecFake(t *testing.T, tasks []string, respond func(c execCall) (stdout, stderr string, code int)) *execFake {
	t.Helper()
	f := &execFake{fakeAgent: newFakeAgent(t)}
	var ts []*structs.Task
	for _, n := range tasks {
		ts = append(ts, &structs.Task{Name: n, Driver: "containerd"})
	}
	job := &structs.Job{ID: "web", Name: "web", TaskGroups: []*structs.TaskGroup{{Name: "api", Count: 1, Tasks: ts}}}
	f.json("GET /v1/allocations", 0, fixtureAllocs())
	f.json("GET /v1/allocation/"+allocID1, 3, &structs.Allocation{ID: allocID1, JobID: "web", Job: job, TaskGroup: "api",
		ClientStatus: structs.AllocClientStatusRunning})
	upgrader := websocket.Upgrader{}
	f.handle("GET /v1/client/allocation/{id}/exec", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		c := execCall{task: q.Get("task"), tty: q.Get("tty")}
		if err := json.Unmarshal([]byte(q.Get("command")), &c.command); err != nil {
			http.Error(w, "bad command", http.StatusBadRequest)
			return
		}
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		var stdin bytes.Buffer
		for !c.closed {
			var in api.ExecStreamingInput
			if err := conn.ReadJSON(&in); err != nil {
				t.Errorf("fake agent: read exec input: %v", err)
				return
			}
			if in.Stdin != nil {
				stdin.Write(in.Stdin.Data)
				c.closed = in.Stdin.Close
			}
		}
		c.stdin = stdin.String()
		f.mu.Lock()
		f.calls = append(f.calls, c)
		f.mu.Unlock()
		stdout, stderr, code := respond(c)
		if stdout != "" {
			_ = conn.WriteJSON(&api.ExecStreamingOutput{Stdout: &api.ExecStreamingIOOperation{Data: []byte(stdout)}})
		}
		if stderr != "" {
			_ = conn.WriteJSON(&api.ExecStreamingOutput{Stderr: &api.ExecStreamingIOOperation{Data: []byte(stderr)}})
		}
		_ = conn.WriteJSON(&api.ExecStreamingOutput{Exited: true, Result: &api.ExecStreamingExitResult{ExitCode: code}})
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	})
	return f
}

func (f *execFake) lastCall(t *testing.T) execCall {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		t.Fatal("the fake agent saw no exec session")
	}
	return f.calls[len(f.calls)-1]
}

// runCLIStdin runs the CLI against addr with stdin.
func runCLIStdin(t *testing.T, addr, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, options{stdout: &out, stderr: &errb, stdin: strings.NewReader(stdin),
		env: []string{"SKIFF_ADDR=" + addr}, now: func() time.Time { return fixedNow }})
	return result{out.String(), errb.String(), code}
}

// echoExec answers with the stdin on stdout, "e" on stderr and exit
// code 7.
func echoExec(c execCall) (string, string, int) { return c.stdin, "e", 7 }

func TestAllocExecArguments(t *testing.T) {
	tests := []struct {
		name    string
		tasks   []string
		args    []string
		task    string
		command []string
	}{
		{"one task, none named", []string{"server"}, []string{"a1b2c3d4", "/bin/sh", "-c", "exit 7"}, "server", []string{"/bin/sh", "-c", "exit 7"}},
		{"task as an argument", []string{"web", "sidecar"}, []string{"a1b2c3d4", "sidecar", "ls", "-l"}, "sidecar", []string{"ls", "-l"}},
		{"-task", []string{"web", "sidecar"}, []string{"-task", "web", "a1b2c3d4", "sidecar", "x"}, "web", []string{"sidecar", "x"}},
		{"--task", []string{"web", "sidecar"}, []string{"--task=web", "a1b2c3d4", "ls"}, "web", []string{"ls"}},
		{"a one-word command named like the task", []string{"web"}, []string{"a1b2c3d4", "web"}, "web", []string{"web"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newExecFake(t, tt.tasks, echoExec)
			res := runCLIStdin(t, f.srv.URL, "in", append([]string{"alloc", "exec"}, tt.args...)...)
			if res.code != 7 || res.stdout != "in" || res.stderr != "e" {
				t.Fatalf("got code %d, stdout %q, stderr %q; want 7, \"in\", \"e\"", res.code, res.stdout, res.stderr)
			}
			c := f.lastCall(t)
			if c.task != tt.task || strings.Join(c.command, "|") != strings.Join(tt.command, "|") || c.tty != "false" || !c.closed {
				t.Errorf("agent saw task %q command %q tty %s stdin closed %v; want task %q command %q, tty false, stdin closed",
					c.task, c.command, c.tty, c.closed, tt.task, tt.command)
			}
		})
	}
}

func TestAllocExecFlags(t *testing.T) {
	f := newExecFake(t, []string{"server"}, echoExec)
	// -i=false: the command's stdin is empty, whatever ours holds.
	res := runCLIStdin(t, f.srv.URL, "ignored", "alloc", "exec", "-i=false", "a1b2c3d4", "cat")
	if c := f.lastCall(t); res.code != 7 || c.stdin != "" || !c.closed {
		t.Errorf("-i=false: code %d, agent got stdin %q (closed %v); want 7 and an empty, closed stdin", res.code, c.stdin, c.closed)
	}
	// -t asks for a terminal even though stdin is not one.
	res = runCLIStdin(t, f.srv.URL, "x", "alloc", "exec", "--t", "a1b2c3d4", "tty")
	if c := f.lastCall(t); res.code != 7 || c.tty != "true" {
		t.Errorf("-t: code %d, agent got tty=%s; want true", res.code, c.tty)
	}
}

func TestAllocExecErrors(t *testing.T) {
	f := newExecFake(t, []string{"web", "sidecar"}, echoExec)
	f.handle("GET /v1/allocation/"+allocID2, func(w http.ResponseWriter, r *http.Request) {
		reply(w, 3, &structs.Allocation{ID: allocID2, TaskGroup: "api", TaskStates: map[string]*structs.TaskState{"main": {State: "dead"}}})
	})
	f.handle("GET /v1/client/allocation/"+allocID2+"/exec", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `task "main" of allocation `+allocID2+" is dead; exec needs a running task", http.StatusConflict)
	})
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", []string{"a1b2c3d4"}, "expected the allocation ID and a command"},
		{"several tasks, none named", []string{"a1b2c3d4", "ls"}, "several tasks (sidecar, web)"},
		{"unknown -task", []string{"-task", "db", "a1b2c3d4", "ls"}, `no task "db"; its tasks are: sidecar, web`},
		{"unknown allocation", []string{"ffff0000", "ls"}, `no allocation with ID or prefix "ffff0000"`},
		{"agent refuses", []string{"a1b2c3d5", "ls"}, "is dead; exec needs a running task"},
		{"bad flag", []string{"-x", "a1b2c3d4", "ls"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runCLIStdin(t, f.srv.URL, "", append([]string{"alloc", "exec"}, tt.args...)...)
			if res.code != 1 || !strings.Contains(res.stderr, tt.want) || res.stdout != "" {
				t.Errorf("got code %d, stdout %q, stderr %q; want 1 and stderr containing %q", res.code, res.stdout, res.stderr, tt.want)
			}
		})
	}
}

// TestAllocExecFailureAfterStart: a failure the agent reports by closing
// the websocket (code 4000 + status) is printed with its message.
func TestAllocExecFailureAfterStart(t *testing.T) {
	f := newFakeAgent(t)
	f.json("GET /v1/allocation/"+allocID1, 3, &structs.Allocation{ID: allocID1, TaskGroup: "api",
		TaskStates: map[string]*structs.TaskState{"server": {State: "running"}}})
	upgrader := websocket.Upgrader{}
	f.handle("GET /v1/client/allocation/{id}/exec", func(w http.ResponseWriter, r *http.Request) {
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(api.CloseCodeHTTP+500, "the runtime exploded"), time.Now().Add(time.Second))
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	})
	res := runCLIStdin(t, f.srv.URL, "", "alloc", "exec", allocID1, "ls")
	if res.code != 1 || !strings.Contains(res.stderr, "the runtime exploded (HTTP 500)") {
		t.Errorf("got code %d, stderr %q; want 1 and the agent's message", res.code, res.stderr)
	}
}

// TestExecURL: the websocket URL derives from the address (https: wss,
// with the TLS settings of the client) and carries the token header.
func TestExecURL(t *testing.T) {
	f := newExecFake(t, []string{"server"}, echoExec)
	tsrv := httptest.NewTLSServer(f.srv.Config.Handler)
	defer tsrv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tsrv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, env := range [][]string{
		{"SKIFF_ADDR=" + f.srv.URL},
		{"SKIFF_ADDR=" + tsrv.URL, "SKIFF_CACERT=" + ca},
	} {
		res := runCLIEnv(t, env, "alloc", "exec", "-token", "s3cret", allocID1, "true")
		if res.code != 7 {
			t.Fatalf("%s: code %d, stderr %q", env[0], res.code, res.stderr)
		}
	}
	reqs := f.requests("GET", "/v1/client/allocation/"+allocID1+"/exec")
	if len(reqs) != 2 {
		t.Fatalf("%d exec requests, want 2", len(reqs))
	}
	for i, r := range reqs {
		if r.Header.Get("X-Nomad-Token") != "s3cret" || r.Header.Get("Upgrade") != "websocket" || (r.TLS != nil) != (i == 1) {
			t.Errorf("request %d: token %q, upgrade %q, TLS %v; want the token on a websocket upgrade, TLS for https",
				i, r.Header.Get("X-Nomad-Token"), r.Header.Get("Upgrade"), r.TLS != nil)
		}
		if q, _ := url.ParseQuery(r.URL.RawQuery); q.Get("command") != `["true"]` {
			t.Errorf("request %d: command parameter %q, want a JSON array", i, q.Get("command"))
		}
	}
}
