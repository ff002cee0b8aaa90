package allocrunner

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/skiffhq/skiff/client/driver"
	"github.com/skiffhq/skiff/client/state"
	"github.com/skiffhq/skiff/structs"
)

// ErrTaskNotRunning is returned by operations that need a running task
// (exec, signal, restart, stats) when the task is not running.
var ErrTaskNotRunning = errors.New("task is not running")

// taskPhase is where a task runner's state machine is. Reported task
// states map onto it: idle, starting and restartWait are "pending";
// running and stopping are "running"; dead is "dead".
type taskPhase int

const (
	phaseIdle        taskPhase = iota // waiting for the alloc runner to let it start
	phaseStarting                     // a StartTask call is under way
	phaseRunning                      // an instance runs; waiting for its exit
	phaseStopping                     // a StopTask call is under way (kill or user restart)
	phaseRestartWait                  // the instance ended; a restart is due at restart.NextStart
	phaseDead                         // for good
)

// prior says what may be left of an earlier instance of the task, which
// has the same driver task ID and must be removed before the next start.
type prior int

const (
	priorNone    prior = iota // no instance was ever started
	priorExited               // the last instance was seen to exit
	priorUnknown              // an instance may still run (failed start, agent crash mid-start)
)

// stopSlack is added to a task's kill timeout to bound a StopTask call.
const stopSlack = 30 * time.Second

// taskRunnerConfig is what an alloc runner gives each task runner.
type taskRunnerConfig struct {
	alloc    *structs.Allocation
	task     *structs.Task
	role     role
	node     *structs.Node
	region   string
	driver   driver.Driver // nil when the node has no driver by the task's name
	noDriver error         // why driver is nil
	dir      *allocDir
	db       state.DB
	logger   hclog.Logger
	now      func() time.Time
	jitter   func(time.Duration) time.Duration
	onChange func() // after each persisted state change; must not block
}

// taskRunner runs one task of an allocation through its life: start,
// watch, restart per policy, stop. Its state machine is owned by the
// goroutine in run; other goroutines talk to it through its mailbox and
// read its state under mu.
type taskRunner struct {
	cfg    taskRunnerConfig
	name   string
	id     string // driver task ID, "<allocID>/<task>"
	role   role
	leader bool
	batch  bool
	logger hclog.Logger
	ctx    context.Context // canceled when the agent shuts down
	inbox  *mailbox
	wg     sync.WaitGroup // StartTask and StopTask calls in flight
	done   chan struct{}  // closed when run has returned

	mu      sync.Mutex
	alloc   *structs.Allocation // guarded by mu; latest from the servers
	task    *structs.Task       // guarded by mu; the task in alloc's job
	phase   taskPhase           // guarded by mu
	state   *structs.TaskState  // guarded by mu; replaced on change, never modified in place
	handle  *driver.TaskHandle  // guarded by mu; the live instance, nil when none
	version uint64              // guarded by mu; bumped on every state change

	// Owned by the run goroutine (and by restore, before run starts).
	restart     state.RestartState
	gen         int // start attempts so far; results of older ones are ignored
	exitCh      <-chan *driver.ExitResult
	timer       *time.Timer
	startCancel context.CancelFunc
	kill        *evKill // set when the task was told to stop for good
	userRestart bool    // the stop under way is a user restart
	prior       prior
	pendingExit *driver.ExitResult // from restore: the instance could not be re-attached
	setupDone   bool
}

// Events of the task runner's state machine.
type (
	evStart       struct{}
	evKill        struct{ reason *structs.TaskEvent } // reason may be nil
	evUserRestart struct{ reply chan error }
	evStartResult struct {
		gen    int
		handle *driver.TaskHandle
		err    error
	}
	evStopDone struct {
		gen int
		err error
	}
	evExit       struct{ res *driver.ExitResult }
	evRestartDue struct{}
)

func newTaskRunner(ctx context.Context, cfg taskRunnerConfig) *taskRunner {
	now := cfg.now()
	tr := &taskRunner{
		cfg:    cfg,
		name:   cfg.task.Name,
		id:     cfg.alloc.ID + "/" + cfg.task.Name,
		role:   cfg.role,
		leader: cfg.task.Leader,
		batch:  cfg.alloc.Job.Type == structs.JobTypeBatch || cfg.alloc.Job.Type == structs.JobTypeSysBatch,
		logger: cfg.logger.With("task", cfg.task.Name),
		ctx:    ctx,
		inbox:  newMailbox(),
		done:   make(chan struct{}),
		alloc:  cfg.alloc,
		task:   cfg.task,
		state: &structs.TaskState{State: TaskStatePending, Events: []*structs.TaskEvent{
			newEvent(now, EventReceived, "Task received by client")}},
	}
	return tr
}

// run is the task runner's goroutine. It returns when the task is dead or
// the agent shuts down (ctx), after joining its driver calls. On shutdown
// the task's instance keeps running.
func (tr *taskRunner) run() {
	defer close(tr.done)
	defer tr.wg.Wait()
	defer tr.stopTimer()
	tr.resume()
	for tr.currentPhase() != phaseDead {
		select {
		case <-tr.ctx.Done():
			return
		case <-tr.inbox.wake:
			for _, ev := range tr.inbox.take() {
				tr.step(ev)
			}
		case res, ok := <-tr.exitCh:
			if !ok || res == nil {
				res = &driver.ExitResult{ExitCode: -1, Err: errors.New("the driver stopped reporting on the task")}
			}
			tr.step(evExit{res})
		case <-tr.timerC():
			tr.timer = nil
			tr.step(evRestartDue{})
		}
	}
}

