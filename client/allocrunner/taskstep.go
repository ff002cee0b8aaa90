package allocrunner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/skiffhq/skiff/client/driver"
	"github.com/skiffhq/skiff/client/state"
	"github.com/skiffhq/skiff/structs"
)

// The task state machine. Every function here runs on the task runner's
// goroutine. Transitions happen only in the becomeX functions, each of
// which persists the new state before telling the alloc runner:
//
//	event                 from -> to
//	start                 idle -> starting
//	start succeeded       starting -> running (-> stopping if a kill came meanwhile)
//	start failed          starting -> restartWait | dead        (restart policy)
//	exit                  running -> restartWait | dead         (restart policy)
//	kill                  idle, restartWait -> dead; running -> stopping;
//	                      starting: the start is canceled, then dead
//	user restart          running -> stopping; restartWait -> starting
//	exit while stopping   stopping -> dead (kill) | restartWait, no delay (user restart)
//	restart due           restartWait -> starting

func (tr *taskRunner) step(ev any) {
	switch ev := ev.(type) {
	case evStart:
		tr.handleStart()
	case *evKill:
		tr.handleKill(ev)
	case evUserRestart:
		ev.reply <- tr.handleUserRestart()
	case evStartResult:
		tr.handleStartResult(ev)
	case evStopDone:
		tr.handleStopDone(ev)
	case evExit:
		tr.handleExit(ev.res)
	case evRestartDue:
		tr.handleRestartDue()
	default:
		panic(fmt.Sprintf("task runner: unknown event %T", ev))
	}
}

func (tr *taskRunner) handleStart() {
	if tr.currentPhase() == phaseIdle && tr.kill == nil {
		tr.becomeStarting()
	}
}

func (tr *taskRunner) handleKill(ev *evKill) {
	ph := tr.currentPhase()
	if tr.kill != nil || ph == phaseDead {
		return
	}
	tr.kill = ev
	var reason []*structs.TaskEvent
	if ev.reason != nil {
		reason = append(reason, ev.reason)
	}
	switch ph {
	case phaseIdle:
		tr.becomeDead(false, reason...)
	case phaseStarting:
		tr.record(reason...)
		tr.startCancel() // the start result ends the task
	case phaseRunning:
		tr.record(reason...)
		tr.becomeStopping()
	case phaseStopping:
		tr.record(reason...) // a user restart's stop: its exit now ends the task
	case phaseRestartWait:
		tr.stopTimer()
		tr.becomeDead(false, append(reason, newEvent(tr.cfg.now(), EventKilled, "Task killed while waiting to restart"))...)
	}
}

func (tr *taskRunner) handleUserRestart() error {
	ph := tr.currentPhase()
	if tr.kill != nil || (ph != phaseRunning && ph != phaseRestartWait) {
		return fmt.Errorf("task %q is %s: %w", tr.name, tr.view().state.State, ErrTaskNotRunning)
	}
	tr.record(newEvent(tr.cfg.now(), EventRestartSignal, "User requested restart"))
	if ph == phaseRestartWait {
		tr.stopTimer()
		tr.restart.NextStart = time.Time{}
		tr.becomeStarting()
		return nil
	}
	tr.userRestart = true
	tr.becomeStopping()
	return nil
}

func (tr *taskRunner) handleStartResult(ev evStartResult) {
	if ev.gen != tr.gen || tr.currentPhase() != phaseStarting {
		return
	}
	tr.startCancel = nil
	switch {
	case ev.err != nil && tr.kill != nil:
		tr.becomeDead(false) // the kill canceled the start
	case ev.err != nil:
		tr.prior = priorUnknown // a failed start may leave a container behind
		tr.logger.Warn("task failed to start", "error", ev.err)
		tr.afterEnd(false, newEvent(tr.cfg.now(), EventDriverFailure, ev.err.Error()))
	default:
		tr.becomeRunning(ev.handle)
		if tr.kill != nil && tr.currentPhase() == phaseRunning {
			tr.becomeStopping()
		}
	}
}

func (tr *taskRunner) handleStopDone(ev evStopDone) {
	if ev.gen != tr.gen || tr.currentPhase() != phaseStopping || ev.err == nil {
		return // on success the exit arrives on exitCh
	}
	if errors.Is(ev.err, driver.ErrTaskNotFound) {
		tr.handleExit(&driver.ExitResult{ExitCode: -1, Err: ev.err})
		return
	}
	tr.logger.Error("stopping the task failed", "error", ev.err)
	if tr.userRestart {
		tr.userRestart = false
		tr.setPhase(phaseRunning) // the instance still runs; keep watching it
		tr.record(newEvent(tr.cfg.now(), EventRestartSignal, fmt.Sprintf("Restart failed: %v", ev.err)))
		return
	}
	tr.exitCh = nil
	tr.becomeDead(false, withDetail(newEvent(tr.cfg.now(), EventKilled,
		fmt.Sprintf("Killing the task failed: %v", ev.err)), detailError, ev.err.Error()))
}

