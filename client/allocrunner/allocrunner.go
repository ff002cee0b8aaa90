package allocrunner

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/skiffhq/skiff/client/driver"
	"github.com/skiffhq/skiff/client/state"
	"github.com/skiffhq/skiff/structs"
)

// Config is what an AllocRunner needs. The runner keeps its own copy of
// Alloc; the other fields are shared and must stay valid while it runs.
type Config struct {
	// Alloc is the allocation as received from the servers, with its Job.
	Alloc *structs.Allocation
	// Node is this node, for the task environment and interpolation.
	Node *structs.Node
	// Region is the agent's region; the job's region when empty.
	Region string
	// Drivers by task driver name. The client maps "docker" to the
	// containerd driver too.
	Drivers map[string]driver.Driver
	// AllocDirRoot is the parent of allocation directories; the runner
	// owns <AllocDirRoot>/<allocID>.
	AllocDirRoot string
	// StateDB persists the allocation and its tasks.
	StateDB state.DB
	// Updater is called on the runner's goroutine with a fresh copy of the
	// allocation (ClientStatus, ClientDescription and TaskStates current)
	// whenever those change, after they were persisted. It must not block
	// long and must treat the copy as read-only. Optional.
	Updater func(*structs.Allocation)
	// Logger; a null logger when nil.
	Logger hclog.Logger
	// Now is the clock for event times and the restart policy; time.Now
	// when nil. Restart delays and kill timeouts are real timers.
	Now func() time.Time
}

// AllocRunner runs the tasks of one allocation on this node, in lifecycle
// order, and reports their states. One goroutine (started by Run) owns the
// allocation's lifecycle; one more per task owns that task's. Methods are
// safe for concurrent use.
type AllocRunner struct {
	cfg    Config
	id     string
	logger hclog.Logger
	dir    *allocDir
	tasks  []*taskRunner // in the group's order
	byName map[string]*taskRunner

	ctx          context.Context // canceled by Shutdown
	cancel       context.CancelFunc
	inbox        *mailbox
	wg           sync.WaitGroup // the lifecycle goroutine and the task runners
	waitCh       chan struct{}  // closed when every task is dead (or destroyed)
	waitOnce     sync.Once
	runOnce      sync.Once
	shutdownOnce sync.Once

	mu       sync.Mutex
	alloc    *structs.Allocation // guarded by mu; latest, with client status and task states
	running  bool                // guarded by mu; Run was called
	shutdown bool                // guarded by mu; Shutdown was called

	lc      lifecycle // owned by the run goroutine
	started time.Time // when Run started the runner (health deadlines count from it)
}

// Events of the alloc runner's state machine.
type (
	evAllocUpdate struct{ alloc *structs.Allocation }
	evDestroy     struct{}
)

// New returns a runner for cfg.Alloc. It does no I/O; Restore (for an
// allocation found in the StateDB) and then Run start the work. It fails
// when the allocation has no job or its group is not in the job.
func New(cfg *Config) (*AllocRunner, error) {
	if err := checkConfig(cfg); err != nil {
		return nil, err
	}
	c := *cfg
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Updater == nil {
		c.Updater = func(*structs.Allocation) {}
	}
	alloc := cfg.Alloc.Copy()
	if c.Region == "" {
		c.Region = alloc.Job.Region
	}
	ctx, cancel := context.WithCancel(context.Background())
	ar := &AllocRunner{
		cfg: c, id: alloc.ID, logger: c.Logger.With("alloc_id", alloc.ID),
		dir:    &allocDir{dir: filepath.Join(c.AllocDirRoot, alloc.ID)},
		byName: map[string]*taskRunner{},
		ctx:    ctx, cancel: cancel, inbox: newMailbox(), waitCh: make(chan struct{}),
	}
	for _, t := range alloc.Job.LookupTaskGroup(alloc.TaskGroup).Tasks {
		tr := newTaskRunner(ctx, ar.taskRunnerConfig(alloc, t))
		ar.tasks = append(ar.tasks, tr)
		ar.byName[t.Name] = tr
	}
	alloc.ClientStatus, alloc.ClientDescription = clientStatus(ar.views())
	alloc.TaskStates = taskStates(ar.views())
	ar.alloc = alloc
	return ar, nil
}