// start lets an idle task start; it is a no-op in any other phase. Any
// goroutine; never blocks.
func (tr *taskRunner) start() { tr.inbox.post(evStart{}) }

// stop tells the task to stop for good: an idle task becomes dead, a
// running one is sent its kill signal and killed after its kill timeout.
// reason, if not nil, is recorded first (e.g. "Sibling Task Failed").
// Any goroutine; never blocks.
func (tr *taskRunner) stop(reason *structs.TaskEvent) { tr.inbox.post(&evKill{reason: reason}) }

// requestRestart restarts a running task without counting it against the
// restart policy. It returns once the restart has begun, with
// ErrTaskNotRunning (wrapped) if the task is not running.
func (tr *taskRunner) requestRestart(ctx context.Context) error {
	reply := make(chan error, 1)
	tr.inbox.post(evUserRestart{reply: reply})
	select {
	case err := <-reply:
		return err
	case <-tr.done:
		select {
		case err := <-reply:
			return err
		default:
			return fmt.Errorf("task %q: %w", tr.name, ErrTaskNotRunning)
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

// updateAlloc records a newer version of the allocation; the next start
// uses its task definition. A version without this task is ignored.
func (tr *taskRunner) updateAlloc(a *structs.Allocation) {
	tg := a.Job.LookupTaskGroup(a.TaskGroup)
	if tg == nil || tg.LookupTask(tr.name) == nil {
		return
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.alloc, tr.task = a, tg.LookupTask(tr.name)
}

// taskView is a consistent look at a task runner from the outside.
type taskView struct {
	name    string
	role    role
	leader  bool
	phase   taskPhase
	state   *structs.TaskState // shared, never modified
	version uint64
}

func (tr *taskRunner) view() taskView {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return taskView{name: tr.name, role: tr.role, leader: tr.leader, phase: tr.phase, state: tr.state, version: tr.version}
}

func (tr *taskRunner) currentPhase() taskPhase {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.phase
}

// runningID returns the driver task ID of the live instance, or an
// error wrapping ErrTaskNotRunning.
func (tr *taskRunner) runningID() (string, error) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.handle == nil || tr.phase != phaseRunning {
		return "", fmt.Errorf("task %q is %s: %w", tr.name, tr.state.State, ErrTaskNotRunning)
	}
	return tr.handle.ID, nil
}

// spec returns the current allocation and task definition.
func (tr *taskRunner) spec() (*structs.Allocation, *structs.Task) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.alloc, tr.task
}

// killParams returns the task's kill signal and timeout with defaults.
func (tr *taskRunner) killParams() (string, time.Duration) {
	_, t := tr.spec()
	sig, timeout := t.KillSignal, t.KillTimeout
	if sig == "" {
		sig = defaultKillSignal
	}
	if timeout <= 0 {
		timeout = defaultKillTimeout
	}
	return sig, timeout
}

// policy returns the restart policy in force.
func (tr *taskRunner) policy() *structs.RestartPolicy {
	a, t := tr.spec()
	return restartPolicy(a.Job, a.Job.LookupTaskGroup(a.TaskGroup), t)
}

// taskConfig builds what the driver needs to start the task now.
func (tr *taskRunner) taskConfig() *driver.TaskConfig {
	a, t := tr.spec()
	tg := a.Job.LookupTaskGroup(a.TaskGroup)
	in := envInput{alloc: a, group: tg, task: t, node: tr.cfg.node, region: tr.cfg.region}
	env := taskEnv(in)
	cpu, mem, memMax := taskResources(a, t)
	files, size := 10, 10
	if lc := t.LogConfig; lc != nil && lc.MaxFiles > 0 && lc.MaxFileSizeMB > 0 {
		files, size = lc.MaxFiles, lc.MaxFileSizeMB
	}
	cfg, _ := interpolateConfig(t.Config, env, in).(map[string]any)
	taskDir := tr.cfg.dir.taskDir(t.Name)
	return &driver.TaskConfig{
		ID: tr.id, AllocID: a.ID, JobID: a.JobID, GroupName: a.TaskGroup, TaskName: t.Name,
		Namespace: a.Namespace, Config: cfg, Env: env, User: t.User,
		CPUMHz: cpu, MemoryMB: mem, MemoryMaxMB: memMax,
		AllocDir: tr.cfg.dir.sharedDir(), TaskLocalDir: filepath.Join(taskDir, "local"),
		TaskSecretsDir: filepath.Join(taskDir, "secrets"),
		LogDir:         tr.cfg.dir.logDir(), LogMaxFiles: files, LogMaxFileSizeMB: size,
	}
}

func (tr *taskRunner) timerC() <-chan time.Time {
	if tr.timer == nil {
		return nil
	}
	return tr.timer.C
}

func (tr *taskRunner) stopTimer() {
	if tr.timer != nil {
		tr.timer.Stop()
		tr.timer = nil
	}
}
