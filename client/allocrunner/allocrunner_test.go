package allocrunner

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/client/driver"
	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/structs"
)

func TestBatchHappyPath(t *testing.T) {
	h := newHarness(t, testAlloc(structs.JobTypeBatch, fastRestarts(2, structs.RestartModeFail), task("work")))
	h.ar.Run()
	h.waitStatus(structs.AllocClientStatusRunning)
	h.exit("work", 0)
	h.waitDone()

	a := h.ar.Alloc()
	if a.ClientStatus != structs.AllocClientStatusComplete || a.ClientDescription != "All tasks have completed" {
		t.Errorf("status: got %s %q, want complete", a.ClientStatus, a.ClientDescription)
	}
	want := []string{"pending", "running", "complete"}
	if got := h.statuses(); !slices.Equal(got, want) {
		t.Errorf("updater statuses: got %v, want %v", got, want)
	}
	s := a.TaskStates["work"]
	if s.State != TaskStateDead || s.Failed || s.Restarts != 0 || s.StartedAt.IsZero() || s.FinishedAt.IsZero() {
		t.Errorf("task state: got %+v, want dead, not failed, no restarts, times set", s)
	}
	wantEvents := []string{EventReceived, EventSetup, EventStarted, EventTerminated}
	if got := eventTypes(s); !slices.Equal(got, wantEvents) {
		t.Errorf("events: got %v, want %v", got, wantEvents)
	}
	if n := h.drv.count("StartTask", ""); n != 1 {
		t.Errorf("StartTask calls: got %d, want 1 (exit 0 of a batch task is not restarted)", n)
	}
	// Persisted before reported: the DB holds the final state.
	states, err := h.db.TaskStates(a.ID)
	if err != nil || states["work"] == nil || states["work"].State.State != TaskStateDead {
		t.Errorf("persisted state: got %+v, %v; want dead", states["work"], err)
	}
	h.noViolations()
}

func TestBatchFailureRestarts(t *testing.T) {
	h := newHarness(t, testAlloc(structs.JobTypeBatch, fastRestarts(2, structs.RestartModeFail), task("work")))
	h.ar.Run()
	h.exit("work", 3)
	testutil.WaitFor(t, waitTime, "second start", func() bool { return h.drv.count("StartTask", "") == 2 })
	h.exit("work", 0)
	h.waitDone()
	s := h.taskState("work")
	if h.ar.Alloc().ClientStatus != structs.AllocClientStatusComplete || s.Restarts != 1 || s.Failed {
		t.Errorf("got status %s, restarts %d, failed %v; want complete, 1, false", h.ar.Alloc().ClientStatus, s.Restarts, s.Failed)
	}
	h.noViolations()
}

func TestServiceRestartsUntilAttemptsExhausted(t *testing.T) {
	h := newHarness(t, testAlloc(structs.JobTypeService, fastRestarts(2, structs.RestartModeFail), task("web")))
	h.ar.Run()
	for i, code := range []int{0, 1, 1} { // a service task restarts on any exit
		h.exit("web", code)
		if i < 2 {
			testutil.WaitFor(t, waitTime, "restart", func() bool { return h.drv.count("StartTask", "") == i+2 })
		}
	}
	h.waitDone()
	a := h.ar.Alloc()
	s := a.TaskStates["web"]
	if a.ClientStatus != structs.AllocClientStatusFailed || a.ClientDescription != "Failed tasks: web" {
		t.Errorf("status: got %s %q, want failed %q", a.ClientStatus, a.ClientDescription, "Failed tasks: web")
	}
	if !s.Failed || s.Restarts != 2 || s.LastRestart.IsZero() {
		t.Errorf("task: got failed %v restarts %d, want true 2", s.Failed, s.Restarts)
	}
	e := findEvent(s, EventNotRestarting)
	if e == nil || !strings.Contains(e.DisplayMessage, `exceeded 2 restart attempts`) {
		t.Errorf("Not Restarting event: got %+v", e)
	}
	if r := findEvent(s, EventRestarting); r == nil || r.Details[detailStartDelay] == "" {
		t.Errorf("Restarting event: got %+v, want one with a start delay", r)
	}
	if n := h.drv.count("StartTask", ""); n != 3 {
		t.Errorf("StartTask calls: got %d, want 3", n)
	}
	want := []string{"pending", "running", "failed"}
	if got := h.statuses(); !slices.Equal(got, want) {
		t.Errorf("updater statuses: got %v, want %v", got, want)
	}
	h.noViolations()
}