func checkConfig(cfg *Config) error {
	switch {
	case cfg == nil || cfg.Alloc == nil:
		return errors.New("new alloc runner: no allocation")
	case cfg.Alloc.ID == "":
		return errors.New("new alloc runner: the allocation has no ID")
	case cfg.Alloc.Job == nil:
		return fmt.Errorf("new alloc runner: alloc %s has no job", cfg.Alloc.ID)
	case cfg.Alloc.Job.LookupTaskGroup(cfg.Alloc.TaskGroup) == nil:
		return fmt.Errorf("new alloc runner: alloc %s: job %q has no group %q", cfg.Alloc.ID, cfg.Alloc.Job.ID, cfg.Alloc.TaskGroup)
	case cfg.StateDB == nil:
		return fmt.Errorf("new alloc runner: alloc %s: no state DB", cfg.Alloc.ID)
	case cfg.AllocDirRoot == "":
		return fmt.Errorf("new alloc runner: alloc %s: no alloc dir root", cfg.Alloc.ID)
	}
	return nil
}

func (ar *AllocRunner) taskRunnerConfig(alloc *structs.Allocation, t *structs.Task) taskRunnerConfig {
	drv, noDriver := ar.cfg.Drivers[t.Driver], error(nil)
	if drv == nil {
		names := slices.Sorted(maps.Keys(ar.cfg.Drivers))
		noDriver = fmt.Errorf("no %q task driver on this node (it has: %s)", t.Driver, strings.Join(names, ", "))
	}
	return taskRunnerConfig{
		alloc: alloc, task: t, role: roleOf(t), node: ar.cfg.Node, region: ar.cfg.Region,
		driver: drv, noDriver: noDriver, dir: ar.dir, db: ar.cfg.StateDB, logger: ar.logger,
		now: ar.cfg.Now, jitter: randomJitter, onChange: ar.inbox.poke,
	}
}

// Run starts the runner's goroutines and returns. They live until
// Shutdown or Destroy, also after WaitCh is closed (Update and Destroy are
// still served). Calls after the first, and calls after Shutdown, do
// nothing.
func (ar *AllocRunner) Run() {
	ar.runOnce.Do(func() {
		ar.mu.Lock()
		defer ar.mu.Unlock()
		if ar.shutdown {
			return
		}
		ar.running = true
		ar.started = ar.cfg.Now()
		ar.wg.Add(1)
		go ar.run()
	})
}

// run is the lifecycle goroutine: it starts the task runners, then steps
// the lifecycle on every update and task state change until Shutdown.
func (ar *AllocRunner) run() {
	defer ar.wg.Done()
	if err := ar.cfg.StateDB.PutAlloc(ar.Alloc()); err != nil {
		ar.logger.Error("could not save allocation; an agent restart will not find it", "error", err)
	}
	for _, tr := range ar.tasks {
		ar.wg.Add(1)
		go func() {
			defer ar.wg.Done()
			tr.run()
		}()
	}
	ar.step()
	for {
		select {
		case <-ar.ctx.Done():
			return
		case <-ar.inbox.wake:
			for _, ev := range ar.inbox.take() {
				ar.handleEvent(ev)
			}
			ar.step()
		}
	}
}

func (ar *AllocRunner) handleEvent(ev any) {
	switch ev := ev.(type) {
	case evAllocUpdate:
		ar.handleUpdate(ev.alloc)
	case evDestroy:
		ar.lc.destroy = true
	default:
		panic(fmt.Sprintf("alloc runner: unknown event %T", ev))
	}
}

// Update hands the runner a newer version of the allocation from the
// servers. Desired status stop or evict stops the tasks (each with its
// kill signal, SIGKILL after its kill timeout), then runs the poststop
// tasks; the allocation ends complete, or failed if a task failed. Any
// other change is applied in place: tasks keep running and later starts
// use the new task definitions. It never blocks.
func (ar *AllocRunner) Update(alloc *structs.Allocation) {
	ar.inbox.post(evAllocUpdate{alloc: alloc})
}

func (ar *AllocRunner) handleUpdate(a *structs.Allocation) {
	if a == nil || a.ID != ar.id {
		return
	}
	ar.mu.Lock()
	merged := a.Copy()
	if merged.Job == nil || merged.Job.LookupTaskGroup(merged.TaskGroup) == nil {
		merged.Job, merged.TaskGroup = ar.alloc.Job, ar.alloc.TaskGroup
	}
	// The servers mark an allocation unknown while its node is out of
	// touch; back in touch, the client says again what it knows.
	resend := a.ClientStatus == structs.AllocClientStatusUnknown && ar.alloc.ClientStatus != "" &&
		ar.alloc.ClientStatus != structs.AllocClientStatusUnknown
	merged.ClientStatus, merged.ClientDescription = ar.alloc.ClientStatus, ar.alloc.ClientDescription
	merged.TaskStates = ar.alloc.TaskStates
	if ds := ar.alloc.DeploymentStatus; ds != nil && ds.Healthy != nil && (merged.DeploymentStatus == nil || merged.DeploymentStatus.Healthy == nil) {
		// Health judged here and not yet on the servers: keep it.
		c := *ds
		if merged.DeploymentStatus != nil {
			c.Canary = merged.DeploymentStatus.Canary
		}
		merged.DeploymentStatus = &c
	}
	ar.alloc = merged
	ar.mu.Unlock()
	if err := ar.cfg.StateDB.PutAlloc(merged); err != nil {
		ar.logger.Error("could not save allocation update", "error", err)
	}
	if resend {
		ar.cfg.Updater(merged.Copy())
	}
	for _, tr := range ar.tasks {
		tr.updateAlloc(merged)
	}
}

