package allocrunner

import (
	"slices"
	"testing"

	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/structs"
)

func TestLifecycleOrder(t *testing.T) {
	h := newHarness(t, testAlloc(structs.JobTypeService, fastRestarts(2, structs.RestartModeFail),
		task("init", hook(structs.LifecycleHookPrestart, false)),
		task("proxy", hook(structs.LifecycleHookPrestart, true)),
		task("web"),
		task("api"),
		task("notify", hook(structs.LifecycleHookPoststart, false)),
		task("cleanup", hook(structs.LifecycleHookPoststop, false)),
	))
	h.ar.Run()
	h.waitRunning("init")
	h.waitRunning("proxy")
	if n := h.drv.count("StartTask", h.id("web")); n != 0 {
		t.Fatalf("main task started %d times while the prestart task runs, want 0", n)
	}
	if s := h.ar.Alloc().ClientStatus; s != structs.AllocClientStatusPending {
		t.Errorf("status while prestart runs: got %s, want pending", s)
	}
	h.exit("init", 0) // an ephemeral prestart task is done after exit 0, even in a service job
	h.waitRunning("web")
	h.waitRunning("api")
	h.waitRunning("notify")
	h.waitStatus(structs.AllocClientStatusRunning)
	if i, j := h.drv.index("StartTask", h.id("notify"), 0), h.drv.index("StartTask", h.id("web"), 0); i < j {
		t.Errorf("poststart started (call %d) before main (call %d)", i, j)
	}
	h.exit("notify", 0)
	h.waitTask("notify", TaskStateDead)
	if n := h.drv.count("StartTask", h.id("cleanup")); n != 0 {
		t.Fatalf("poststop task started %d times before stop, want 0", n)
	}

	stop := h.ar.Alloc()
	stop.DesiredStatus = structs.AllocDesiredStatusStop
	h.ar.Update(stop)
	h.waitRunning("cleanup")
	for _, name := range []string{"web", "api", "proxy"} {
		if s := h.taskState(name); s.State != TaskStateDead || s.Failed {
			t.Errorf("%s when poststop runs: got %s failed=%v, want dead", name, s.State, s.Failed)
		}
	}
	// Sidecars are stopped after the main tasks.
	proxyStop := h.drv.index("StopTask", h.id("proxy"), 0)
	for _, main := range []string{"web", "api"} {
		if i := h.drv.index("StopTask", h.id(main), 0); i < 0 || i > proxyStop {
			t.Errorf("main task %s stopped at call %d, sidecar at %d: want main first", main, i, proxyStop)
		}
	}
	h.exit("cleanup", 0)
	h.waitDone()
	if s := h.ar.Alloc().ClientStatus; s != structs.AllocClientStatusComplete {
		t.Errorf("final status: got %s, want complete", s)
	}
	if n := h.drv.count("StartTask", h.id("init")); n != 1 {
		t.Errorf("prestart task started %d times, want 1", n)
	}
	h.noViolations()
}

func TestPrestartFailureFailsAlloc(t *testing.T) {
	h := newHarness(t, testAlloc(structs.JobTypeService, fastRestarts(0, structs.RestartModeFail),
		task("init", hook(structs.LifecycleHookPrestart, false)),
		task("web"),
	))
	h.ar.Run()
	h.exit("init", 1)
	h.waitDone()
	a := h.ar.Alloc()
	if a.ClientStatus != structs.AllocClientStatusFailed || a.ClientDescription != "Failed tasks: init" {
		t.Errorf("status: got %s %q, want failed", a.ClientStatus, a.ClientDescription)
	}
	if n := h.drv.count("StartTask", h.id("web")); n != 0 {
		t.Errorf("main task started %d times after its prestart task failed, want 0", n)
	}
	web := a.TaskStates["web"]
	if web.State != TaskStateDead || web.Failed || findEvent(web, EventSiblingFailed) == nil {
		t.Errorf("main task: got %s failed=%v events %v; want dead with Sibling Task Failed", web.State, web.Failed, eventTypes(web))
	}
}

