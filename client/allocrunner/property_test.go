package allocrunner

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/structs"
)

// TestNeverTwoRunningCopies drives allocations through random sequences
// of exits, user restarts, lost tasks and agent restarts, and checks that
// the driver never sees a task started while an instance of it runs or
// before its exited instance was removed, and that a stop leaves nothing
// running.
func TestNeverTwoRunningCopies(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(uint64(seed), 1))
	names := []string{"proxy", "web", "api"}
	for round := range 4 {
		policy := &structs.RestartPolicy{Attempts: 1000, Interval: time.Hour, Delay: 2 * time.Millisecond, Mode: structs.RestartModeFail}
		h := newHarness(t, testAlloc(structs.JobTypeService, policy,
			task("proxy", hook(structs.LifecycleHookPrestart, true)), task("web"), task("api")))
		h.ar.Run()
		for step := range 40 {
			name := names[r.IntN(len(names))]
			switch op := r.IntN(7); op {
			case 0, 1: // exit now, whatever the runner is doing
				_ = h.drv.exit(h.id(name), r.IntN(3))
			case 2:
				if r.IntN(2) == 0 {
					name = ""
				}
				if err := h.ar.RestartTask(ctxT(t), name); err != nil && !errors.Is(err, ErrTaskNotRunning) {
					t.Fatalf("round %d step %d: restart %q: %v", round, step, name, err)
				}
			case 3: // agent restart, a task possibly lost or exited meanwhile
				h.ar.Shutdown()
				switch r.IntN(3) {
				case 0:
					h.drv.lose(h.id(name))
				case 1:
					_ = h.drv.exit(h.id(name), 1)
				}
				h.restart()
			case 4:
				h.quiesce()
			case 5:
				_ = h.ar.Signal(ctxT(t), name, "SIGHUP")
			case 6:
				_, _ = h.ar.Stats(ctxT(t))
			}
			if v := h.drv.violationList(); len(v) > 0 {
				t.Fatalf("round %d step %d: %v", round, step, v)
			}
		}
		stop := h.ar.Alloc()
		stop.DesiredStatus = structs.AllocDesiredStatusStop
		h.ar.Update(stop)
		h.waitDone()
		for _, n := range names {
			if h.drv.running(h.id(n)) {
				t.Errorf("round %d: task %s still runs after the stop", round, n)
			}
		}
		if s := h.ar.Alloc().ClientStatus; s != structs.AllocClientStatusComplete {
			t.Errorf("round %d: status %s, want complete", round, s)
		}
		h.noViolations()
		h.ar.Shutdown()
	}
}

// quiesce waits until every task runs (in the driver and for the runner)
// or is dead.
func (h *harness) quiesce() {
	h.t.Helper()
	testutil.WaitFor(h.t, waitTime, "tasks settled", func() bool {
		for _, tr := range h.ar.tasks {
			if tr.currentPhase() == phaseDead {
				continue
			}
			if _, err := tr.runningID(); err != nil || !h.drv.running(tr.id) {
				return false
			}
		}
		return true
	})
}
