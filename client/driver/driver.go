// Package driver defines what the client needs from a task runtime. The
// containerd driver (client/driver/containerd) is the real one; unit tests of
// the task runner use a fake.
package driver

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrTaskNotFound is returned for a task ID the driver does not know (never
// started, already destroyed, or its container is gone).
var ErrTaskNotFound = errors.New("task not found")

// TaskConfig is everything a driver needs to start one task of one allocation.
type TaskConfig struct {
	// ID is unique per task instance on this node: "<allocID>/<taskName>".
	// Drivers derive container IDs and labels from it.
	ID        string
	AllocID   string
	JobID     string
	GroupName string
	TaskName  string
	Namespace string

	// Config is the task's driver config (structs.Task.Config): image,
	// command, args, entrypoint, env, mounts, cap_add, ... as decoded from HCL/JSON.
	Config map[string]any
	// Env is the complete task environment (SKIFF_* and NOMAD_* included);
	// config.env entries are merged over it by the driver.
	Env  map[string]string
	User string // task-level user; config.user wins when both are set

	// Resources.
	CPUMHz      int // becomes CPU shares
	MemoryMB    int // memory limit (soft when MemoryMaxMB > MemoryMB)
	MemoryMaxMB int // hard limit when set

	// Host paths. AllocDir is mounted at /alloc, TaskLocalDir at /local and
	// TaskSecretsDir at /secrets inside the container.
	AllocDir       string
	TaskLocalDir   string
	TaskSecretsDir string

	// LogDir receives "<task>.stdout.N" and "<task>.stderr.N", rotated at
	// LogMaxFileSizeMB and keeping LogMaxFiles of each.
	LogDir           string
	LogMaxFiles      int
	LogMaxFileSizeMB int
}

// TaskHandle identifies a running task. It is persisted by the client so a
// restarted agent can hand it to RecoverTask; DriverState is opaque to the client.
type TaskHandle struct {
	ID          string // TaskConfig.ID
	ContainerID string
	PID         uint32
	StartedAt   time.Time
	DriverState map[string]string
}

// ExitResult is how a task ended.
type ExitResult struct {
	ExitCode  int
	Signal    int // the signal that killed it, 0 if it exited on its own
	OOMKilled bool
	// Err is set when the driver lost track of the task (e.g. containerd
	// restarted and the task is gone); ExitCode is then meaningless.
	Err error
}

// Successful reports whether the task exited 0 on its own.
func (r *ExitResult) Successful() bool {
	return r.Err == nil && r.ExitCode == 0 && r.Signal == 0
}

// Fingerprint is what a driver tells the node about itself.
type Fingerprint struct {
	Healthy     bool
	Description string            // why it is unhealthy, or a version line
	Attributes  map[string]string // become node attributes, e.g. "driver.containerd.version"
}

// TaskStats is one resource-usage sample.
type TaskStats struct {
	Timestamp       time.Time
	CPUTotalNanos   uint64 // cumulative CPU time
	MemoryRSSBytes  uint64
	MemoryUsage     uint64
	MemoryMaxUsage  uint64
	ThrottledPeriod uint64
}

// ExecOptions runs a command inside a running task.
type ExecOptions struct {
	Command []string
	TTY     bool
	Stdin   io.Reader // may be nil
	Stdout  io.Writer
	Stderr  io.Writer // ignored with TTY (merged into Stdout)
	// Resize, if not nil, delivers terminal size changes (TTY only).
	Resize <-chan TerminalSize
}

// TerminalSize is a TTY's size in characters.
type TerminalSize struct{ Width, Height uint16 }

// Driver runs tasks. All methods are safe for concurrent use and take a
// context that bounds the call, not the task's life.
type Driver interface {
	Name() string
	Fingerprint(ctx context.Context) *Fingerprint

	// StartTask pulls or imports the image if needed, creates and starts the
	// task. A failure names the cause a user can act on (image not found,
	// registry unreachable, bad config key).
	StartTask(ctx context.Context, cfg *TaskConfig) (*TaskHandle, error)
	// RecoverTask re-attaches to a task started by an earlier agent process.
	// It returns ErrTaskNotFound if the task no longer exists.
	RecoverTask(ctx context.Context, h *TaskHandle) error
	// WaitTask returns a channel that receives one ExitResult when the task ends.
	WaitTask(ctx context.Context, taskID string) (<-chan *ExitResult, error)
	// StopTask sends signal (e.g. "SIGTERM"; empty means SIGTERM), waits up
	// to timeout for the task to exit, then sends SIGKILL. It returns as soon
	// as the task has exited.
	StopTask(ctx context.Context, taskID string, timeout time.Duration, signal string) error
	// SignalTask sends a signal to the task's main process.
	SignalTask(ctx context.Context, taskID string, signal string) error
	// DestroyTask removes the task and its container and snapshot; force
	// kills it first if it is still running.
	DestroyTask(ctx context.Context, taskID string, force bool) error
	// TaskStats samples the task's resource usage.
	TaskStats(ctx context.Context, taskID string) (*TaskStats, error)
	// ExecTask runs a command in the task and returns its exit code.
	ExecTask(ctx context.Context, taskID string, opts *ExecOptions) (int, error)
	// ListTasks returns the handles of every task this driver's namespace
	// holds that Skiff created, running or not, found by labels. The client
	// uses it to clean up containers that belong to no allocation.
	ListTasks(ctx context.Context) ([]*TaskHandle, error)
}
