package allocrunner

import (
	"context"
	"errors"
	"fmt"

	"github.com/skiffhq/skiff/client/driver"
)

// lookup returns the runner of a task by name.
func (ar *AllocRunner) lookup(task string) (*taskRunner, error) {
	tr := ar.byName[task]
	if tr == nil {
		return nil, fmt.Errorf("alloc %s has no task %q", ar.id, task)
	}
	return tr, nil
}

// targets returns the named task, or every task for "".
func (ar *AllocRunner) targets(task string) ([]*taskRunner, error) {
	if task == "" {
		return ar.tasks, nil
	}
	tr, err := ar.lookup(task)
	if err != nil {
		return nil, err
	}
	return []*taskRunner{tr}, nil
}

// Exec runs a command in a running task through its driver and returns
// the command's exit code. It fails, wrapping ErrTaskNotRunning, when the
// task is not running. ctx bounds the command.
func (ar *AllocRunner) Exec(ctx context.Context, task string, opts *driver.ExecOptions) (int, error) {
	tr, err := ar.lookup(task)
	if err != nil {
		return 0, err
	}
	id, err := tr.runningID()
	if err != nil {
		return 0, err
	}
	return tr.cfg.driver.ExecTask(ctx, id, opts)
}

// Signal sends sig to a task's main process, or with task "" to every
// running task. A named task that is not running is an error wrapping
// ErrTaskNotRunning; so is "" when no task runs.
func (ar *AllocRunner) Signal(ctx context.Context, task, sig string) error {
	return ar.eachRunning(task, func(tr *taskRunner, id string) error {
		return tr.cfg.driver.SignalTask(ctx, id, sig)
	})
}

// RestartTask restarts a running task, or with task "" every running
// task: each is stopped with its kill signal and started again at once.
// This is a user restart ("Restart Signaled"): it does not count against
// the restart policy. It returns once the restarts have begun. A named
// task that is not running is an error wrapping ErrTaskNotRunning; so is
// "" when no task runs.
func (ar *AllocRunner) RestartTask(ctx context.Context, task string) error {
	return ar.eachRunning(task, func(tr *taskRunner, _ string) error {
		return tr.requestRestart(ctx)
	})
}

// Stats samples the resource usage of every running task, by task name.
// Tasks whose sample failed are missing from the map and named in the
// error; the others' samples are still returned.
func (ar *AllocRunner) Stats(ctx context.Context) (map[string]*driver.TaskStats, error) {
	out := map[string]*driver.TaskStats{}
	var errs []error
	for _, tr := range ar.tasks {
		id, err := tr.runningID()
		if err != nil {
			continue
		}
		s, err := tr.cfg.driver.TaskStats(ctx, id)
		if err != nil {
			errs = append(errs, fmt.Errorf("task %q: %w", tr.name, err))
			continue
		}
		out[tr.name] = s
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("stats of alloc %s: %w", ar.id, errors.Join(errs...))
	}
	return out, nil
}

// eachRunning calls f for the named task, or for every running task when
// task is "", with the driver ID of its live instance.
func (ar *AllocRunner) eachRunning(task string, f func(tr *taskRunner, id string) error) error {
	trs, err := ar.targets(task)
	if err != nil {
		return err
	}
	var errs []error
	n := 0
	for _, tr := range trs {
		id, err := tr.runningID()
		if err != nil {
			if task != "" {
				return err
			}
			continue
		}
		n++
		if err := f(tr, id); err != nil {
			errs = append(errs, fmt.Errorf("task %q: %w", tr.name, err))
		}
	}
	if n == 0 {
		return fmt.Errorf("alloc %s: no task is running: %w", ar.id, ErrTaskNotRunning)
	}
	return errors.Join(errs...)
}
