package allocrunner

import (
	"slices"
	"strings"
	"time"

	"github.com/skiffhq/skiff/structs"
)

// The allocation lifecycle, run on the alloc runner's goroutine. It is
// level-triggered: every step reads all task states and moves as far as
// they allow, so a restored allocation finds its place by itself.
//
//	prestart ──prestart tasks done,──▶ main ──every main task dead──▶ stopping ──▶ poststop ──▶ done
//	   │        sidecars started        │ (poststart tasks start        ▲  (leaders, then      (all tasks
//	   │                                │  once main tasks started)     │  the rest, then       dead)
//	   └─── stop, task failed, leader dead, destroy ────────────────────┘  sidecars)
//
// Prestart tasks that are not sidecars must exit 0 before main tasks
// start. Stopping kills tasks in waves: leader tasks first, then the other
// tasks that are not sidecars, then sidecars; when the main tasks ended on
// their own, only sidecars are killed and poststart hooks may finish.
// Poststop tasks run last unless the allocation is destroyed or no task
// ever started.
type allocPhase int

const (
	allocPrestart allocPhase = iota
	allocMain
	allocStopping
	allocPoststop
	allocDone
)

// lifecycle is the alloc runner's state machine state.
type lifecycle struct {
	phase       allocPhase
	cause       *stopCause      // set in allocStopping
	destroy     bool            // Destroy was called
	startIssued map[string]bool // tasks told to start
	stopIssued  map[string]bool // tasks told to stop
	reported    []uint64        // task state versions last reported
	status      string          // client status last reported
	desc        string          // client description last reported
	healthAt    time.Time       // when a health check is due (health.go)
}

// stopCause is why the allocation stops.
type stopCause struct {
	kill    bool // kill running tasks; false: the main tasks ended by themselves
	destroy bool // kill poststop tasks too instead of running them
	// event, if not nil, returns the event recorded on each killed task
	// (e.g. "Sibling Task Failed").
	event func() *structs.TaskEvent
}

// step advances the lifecycle as far as the task states allow, reports
// the result and, once every task is dead, closes WaitCh.
func (ar *AllocRunner) step() {
	v := ar.views()
	ar.advance(v)
	ar.report(v)
	if ar.lc.phase == allocDone {
		ar.closeWait()
	}
}

func (ar *AllocRunner) advance(v []taskView) {
	if c := ar.stopCause(v); c != nil {
		ar.becomeStopping(c)
	}
	switch ar.lc.phase {
	case allocPrestart:
		ar.handlePrestart(v)
	case allocMain:
		ar.handleMain(v)
	case allocStopping:
		ar.handleStopping(v)
	case allocPoststop:
		ar.handlePoststop(v)
	}
}

// stopCause returns why the allocation must stop now, or nil.
func (ar *AllocRunner) stopCause(v []taskView) *stopCause {
	if ar.lc.destroy {
		return &stopCause{kill: true, destroy: true}
	}
	if ar.lc.phase >= allocPoststop {
		return nil // poststop tasks run to their end
	}
	if ar.desiredStop() {
		return &stopCause{kill: true}
	}
	for _, t := range v {
		if t.state.State == TaskStateDead && t.state.Failed {
			name := t.name
			return &stopCause{kill: true, event: func() *structs.TaskEvent { return siblingFailedEvent(ar.cfg.Now(), name) }}
		}
	}
	for _, t := range v {
		if t.leader && t.role != rolePoststop && t.state.State == TaskStateDead {
			name := t.name
			return &stopCause{kill: true, event: func() *structs.TaskEvent { return leaderDeadEvent(ar.cfg.Now(), name) }}
		}
	}
	return nil
}

func (ar *AllocRunner) desiredStop() bool {
	ar.mu.Lock()
	defer ar.mu.Unlock()
	switch ar.alloc.DesiredStatus {
	case structs.AllocDesiredStatusStop, structs.AllocDesiredStatusEvict:
		return true
	}
	return false
}

// becomeStopping enters allocStopping, or escalates the cause of a stop
// under way: from an ending to a kill, from a kill to a destroy.
func (ar *AllocRunner) becomeStopping(c *stopCause) {
	switch {
	case ar.lc.phase == allocDone:
		return
	case ar.lc.phase == allocStopping:
		cur := ar.lc.cause
		if (c.kill && !cur.kill) || (c.destroy && !cur.destroy) {
			if cur.event != nil && c.event == nil {
				c.event = cur.event
			}
			ar.lc.cause = c
		}
	case ar.lc.phase == allocPoststop && !c.destroy:
		return
	default:
		ar.lc.phase, ar.lc.cause = allocStopping, c
	}
}

func (ar *AllocRunner) handlePrestart(v []taskView) {
	ar.startTasks(v, rolePrestart, rolePrestartSidecar)
	for _, t := range v {
		switch {
		case t.role == rolePrestart && (t.state.State != TaskStateDead || t.state.Failed):
			return // must exit 0 first
		case t.role == rolePrestartSidecar && t.state.StartedAt.IsZero() && t.state.State != TaskStateDead:
			return // must have started first
		}
	}
	ar.lc.phase = allocMain
	ar.handleMain(v)
}

func (ar *AllocRunner) handleMain(v []taskView) {
	ar.startTasks(v, roleMain)
	if every(v, roleMain, func(t taskView) bool { return !t.state.StartedAt.IsZero() }) {
		ar.startTasks(v, rolePoststart, rolePoststartSidecar)
	}
	if every(v, roleMain, func(t taskView) bool { return t.state.State == TaskStateDead }) {
		ar.becomeStopping(&stopCause{})
		ar.handleStopping(v)
	}
}