// Shutdown is for an agent that stops: the runner stops watching and
// joins its goroutines, leaving the tasks running for the next agent
// process to Restore. Any goroutine; idempotent.
func (ar *AllocRunner) Shutdown() {
	ar.shutdownOnce.Do(func() {
		ar.mu.Lock()
		ar.shutdown = true
		ar.mu.Unlock()
		ar.cancel()
	})
	ar.wg.Wait()
}

// Destroy removes the allocation from this node (garbage collection): it
// stops tasks that still run (kill signal, then SIGKILL after the kill
// timeout; poststop tasks do not run), shuts the runner down, destroys
// every task's container through the driver, removes the allocation
// directory and deletes the allocation from the StateDB; then WaitCh is
// closed. ctx bounds the whole; if it ends first, or a step fails, the
// error says so and Destroy may be called again.
func (ar *AllocRunner) Destroy(ctx context.Context) error {
	if ar.runCalled() && !ar.isShutdown() {
		ar.inbox.post(evDestroy{})
		select {
		case <-ar.waitCh:
		case <-ctx.Done():
		}
	}
	ar.Shutdown()
	var errs []error
	for _, tr := range ar.tasks {
		if tr.cfg.driver == nil {
			continue
		}
		err := tr.cfg.driver.DestroyTask(ctx, tr.id, true)
		if err != nil && !errors.Is(err, driver.ErrTaskNotFound) {
			errs = append(errs, fmt.Errorf("task %q: %w", tr.name, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("destroy alloc %s (call Destroy again to retry): %w", ar.id, errors.Join(errs...))
	}
	if err := os.RemoveAll(ar.dir.dir); err != nil {
		return fmt.Errorf("destroy alloc %s: remove its directory: %w", ar.id, err)
	}
	if err := ar.cfg.StateDB.DeleteAlloc(ar.id); err != nil {
		return fmt.Errorf("destroy alloc %s: %w", ar.id, err)
	}
	ar.closeWait()
	return nil
}

// Alloc returns a copy of the latest allocation, with client status and
// task states. Treat it as read-only.
func (ar *AllocRunner) Alloc() *structs.Allocation {
	ar.mu.Lock()
	defer ar.mu.Unlock()
	return ar.alloc.Copy()
}

// WaitCh is closed when every task of the allocation is dead, after the
// final status was reported (or when Destroy has finished).
func (ar *AllocRunner) WaitCh() <-chan struct{} { return ar.waitCh }

// AllocDir returns <AllocDirRoot>/<allocID>.
func (ar *AllocRunner) AllocDir() string { return ar.dir.dir }

// LogDir returns the directory the driver writes "<task>.stdout.N" and
// "<task>.stderr.N" to: <AllocDir>/alloc/logs.
func (ar *AllocRunner) LogDir() string { return ar.dir.logDir() }

func (ar *AllocRunner) closeWait() { ar.waitOnce.Do(func() { close(ar.waitCh) }) }

func (ar *AllocRunner) runCalled() bool {
	ar.mu.Lock()
	defer ar.mu.Unlock()
	return ar.running
}

func (ar *AllocRunner) isShutdown() bool {
	ar.mu.Lock()
	defer ar.mu.Unlock()
	return ar.shutdown
}

// views reads every task runner's state.
func (ar *AllocRunner) views() []taskView {
	out := make([]taskView, len(ar.tasks))
	for i, tr := range ar.tasks {
		out[i] = tr.view()
	}
	return out
}

// taskStates returns the task states by name, as reported.
func taskStates(v []taskView) map[string]*structs.TaskState {
	out := make(map[string]*structs.TaskState, len(v))
	for _, t := range v {
		out[t.name] = copyTaskState(t.state)
	}
	return out
}
