package containerd

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"

	"github.com/skiffhq/skiff/client/driver"
)

// cleanupTimeout bounds the removal of a half-created container after a
// failed start, which runs even when the caller's context is done.
const cleanupTimeout = 30 * time.Second

// StartTask gets the image (pulled once, or imported from an
// oci-archive), creates the container with Skiff's labels and starts its
// task with stdout and stderr going to the logger process. A leftover
// container of the same task that is not running is replaced; a running
// one is an error, so a task never runs twice. On failure nothing is left
// behind.
func (d *Driver) StartTask(ctx context.Context, cfg *driver.TaskConfig) (*driver.TaskHandle, error) {
	if cfg == nil || cfg.ID == "" {
		return nil, errors.New("start task: the task config has no ID")
	}
	ctx = d.nsCtx(ctx)
	h, err := d.start(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("start task %q: %w", cfg.ID, err)
	}
	return h, nil
}

func (d *Driver) start(ctx context.Context, cfg *driver.TaskConfig) (*driver.TaskHandle, error) {
	s, err := parseSettings(cfg.Config)
	if err != nil {
		return nil, err
	}
	if err := d.checkPolicy(s); err != nil {
		return nil, err
	}
	t0 := time.Now()
	img, err := d.ensureImage(ctx, s)
	if err != nil {
		return nil, err
	}
	tImage := time.Since(t0)
	ic, err := img.Spec(ctx)
	if err != nil {
		return nil, fmt.Errorf("read config of image %s: %w", img.Name(), unwrapGRPC(err))
	}
	specOpts, err := d.specOpts(cfg, s, ic.Config, img)
	if err != nil {
		return nil, err
	}
	logIO, err := d.logIO(cfg)
	if err != nil {
		return nil, err
	}

	cid := ContainerID(cfg.ID)
	if err := d.removeStale(ctx, cfg.ID, cid); err != nil {
		return nil, err
	}
	t1 := time.Now()
	c, err := d.client.NewContainer(ctx, cid,
		client.WithImage(img),
		client.WithSnapshotter(d.cfg.Snapshotter),
		client.WithNewSnapshot(cid, img),
		client.WithContainerLabels(containerLabels(cfg, s)),
		client.WithNewSpec(specOpts...))
	if errdefs.IsAlreadyExists(err) {
		return nil, fmt.Errorf("container %s was created by a concurrent start of the same task: %w", cid, err)
	}
	if err != nil {
		return nil, fmt.Errorf("create container %s: %w", cid, unwrapGRPC(err))
	}

	cleanup := func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if err := c.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
			d.logger.Warn("cannot remove container after failed start", "container_id", cid, "error", err)
		}
	}
	tCreate := time.Since(t1)
	t2 := time.Now()
	t, err := c.NewTask(ctx, logIO)
	tTask := time.Since(t2)
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("create task in container %s: %w", cid, unwrapGRPC(err))
	}
	if err := t.Start(ctx); err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		_, _ = t.Delete(dctx, client.WithProcessKill)
		cancel()
		cleanup()
		return nil, fmt.Errorf("start task in container %s: %w", cid, unwrapGRPC(err))
	}

	ts := &taskState{
		id:          cfg.ID,
		containerID: cid,
		startedAt:   time.Now(),
		container:   c,
		task:        t,
		done:        make(chan struct{}),
	}
	// removeStale found no live task under this ID: replace any old state.
	if _, err := d.track(ts, true); err != nil {
		return nil, err // closed meanwhile; the task runs on, found by ListTasks
	}
	d.logger.Info("started task", "task_id", cfg.ID, "container_id", cid, "image", img.Name(), "pid", t.Pid(),
		"image_time", tImage, "create_time", tCreate, "task_time", tTask, "total", time.Since(t0))
	return &driver.TaskHandle{
		ID:          cfg.ID,
		ContainerID: cid,
		PID:         t.Pid(),
		StartedAt:   ts.startedAt,
		DriverState: map[string]string{"image": img.Name()},
	}, nil
}

// containerLabels returns the task's own labels overlaid with Skiff's.
func containerLabels(cfg *driver.TaskConfig, s *taskSettings) map[string]string {
	labels := maps.Clone(s.labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[LabelAllocID] = cfg.AllocID
	labels[LabelTask] = cfg.TaskName
	labels[LabelJob] = cfg.JobID
	labels[LabelGroup] = cfg.GroupName
	labels[LabelTaskID] = cfg.ID
	return labels
}

// logIO sends the task's stdout and stderr to the logger binary, or
// discards them when the task has no log directory.
func (d *Driver) logIO(cfg *driver.TaskConfig) (cio.Creator, error) {
	if cfg.LogDir == "" {
		return cio.NullIO, nil
	}
	if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
		return nil, fmt.Errorf("create log directory: %w", err)
	}
	spec := LogSpec{
		Dir:      cfg.LogDir,
		Task:     cfg.TaskName,
		MaxFiles: cfg.LogMaxFiles,
		MaxSize:  int64(cfg.LogMaxFileSizeMB) << 20,
	}
	if spec.Task == "" {
		spec.Task = ContainerID(cfg.ID)
	}
	if spec.MaxFiles <= 0 {
		spec.MaxFiles = defaultLogMaxFiles
	}
	if spec.MaxSize <= 0 {
		spec.MaxSize = defaultLogMaxSize
	}
	// The shim runs "<binary> <key> <value>" for a URI with one query
	// pair; more pairs would come in random order.
	return cio.BinaryIO(d.cfg.LoggerBinary, map[string]string{d.cfg.LoggerArgs[0]: spec.Encode()}), nil
}

// removeStale deletes what a previous start of the task left behind: a
// container whose task is not running, or a snapshot without a container.
// It refuses when the task is still running.
func (d *Driver) removeStale(ctx context.Context, taskID, cid string) error {
	c, err := d.client.LoadContainer(ctx, cid)
	if errdefs.IsNotFound(err) {
		err := d.client.SnapshotService(d.cfg.Snapshotter).Remove(ctx, cid)
		if err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("remove leftover snapshot %s: %w", cid, unwrapGRPC(err))
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up container %s: %w", cid, unwrapGRPC(err))
	}
	t, err := c.Task(ctx, nil)
	switch {
	case errdefs.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("look up task of container %s: %w", cid, unwrapGRPC(err))
	default:
		st, err := t.Status(ctx)
		if err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("status of container %s: %w", cid, unwrapGRPC(err))
		}
		if err == nil && st.Status != client.Stopped && st.Status != client.Created {
			return fmt.Errorf("container %s already runs this task (%s); recover or stop it instead of starting a second copy", cid, st.Status)
		}
		if _, err := t.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete old task of container %s: %w", cid, unwrapGRPC(err))
		}
	}
	if err := c.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete old container %s: %w", cid, unwrapGRPC(err))
	}
	d.logger.Info("removed leftover container of an earlier start", "task_id", taskID, "container_id", cid)
	return nil
}
