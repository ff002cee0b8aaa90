package containerd

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2stats "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"

	"github.com/skiffhq/skiff/client/driver"
)

const (
	// killGrace bounds the wait for a task to exit after SIGKILL, which
	// only a process stuck in the kernel survives for long.
	killGrace = 30 * time.Second
	// maxRetryDelay caps the pause between attempts to re-watch a task
	// while containerd is unreachable.
	maxRetryDelay = 2 * time.Second
)

// RecoverTask re-attaches to the task of h, started by an earlier agent
// process, possibly before containerd itself restarted. Afterwards
// WaitTask reports the task's real exit status, also when it exited while
// no agent watched. It returns an error wrapping driver.ErrTaskNotFound
// when the container or its task is gone. Recovering a task that is
// already watched is a no-op.
func (d *Driver) RecoverTask(ctx context.Context, h *driver.TaskHandle) error {
	if h == nil || h.ID == "" {
		return errors.New("recover task: the handle has no task ID")
	}
	cid := h.ContainerID
	if cid == "" {
		cid = ContainerID(h.ID)
	}
	_, err := d.attach(d.nsCtx(ctx), h.ID, cid, h.StartedAt)
	return err
}

// attach loads the container and task cid of taskID from containerd,
// records them and starts watching the task. If another call attached the
// task first, that state is returned.
func (d *Driver) attach(ctx context.Context, taskID, cid string, startedAt time.Time) (*taskState, error) {
	ctx = d.nsCtx(ctx)
	c, err := d.client.LoadContainer(ctx, cid)
	if errdefs.IsNotFound(err) {
		return nil, notFound(taskID, fmt.Sprintf("container %s is gone", cid))
	}
	if err != nil {
		return nil, fmt.Errorf("recover task %q: load container %s: %w", taskID, cid, unwrapGRPC(err))
	}
	info, err := c.Info(ctx, client.WithoutRefreshedMetadata)
	if err != nil {
		return nil, fmt.Errorf("recover task %q: container %s: %w", taskID, cid, unwrapGRPC(err))
	}
	if got := info.Labels[LabelTaskID]; got != taskID {
		return nil, notFound(taskID, fmt.Sprintf("container %s belongs to task %q, not to this one", cid, got))
	}
	t, err := c.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil, notFound(taskID, fmt.Sprintf("container %s has no task (never started, or already deleted)", cid))
	}
	if err != nil {
		return nil, fmt.Errorf("recover task %q: load task of container %s: %w", taskID, cid, unwrapGRPC(err))
	}
	if startedAt.IsZero() {
		startedAt = info.CreatedAt
	}
	ts := &taskState{
		id:          taskID,
		containerID: cid,
		startedAt:   startedAt,
		container:   c,
		task:        t,
		done:        make(chan struct{}),
	}
	return d.track(ts, false)
}

// track records ts and starts its watcher. If the task is watched already,
// the existing state is returned, unless replace is set (a new start of
// the task). It fails only after Close.
func (d *Driver) track(ts *taskState, replace bool) (*taskState, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if old := d.tasks[ts.id]; old != nil && !replace {
		return old, nil
	}
	if err := d.goLocked(func() { d.watch(ts) }); err != nil {
		return nil, err
	}
	d.tasks[ts.id] = ts
	return ts, nil
}

