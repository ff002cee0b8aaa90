package allocrunner

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/skiffhq/skiff/client/driver"
)

// fakeDriver runs pretend tasks: each runs until the test makes it exit
// (exit), is stopped, or is destroyed. It records every call, can be made
// to fail starts, and notes any start of a task ID whose previous
// instance still runs (two running copies of one task).
type fakeDriver struct {
	mu         sync.Mutex
	tasks      map[string]*fakeTask // current instance by task ID
	calls      []fakeCall
	startErr   map[string]error // by task name
	ignoreStop map[string]bool  // by task name: the kill signal is ignored, SIGKILL after the timeout
	violations []string
}

type fakeTask struct {
	cfg     *driver.TaskConfig
	handle  *driver.TaskHandle
	result  *driver.ExitResult // nil while running
	waiters []chan *driver.ExitResult
}

type fakeCall struct {
	op      string // StartTask, RecoverTask, StopTask, SignalTask, DestroyTask, ExecTask
	id      string
	signal  string
	timeout time.Duration
	force   bool
}

var _ driver.Driver = (*fakeDriver)(nil)

func newFakeDriver() *fakeDriver {
	return &fakeDriver{tasks: map[string]*fakeTask{}, startErr: map[string]error{}, ignoreStop: map[string]bool{}}
}

func (d *fakeDriver) record(c fakeCall) {
	d.calls = append(d.calls, c)
}

func (d *fakeDriver) Name() string { return "fake" }

func (d *fakeDriver) Fingerprint(context.Context) *driver.Fingerprint {
	return &driver.Fingerprint{Healthy: true}
}

func (d *fakeDriver) StartTask(ctx context.Context, cfg *driver.TaskConfig) (*driver.TaskHandle, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.record(fakeCall{op: "StartTask", id: cfg.ID})
	if err := d.startErr[cfg.TaskName]; err != nil {
		return nil, err
	}
	if old := d.tasks[cfg.ID]; old != nil {
		if old.result == nil {
			d.violations = append(d.violations, fmt.Sprintf("StartTask(%s) while an instance runs", cfg.ID))
		} else {
			d.violations = append(d.violations, fmt.Sprintf("StartTask(%s) before the exited instance was destroyed", cfg.ID))
		}
	}
	h := &driver.TaskHandle{ID: cfg.ID, ContainerID: "c-" + cfg.ID, PID: uint32(len(d.calls)), StartedAt: time.Now(),
		DriverState: map[string]string{"n": fmt.Sprint(len(d.calls))}}
	d.tasks[cfg.ID] = &fakeTask{cfg: cfg, handle: h}
	c := *h
	return &c, nil
}

func (d *fakeDriver) RecoverTask(ctx context.Context, h *driver.TaskHandle) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.record(fakeCall{op: "RecoverTask", id: h.ID})
	if d.tasks[h.ID] == nil {
		return fmt.Errorf("recover %s: %w", h.ID, driver.ErrTaskNotFound)
	}
	return nil
}

func (d *fakeDriver) WaitTask(ctx context.Context, id string) (<-chan *driver.ExitResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.tasks[id]
	if t == nil {
		return nil, fmt.Errorf("wait %s: %w", id, driver.ErrTaskNotFound)
	}
	ch := make(chan *driver.ExitResult, 1)
	if t.result != nil {
		ch <- t.result
	} else {
		t.waiters = append(t.waiters, ch)
	}
	return ch, nil
}

// finishLocked ends a running instance with res.
func (d *fakeDriver) finishLocked(t *fakeTask, res *driver.ExitResult) {
	if t.result != nil {
		return
	}
	t.result = res
	for _, w := range t.waiters {
		w <- res
	}
	t.waiters = nil
}

