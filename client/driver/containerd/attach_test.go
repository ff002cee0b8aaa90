package containerd_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/client/driver"
	"github.com/skiffhq/skiff/client/driver/containerd"
	"github.com/skiffhq/skiff/internal/ociimage"
	"github.com/skiffhq/skiff/internal/testcontainerd"
	"github.com/skiffhq/skiff/internal/testutil"
)

func TestExec(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	tc := h.taskConfig(t, "exec", sh(readyScript))
	tc.Config["env"] = map[string]any{"FROM_TASK": "yes"}
	h.start(t, h.d, tc)
	waitLog(t, tc, "ready")

	for _, tt := range []struct {
		name       string
		opts       driver.ExecOptions
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{
			name:       "output and exit code",
			opts:       driver.ExecOptions{Command: []string{"/bin/sh", "-c", "echo out $FROM_TASK; echo err >&2; exit 4"}},
			wantCode:   4,
			wantStdout: "out yes\n",
			wantStderr: "err\n",
		},
		{
			name:       "stdin",
			opts:       driver.ExecOptions{Command: []string{"cat"}, Stdin: strings.NewReader("from stdin")},
			wantStdout: "from stdin",
		},
		{
			name:       "tty",
			opts:       driver.ExecOptions{Command: []string{"/bin/sh", "-c", "tty; echo err >&2; exit 2"}, TTY: true},
			wantCode:   2,
			wantStdout: "/dev/pts/",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			opts := tt.opts
			opts.Stdout, opts.Stderr = &stdout, &stderr
			if opts.TTY {
				resize := make(chan driver.TerminalSize, 1)
				resize <- driver.TerminalSize{Width: 100, Height: 30}
				opts.Resize = resize
			}
			code, err := h.d.ExecTask(ctxT(t, 20*time.Second), tc.ID, &opts)
			if err != nil {
				t.Fatalf("ExecTask: %v", err)
			}
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d", code, tt.wantCode)
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout %q, want %q", stdout.String(), tt.wantStdout)
			}
			if opts.TTY && !strings.Contains(stdout.String(), "err") {
				t.Errorf("stdout %q: with a TTY stderr should be merged into it", stdout.String())
			}
			if stderr.String() != tt.wantStderr {
				t.Errorf("stderr %q, want %q", stderr.String(), tt.wantStderr)
			}
		})
	}

	t.Run("context ends", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := h.d.ExecTask(ctx, tc.ID, &driver.ExecOptions{Command: []string{"sleep", "1000"}})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("ExecTask = %v, want deadline exceeded", err)
		}
		if took := time.Since(start); took > 15*time.Second {
			t.Errorf("ExecTask returned after %s", took)
		}
	})
}

func TestPull(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	registry := testcontainerd.StartRegistry(t)
	if err := ociimage.Push(ctxT(t, 30*time.Second), testcontainerd.BusyboxArchive(t), registry, "skiff/busybox", "1.0"); err != nil {
		t.Fatalf("push: %v", err)
	}
	if err := ociimage.Push(ctxT(t, 30*time.Second), testcontainerd.BusyboxArchive(t), registry, "skiff/busybox", "2.0"); err != nil {
		t.Fatalf("push: %v", err)
	}
	insecure := h.newDriver(t, func(c *containerd.Config) { c.InsecureRegistries = []string{registry} })

	t.Run("insecure registry", func(t *testing.T) {
		tc := h.taskConfig(t, "pull", map[string]any{"image": registry + "/skiff/busybox:1.0", "command": "echo", "args": []any{"pulled"}})
		h.start(t, insecure, tc)
		if res := waitExit(t, insecure, tc.ID, 10*time.Second); !res.Successful() {
			t.Fatalf("exit %+v", *res)
		}
		waitLog(t, tc, "pulled")
	})

	t.Run("loopback registry without insecure config", func(t *testing.T) {
		tc := h.taskConfig(t, "pull-lo", map[string]any{"image": registry + "/skiff/busybox:2.0", "command": "true"})
		h.start(t, h.d, tc)
		if res := waitExit(t, h.d, tc.ID, 10*time.Second); !res.Successful() {
			t.Fatalf("exit %+v", *res)
		}
	})

	t.Run("present image is not pulled again", func(t *testing.T) {
		deleteManifest(t, registry, "skiff/busybox", "1.0")
		tc := h.taskConfig(t, "pull-again", map[string]any{"image": registry + "/skiff/busybox:1.0", "command": "true"})
		h.start(t, insecure, tc)
		if res := waitExit(t, insecure, tc.ID, 10*time.Second); !res.Successful() {
			t.Fatalf("exit %+v", *res)
		}
	})

	t.Run("not found", func(t *testing.T) {
		tc := h.taskConfig(t, "pull-404", map[string]any{"image": registry + "/skiff/nope:1.0"})
		_, err := insecure.StartTask(ctxT(t, 30*time.Second), tc)
		t.Log(err)
		if err == nil || !strings.Contains(err.Error(), "not found in registry; check the image name and tag") {
			t.Errorf("StartTask = %v, want a not-found error", err)
		}
	})

	t.Run("registry down", func(t *testing.T) {
		down := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
		insecureDown := h.newDriver(t, func(c *containerd.Config) { c.InsecureRegistries = []string{down} })
		for _, d := range []*containerd.Driver{h.d, insecureDown} {
			tc := h.taskConfig(t, "pull-down", map[string]any{"image": down + "/skiff/busybox:1.0"})
			start := time.Now()
			_, err := d.StartTask(ctxT(t, 60*time.Second), tc)
			t.Log(err)
			if err == nil || !strings.Contains(err.Error(), "registry "+down+" is unreachable") {
				t.Errorf("StartTask = %v, want an unreachable-registry error", err)
			}
			if took := time.Since(start); took > 20*time.Second {
				t.Errorf("failing pull took %s", took)
			}
		}
	})

	t.Run("bad archive path", func(t *testing.T) {
		tc := h.taskConfig(t, "no-archive", map[string]any{"image": "oci-archive:/nonexistent/image.tar"})
		_, err := h.d.StartTask(ctxT(t, 30*time.Second), tc)
		if err == nil || !strings.Contains(err.Error(), "check the path") {
			t.Errorf("StartTask = %v, want a missing-archive error", err)
		}
	})
}