// watch runs on its own goroutine per task, owned by the Driver, until the
// task exits or the Driver is closed. It waits for the task's exit status
// and publishes it. While containerd is unreachable it retries; if
// containerd no longer knows the task, the result carries an Err.
func (d *Driver) watch(ts *taskState) {
	ctx := d.nsCtx(d.ctx)
	delay := 100 * time.Millisecond
	for {
		statusC, err := ts.task.Wait(ctx)
		var st client.ExitStatus
		if err == nil {
			st = <-statusC
			err = st.Error()
		}
		if err == nil {
			ts.finish(d.exitResult(ctx, ts, st.ExitCode()))
			return
		}
		if d.ctx.Err() != nil {
			return
		}
		if err := unwrapGRPC(err); errdefs.IsNotFound(err) {
			ts.finish(&driver.ExitResult{ExitCode: -1, Err: fmt.Errorf("containerd lost task %q: %w", ts.id, err)})
			return
		}
		d.logger.Debug("cannot watch task; retrying", "task_id", ts.id, "error", err, "delay", delay)
		timer := time.NewTimer(delay)
		select {
		case <-d.ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		delay = min(2*delay, maxRetryDelay)
	}
}

// exitResult turns an exit status into an ExitResult. runc reports a
// death by signal n as 128+n; a SIGKILL is checked against the cgroup's
// OOM-kill counter.
func (d *Driver) exitResult(ctx context.Context, ts *taskState, code uint32) *driver.ExitResult {
	res := &driver.ExitResult{ExitCode: int(code)}
	if code > 128 && code <= 128+64 {
		res.Signal = int(code - 128)
	}
	if res.Signal == int(syscall.SIGKILL) {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if st, err := d.stats(ctx, ts.task); err == nil {
			res.OOMKilled = st.oomKills > 0
		}
	}
	return res
}

// finish publishes res unless a result was published already.
func (ts *taskState) finish(res *driver.ExitResult) {
	ts.once.Do(func() {
		ts.result = res
		close(ts.done)
	})
}

// WaitTask returns a channel that receives the task's ExitResult once,
// when it exits (at once if it has exited already). ctx bounds only this
// call; the channel is buffered and is never closed. A Driver that is
// closed before the task exits never sends.
func (d *Driver) WaitTask(ctx context.Context, taskID string) (<-chan *driver.ExitResult, error) {
	ts, err := d.lookup(ctx, taskID)
	if err != nil {
		return nil, err
	}
	ch := make(chan *driver.ExitResult, 1)
	if ts.exited() {
		ch <- ts.result
		return ch, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	err = d.goLocked(func() {
		select {
		case <-ts.done:
			ch <- ts.result
		case <-d.ctx.Done():
		}
	})
	if err != nil {
		return nil, err
	}
	return ch, nil
}

// StopTask sends signal (SIGTERM when empty) to the task's main process
// and returns as soon as the task has exited. If it is still running after
// timeout, every process of the task gets SIGKILL. A task that has exited
// already is not an error.
func (d *Driver) StopTask(ctx context.Context, taskID string, timeout time.Duration, signal string) error {
	ctx = d.nsCtx(ctx)
	sig, err := ParseSignal(signal)
	if err != nil {
		return fmt.Errorf("stop task %q: %w", taskID, err)
	}
	ts, err := d.lookup(ctx, taskID)
	if err != nil {
		return err
	}
	if ts.exited() {
		return nil
	}
	if err := ts.task.Kill(ctx, sig); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("stop task %q: send %s: %w", taskID, signalName(sig), unwrapGRPC(err))
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-ts.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop task %q: %w", taskID, ctx.Err())
	case <-timer.C:
	}
	d.logger.Info("task still running after kill timeout; sending SIGKILL", "task_id", taskID, "timeout", timeout, "signal", signalName(sig))
	return d.kill(ctx, ts)
}

// kill sends SIGKILL to every process of the task and waits for it to
// exit, bounded by ctx and killGrace.
func (d *Driver) kill(ctx context.Context, ts *taskState) error {
	if err := ts.task.Kill(ctx, syscall.SIGKILL, client.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("kill task %q: %w", ts.id, unwrapGRPC(err))
	}
	timer := time.NewTimer(killGrace)
	defer timer.Stop()
	select {
	case <-ts.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kill task %q: %w", ts.id, ctx.Err())
	case <-timer.C:
		return fmt.Errorf("kill task %q: still running %s after SIGKILL; a process may be stuck in the kernel (check its state in ps)", ts.id, killGrace)
	}
}

// SignalTask sends signal to the task's main process. It fails if the
// task has exited.
func (d *Driver) SignalTask(ctx context.Context, taskID string, signal string) error {
	ctx = d.nsCtx(ctx)
	sig, err := ParseSignal(signal)
	if err != nil {
		return fmt.Errorf("signal task %q: %w", taskID, err)
	}
	ts, err := d.lookup(ctx, taskID)
	if err != nil {
		return err
	}
	if ts.exited() {
		return fmt.Errorf("signal task %q: the task has exited", taskID)
	}
	if err := ts.task.Kill(ctx, sig); err != nil {
		return fmt.Errorf("signal task %q: send %s: %w", taskID, signalName(sig), unwrapGRPC(err))
	}
	return nil
}

// DestroyTask deletes the task, its container and the container's
// snapshot. A running task is refused unless force is set, in which case
// it is killed first. It returns an error wrapping driver.ErrTaskNotFound
// if the container is already gone.
func (d *Driver) DestroyTask(ctx context.Context, taskID string, force bool) error {
	ctx = d.nsCtx(ctx)
	d.mu.Lock()
	ts := d.tasks[taskID]
	d.mu.Unlock()
	cid := ContainerID(taskID)
	if ts != nil {
		cid = ts.containerID
	}
	c, err := d.client.LoadContainer(ctx, cid)
	if errdefs.IsNotFound(err) {
		d.forget(taskID)
		return notFound(taskID, fmt.Sprintf("container %s is gone", cid))
	}
	if err != nil {
		return fmt.Errorf("destroy task %q: load container %s: %w", taskID, cid, unwrapGRPC(err))
	}
	if ts != nil && force && !ts.exited() {
		// Through the watcher, so WaitTask reports the real exit.
		if err := d.kill(ctx, ts); err != nil {
			return fmt.Errorf("destroy task %q: %w", taskID, err)
		}
	}
	if err := d.deleteTask(ctx, taskID, c, force); err != nil {
		return err
	}
	if err := c.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("destroy task %q: delete container %s: %w", taskID, cid, unwrapGRPC(err))
	}
	if ts != nil {
		ts.finish(&driver.ExitResult{ExitCode: -1, Err: fmt.Errorf("task %q was destroyed before its exit was seen", taskID)})
	}
	d.forget(taskID)
	return nil
}