func (tr *taskRunner) handleExit(res *driver.ExitResult) {
	if ph := tr.currentPhase(); ph != phaseRunning && ph != phaseStopping {
		return
	}
	tr.exitCh = nil
	tr.prior = priorExited
	if res.Err != nil {
		tr.prior = priorUnknown
	}
	now := tr.cfg.now()
	term := terminatedEvent(now, res)
	switch {
	case tr.kill != nil:
		tr.becomeDead(false, term, newEvent(now, EventKilled, "Task successfully killed"))
	case tr.userRestart:
		tr.userRestart = false
		tr.becomeRestartWait(0, "restart requested by user", term)
	default:
		if !res.Successful() {
			tr.logger.Info("task exited", "exit_code", res.ExitCode, "signal", res.Signal, "error", res.Err)
		}
		tr.afterEnd(res.Successful(), term)
	}
}

func (tr *taskRunner) handleRestartDue() {
	if tr.currentPhase() != phaseRestartWait {
		return
	}
	tr.restart.NextStart = time.Time{}
	tr.becomeStarting()
}

// afterEnd applies the restart policy to the end of an instance (or a
// failed start), recording evs first.
func (tr *taskRunner) afterEnd(success bool, evs ...*structs.TaskEvent) {
	completes := tr.batch || tr.role.ephemeral()
	d := decideRestart(tr.policy(), completes, success, &tr.restart, tr.cfg.now(), tr.cfg.jitter)
	switch {
	case d.restart:
		tr.becomeRestartWait(d.delay, d.reason, evs...)
	case d.failed:
		e := withDetail(newEvent(tr.cfg.now(), EventNotRestarting, d.reason), detailRestartReason, d.reason)
		tr.becomeDead(true, append(evs, e)...)
	default:
		tr.becomeDead(false, evs...)
	}
}

// becomeStarting builds the task's directories (the first time) and
// starts an instance on another goroutine; evStartResult reports it.
func (tr *taskRunner) becomeStarting() {
	if !tr.setupDone {
		tr.record(newEvent(tr.cfg.now(), EventSetup, "Building Task Directory"))
		if err := tr.buildDirs(); err != nil {
			tr.logger.Error("task setup failed", "error", err)
			tr.afterEnd(false, newEvent(tr.cfg.now(), EventSetupFailure, err.Error()))
			return
		}
		tr.setupDone = true
	}
	cfg := tr.taskConfig()
	tr.gen++
	gen, prior := tr.gen, tr.prior
	ctx, cancel := context.WithCancel(tr.ctx)
	tr.startCancel = cancel
	tr.setPhase(phaseStarting)
	tr.wg.Add(1)
	go func() {
		defer tr.wg.Done()
		defer cancel()
		h, err := tr.startInstance(ctx, cfg, prior)
		tr.inbox.post(evStartResult{gen: gen, handle: h, err: err})
	}()
}

func (tr *taskRunner) buildDirs() error {
	if err := tr.cfg.dir.buildShared(); err != nil {
		return fmt.Errorf("build allocation directory: %w", err)
	}
	if err := tr.cfg.dir.buildTask(tr.name); err != nil {
		return fmt.Errorf("build task directory: %w", err)
	}
	return nil
}

// startInstance runs on a goroutine of its own: it removes what an
// earlier instance left (same task ID), then starts a new one.
func (tr *taskRunner) startInstance(ctx context.Context, cfg *driver.TaskConfig, p prior) (*driver.TaskHandle, error) {
	drv := tr.cfg.driver
	if drv == nil {
		return nil, tr.cfg.noDriver
	}
	if p != priorNone {
		err := drv.DestroyTask(ctx, cfg.ID, p == priorUnknown)
		if err != nil && !errors.Is(err, driver.ErrTaskNotFound) {
			return nil, fmt.Errorf("remove the previous instance of the task before starting it again: %w", err)
		}
	}
	h, err := drv.StartTask(ctx, cfg)
	if err == nil && h == nil {
		err = errors.New("the driver returned no handle")
	}
	return h, err
}

// becomeRunning records the started instance and watches for its exit.
func (tr *taskRunner) becomeRunning(h *driver.TaskHandle) {
	now := tr.cfg.now()
	tr.transition(phaseRunning, h, func(s *structs.TaskState) {
		s.State, s.Failed, s.StartedAt, s.FinishedAt = TaskStateRunning, false, now, time.Time{}
		appendEvents(s, newEvent(now, EventStarted, "Task started by client"))
	})
	tr.watch(h.ID)
}