func TestRestartModeDelay(t *testing.T) {
	policy := &structs.RestartPolicy{Attempts: 1, Interval: 400 * time.Millisecond, Delay: 10 * time.Millisecond, Mode: structs.RestartModeDelay}
	h := newHarness(t, testAlloc(structs.JobTypeService, policy, task("web")))
	h.ar.Run()
	h.exit("web", 1)
	testutil.WaitFor(t, waitTime, "first restart", func() bool { return h.drv.count("StartTask", "") == 2 })
	exhausted := time.Now()
	h.exit("web", 1)
	testutil.WaitFor(t, waitTime, "restart after the interval", func() bool { return h.drv.count("StartTask", "") == 3 })
	if waited := time.Since(exhausted); waited < 200*time.Millisecond {
		t.Errorf("restart after attempts were exhausted came after %s, want it to wait for the interval to end", waited)
	}
	s := h.taskState("web")
	if s.Failed || h.ar.Alloc().ClientStatus == structs.AllocClientStatusFailed {
		t.Errorf("mode delay must not fail the task: got %+v", s)
	}
	if e := findEvent(s, EventRestarting); e == nil || !strings.Contains(e.Details[detailRestartReason], `"delay"`) {
		t.Errorf("Restarting event: got %+v, want the delay reason", e)
	}
	h.noViolations()
}

func TestStartErrorFailsAlloc(t *testing.T) {
	h := newHarness(t, testAlloc(structs.JobTypeService, fastRestarts(2, structs.RestartModeFail), task("web")))
	h.drv.setStartErr("web", errors.New(`pull image "nope:latest": not found`))
	h.ar.Run()
	h.waitDone()
	a := h.ar.Alloc()
	s := a.TaskStates["web"]
	if a.ClientStatus != structs.AllocClientStatusFailed || !s.Failed {
		t.Fatalf("got %s, task %+v; want failed", a.ClientStatus, s)
	}
	e := findEvent(s, EventDriverFailure)
	if e == nil || !strings.Contains(e.DisplayMessage, "nope:latest") {
		t.Errorf("Driver Failure event: got %+v, want the start error", e)
	}
	if n := h.drv.count("StartTask", ""); n != 3 {
		t.Errorf("StartTask calls: got %d, want 3 (1 + 2 attempts)", n)
	}
	if !s.StartedAt.IsZero() {
		t.Errorf("StartedAt: got %v, want zero for a task that never started", s.StartedAt)
	}
}

func TestMissingDriverFailsAlloc(t *testing.T) {
	h := newHarness(t, testAlloc(structs.JobTypeBatch, fastRestarts(0, structs.RestartModeFail),
		task("web", func(t *structs.Task) { t.Driver = "rkt" })))
	h.ar.Run()
	h.waitDone()
	e := findEvent(h.taskState("web"), EventDriverFailure)
	if e == nil || !strings.Contains(e.DisplayMessage, `no "rkt" task driver`) {
		t.Errorf("Driver Failure event: got %+v", e)
	}
	if e := findEvent(h.taskState("web"), EventNotRestarting); e == nil || !strings.Contains(e.DisplayMessage, "no restarts") {
		t.Errorf("Not Restarting event: got %+v", e)
	}
}