// deleteTask deletes the task of container c if it has one, killing it
// first when force is set and it is still running.
func (d *Driver) deleteTask(ctx context.Context, taskID string, c client.Container, force bool) error {
	t, err := c.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("destroy task %q: load task: %w", taskID, unwrapGRPC(err))
	}
	st, err := t.Status(ctx)
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("destroy task %q: task status: %w", taskID, unwrapGRPC(err))
	}
	if err == nil && st.Status != client.Stopped {
		if !force {
			return fmt.Errorf("destroy task %q: it is still %s; stop it first, or destroy with force", taskID, st.Status)
		}
		if err := d.killAndWait(ctx, taskID, t); err != nil {
			return err
		}
	}
	if _, err := t.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("destroy task %q: delete task: %w", taskID, unwrapGRPC(err))
	}
	return nil
}

// killAndWait kills every process of t and waits for its exit, bounded by
// ctx and killGrace. It works on tasks the Driver does not watch.
func (d *Driver) killAndWait(ctx context.Context, taskID string, t client.Task) error {
	waitCtx, cancel := context.WithTimeout(ctx, killGrace)
	defer cancel()
	statusC, err := t.Wait(waitCtx)
	if err != nil {
		return fmt.Errorf("destroy task %q: %w", taskID, unwrapGRPC(err))
	}
	if err := t.Kill(ctx, syscall.SIGKILL, client.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("destroy task %q: kill: %w", taskID, unwrapGRPC(err))
	}
	if st := <-statusC; st.Error() != nil {
		return fmt.Errorf("destroy task %q: wait for exit after SIGKILL: %w", taskID, unwrapGRPC(st.Error()))
	}
	return nil
}

