package containerd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/hashicorp/go-hclog"
	"golang.org/x/sync/singleflight"

	"github.com/skiffhq/skiff/client/driver"
)

// Defaults for Config fields left empty.
const (
	DefaultAddress     = "/run/containerd/containerd.sock"
	DefaultNamespace   = "skiff"
	DefaultSnapshotter = "overlayfs"
	// DefaultLoggerArg is the subcommand of the skiff binary that runs
	// LoggerMain.
	DefaultLoggerArg = "logmon"
)

const (
	// fingerprintTimeout bounds one Fingerprint call.
	fingerprintTimeout = 2 * time.Second
	// dialTimeout is the gRPC connect timeout and the longest reconnect
	// backoff after containerd restarts.
	dialTimeout = 3 * time.Second
)

// Credentials authenticate to one registry.
type Credentials struct {
	Username string
	Password string
}

// Config configures a Driver. The zero value talks to the system
// containerd with Skiff's defaults.
type Config struct {
	// Address is containerd's gRPC socket; default DefaultAddress.
	Address string
	// Namespace isolates Skiff's containers and images from other
	// containerd users; default DefaultNamespace.
	Namespace string
	// Snapshotter unpacks images and holds root filesystems; default
	// DefaultSnapshotter.
	Snapshotter string
	// InsecureRegistries are registry hosts ("host" or "host:port") that
	// are pulled from over plain HTTP.
	InsecureRegistries []string
	// Auth maps a registry host to its credentials. A task's own auth
	// block wins over it.
	Auth map[string]Credentials
	// AllowPrivileged lets tasks set privileged = true.
	AllowPrivileged bool
	// AllowHostMounts lets tasks bind-mount host paths with mount blocks.
	AllowHostMounts bool
	// LoggerBinary is the absolute path of the program containerd's shim
	// starts to write a task's stdout and stderr to files (see LoggerMain);
	// default: this executable.
	LoggerBinary string
	// LoggerArgs go in front of the log specification on the logger's
	// command line; default [DefaultLoggerArg]. The shim builds that
	// command line from a URI query whose order it does not keep, so
	// exactly one argument is supported: the logger runs as
	// "LoggerBinary LoggerArgs[0] <spec>".
	LoggerArgs []string
	// Logger receives the driver's logs; default: discard.
	Logger hclog.Logger
}

// Driver runs Skiff tasks as containerd containers. It implements
// driver.Driver; every method is safe for concurrent use. Tasks keep
// running when the Driver (or the whole agent) goes away: a new Driver on
// the same containerd finds them again with RecoverTask or ListTasks.
type Driver struct {
	cfg    Config
	client *client.Client
	logger hclog.Logger

	// ctx lives until Close and bounds the goroutines that watch tasks.
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup // one per goroutine started by goLocked
	closeOnce sync.Once

	pulls singleflight.Group // concurrent starts of one image share a pull

	archMu   sync.Mutex
	archives map[string]archiveImport // by path: the last import; guarded by archMu

	mu     sync.Mutex
	tasks  map[string]*taskState // by TaskConfig.ID; guarded by mu
	closed bool                  // guarded by mu; no new goroutines once set
}

// errClosed is returned by calls made after Close.
var errClosed = errors.New("containerd driver is closed")

var _ driver.Driver = (*Driver)(nil)