func (d *fakeDriver) StopTask(ctx context.Context, id string, timeout time.Duration, signal string) error {
	d.mu.Lock()
	d.record(fakeCall{op: "StopTask", id: id, signal: signal, timeout: timeout})
	t := d.tasks[id]
	if t == nil {
		d.mu.Unlock()
		return fmt.Errorf("stop %s: %w", id, driver.ErrTaskNotFound)
	}
	if !d.ignoreStop[t.cfg.TaskName] {
		d.finishLocked(t, &driver.ExitResult{ExitCode: 143, Signal: 15})
		d.mu.Unlock()
		return nil
	}
	d.mu.Unlock()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.finishLocked(t, &driver.ExitResult{ExitCode: 137, Signal: 9})
	return nil
}

func (d *fakeDriver) SignalTask(ctx context.Context, id, signal string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.record(fakeCall{op: "SignalTask", id: id, signal: signal})
	if t := d.tasks[id]; t == nil || t.result != nil {
		return fmt.Errorf("signal %s: %w", id, driver.ErrTaskNotFound)
	}
	return nil
}

func (d *fakeDriver) DestroyTask(ctx context.Context, id string, force bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.record(fakeCall{op: "DestroyTask", id: id, force: force})
	t := d.tasks[id]
	if t == nil {
		return fmt.Errorf("destroy %s: %w", id, driver.ErrTaskNotFound)
	}
	if t.result == nil {
		if !force {
			return fmt.Errorf("destroy %s: still running", id)
		}
		d.finishLocked(t, &driver.ExitResult{ExitCode: 137, Signal: 9})
	}
	delete(d.tasks, id)
	return nil
}

func (d *fakeDriver) TaskStats(ctx context.Context, id string) (*driver.TaskStats, error) {
	if !d.running(id) {
		return nil, fmt.Errorf("stats %s: %w", id, driver.ErrTaskNotFound)
	}
	return &driver.TaskStats{Timestamp: time.Now(), MemoryRSSBytes: 1 << 20}, nil
}

func (d *fakeDriver) ExecTask(ctx context.Context, id string, opts *driver.ExecOptions) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.record(fakeCall{op: "ExecTask", id: id})
	if t := d.tasks[id]; t == nil || t.result != nil {
		return 0, fmt.Errorf("exec %s: %w", id, driver.ErrTaskNotFound)
	}
	return len(opts.Command), nil
}

func (d *fakeDriver) ListTasks(context.Context) ([]*driver.TaskHandle, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*driver.TaskHandle
	for _, t := range d.tasks {
		out = append(out, t.handle)
	}
	return out, nil
}

// Test controls.

// exit makes the running instance of task ID id exit with code.
func (d *fakeDriver) exit(id string, code int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.tasks[id]
	if t == nil || t.result != nil {
		return errors.New("not running")
	}
	d.finishLocked(t, &driver.ExitResult{ExitCode: code})
	return nil
}

// lose forgets a task as a restarted containerd might, without telling
// anyone watching it.
func (d *fakeDriver) lose(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.tasks, id)
}

func (d *fakeDriver) running(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.tasks[id]
	return t != nil && t.result == nil
}

func (d *fakeDriver) config(id string) *driver.TaskConfig {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t := d.tasks[id]; t != nil {
		return t.cfg
	}
	return nil
}

func (d *fakeDriver) setStartErr(task string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.startErr[task] = err
}

// count returns how many calls of op were made for id ("" for any).
func (d *fakeDriver) count(op, id string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, c := range d.calls {
		if c.op == op && (id == "" || c.id == id) {
			n++
		}
	}
	return n
}

// callsOf returns the recorded calls of op.
func (d *fakeDriver) callsOf(op string) []fakeCall {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []fakeCall
	for _, c := range d.calls {
		if c.op == op {
			out = append(out, c)
		}
	}
	return out
}

// index returns the position of the n-th (0-based) call of op for id in
// the call log, or -1.
func (d *fakeDriver) index(op, id string, n int) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, c := range d.calls {
		if c.op == op && c.id == id {
			if n == 0 {
				return i
			}
			n--
		}
	}
	return -1
}

func (d *fakeDriver) violationList() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.violations...)
}