// watch asks the driver for the instance's exit; failing that, the
// instance counts as lost.
func (tr *taskRunner) watch(id string) {
	ch, err := tr.cfg.driver.WaitTask(tr.ctx, id)
	if err != nil {
		tr.handleExit(&driver.ExitResult{ExitCode: -1, Err: fmt.Errorf("watch task: %w", err)})
		return
	}
	tr.exitCh = ch
}

// becomeStopping sends the kill signal on another goroutine: StopTask
// waits up to the kill timeout, then kills. evStopDone reports it; the
// exit arrives on exitCh.
func (tr *taskRunner) becomeStopping() {
	sig, timeout := tr.killParams()
	tr.mu.Lock()
	id := tr.handle.ID
	tr.mu.Unlock()
	tr.transition(phaseStopping, nil, func(s *structs.TaskState) {
		appendEvents(s, killingEvent(tr.cfg.now(), sig, timeout))
	})
	gen, drv := tr.gen, tr.cfg.driver
	tr.wg.Add(1)
	go func() {
		defer tr.wg.Done()
		ctx, cancel := context.WithTimeout(tr.ctx, timeout+stopSlack)
		defer cancel()
		err := drv.StopTask(ctx, id, timeout, sig)
		if err != nil && !errors.Is(err, driver.ErrTaskNotFound) && tr.ctx.Err() == nil {
			// Not when the agent shuts down: the task is left as it is.
			if derr := drv.DestroyTask(ctx, id, true); derr == nil {
				err = nil // force-destroyed: the driver reports the exit
			} else {
				err = errors.Join(err, derr)
			}
		}
		tr.inbox.post(evStopDone{gen: gen, err: err})
	}()
}

// becomeRestartWait records the decision to restart and arms the timer.
func (tr *taskRunner) becomeRestartWait(delay time.Duration, reason string, evs ...*structs.TaskEvent) {
	now := tr.cfg.now()
	tr.restart.NextStart = now.Add(delay)
	tr.transition(phaseRestartWait, nil, func(s *structs.TaskState) {
		s.State = TaskStatePending
		s.Restarts++
		s.LastRestart = now
		appendEvents(s, evs...)
		appendEvents(s, restartingEvent(now, delay, reason))
	})
	tr.timer = time.NewTimer(delay)
}

// becomeDead ends the task for good.
func (tr *taskRunner) becomeDead(failed bool, evs ...*structs.TaskEvent) {
	now := tr.cfg.now()
	tr.restart.NextStart = time.Time{}
	tr.transition(phaseDead, nil, func(s *structs.TaskState) {
		s.State, s.Failed, s.FinishedAt = TaskStateDead, failed, now
		appendEvents(s, evs...)
	})
}

// record appends events without a change of phase.
func (tr *taskRunner) record(evs ...*structs.TaskEvent) {
	if len(evs) == 0 {
		return
	}
	tr.transition(tr.currentPhase(), nil, func(s *structs.TaskState) { appendEvents(s, evs...) })
}

// transition moves to phase ph with a changed copy of the task state,
// persists the result and tells the alloc runner. The live handle becomes
// h when the phase changes, except into phaseStopping, whose instance is
// the running one; record, which keeps the phase, keeps the handle. So
// entering running sets it, and entering restartWait or dead (h nil)
// clears it.
func (tr *taskRunner) transition(ph taskPhase, h *driver.TaskHandle, change func(*structs.TaskState)) {
	tr.mu.Lock()
	s := copyTaskState(tr.state)
	change(s)
	if ph != tr.phase && ph != phaseStopping {
		tr.handle = h
	}
	tr.phase, tr.state = ph, s
	tr.version++
	local := &state.LocalTaskState{Handle: tr.handle, State: s, Restart: tr.restart}
	tr.mu.Unlock()
	if err := tr.cfg.db.PutTaskState(tr.cfg.alloc.ID, tr.name, local); err != nil {
		tr.logger.Error("could not save task state; an agent restart may lose track of the task", "error", err)
	}
	tr.cfg.onChange()
}

// setPhase changes the phase alone; nothing reported changes.
func (tr *taskRunner) setPhase(ph taskPhase) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.phase = ph
}

// appendEvents adds evs to s, keeping the newest maxEventsPerTask.
func appendEvents(s *structs.TaskState, evs ...*structs.TaskEvent) {
	s.Events = append(s.Events, evs...)
	if n := len(s.Events); n > maxEventsPerTask {
		s.Events = append([]*structs.TaskEvent(nil), s.Events[n-maxEventsPerTask:]...)
	}
}