func (ar *AllocRunner) handleStopping(v []taskView) {
	alive := func(t taskView) bool { return t.state.State != TaskStateDead }
	c := ar.lc.cause
	waves := [][]taskView{
		filter(v, func(t taskView) bool { return alive(t) && t.leader && t.role != rolePoststop }),
		filter(v, func(t taskView) bool { return alive(t) && !t.leader && !t.role.sidecar() && t.role != rolePoststop }),
		filter(v, func(t taskView) bool { return alive(t) && !t.leader && t.role.sidecar() }),
	}
	if c.destroy || !anyStarted(v) {
		waves = append(waves, filter(v, func(t taskView) bool { return alive(t) && t.role == rolePoststop }))
	}
	for i, wave := range waves {
		if len(wave) == 0 {
			continue
		}
		if c.kill || i >= 2 {
			ar.stopTasks(wave, c)
		} else {
			// The main tasks ended by themselves: hooks that started run to
			// their end, those that never will are stopped.
			ar.stopTasks(filter(wave, func(t taskView) bool { return !ar.lc.startIssued[t.name] }), c)
		}
		return
	}
	if !every(v, -1, func(t taskView) bool { return !alive(t) }) {
		ar.lc.phase = allocPoststop // the poststop tasks are left
		ar.handlePoststop(v)
		return
	}
	ar.lc.phase = allocDone
}

func (ar *AllocRunner) handlePoststop(v []taskView) {
	ar.startTasks(v, rolePoststop)
	if every(v, -1, func(t taskView) bool { return t.state.State == TaskStateDead }) {
		ar.lc.phase = allocDone
	}
}

// startTasks tells the idle tasks of the given roles to start, once.
func (ar *AllocRunner) startTasks(v []taskView, roles ...role) {
	for _, t := range v {
		if t.phase == phaseIdle && slices.Contains(roles, t.role) && !ar.lc.startIssued[t.name] {
			if ar.lc.startIssued == nil {
				ar.lc.startIssued = map[string]bool{}
			}
			ar.lc.startIssued[t.name] = true
			ar.byName[t.name].start()
		}
	}
}

// stopTasks tells the tasks to stop, once, with the cause's event.
func (ar *AllocRunner) stopTasks(v []taskView, c *stopCause) {
	for _, t := range v {
		if ar.lc.stopIssued[t.name] {
			continue
		}
		if ar.lc.stopIssued == nil {
			ar.lc.stopIssued = map[string]bool{}
		}
		ar.lc.stopIssued[t.name] = true
		var reason *structs.TaskEvent
		if c.event != nil {
			reason = c.event()
		}
		ar.byName[t.name].stop(reason)
	}
}

// report computes the client status and, when it or a task state changed
// since the last report, records it, persists the allocation (when the
// status changed) and calls the Updater.
func (ar *AllocRunner) report(v []taskView) {
	versions := make([]uint64, len(v))
	for i, t := range v {
		versions[i] = t.version
	}
	status, desc := clientStatus(v)
	ar.mu.Lock()
	a := ar.alloc.Copy()
	ar.mu.Unlock()
	judged := ar.judgeHealth(a, v)
	if !judged && ar.lc.reported != nil && slices.Equal(versions, ar.lc.reported) && status == ar.lc.status && desc == ar.lc.desc {
		return
	}
	statusChanged := status != ar.lc.status
	ar.lc.reported, ar.lc.status, ar.lc.desc = versions, status, desc
	a.ClientStatus, a.ClientDescription, a.TaskStates = status, desc, taskStates(v)
	ar.mu.Lock()
	ar.alloc = a
	ar.mu.Unlock()
	if statusChanged || judged {
		if err := ar.cfg.StateDB.PutAlloc(a); err != nil {
			ar.logger.Error("could not save allocation status", "error", err)
		}
		ar.logger.Debug("allocation status changed", "status", status, "description", desc)
	}
	ar.cfg.Updater(a.Copy())
}

// clientStatus derives the allocation's client status from its tasks:
// failed once a task failed (after its restarts); complete when every task
// is dead; running once every main task has started; else pending.
func clientStatus(v []taskView) (status, desc string) {
	var failed []string
	allDead, anyMain := true, false
	mainStarted := true
	for _, t := range v {
		if t.state.State == TaskStateDead && t.state.Failed {
			failed = append(failed, t.name)
		}
		if t.state.State != TaskStateDead {
			allDead = false
		}
		if t.role == roleMain {
			anyMain = true
			mainStarted = mainStarted && !t.state.StartedAt.IsZero()
		}
	}
	switch {
	case len(failed) > 0:
		slices.Sort(failed)
		return structs.AllocClientStatusFailed, "Failed tasks: " + strings.Join(failed, ", ")
	case allDead:
		return structs.AllocClientStatusComplete, "All tasks have completed"
	case anyMain && mainStarted:
		return structs.AllocClientStatusRunning, "Tasks are running"
	}
	return structs.AllocClientStatusPending, "No tasks have started"
}

// every reports whether f holds for every task of role r (-1: any role).
func every(v []taskView, r role, f func(taskView) bool) bool {
	for _, t := range v {
		if (r < 0 || t.role == r) && !f(t) {
			return false
		}
	}
	return true
}

func filter(v []taskView, f func(taskView) bool) []taskView {
	var out []taskView
	for _, t := range v {
		if f(t) {
			out = append(out, t)
		}
	}
	return out
}

// anyStarted reports whether a task other than a poststop one ever ran.
func anyStarted(v []taskView) bool {
	for _, t := range v {
		if t.role != rolePoststop && !t.state.StartedAt.IsZero() {
			return true
		}
	}
	return false
}