// deleteManifest removes repo:tag's manifest from the registry, so only a
// copy already in containerd can still run it.
func deleteManifest(t *testing.T, registry, repo, tag string) {
	t.Helper()
	base := "http://" + registry + "/v2/" + repo + "/manifests/"
	req, _ := http.NewRequest(http.MethodHead, base+tag, nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	dgst := resp.Header.Get("Docker-Content-Digest")
	req, _ = http.NewRequest(http.MethodDelete, base+dgst, nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("delete manifest %s: %s", dgst, resp.Status)
	}
}

func TestRecover(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)

	running := h.taskConfig(t, "recover-run", sh(readyScript))
	hRunning := h.start(t, h.d, running)
	// Exits 7 once /local/exit exists, which the test creates while no
	// driver watches.
	unwatched := h.taskConfig(t, "recover-exit", sh(`echo ready; while [ ! -e /local/exit ]; do sleep 0.05; done; exit 7`))
	hUnwatched := h.start(t, h.d, unwatched)
	waitLog(t, running, "ready")
	waitLog(t, unwatched, "ready")
	if err := h.d.Close(); err != nil { // the agent dies
		t.Fatal(err)
	}

	if err := os.WriteFile(filepath.Join(unwatched.TaskLocalDir, "exit"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	d2 := h.newDriver(t, nil)
	testutil.WaitFor(t, 10*time.Second, "the unwatched task to exit", func() bool {
		return taskStatus(t, d2, unwatched.ID) == "stopped"
	})

	for _, hd := range []*driver.TaskHandle{hRunning, hUnwatched} {
		if err := d2.RecoverTask(ctxT(t, 10*time.Second), hd); err != nil {
			t.Fatalf("RecoverTask(%s): %v", hd.ID, err)
		}
	}
	if res := waitExit(t, d2, unwatched.ID, 10*time.Second); res.ExitCode != 7 {
		t.Errorf("unwatched task: exit %+v, want code 7", *res)
	}
	if err := d2.StopTask(ctxT(t, 30*time.Second), running.ID, 10*time.Second, ""); err != nil {
		t.Fatalf("StopTask after recovery: %v", err)
	}
	if res := waitExit(t, d2, running.ID, 10*time.Second); !res.Successful() {
		t.Errorf("recovered task: exit %+v, want success", *res)
	}

	gone := &driver.TaskHandle{ID: "nope/none"}
	if err := d2.RecoverTask(ctxT(t, 10*time.Second), gone); !errors.Is(err, driver.ErrTaskNotFound) {
		t.Errorf("RecoverTask of an unknown task = %v, want ErrTaskNotFound", err)
	}
}

// taskStatus returns the containerd status ListTasks reports for id.
func taskStatus(t *testing.T, d *containerd.Driver, id string) string {
	t.Helper()
	handles, err := d.ListTasks(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatalf("ListTasks: %v", err)
	}
	for _, hd := range handles {
		if hd.ID == id {
			return hd.DriverState["status"]
		}
	}
	return ""
}

func TestContainerdRestart(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	tc := h.taskConfig(t, "restart", sh(`trap "exit 0" TERM; echo ready; while [ ! -e /local/ping ]; do sleep 0.05; done; echo pong; sleep 1000 & wait`))
	hd := h.start(t, h.d, tc)
	waitLog(t, tc, "ready")
	oldCh, err := h.d.WaitTask(ctxT(t, 10*time.Second), tc.ID)
	if err != nil {
		t.Fatal(err)
	}

	h.env.Restart()
	// The task ran on while containerd was away, and its logger too.
	if err := os.WriteFile(filepath.Join(tc.TaskLocalDir, "ping"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitLog(t, tc, "pong")

	d2 := h.newDriver(t, nil)
	if err := d2.RecoverTask(ctxT(t, 10*time.Second), hd); err != nil {
		t.Fatalf("RecoverTask after containerd restart: %v", err)
	}
	var out bytes.Buffer
	code, err := d2.ExecTask(ctxT(t, 20*time.Second), tc.ID, &driver.ExecOptions{Command: []string{"echo", "alive"}, Stdout: &out})
	if err != nil || code != 0 || out.String() != "alive\n" {
		t.Fatalf("exec after restart: code %d, err %v, out %q", code, err, out.String())
	}
	if err := d2.StopTask(ctxT(t, 30*time.Second), tc.ID, 10*time.Second, ""); err != nil {
		t.Fatalf("StopTask: %v", err)
	}
	if res := waitExit(t, d2, tc.ID, 10*time.Second); !res.Successful() {
		t.Errorf("exit %+v, want success", *res)
	}
	// The first driver reconnects on its own and sees the exit as well.
	select {
	case res := <-oldCh:
		if !res.Successful() {
			t.Errorf("first driver: exit %+v, want success", *res)
		}
	case <-time.After(15 * time.Second):
		t.Error("first driver never saw the exit after containerd restarted")
	}
}

// TestHostNetwork checks that tasks share the host's network: a server in
// the task answers on the host's loopback.
func TestHostNetwork(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	port := testutil.FreePort(t)
	tc := h.taskConfig(t, "httpd", map[string]any{
		"command": "httpd",
		"args":    []any{"-f", "-p", fmt.Sprintf("127.0.0.1:%d", port), "-h", "/local"},
	})
	if err := os.WriteFile(filepath.Join(tc.TaskLocalDir, "index.html"), []byte("hello from the task\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.start(t, h.d, tc)
	var body string
	hc := &http.Client{Timeout: time.Second}
	testutil.WaitFor(t, 10*time.Second, "httpd to answer on the host", func() bool {
		resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == http.StatusOK
	})
	if body != "hello from the task\n" {
		t.Errorf("body %q", body)
	}
	// httpd as PID 1 has no SIGTERM handler, so the kernel drops SIGTERM:
	// destroy with force instead of waiting for a stop timeout.
	if err := h.d.DestroyTask(ctxT(t, 30*time.Second), tc.ID, true); err != nil {
		t.Fatal(err)
	}
}

func TestPullAuth(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	const user, pass = "skiff", "s3cret"
	registry := testcontainerd.StartRegistryAuth(t, user, pass)
	for _, tag := range []string{"node", "task"} {
		err := ociimage.PushWith(ctxT(t, 30*time.Second), testcontainerd.BusyboxArchive(t), registry, "private/busybox", tag,
			ociimage.PushOptions{Username: user, Password: pass})
		if err != nil {
			t.Fatalf("push: %v", err)
		}
	}
	image := func(tag string) string { return registry + "/private/busybox:" + tag }

	tc := h.taskConfig(t, "auth-none", map[string]any{"image": image("node"), "command": "true"})
	_, err := h.d.StartTask(ctxT(t, 30*time.Second), tc)
	t.Log(err)
	if err == nil || !strings.Contains(err.Error(), "refused access; check the credentials") {
		t.Errorf("pull without credentials = %v, want an access error", err)
	}

	wrong := h.newDriver(t, func(c *containerd.Config) {
		c.Auth = map[string]containerd.Credentials{registry: {Username: user, Password: "wrong"}}
	})
	if _, err := wrong.StartTask(ctxT(t, 30*time.Second), tc); err == nil || !strings.Contains(err.Error(), "refused access") {
		t.Errorf("pull with a wrong password = %v, want an access error", err)
	}

	node := h.newDriver(t, func(c *containerd.Config) {
		c.Auth = map[string]containerd.Credentials{registry: {Username: user, Password: pass}}
	})
	h.start(t, node, tc)
	if res := waitExit(t, node, tc.ID, 10*time.Second); !res.Successful() {
		t.Errorf("exit %+v", *res)
	}

	tc = h.taskConfig(t, "auth-task", map[string]any{
		"image":   image("task"),
		"command": "true",
		"auth":    []map[string]any{{"username": user, "password": pass}},
	})
	h.start(t, h.d, tc)
	if res := waitExit(t, h.d, tc.ID, 10*time.Second); !res.Successful() {
		t.Errorf("exit %+v", *res)
	}
}
