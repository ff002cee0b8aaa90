package allocrunner

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/skiffhq/skiff/client/driver"
	"github.com/skiffhq/skiff/client/state"
	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/structs"
)

const waitTime = 10 * time.Second

// fastRestarts is a restart policy for tests: short delay, long interval.
func fastRestarts(attempts int, mode string) *structs.RestartPolicy {
	return &structs.RestartPolicy{Attempts: attempts, Interval: time.Minute, Delay: 10 * time.Millisecond, Mode: mode}
}

// task returns a task for the fake driver with a short kill timeout.
func task(name string, opts ...func(*structs.Task)) *structs.Task {
	t := &structs.Task{Name: name, Driver: "fake", Config: map[string]any{"image": "busybox"},
		KillTimeout: 200 * time.Millisecond, Resources: &structs.Resources{CPU: 100, MemoryMB: 64}}
	for _, o := range opts {
		o(t)
	}
	return t
}

func hook(h string, sidecar bool) func(*structs.Task) {
	return func(t *structs.Task) { t.Lifecycle = &structs.TaskLifecycle{Hook: h, Sidecar: sidecar} }
}

func leader(t *structs.Task) { t.Leader = true }

// testAlloc returns an allocation of a one-group job of jobType with the
// given tasks and restart policy.
func testAlloc(jobType string, policy *structs.RestartPolicy, tasks ...*structs.Task) *structs.Allocation {
	id := structs.GenerateUUID()
	job := &structs.Job{ID: "web", Name: "web", Type: jobType, Namespace: "default", Region: "global",
		TaskGroups: []*structs.TaskGroup{{Name: "api", Count: 1, RestartPolicy: policy, Tasks: tasks}}}
	return &structs.Allocation{ID: id, Name: "web.api[0]", Namespace: "default", JobID: "web", Job: job,
		TaskGroup: "api", DesiredStatus: structs.AllocDesiredStatusRun, ClientStatus: structs.AllocClientStatusPending}
}

// harness runs one allocation against a fake driver and records updates.
type harness struct {
	t    *testing.T
	drv  *fakeDriver
	db   state.DB
	root string
	ar   *AllocRunner

	mu      sync.Mutex
	updates []*structs.Allocation
}

func newHarness(t *testing.T, alloc *structs.Allocation) *harness {
	t.Helper()
	return newHarnessDB(t, alloc, state.NewMemDB())
}

func newHarnessDB(t *testing.T, alloc *structs.Allocation, db state.DB) *harness {
	t.Helper()
	h := &harness{t: t, drv: newFakeDriver(), db: db, root: t.TempDir()}
	h.ar = h.newRunner(alloc)
	return h
}

// newRunner builds a runner for alloc on the harness's driver and DB,
// as an agent (re)starting would.
func (h *harness) newRunner(alloc *structs.Allocation) *AllocRunner {
	h.t.Helper()
	ar, err := New(&Config{
		Alloc: alloc, Region: "global", AllocDirRoot: h.root, StateDB: h.db,
		Node:    &structs.Node{ID: "node-1", Name: "n1", Datacenter: "dc1", Attributes: map[string]string{nodeIPAttribute: "10.0.0.5"}},
		Drivers: map[string]driver.Driver{"fake": h.drv},
		Updater: h.record,
		Logger:  hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: testWriter{h.t}}),
	})
	if err != nil {
		h.t.Fatalf("new runner: %v", err)
	}
	h.t.Cleanup(ar.Shutdown)
	return ar
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func (h *harness) record(a *structs.Allocation) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.updates = append(h.updates, a)
}

// statuses returns the client statuses the Updater saw, consecutive
// repeats collapsed.
func (h *harness) statuses() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, a := range h.updates {
		if len(out) == 0 || out[len(out)-1] != a.ClientStatus {
			out = append(out, a.ClientStatus)
		}
	}
	return out
}

func (h *harness) id(task string) string { return h.ar.id + "/" + task }

func (h *harness) taskState(task string) *structs.TaskState {
	return h.ar.Alloc().TaskStates[task]
}

func (h *harness) waitStatus(status string) {
	h.t.Helper()
	testutil.WaitFor(h.t, waitTime, "client status "+status, func() bool {
		return h.ar.Alloc().ClientStatus == status
	})
}

func (h *harness) waitTask(task, st string) {
	h.t.Helper()
	testutil.WaitFor(h.t, waitTime, "task "+task+" "+st, func() bool {
		s := h.taskState(task)
		return s != nil && s.State == st
	})
}

// waitRunning waits until the driver runs the task and the runner knows.
func (h *harness) waitRunning(task string) {
	h.t.Helper()
	testutil.WaitFor(h.t, waitTime, "task "+task+" running", func() bool {
		s := h.taskState(task)
		_, err := h.ar.byName[task].runningID()
		return h.drv.running(h.id(task)) && s != nil && s.State == TaskStateRunning && err == nil
	})
}

// exit makes the task's running instance exit with code.
func (h *harness) exit(task string, code int) {
	h.t.Helper()
	h.waitRunning(task)
	if err := h.drv.exit(h.id(task), code); err != nil {
		h.t.Fatalf("exit %s: %v", task, err)
	}
}

func (h *harness) waitDone() {
	h.t.Helper()
	select {
	case <-h.ar.WaitCh():
	case <-time.After(waitTime):
		h.t.Fatalf("alloc not terminal after %s: %+v", waitTime, h.ar.Alloc().TaskStates)
	}
}

func (h *harness) noViolations() {
	h.t.Helper()
	if v := h.drv.violationList(); len(v) > 0 {
		h.t.Errorf("driver violations: %v", v)
	}
}

// eventTypes returns the types of a task's events.
func eventTypes(s *structs.TaskState) []string {
	var out []string
	for _, e := range s.Events {
		out = append(out, e.Type)
	}
	return out
}

func findEvent(s *structs.TaskState, typ string) *structs.TaskEvent {
	for _, e := range slices.Backward(s.Events) {
		if e.Type == typ {
			return e
		}
	}
	return nil
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	t.Cleanup(cancel)
	return ctx
}