// TaskStats samples the task's cgroup (v1 or v2).
func (d *Driver) TaskStats(ctx context.Context, taskID string) (*driver.TaskStats, error) {
	ctx = d.nsCtx(ctx)
	ts, err := d.lookup(ctx, taskID)
	if err != nil {
		return nil, err
	}
	st, err := d.stats(ctx, ts.task)
	if err != nil {
		return nil, fmt.Errorf("stats of task %q: %w", taskID, err)
	}
	return &st.TaskStats, nil
}

// sample is one metrics reading with the OOM-kill counter the driver
// uses internally.
type sample struct {
	driver.TaskStats
	oomKills uint64
}

func (d *Driver) stats(ctx context.Context, t client.Task) (*sample, error) {
	m, err := t.Metrics(ctx)
	if err != nil {
		return nil, unwrapGRPC(err)
	}
	data, err := typeurl.UnmarshalAny(m.Data)
	if err != nil {
		return nil, fmt.Errorf("decode metrics: %w", err)
	}
	s := &sample{TaskStats: driver.TaskStats{Timestamp: time.Now()}}
	if m.Timestamp != nil {
		s.Timestamp = m.Timestamp.AsTime()
	}
	switch v := data.(type) {
	case *v1stats.Metrics:
		if cpu := v.GetCPU(); cpu != nil {
			s.CPUTotalNanos = cpu.GetUsage().GetTotal()
			s.ThrottledPeriod = cpu.GetThrottling().GetThrottledPeriods()
		}
		if mem := v.GetMemory(); mem != nil {
			s.MemoryRSSBytes = mem.GetTotalRSS()
			if s.MemoryRSSBytes == 0 {
				s.MemoryRSSBytes = mem.GetRSS()
			}
			s.MemoryUsage = mem.GetUsage().GetUsage()
			s.MemoryMaxUsage = mem.GetUsage().GetMax()
		}
		s.oomKills = v.GetMemoryOomControl().GetOomKill()
	case *v2stats.Metrics:
		if cpu := v.GetCPU(); cpu != nil {
			s.CPUTotalNanos = cpu.GetUsageUsec() * 1000
			s.ThrottledPeriod = cpu.GetNrThrottled()
		}
		if mem := v.GetMemory(); mem != nil {
			s.MemoryRSSBytes = mem.GetAnon()
			s.MemoryUsage = mem.GetUsage()
			s.MemoryMaxUsage = mem.GetMaxUsage()
		}
		s.oomKills = v.GetMemoryEvents().GetOomKill()
	default:
		return nil, fmt.Errorf("unexpected metrics type %T", data)
	}
	return s, nil
}

// ListTasks returns a handle for every container in the driver's namespace
// that carries Skiff's labels, running or not. PID is 0 for a container
// without a task; DriverState["status"] holds the task's containerd status
// ("running", "stopped", ...) when it has one.
func (d *Driver) ListTasks(ctx context.Context) ([]*driver.TaskHandle, error) {
	ctx = d.nsCtx(ctx)
	cs, err := d.client.Containers(ctx, fmt.Sprintf("labels.%q", LabelTaskID))
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", unwrapGRPC(err))
	}
	var handles []*driver.TaskHandle
	for _, c := range cs {
		info, err := c.Info(ctx, client.WithoutRefreshedMetadata)
		if errdefs.IsNotFound(err) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("list tasks: container %s: %w", c.ID(), unwrapGRPC(err))
		}
		h := &driver.TaskHandle{
			ID:          info.Labels[LabelTaskID],
			ContainerID: c.ID(),
			StartedAt:   info.CreatedAt,
			DriverState: map[string]string{"image": info.Image},
		}
		if t, err := c.Task(ctx, nil); err == nil {
			h.PID = t.Pid()
			if st, err := t.Status(ctx); err == nil {
				h.DriverState["status"] = string(st.Status)
			}
		}
		handles = append(handles, h)
	}
	return handles, nil
}
