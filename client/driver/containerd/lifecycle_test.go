package containerd_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/skiffhq/skiff/client/driver"
	"github.com/skiffhq/skiff/client/driver/containerd"
	"github.com/skiffhq/skiff/internal/testutil"
)

func TestFingerprint(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	fp := h.d.Fingerprint(ctxT(t, 5*time.Second))
	if !fp.Healthy {
		t.Fatalf("Healthy = false (%s), want true", fp.Description)
	}
	for _, k := range []string{"driver.containerd", "driver.docker"} {
		if got := fp.Attributes[k]; got != "1" {
			t.Errorf("attribute %s = %q, want 1", k, got)
		}
	}
	if fp.Attributes["driver.containerd.version"] == "" || fp.Attributes["driver.containerd.revision"] == "" {
		t.Errorf("version attributes missing: %v", fp.Attributes)
	}

	sock := filepath.Join(t.TempDir(), "nothing.sock")
	down, err := containerd.New(containerd.Config{Address: sock})
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	start := time.Now()
	fp = down.Fingerprint(ctxT(t, 10*time.Second))
	if fp.Healthy {
		t.Fatal("Healthy = true for a socket nobody listens on")
	}
	if !strings.Contains(fp.Description, sock) || !strings.Contains(fp.Description, "not answering") {
		t.Errorf("description %q should name the socket and say it is not answering", fp.Description)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("fingerprint of a dead socket took %s, want a short timeout", took)
	}
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	for _, tt := range []struct {
		name   string
		script string
		want   driver.ExitResult
	}{
		{"zero", "exit 0", driver.ExitResult{}},
		{"three", "exit 3", driver.ExitResult{ExitCode: 3}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tc := h.taskConfig(t, "exit-"+tt.name, sh(tt.script))
			h.start(t, h.d, tc)
			res := waitExit(t, h.d, tc.ID, 10*time.Second)
			if res.ExitCode != tt.want.ExitCode || res.Signal != tt.want.Signal || res.Err != nil {
				t.Errorf("got %+v, want %+v", *res, tt.want)
			}
			if err := h.d.DestroyTask(ctxT(t, 10*time.Second), tc.ID, false); err != nil {
				t.Errorf("DestroyTask: %v", err)
			}
		})
	}
}

// TestSpec checks that the task config reaches the container.
func TestSpec(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	script := `echo "env=$FOO,$SKIFF_TASK_NAME"; echo "pwd=$(pwd)"; echo "uid=$(id -u)"; echo "host=$(hostname)";
		ls -d /alloc /local /secrets; grep CapEff /proc/self/status; touch /rootfs-file 2>/dev/null || echo readonly;
		echo "shares=$(cat /sys/fs/cgroup/cpu/cpu.shares 2>/dev/null || cat /sys/fs/cgroup/cpu.weight)";
		echo "limit=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)";
		echo "soft=$(cat /sys/fs/cgroup/memory/memory.soft_limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.low)";
		echo "args=$*"`
	tc := h.taskConfig(t, "spec", map[string]any{
		"entrypoint":      []any{"/bin/sh", "-c", script, "sh"},
		"args":            []any{"a", "b"},
		"env":             map[string]any{"FOO": "bar"},
		"work_dir":        "/tmp",
		"user":            "65534",
		"hostname":        "box",
		"readonly_rootfs": true,
		"cap_drop":        []any{"ALL"},
		"labels":          []any{map[string]any{"team": "web"}},
	})
	tc.CPUMHz, tc.MemoryMB, tc.MemoryMaxMB = 250, 64, 128
	h.start(t, h.d, tc)
	if res := waitExit(t, h.d, tc.ID, 10*time.Second); !res.Successful() {
		t.Fatalf("exit %+v; stderr: %s", *res, readLog(t, tc, "stderr"))
	}
	out := readLog(t, tc, "stdout")
	for _, want := range []string{"env=bar,spec", "pwd=/tmp", "uid=65534", "host=box", "/alloc\n/local\n/secrets",
		"CapEff:\t0000000000000000", "readonly", "args=a b", "limit=134217728", "soft=67108864"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	// cgroup v1 shows the shares; v2 the weight they convert to.
	if !strings.Contains(out, "shares=250\n") && !strings.Contains(out, "shares=10\n") {
		t.Errorf("stdout lacks CPU shares 250 (or weight 10 on cgroup v2):\n%s", out)
	}

	labels := containerLabels(t, h, containerd.ContainerID(tc.ID))
	for k, v := range map[string]string{"team": "web", "skiff.task_id": tc.ID, "skiff.alloc_id": tc.AllocID,
		"skiff.task": "spec", "skiff.job": "job", "skiff.group": "group"} {
		if labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, labels[k], v)
		}
	}
}

