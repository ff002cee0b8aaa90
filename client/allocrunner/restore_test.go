package allocrunner

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiffhq/skiff/client/state"
	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/structs"
)

// restart simulates an agent restart: the old runner stops watching
// (tasks keep running), a new one is built from what the state DB holds,
// restored and run.
func (h *harness) restart() {
	h.t.Helper()
	h.ar.Shutdown()
	allocs, err := h.db.Allocs()
	if err != nil || len(allocs) != 1 {
		h.t.Fatalf("allocs in state DB: got %d, %v; want 1", len(allocs), err)
	}
	h.ar = h.newRunner(allocs[0])
	if err := h.ar.Restore(ctxT(h.t)); err != nil {
		h.t.Fatalf("restore: %v", err)
	}
	h.ar.Run()
}

// dbs runs a test against MemDB and against a BoltDB file.
func dbs(t *testing.T, f func(t *testing.T, open func() state.DB)) {
	t.Run("mem", func(t *testing.T) {
		db := state.NewMemDB()
		f(t, func() state.DB { return db })
	})
	t.Run("bolt", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.db")
		var db *state.BoltDB
		f(t, func() state.DB {
			if db != nil {
				db.Close() // a killed agent's file, opened again
			}
			var err error
			if db, err = state.Open(path); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		})
	})
}

func TestRestoreReattaches(t *testing.T) {
	dbs(t, func(t *testing.T, open func() state.DB) {
		alloc := testAlloc(structs.JobTypeService, fastRestarts(1, structs.RestartModeFail), task("web"),
			task("init", hook(structs.LifecycleHookPrestart, false)))
		h := newHarnessDB(t, alloc, open())
		h.ar.Run()
		h.exit("init", 0)
		h.waitRunning("web")
		h.waitStatus(structs.AllocClientStatusRunning)

		h.ar.Shutdown()
		h.db = open()
		if !h.drv.running(h.id("web")) {
			t.Fatal("Shutdown stopped the task; it must leave it running")
		}
		h.restart()
		h.waitRunning("web")
		h.waitStatus(structs.AllocClientStatusRunning)
		if n := h.drv.count("StartTask", h.id("web")); n != 1 {
			t.Errorf("StartTask for the running task: got %d calls, want 1 (re-attach, no second copy)", n)
		}
		if n := h.drv.count("StartTask", h.id("init")); n != 1 {
			t.Errorf("StartTask for the finished prestart task: got %d, want 1", n)
		}
		if n := h.drv.count("RecoverTask", h.id("web")); n != 1 {
			t.Errorf("RecoverTask calls: got %d, want 1", n)
		}
		// The restored runner watches the task and keeps the policy's count:
		// one restart allowed, then failed.
		h.exit("web", 1)
		testutil.WaitFor(t, waitTime, "restart", func() bool { return h.drv.count("StartTask", h.id("web")) == 2 })
		h.waitRunning("web")
		h.restart()
		h.waitRunning("web")
		h.exit("web", 1)
		h.waitDone()
		if s := h.ar.Alloc(); s.ClientStatus != structs.AllocClientStatusFailed || s.TaskStates["web"].Restarts != 1 {
			t.Errorf("got %s with %d restarts, want failed after 1 restart", s.ClientStatus, s.TaskStates["web"].Restarts)
		}
		h.noViolations()
	})
}

func TestRestoreHandleGone(t *testing.T) {
	h := newHarness(t, testAlloc(structs.JobTypeService, fastRestarts(2, structs.RestartModeFail), task("web")))
	h.ar.Run()
	h.waitRunning("web")
	h.ar.Shutdown()
	h.drv.lose(h.id("web"))
	h.restart()
	testutil.WaitFor(t, waitTime, "restart of the lost task", func() bool { return h.drv.count("StartTask", "") == 2 })
	h.waitRunning("web")
	s := h.taskState("web")
	if s.Restarts != 1 || s.Failed {
		t.Errorf("got restarts %d failed %v, want 1 restart", s.Restarts, s.Failed)
	}
	if e := findEvent(s, EventTerminated); e == nil || !strings.Contains(e.DisplayMessage, "lost") {
		t.Errorf("Terminated event: got %+v, want it to say the task was lost", e)
	}
	h.noViolations()
}

func TestRestoreDeadStaysDead(t *testing.T) {
	h := newHarness(t, testAlloc(structs.JobTypeBatch, fastRestarts(2, structs.RestartModeFail), task("work")))
	h.ar.Run()
	h.exit("work", 0)
	h.waitDone()
	h.restart()
	h.waitDone()
	if s := h.ar.Alloc().ClientStatus; s != structs.AllocClientStatusComplete {
		t.Errorf("status: got %s, want complete", s)
	}
	if n := h.drv.count("StartTask", ""); n != 1 {
		t.Errorf("StartTask calls: got %d, want 1", n)
	}
	if n := h.drv.count("RecoverTask", ""); n != 0 {
		t.Errorf("RecoverTask calls: got %d, want 0 for a dead task", n)
	}
}

func TestRestorePendingRestart(t *testing.T) {
	policy := fastRestarts(3, structs.RestartModeFail)
	policy.Delay = 300 * 1e6 // 300ms: the agent restarts while the restart is pending
	h := newHarness(t, testAlloc(structs.JobTypeService, policy, task("web")))
	h.ar.Run()
	h.exit("web", 1)
	h.waitTask("web", TaskStatePending)
	h.restart()
	testutil.WaitFor(t, waitTime, "the pending restart", func() bool { return h.drv.count("StartTask", "") == 2 })
	h.waitRunning("web")
	if s := h.taskState("web"); s.Restarts != 1 {
		t.Errorf("restarts: got %d, want 1", s.Restarts)
	}
	h.noViolations()
}

func TestRestoreMidStartDestroysLeftover(t *testing.T) {
	// The agent died after StartTask but before it saved the handle: the
	// saved state is pending with no handle, and a container runs.
	h := newHarness(t, testAlloc(structs.JobTypeService, fastRestarts(2, structs.RestartModeFail), task("web")))
	h.ar.Run()
	h.waitRunning("web")
	h.ar.Shutdown()
	states, _ := h.db.TaskStates(h.ar.id)
	ls := states["web"]
	ls.Handle, ls.State.State = nil, TaskStatePending
	if err := h.db.PutTaskState(h.ar.id, "web", ls); err != nil {
		t.Fatal(err)
	}
	h.restart()
	testutil.WaitFor(t, waitTime, "start", func() bool { return h.drv.count("StartTask", "") == 2 })
	h.waitRunning("web")
	d := h.drv.callsOf("DestroyTask")
	if len(d) != 1 || !d[0].force {
		t.Errorf("DestroyTask calls: got %+v, want one forced before the start", d)
	}
	h.noViolations()
}

func TestRestoreAfterRunFails(t *testing.T) {
	h := newHarness(t, testAlloc(structs.JobTypeService, nil, task("web")))
	h.ar.Run()
	if err := h.ar.Restore(ctxT(t)); err == nil {
		t.Error("Restore after Run: got nil error")
	}
}