func TestUpdateStopUsesKillSignalAndTimeout(t *testing.T) {
	h := newHarness(t, testAlloc(structs.JobTypeService, fastRestarts(2, structs.RestartModeFail),
		task("web", func(t *structs.Task) { t.KillSignal, t.KillTimeout = "SIGINT", 150*time.Millisecond })))
	h.drv.ignoreStop["web"] = true
	h.ar.Run()
	h.waitRunning("web")

	stop := h.ar.Alloc()
	stop.DesiredStatus = structs.AllocDesiredStatusStop
	begin := time.Now()
	h.ar.Update(stop)
	if d := time.Since(begin); d > 50*time.Millisecond {
		t.Errorf("Update blocked for %s", d)
	}
	h.waitDone()
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("stop took %s, want about the kill timeout", d)
	}
	calls := h.drv.callsOf("StopTask")
	if len(calls) != 1 || calls[0].signal != "SIGINT" || calls[0].timeout != 150*time.Millisecond {
		t.Errorf("StopTask calls: got %+v, want one with SIGINT and 150ms", calls)
	}
	a := h.ar.Alloc()
	s := a.TaskStates["web"]
	if a.ClientStatus != structs.AllocClientStatusComplete || s.Failed {
		t.Errorf("got %s, failed %v; want complete, not failed", a.ClientStatus, s.Failed)
	}
	k := findEvent(s, EventKilling)
	if k == nil || k.Details[detailKillSignal] != "SIGINT" || k.Details[detailKillTimeout] != "150ms" {
		t.Errorf("Killing event: got %+v", k)
	}
	if types := eventTypes(s); !slices.Equal(types[len(types)-3:], []string{EventKilling, EventTerminated, EventKilled}) {
		t.Errorf("events: got %v, want them to end Killing, Terminated, Killed", types)
	}
	if a.DesiredStatus != structs.AllocDesiredStatusStop {
		t.Errorf("desired status: got %s, want stop", a.DesiredStatus)
	}
	h.noViolations()
}

func TestInPlaceUpdateKeepsRunning(t *testing.T) {
	h := newHarness(t, testAlloc(structs.JobTypeService, fastRestarts(2, structs.RestartModeFail), task("web")))
	h.ar.Run()
	h.waitRunning("web")
	upd := h.ar.Alloc()
	upd.Job = upd.Job.Copy()
	upd.Job.Version = 2
	upd.Job.TaskGroups[0].Tasks[0].Env = map[string]string{"V": "2"}
	h.ar.Update(upd)
	testutil.WaitFor(t, waitTime, "update applied", func() bool { return h.ar.Alloc().Job.Version == 2 })
	h.exit("web", 1) // the restart uses the new definition
	testutil.WaitFor(t, waitTime, "restart", func() bool { return h.drv.count("StartTask", "") == 2 })
	h.waitRunning("web")
	if got := h.drv.config(h.id("web")).Env["V"]; got != "2" {
		t.Errorf("env after in-place update: got V=%q, want 2", got)
	}
	if n := h.drv.count("StopTask", ""); n != 0 {
		t.Errorf("StopTask calls: got %d, want 0", n)
	}
}

func TestUserRestartIsNotCounted(t *testing.T) {
	h := newHarness(t, testAlloc(structs.JobTypeService, fastRestarts(0, structs.RestartModeFail), task("web"), task("side")))
	h.ar.Run()
	h.waitRunning("web")
	h.waitRunning("side")
	if err := h.ar.RestartTask(ctxT(t), "web"); err != nil {
		t.Fatalf("restart: %v", err)
	}
	testutil.WaitFor(t, waitTime, "restarted", func() bool {
		s := h.taskState("web")
		return h.drv.count("StartTask", h.id("web")) == 2 && s.State == TaskStateRunning && s.Restarts == 1
	})
	s := h.taskState("web")
	if s.Failed || s.Restarts != 1 || findEvent(s, EventRestartSignal) == nil {
		t.Errorf("task: got %+v events %v; want running, 1 restart, Restart Signaled", s, eventTypes(s))
	}
	if err := h.ar.RestartTask(ctxT(t), ""); err != nil {
		t.Fatalf("restart all: %v", err)
	}
	testutil.WaitFor(t, waitTime, "all restarted", func() bool {
		return h.drv.count("StartTask", h.id("web")) == 3 && h.drv.count("StartTask", h.id("side")) == 2
	})
	if err := h.ar.RestartTask(ctxT(t), "nope"); err == nil {
		t.Error("restart of an unknown task: got nil error")
	}
	h.noViolations()
}