// containerLabels reads a container's labels straight from containerd.
func containerLabels(t *testing.T, h *harness, id string) map[string]string {
	t.Helper()
	c, err := client.New(h.env.Address, client.WithDefaultNamespace(h.env.Namespace))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := namespaces.WithNamespace(ctxT(t, 10*time.Second), h.env.Namespace)
	ctr, err := c.LoadContainer(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	labels, err := ctr.Labels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return labels
}

func TestLogsRotate(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	// 2.5 MiB on stdout with 1 MiB files: .0 .1 .2, of which max files 2
	// keeps .1 and .2.
	tc := h.taskConfig(t, "logs", sh(`yes 0123456789abcdef | head -c 2621440; echo to-stderr >&2`))
	tc.LogMaxFiles = 2
	h.start(t, h.d, tc)
	if res := waitExit(t, h.d, tc.ID, 20*time.Second); !res.Successful() {
		t.Fatalf("exit %+v", *res)
	}
	// The logger writes asynchronously; wait until the last file is complete.
	last := filepath.Join(tc.LogDir, "logs.stdout.2")
	testutil.WaitFor(t, 10*time.Second, "last log file complete", func() bool {
		fi, err := os.Stat(last)
		return err == nil && fi.Size() == 512<<10
	})
	if _, err := os.Stat(filepath.Join(tc.LogDir, "logs.stdout.0")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("logs.stdout.0 should have been deleted (max files 2), stat: %v", err)
	}
	fi, err := os.Stat(filepath.Join(tc.LogDir, "logs.stdout.1"))
	if err != nil || fi.Size() != 1<<20 {
		t.Errorf("logs.stdout.1: %v, size %d; want a full 1 MiB file", err, sizeOf(fi))
	}
	testutil.WaitFor(t, 10*time.Second, "stderr in its own file", func() bool {
		b, _ := os.ReadFile(filepath.Join(tc.LogDir, "logs.stderr.0"))
		return string(b) == "to-stderr\n"
	})
}

func sizeOf(fi os.FileInfo) int64 {
	if fi == nil {
		return -1
	}
	return fi.Size()
}

func TestStop(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)

	t.Run("well-behaved task stops at once", func(t *testing.T) {
		tc := h.taskConfig(t, "stop-fast", sh(readyScript))
		h.start(t, h.d, tc)
		waitLog(t, tc, "ready")
		start := time.Now()
		if err := h.d.StopTask(ctxT(t, 30*time.Second), tc.ID, 10*time.Second, "SIGTERM"); err != nil {
			t.Fatalf("StopTask: %v", err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("StopTask took %s; the task exits on SIGTERM, so it should return well before the 10s timeout", took)
		}
		if res := waitExit(t, h.d, tc.ID, 5*time.Second); !res.Successful() {
			t.Errorf("exit %+v, want success", *res)
		}
	})

	t.Run("ignored signal escalates to SIGKILL", func(t *testing.T) {
		tc := h.taskConfig(t, "stop-slow", sh(`trap "" TERM; echo ready; while true; do sleep 1; done`))
		h.start(t, h.d, tc)
		waitLog(t, tc, "ready")
		const timeout = 2 * time.Second
		start := time.Now()
		if err := h.d.StopTask(ctxT(t, 30*time.Second), tc.ID, timeout, ""); err != nil {
			t.Fatalf("StopTask: %v", err)
		}
		took := time.Since(start)
		if took < timeout || took > timeout+5*time.Second {
			t.Errorf("StopTask took %s, want about the %s timeout", took, timeout)
		}
		if res := waitExit(t, h.d, tc.ID, 5*time.Second); res.Signal != int(syscall.SIGKILL) {
			t.Errorf("exit %+v, want Signal 9", *res)
		}
	})

	t.Run("custom signal", func(t *testing.T) {
		tc := h.taskConfig(t, "stop-int", sh(`trap "exit 4" INT; echo ready; sleep 1000 & wait`))
		h.start(t, h.d, tc)
		waitLog(t, tc, "ready")
		if err := h.d.StopTask(ctxT(t, 30*time.Second), tc.ID, 10*time.Second, "SIGINT"); err != nil {
			t.Fatalf("StopTask: %v", err)
		}
		if res := waitExit(t, h.d, tc.ID, 5*time.Second); res.ExitCode != 4 {
			t.Errorf("exit %+v, want code 4 from the INT trap", *res)
		}
	})

	t.Run("signal task", func(t *testing.T) {
		tc := h.taskConfig(t, "signal", sh(`trap "echo got-usr1; exit 5" USR1; echo ready; sleep 1000 & wait`))
		h.start(t, h.d, tc)
		waitLog(t, tc, "ready")
		if err := h.d.SignalTask(ctxT(t, 10*time.Second), tc.ID, "SIGUSR1"); err != nil {
			t.Fatalf("SignalTask: %v", err)
		}
		if res := waitExit(t, h.d, tc.ID, 5*time.Second); res.ExitCode != 5 {
			t.Errorf("exit %+v, want code 5", *res)
		}
		if err := h.d.SignalTask(ctxT(t, 10*time.Second), tc.ID, "SIGUSR1"); err == nil {
			t.Error("SignalTask on an exited task succeeded, want an error")
		}
		if err := h.d.SignalTask(ctxT(t, 10*time.Second), tc.ID, "SIGNOPE"); err == nil || !strings.Contains(err.Error(), "unknown signal") {
			t.Errorf("SignalTask(SIGNOPE) = %v, want unknown signal", err)
		}
	})
}

func TestDestroy(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	tc := h.taskConfig(t, "destroy", sh(readyScript))
	h.start(t, h.d, tc)
	waitLog(t, tc, "ready")
	if err := h.d.DestroyTask(ctxT(t, 10*time.Second), tc.ID, false); err == nil {
		t.Fatal("DestroyTask(force=false) of a running task succeeded, want an error")
	}
	ch, err := h.d.WaitTask(ctxT(t, 10*time.Second), tc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.d.DestroyTask(ctxT(t, 30*time.Second), tc.ID, true); err != nil {
		t.Fatalf("DestroyTask(force): %v", err)
	}
	select {
	case res := <-ch:
		if res.Signal != int(syscall.SIGKILL) && res.Err == nil {
			t.Errorf("exit %+v after forced destroy, want SIGKILL or an error", *res)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitTask channel silent after DestroyTask")
	}
	if err := h.d.DestroyTask(ctxT(t, 10*time.Second), tc.ID, true); !errors.Is(err, driver.ErrTaskNotFound) {
		t.Errorf("second DestroyTask = %v, want ErrTaskNotFound", err)
	}
	if _, err := h.d.WaitTask(ctxT(t, 10*time.Second), tc.ID); !errors.Is(err, driver.ErrTaskNotFound) {
		t.Errorf("WaitTask after destroy = %v, want ErrTaskNotFound", err)
	}
	handles, err := h.d.ListTasks(ctxT(t, 10*time.Second))
	if err != nil || len(handles) != 0 {
		t.Errorf("ListTasks after destroy = %v, %v; want none", handles, err)
	}
}

func TestStartTwice(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	tc := h.taskConfig(t, "twice", sh(readyScript))
	h.start(t, h.d, tc)
	waitLog(t, tc, "ready")
	if _, err := h.d.StartTask(ctxT(t, 30*time.Second), tc); err == nil || !strings.Contains(err.Error(), "already runs") {
		t.Fatalf("second StartTask of a running task = %v, want an 'already runs' error", err)
	}
	if err := h.d.StopTask(ctxT(t, 30*time.Second), tc.ID, 10*time.Second, ""); err != nil {
		t.Fatal(err)
	}
	// The stopped container is left over (no DestroyTask): a new start
	// replaces it.
	tc.Config = sh("exit 6")
	tc.Config["image"] = h.archive
	h.start(t, h.d, tc)
	if res := waitExit(t, h.d, tc.ID, 10*time.Second); res.ExitCode != 6 {
		t.Errorf("exit %+v of the restarted task, want code 6", *res)
	}
}

func TestPolicy(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	hostDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(hostDir, "data"), []byte("from-host"), 0o644); err != nil {
		t.Fatal(err)
	}
	mounts := []map[string]any{{"type": "bind", "source": hostDir, "target": "/data", "readonly": true}}

	tc := h.taskConfig(t, "priv", map[string]any{"command": "true", "privileged": true})
	if _, err := h.d.StartTask(ctxT(t, 30*time.Second), tc); err == nil || !strings.Contains(err.Error(), "privileged = true is not allowed") {
		t.Errorf("privileged task: %v, want a not-allowed error", err)
	}
	tc = h.taskConfig(t, "mount", map[string]any{"command": "true", "mount": mounts})
	if _, err := h.d.StartTask(ctxT(t, 30*time.Second), tc); err == nil || !strings.Contains(err.Error(), "not allowed") {
		t.Errorf("host mount: %v, want a not-allowed error", err)
	}

	allowed := h.newDriver(t, func(c *containerd.Config) { c.AllowHostMounts, c.AllowPrivileged = true, true })
	cfg := sh(`cat /data/data; touch /data/x 2>/dev/null || echo " ro"`)
	cfg["mounts"] = mounts
	cfg["privileged"] = true
	tc = h.taskConfig(t, "mount-ok", cfg)
	h.start(t, allowed, tc)
	if res := waitExit(t, allowed, tc.ID, 10*time.Second); !res.Successful() {
		t.Fatalf("exit %+v: %s", *res, readLog(t, tc, "stderr"))
	}
	waitLog(t, tc, "from-host ro") // the logger may still be copying after the exit
	if got := readLog(t, tc, "stdout"); got != "from-host ro\n" {
		t.Errorf("stdout %q, want the host file and a read-only mount", got)
	}
}

func TestStatsAndList(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	var tcs []*driver.TaskConfig
	for _, name := range []string{"list-a", "list-b"} {
		tc := h.taskConfig(t, name, sh(readyScript))
		h.start(t, h.d, tc)
		waitLog(t, tc, "ready")
		tcs = append(tcs, tc)
	}
	st, err := h.d.TaskStats(ctxT(t, 10*time.Second), tcs[0].ID)
	if err != nil {
		t.Fatalf("TaskStats: %v", err)
	}
	if st.MemoryUsage == 0 || st.CPUTotalNanos == 0 || st.Timestamp.IsZero() {
		t.Errorf("stats %+v: want non-zero memory usage, CPU time and timestamp", *st)
	}

	handles, err := h.d.ListTasks(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatalf("ListTasks: %v", err)
	}
	got := map[string]*driver.TaskHandle{}
	for _, hd := range handles {
		got[hd.ID] = hd
	}
	for _, tc := range tcs {
		hd := got[tc.ID]
		if hd == nil {
			t.Errorf("ListTasks lacks %s (got %d handles)", tc.ID, len(handles))
			continue
		}
		if hd.PID == 0 || hd.ContainerID != containerd.ContainerID(tc.ID) || hd.DriverState["status"] != "running" {
			t.Errorf("handle %+v: want a PID, container %s and status running", *hd, containerd.ContainerID(tc.ID))
		}
	}
}

func TestOOMKilled(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	// Doubling a shell string grows memory without bound.
	tc := h.taskConfig(t, "oom", sh(`x=0123456789; while true; do x="$x$x"; done`))
	tc.MemoryMB = 16
	h.start(t, h.d, tc)
	res := waitExit(t, h.d, tc.ID, 30*time.Second)
	if !res.OOMKilled || res.Signal != int(syscall.SIGKILL) {
		t.Errorf("exit %+v, want OOMKilled by SIGKILL", *res)
	}
}

// TestPruneImages: an image a container still uses stays; once its task
// is destroyed, pruning deletes it, and a later start imports it again.
func TestPruneImages(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	tc := h.taskConfig(t, "prune", sh(readyScript))
	h.start(t, h.d, tc)
	waitLog(t, tc, "ready")
	if n, err := h.d.PruneImages(ctxT(t, 10*time.Second)); err != nil || n != 0 {
		t.Fatalf("PruneImages with the image in use = %d, %v; want 0 deleted", n, err)
	}
	if err := h.d.DestroyTask(ctxT(t, 30*time.Second), tc.ID, true); err != nil {
		t.Fatal(err)
	}
	if n, err := h.d.PruneImages(ctxT(t, 10*time.Second)); err != nil || n != 1 {
		t.Fatalf("PruneImages after destroy = %d, %v; want 1 deleted", n, err)
	}
	again := h.taskConfig(t, "prune-again", sh(readyScript))
	h.start(t, h.d, again)
	waitLog(t, again, "ready")
}
