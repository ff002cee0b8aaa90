package containerd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/hashicorp/go-hclog"
)

// privateStartTimeout bounds how long StartPrivate waits for a new daemon
// to answer when the caller's context has no earlier deadline.
const privateStartTimeout = 30 * time.Second

// maxSocketPath leaves room in a unix socket path (108 bytes with the
// terminating NUL) for the ".ttrpc" suffix containerd adds for its second
// socket.
const maxSocketPath = 100

// Private is a containerd daemon owned by Skiff: its root, state and socket
// live under one directory so it never touches the system daemon's data.
// Dev mode and tests use it. Shims (and so tasks) outlive Stop by design; a
// later StartPrivate on the same directory re-attaches to them.
type Private struct {
	dir     string
	address string
	sockDir string // directory holding the socket when it is outside dir, else ""
	logger  hclog.Logger

	cmd     *exec.Cmd
	logFile *os.File
	exited  chan struct{} // closed once cmd has been waited for
	waitErr error         // set before exited is closed
}

// StartPrivate writes a minimal containerd configuration under dir (root,
// state and gRPC socket, CRI disabled, no debug or metrics listeners),
// starts the containerd binary found on PATH and waits until it answers,
// bounded by ctx and by 30 s. The daemon's own output goes to
// dir/containerd.log. When dir is too long for a unix socket path, the
// socket goes to /run/skiff-<hash of dir>/ instead. Calling StartPrivate
// again on the same dir after Stop restarts a daemon that sees the same
// containers and tasks.
func StartPrivate(ctx context.Context, dir string, logger hclog.Logger) (*Private, error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	bin, err := exec.LookPath("containerd")
	if err != nil {
		return nil, fmt.Errorf("start private containerd: %w; install containerd (Debian: apt-get install containerd)", err)
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("start private containerd: %w", err)
	}
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, fmt.Errorf("start private containerd: %w", err)
	}

	p := &Private{dir: dir, logger: logger, exited: make(chan struct{})}
	p.address = filepath.Join(dir, "containerd.sock")
	if len(p.address) > maxSocketPath {
		sum := sha256.Sum256([]byte(dir))
		p.sockDir = "/run/skiff-" + hex.EncodeToString(sum[:6])
		if err := os.MkdirAll(p.sockDir, 0o700); err != nil {
			return nil, fmt.Errorf("start private containerd: socket directory: %w", err)
		}
		p.address = filepath.Join(p.sockDir, "containerd.sock")
	}
	// A socket file left by a daemon that was killed would make the
	// readiness check below talk to nothing; remove it.
	for _, s := range []string{p.address, p.address + ".ttrpc"} {
		if err := os.Remove(s); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("start private containerd: remove stale socket: %w", err)
		}
	}

	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(privateConfig(dir, p.address)), 0o600); err != nil {
		return nil, fmt.Errorf("start private containerd: write config: %w", err)
	}
	p.logFile, err = os.OpenFile(filepath.Join(dir, "containerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start private containerd: %w", err)
	}

	p.cmd = exec.Command(bin, "--config", cfgPath)
	p.cmd.Stdout = p.logFile
	p.cmd.Stderr = p.logFile
	// Its own process group: a terminal's Ctrl-C must not reach the daemon
	// before the agent has had a chance to stop tasks.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		p.logFile.Close()
		return nil, fmt.Errorf("start private containerd: %w", err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		p.logFile.Close()
		close(p.exited)
	}()
	p.logger.Debug("started", "pid", p.cmd.Process.Pid, "address", p.address, "dir", dir)

	if err := p.waitReady(ctx); err != nil {
		_ = p.Stop(context.Background())
		return nil, err
	}
	return p, nil
}

// privateConfig returns a containerd 1.6+ configuration (version 2) that
// keeps everything under dir.
func privateConfig(dir, address string) string {
	q := func(s string) string { return fmt.Sprintf("%q", s) }
	return strings.Join([]string{
		"version = 2",
		"root = " + q(filepath.Join(dir, "root")),
		"state = " + q(filepath.Join(dir, "state")),
		`disabled_plugins = ["io.containerd.grpc.v1.cri"]`,
		"",
		"[grpc]",
		"  address = " + q(address),
		"",
		"[debug]",
		`  address = ""`,
		`  level = "info"`,
		"",
		"[metrics]",
		`  address = ""`,
		"",
	}, "\n")
}

// waitReady polls the daemon's version endpoint until it answers, the
// process exits, or the deadline passes.
func (p *Private) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, privateStartTimeout)
	defer cancel()
	c, err := client.New(p.address, client.WithTimeout(time.Second))
	if err != nil {
		return fmt.Errorf("start private containerd: %w", err)
	}
	defer c.Close()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		callCtx, callCancel := context.WithTimeout(ctx, time.Second)
		_, err := c.Version(callCtx)
		callCancel()
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("start private containerd: daemon exited (%v) before answering; its log ends with:\n%s", p.waitErr, p.logTail())
		case <-ctx.Done():
			return fmt.Errorf("start private containerd: no answer on %s: %w; its log ends with:\n%s", p.address, ctx.Err(), p.logTail())
		case <-tick.C:
		}
	}
}

// logTail returns the last lines of the daemon's log, for error messages.
func (p *Private) logTail() string {
	b, err := os.ReadFile(filepath.Join(p.dir, "containerd.log"))
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) > 10 {
		lines = lines[len(lines)-10:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// Address returns the daemon's gRPC socket path, for Config.Address.
func (p *Private) Address() string { return p.address }

// Dir returns the directory holding the daemon's configuration and data.
func (p *Private) Dir() string { return p.dir }

// Stop sends SIGTERM to the daemon, waits for it to exit until ctx is done
// or 10 s have passed, then sends SIGKILL. Tasks keep running in their
// shims. Stop is idempotent.
func (p *Private) Stop(ctx context.Context) error {
	defer p.removeSockDir()
	select {
	case <-p.exited:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop private containerd: %w", err)
	}
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case <-p.exited:
		return nil
	case <-ctx.Done():
	case <-timer.C:
	}
	p.logger.Warn("daemon did not exit after SIGTERM; killing it", "pid", p.cmd.Process.Pid)
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop private containerd: %w", err)
	}
	<-p.exited // SIGKILL cannot be ignored; Wait returns promptly
	return nil
}

func (p *Private) removeSockDir() {
	if p.sockDir != "" {
		_ = os.RemoveAll(p.sockDir)
	}
}
