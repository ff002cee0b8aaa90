package containerd_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/skiffhq/skiff/client/driver"
	"github.com/skiffhq/skiff/client/driver/containerd"
	"github.com/skiffhq/skiff/internal/testcontainerd"
	"github.com/skiffhq/skiff/internal/testutil"
)

// loggerArg makes this test binary act as the log process: containerd's
// shim runs "<test binary> skiff-test-logmon <log spec>".
const loggerArg = "skiff-test-logmon"

func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == loggerArg {
		os.Exit(containerd.LoggerMain(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// harness is one private containerd plus a driver talking to it.
type harness struct {
	env     *testcontainerd.Env
	d       *containerd.Driver
	archive string // oci-archive:... reference of the busybox image
}

func newHarness(t *testing.T, mutate func(*containerd.Config)) *harness {
	t.Helper()
	h := &harness{env: testcontainerd.Start(t)}
	h.archive = "oci-archive:" + testcontainerd.BusyboxArchive(t)
	h.d = h.newDriver(t, mutate)
	return h
}

// newDriver returns a new Driver on the harness's daemon, closed at cleanup.
func (h *harness) newDriver(t *testing.T, mutate func(*containerd.Config)) *containerd.Driver {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := containerd.Config{
		Address:      h.env.Address,
		Namespace:    h.env.Namespace,
		LoggerBinary: exe,
		LoggerArgs:   []string{loggerArg},
		Logger:       hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: testWriter{t}}),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	d, err := containerd.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// taskConfig returns a task with its own directories under a temp dir.
func (h *harness) taskConfig(t *testing.T, name string, cfg map[string]any) *driver.TaskConfig {
	t.Helper()
	dir := t.TempDir()
	alloc := "a1b2c3d4-0000-4000-8000-" + name[:min(len(name), 12)]
	if _, ok := cfg["image"]; !ok {
		cfg["image"] = h.archive
	}
	tc := &driver.TaskConfig{
		ID:               alloc + "/" + name,
		AllocID:          alloc,
		JobID:            "job",
		GroupName:        "group",
		TaskName:         name,
		Config:           cfg,
		Env:              map[string]string{"SKIFF_TASK_NAME": name},
		CPUMHz:           100,
		MemoryMB:         64,
		AllocDir:         filepath.Join(dir, "alloc"),
		TaskLocalDir:     filepath.Join(dir, "local"),
		TaskSecretsDir:   filepath.Join(dir, "secrets"),
		LogDir:           filepath.Join(dir, "alloc", "logs"),
		LogMaxFiles:      3,
		LogMaxFileSizeMB: 1,
	}
	for _, d := range []string{tc.AllocDir, tc.TaskLocalDir, tc.TaskSecretsDir, tc.LogDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return tc
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitExit waits for the task's exit result, at most d.
func waitExit(t *testing.T, d *containerd.Driver, id string, timeout time.Duration) *driver.ExitResult {
	t.Helper()
	ch, err := d.WaitTask(ctxT(t, 10*time.Second), id)
	if err != nil {
		t.Fatalf("WaitTask: %v", err)
	}
	select {
	case res := <-ch:
		return res
	case <-time.After(timeout):
		t.Fatalf("task %s did not exit within %s", id, timeout)
		return nil
	}
}

// start starts tc and fails the test on error.
func (h *harness) start(t *testing.T, d *containerd.Driver, tc *driver.TaskConfig) *driver.TaskHandle {
	t.Helper()
	hd, err := d.StartTask(ctxT(t, 60*time.Second), tc)
	if err != nil {
		t.Fatalf("StartTask(%s): %v", tc.ID, err)
	}
	return hd
}

// readLog returns the concatenated files of one stream of a task's log.
func readLog(t *testing.T, tc *driver.TaskConfig, stream string) string {
	t.Helper()
	var out []byte
	for i := 0; ; i++ {
		b, err := os.ReadFile(filepath.Join(tc.LogDir, fmt.Sprintf("%s.%s.%d", tc.TaskName, stream, i)))
		if errors.Is(err, os.ErrNotExist) {
			return string(out)
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
}

// waitLog waits until the task's stdout contains want.
func waitLog(t *testing.T, tc *driver.TaskConfig, want string) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, fmt.Sprintf("%q in the stdout of %s", want, tc.TaskName), func() bool {
		return strings.Contains(readLog(t, tc, "stdout"), want)
	})
}

// sh runs script with /bin/sh -c.
func sh(script string) map[string]any {
	return map[string]any{"command": "/bin/sh", "args": []any{"-c", script}}
}

// readyScript prints "ready" and then waits for SIGTERM, on which it
// exits 0 at once (wait, unlike a foreground sleep, is interrupted by a
// trapped signal).
const readyScript = `trap "exit 0" TERM; echo ready; sleep 1000 & wait`

// testWriter sends log output to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