func TestSignalExecStats(t *testing.T) {
	h := newHarness(t, testAlloc(structs.JobTypeService, fastRestarts(0, structs.RestartModeFail), task("web")))
	if err := h.ar.Signal(ctxT(t), "web", "SIGHUP"); !errors.Is(err, ErrTaskNotRunning) {
		t.Errorf("signal before start: got %v, want ErrTaskNotRunning", err)
	}
	h.ar.Run()
	h.waitRunning("web")
	if err := h.ar.Signal(ctxT(t), "", "SIGHUP"); err != nil {
		t.Errorf("signal: %v", err)
	}
	if c := h.drv.callsOf("SignalTask"); len(c) != 1 || c[0].signal != "SIGHUP" {
		t.Errorf("SignalTask calls: got %+v", c)
	}
	code, err := h.ar.Exec(ctxT(t), "web", &driver.ExecOptions{Command: []string{"ls", "-l"}})
	if err != nil || code != 2 {
		t.Errorf("exec: got %d, %v; want 2, nil", code, err)
	}
	stats, err := h.ar.Stats(ctxT(t))
	if err != nil || stats["web"] == nil {
		t.Errorf("stats: got %v, %v", stats, err)
	}
}

func TestDestroy(t *testing.T) {
	h := newHarness(t, testAlloc(structs.JobTypeService, fastRestarts(2, structs.RestartModeFail), task("web"),
		task("after", hook(structs.LifecycleHookPoststop, false))))
	h.ar.Run()
	h.waitRunning("web")
	dir := h.ar.AllocDir()
	for _, p := range []string{"alloc/data", "alloc/logs", "alloc/tmp", "web/local", "web/secrets", "web/tmp"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("alloc dir: %v", err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "web/secrets")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("secrets dir mode: got %v, %v; want 0700", fi.Mode(), err)
	}
	if h.ar.LogDir() != filepath.Join(dir, "alloc", "logs") {
		t.Errorf("log dir: got %s", h.ar.LogDir())
	}
	begin := time.Now()
	if err := h.ar.Destroy(ctxT(t)); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("destroy took %s", d)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("alloc dir after destroy: got %v, want it gone", err)
	}
	allocs, _ := h.db.Allocs()
	states, _ := h.db.TaskStates(h.ar.id)
	if len(allocs) != 0 || len(states) != 0 {
		t.Errorf("state DB after destroy: %d allocs, %d task states; want none", len(allocs), len(states))
	}
	if h.drv.running(h.id("web")) || h.drv.count("DestroyTask", h.id("web")) == 0 {
		t.Error("the task was not stopped and destroyed")
	}
	if n := h.drv.count("StartTask", h.id("after")); n != 0 {
		t.Errorf("poststop task started %d times on destroy, want 0", n)
	}
	select {
	case <-h.ar.WaitCh():
	default:
		t.Error("WaitCh not closed after Destroy")
	}
	if err := h.ar.Destroy(ctxT(t)); err != nil {
		t.Errorf("second destroy: %v", err)
	}
}

func TestDestroyWithoutRun(t *testing.T) {
	h := newHarness(t, testAlloc(structs.JobTypeService, nil, task("web")))
	if err := h.ar.Destroy(ctxT(t)); err != nil {
		t.Fatalf("destroy: %v", err)
	}
}

func TestNewRejectsBadAllocs(t *testing.T) {
	good := testAlloc(structs.JobTypeService, nil, task("web"))
	noGroup := good.Copy()
	noGroup.TaskGroup = "other"
	noJob := good.Copy()
	noJob.Job = nil
	for name, a := range map[string]*structs.Allocation{"no group": noGroup, "no job": noJob} {
		if _, err := New(&Config{Alloc: a, AllocDirRoot: t.TempDir(), StateDB: newHarness(t, good).db}); err == nil {
			t.Errorf("%s: got nil error", name)
		}
	}
}