// New returns a Driver for cfg. It does not contact containerd: the
// connection is made on first use, so New succeeds while containerd is
// still starting, and Fingerprint reports whether it answers.
func New(cfg Config) (*Driver, error) {
	if cfg.Address == "" {
		cfg.Address = DefaultAddress
	}
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultNamespace
	}
	if cfg.Snapshotter == "" {
		cfg.Snapshotter = DefaultSnapshotter
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.LoggerBinary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("containerd driver: find this executable for the log process: %w; set LoggerBinary", err)
		}
		cfg.LoggerBinary = exe
	}
	if !filepath.IsAbs(cfg.LoggerBinary) {
		return nil, fmt.Errorf("containerd driver: LoggerBinary %q must be an absolute path", cfg.LoggerBinary)
	}
	if cfg.LoggerArgs == nil {
		cfg.LoggerArgs = []string{DefaultLoggerArg}
	}
	if len(cfg.LoggerArgs) != 1 || cfg.LoggerArgs[0] == "" {
		return nil, fmt.Errorf("containerd driver: LoggerArgs must hold exactly one non-empty argument (got %q): containerd passes the logger its arguments as unordered key/value pairs", cfg.LoggerArgs)
	}
	c, err := client.New(cfg.Address,
		client.WithDefaultNamespace(cfg.Namespace),
		client.WithTimeout(dialTimeout))
	if err != nil {
		return nil, fmt.Errorf("containerd driver: connect to %s: %w", cfg.Address, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Driver{
		cfg:    cfg,
		client: c,
		logger: cfg.Logger,
		ctx:    ctx,
		cancel: cancel,
		tasks:  map[string]*taskState{},
	}, nil
}

// Name returns "containerd".
func (d *Driver) Name() string { return "containerd" }

// Close stops watching tasks and closes the connection to containerd. The
// tasks keep running; WaitTask channels that have not fired never will.
// Calls after the first do nothing.
func (d *Driver) Close() error {
	var err error
	d.closeOnce.Do(func() {
		d.mu.Lock()
		d.closed = true
		d.mu.Unlock()
		d.cancel()
		d.wg.Wait()
		err = d.client.Close()
	})
	return err
}

// nsCtx scopes ctx to the driver's namespace.
func (d *Driver) nsCtx(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, d.cfg.Namespace)
}

// Fingerprint asks containerd for its version, bounded by ctx and by 2 s.
// It reports Healthy false, with the reason, when the socket does not
// answer. The attributes advertise "containerd" and its alias "docker",
// so job files written for Nomad's docker driver place here.
func (d *Driver) Fingerprint(ctx context.Context) *driver.Fingerprint {
	ctx, cancel := context.WithTimeout(d.nsCtx(ctx), fingerprintTimeout)
	defer cancel()
	v, err := d.client.Version(ctx)
	if err != nil {
		return &driver.Fingerprint{
			Healthy: false,
			Description: fmt.Sprintf("containerd at %s is not answering (%v); check that containerd is running and that the socket path is right",
				d.cfg.Address, unwrapGRPC(err)),
			Attributes: map[string]string{},
		}
	}
	return &driver.Fingerprint{
		Healthy:     true,
		Description: fmt.Sprintf("containerd %s (revision %s)", v.Version, v.Revision),
		Attributes: map[string]string{
			"driver.containerd":          "1",
			"driver.containerd.version":  v.Version,
			"driver.containerd.revision": v.Revision,
			"driver.docker":              "1",
		},
	}
}

// taskState is what the driver knows about one task it watches.
type taskState struct {
	id          string // TaskConfig.ID
	containerID string
	startedAt   time.Time
	container   client.Container
	task        client.Task

	once   sync.Once          // guards the publication of result
	done   chan struct{}      // closed once result is set
	result *driver.ExitResult // written once, before done is closed
}

func (ts *taskState) exited() bool {
	select {
	case <-ts.done:
		return true
	default:
		return false
	}
}

// goLocked runs f on a new goroutine owned by the Driver: Close stops it
// through d.ctx and waits for it. It returns errClosed after Close.
func (d *Driver) goLocked(f func()) error {
	if d.closed {
		return errClosed
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		f()
	}()
	return nil
}

// lookup returns the watched task with this ID. A task this Driver does
// not watch yet (started by an earlier agent, not yet recovered) is
// attached on the way, so Stop and Destroy work on leftovers found by
// ListTasks. It returns an error wrapping driver.ErrTaskNotFound when no
// container holds the task.
func (d *Driver) lookup(ctx context.Context, taskID string) (*taskState, error) {
	d.mu.Lock()
	ts := d.tasks[taskID]
	d.mu.Unlock()
	if ts != nil {
		return ts, nil
	}
	return d.attach(ctx, taskID, ContainerID(taskID), time.Time{})
}

// forget stops tracking a task (after DestroyTask).
func (d *Driver) forget(taskID string) {
	d.mu.Lock()
	delete(d.tasks, taskID)
	d.mu.Unlock()
}

// notFound wraps driver.ErrTaskNotFound with the task's ID and a reason.
func notFound(taskID, why string) error {
	return fmt.Errorf("task %q: %s: %w", taskID, why, driver.ErrTaskNotFound)
}