func TestBatchMainDoneStopsSidecar(t *testing.T) {
	h := newHarness(t, testAlloc(structs.JobTypeBatch, fastRestarts(0, structs.RestartModeFail),
		task("logs", hook(structs.LifecycleHookPrestart, true)),
		task("work"),
		task("after", hook(structs.LifecycleHookPoststop, false)),
	))
	h.ar.Run()
	h.waitRunning("logs")
	h.exit("work", 0)
	h.waitTask("logs", TaskStateDead)
	h.exit("after", 0)
	h.waitDone()
	a := h.ar.Alloc()
	if a.ClientStatus != structs.AllocClientStatusComplete {
		t.Errorf("status: got %s, want complete", a.ClientStatus)
	}
	if s := a.TaskStates["logs"]; s.Failed || findEvent(s, EventKilled) == nil {
		t.Errorf("sidecar: got %+v events %v, want killed, not failed", s, eventTypes(s))
	}
	if i, j := h.drv.index("StartTask", h.id("after"), 0), h.drv.index("StopTask", h.id("logs"), 0); i < j {
		t.Errorf("poststop started (call %d) before the sidecar was stopped (call %d)", i, j)
	}
}

func TestLeaderDeadStopsOthers(t *testing.T) {
	h := newHarness(t, testAlloc(structs.JobTypeBatch, fastRestarts(0, structs.RestartModeFail),
		task("main", leader), task("helper"), task("side", hook(structs.LifecycleHookPoststart, true))))
	h.ar.Run()
	h.waitRunning("helper")
	h.waitRunning("side")
	h.exit("main", 0)
	h.waitDone()
	a := h.ar.Alloc()
	if a.ClientStatus != structs.AllocClientStatusComplete {
		t.Errorf("status: got %s %q, want complete", a.ClientStatus, a.ClientDescription)
	}
	for _, name := range []string{"helper", "side"} {
		s := a.TaskStates[name]
		if s.Failed || findEvent(s, EventLeaderDead) == nil || findEvent(s, EventKilled) == nil {
			t.Errorf("%s: got failed=%v events %v, want Leader Task Dead then killed", name, s.Failed, eventTypes(s))
		}
	}
}

func TestFailedTaskKillsSiblings(t *testing.T) {
	h := newHarness(t, testAlloc(structs.JobTypeService, fastRestarts(0, structs.RestartModeFail), task("a"), task("b")))
	h.ar.Run()
	h.waitRunning("b")
	h.exit("a", 2)
	h.waitDone()
	a := h.ar.Alloc()
	b := a.TaskStates["b"]
	if a.ClientStatus != structs.AllocClientStatusFailed || b.Failed {
		t.Errorf("got alloc %s, b failed=%v; want failed alloc, b not failed", a.ClientStatus, b.Failed)
	}
	if e := findEvent(b, EventSiblingFailed); e == nil || e.Details[detailFailedSibling] != "a" {
		t.Errorf("b events: %v, want Sibling Task Failed naming a", eventTypes(b))
	}
}

func TestEventsAreBounded(t *testing.T) {
	h := newHarness(t, testAlloc(structs.JobTypeService, fastRestarts(20, structs.RestartModeFail), task("web")))
	h.ar.Run()
	for i := range 8 {
		h.exit("web", 1)
		testutil.WaitFor(t, waitTime, "restart", func() bool { return h.drv.count("StartTask", "") == i+2 })
	}
	testutil.WaitFor(t, waitTime, "8th restart reported", func() bool {
		s := h.taskState("web")
		return s.State == TaskStateRunning && s.Restarts == 8
	})
	s := h.taskState("web")
	if len(s.Events) != maxEventsPerTask || s.Restarts != 8 {
		t.Errorf("got %d events and %d restarts, want %d and 8", len(s.Events), s.Restarts, maxEventsPerTask)
	}
	if last := eventTypes(s); !slices.Equal(last[len(last)-3:], []string{EventTerminated, EventRestarting, EventStarted}) {
		t.Errorf("events: got %v", last)
	}
}
