package allocrunner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/skiffhq/skiff/client/driver"
	"github.com/skiffhq/skiff/client/state"
)

// Restore re-attaches the runner to what an earlier agent process left,
// from the StateDB: a task that was dead stays dead; a task that was
// running is re-attached through the driver's RecoverTask and watched
// again, never started a second time; a task whose instance is gone
// (ErrTaskNotFound, or any other recovery error) counts as having exited
// with an error and follows its restart policy; a restart that was
// pending stays pending until it is due. Where no live handle was saved
// for a task that is not dead, or recovery failed, the task's container
// is force-destroyed first, since the agent may have died between
// StartTask and saving the handle. Call it before Run, on the caller's
// goroutine. It returns an error only when the StateDB cannot be read;
// ctx bounds the driver calls.
func (ar *AllocRunner) Restore(ctx context.Context) error {
	if ar.runCalled() {
		return fmt.Errorf("restore alloc %s: the runner is already running", ar.id)
	}
	saved, err := ar.cfg.StateDB.TaskStates(ar.id)
	if err != nil {
		return fmt.Errorf("restore alloc %s: %w", ar.id, err)
	}
	for _, tr := range ar.tasks {
		tr.restore(ctx, saved[tr.name])
	}
	v := ar.views()
	ar.mu.Lock()
	ar.alloc.ClientStatus, ar.alloc.ClientDescription = clientStatus(v)
	ar.alloc.TaskStates = taskStates(v)
	ar.mu.Unlock()
	return nil
}

// restore sets the task runner up from what was saved. It runs before
// run starts, so it owns the runner's loop fields.
func (tr *taskRunner) restore(ctx context.Context, ls *state.LocalTaskState) {
	if ls == nil || ls.State == nil {
		return // never saved: it starts afresh
	}
	tr.restart = ls.Restart
	tr.mu.Lock()
	tr.state = copyTaskState(ls.State)
	tr.version++
	tr.mu.Unlock()
	tr.setupDone = ls.State.State != TaskStatePending || !ls.State.StartedAt.IsZero()
	switch {
	case ls.State.State == TaskStateDead:
		tr.setPhase(phaseDead)
	case ls.Handle != nil:
		tr.recover(ctx, ls.Handle)
	case !ls.Restart.NextStart.IsZero():
		tr.setPhase(phaseRestartWait)
		tr.removeLeftover(ctx)
	default:
		tr.setPhase(phaseIdle)
		tr.removeLeftover(ctx)
	}
	if tr.pendingExit != nil && tr.prior == priorUnknown {
		tr.removeLeftover(ctx)
	}
}

// removeLeftover force-destroys what an interrupted start, or an instance
// that could not be re-attached, may have left running: the agent may
// have died after StartTask but before it saved the handle. Destroying it
// now means the task is never found running twice, and never left running
// when it is stopped before its next start.
func (tr *taskRunner) removeLeftover(ctx context.Context) {
	tr.prior = priorUnknown
	if tr.cfg.driver == nil {
		return
	}
	err := tr.cfg.driver.DestroyTask(ctx, tr.id, true)
	if err != nil && !errors.Is(err, driver.ErrTaskNotFound) {
		tr.logger.Error("could not remove what an earlier agent process left of the task", "error", err)
		return
	}
	tr.prior = priorNone
}

// recover re-attaches to a running instance, or notes that it is gone.
func (tr *taskRunner) recover(ctx context.Context, h *driver.TaskHandle) {
	tr.mu.Lock()
	tr.phase, tr.handle = phaseRunning, h
	tr.mu.Unlock()
	tr.prior = priorExited
	drv := tr.cfg.driver
	if drv == nil {
		tr.pendingExit = &driver.ExitResult{ExitCode: -1, Err: fmt.Errorf("re-attach after agent restart: %w", tr.cfg.noDriver)}
		return
	}
	err := drv.RecoverTask(ctx, h)
	switch {
	case err == nil:
		tr.logger.Info("re-attached to running task", "task_id", h.ID)
	case errors.Is(err, driver.ErrTaskNotFound):
		tr.logger.Warn("task is gone after agent restart", "error", err)
		tr.pendingExit = &driver.ExitResult{ExitCode: -1, Err: fmt.Errorf("task lost while the agent was down: %w", err)}
	default:
		tr.logger.Error("could not re-attach to task; it will be destroyed and follow its restart policy", "error", err)
		tr.prior = priorUnknown
		tr.pendingExit = &driver.ExitResult{ExitCode: -1, Err: fmt.Errorf("re-attach after agent restart: %w", err)}
	}
}

// resume runs first on the task runner's goroutine: it handles the end of
// an instance found gone by restore, watches a re-attached one, and arms
// the timer of a pending restart.
func (tr *taskRunner) resume() {
	ph := tr.currentPhase()
	switch {
	case tr.pendingExit != nil:
		res := tr.pendingExit
		tr.pendingExit = nil
		tr.handleExit(res)
	case ph == phaseRunning:
		tr.mu.Lock()
		id := tr.handle.ID
		tr.mu.Unlock()
		tr.watch(id)
	case ph == phaseRestartWait:
		tr.timer = time.NewTimer(max(0, tr.restart.NextStart.Sub(tr.cfg.now())))
	}
}
