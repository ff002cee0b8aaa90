// Package testcontainerd gives tests a private containerd daemon, a local
// registry and a busybox image, all torn down with the test. Production
// code must not import it.
//
// Tests that need containerd skip when the machine cannot run it (not
// root, no containerd binary), unless SKIFF_REQUIRE_CONTAINERD=1 (set by
// CI), which turns the skip into a failure.
package testcontainerd

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/hashicorp/go-hclog"
	"golang.org/x/crypto/bcrypt"

	"github.com/skiffhq/skiff/client/driver/containerd"
	"github.com/skiffhq/skiff/internal/ociimage"
	"github.com/skiffhq/skiff/internal/testutil"
)

// RequireEnv, when "1", makes missing prerequisites fail tests instead of
// skipping them.
const RequireEnv = "SKIFF_REQUIRE_CONTAINERD"

// Timeouts of the helpers; every wait is bounded.
const (
	startTimeout   = 30 * time.Second
	cleanupTimeout = 2 * time.Minute
	removeTimeout  = 15 * time.Second // per container
)

// Env is one private containerd daemon for one test.
type Env struct {
	// Address is the daemon's socket, for containerd.Config.Address.
	Address string
	// Namespace is unique to this Env, for containerd.Config.Namespace.
	Namespace string
	// Dir holds the daemon's configuration, data and log.
	Dir string

	tb      testing.TB
	mu      sync.Mutex
	private *containerd.Private // guarded by mu
}

// skipOrFail skips the test, or fails it when RequireEnv is set.
func skipOrFail(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if os.Getenv(RequireEnv) == "1" {
		tb.Fatalf(format+" (%s=1 makes this a failure)", append(args, RequireEnv)...)
	}
	tb.Skipf(format, args...)
}

// Require skips the test (or fails it, see RequireEnv) unless the process
// is root and containerd, its runc shim and runc are on PATH.
func Require(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(tb, "containerd tests need root")
	}
	for _, bin := range []string{"containerd", "containerd-shim-runc-v2", "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			skipOrFail(tb, "containerd tests need %s on PATH: %v", bin, err)
		}
	}
}

// Start starts a private containerd in a temporary directory and
// registers its cleanup: every container of the namespace is killed and
// deleted, then the daemon is stopped. It skips the test as Require does.
func Start(tb testing.TB) *Env {
	tb.Helper()
	Require(tb)
	ns := make([]byte, 4)
	_, _ = rand.Read(ns)
	e := &Env{Dir: tb.TempDir(), Namespace: "skiff-test-" + hex.EncodeToString(ns), tb: tb}
	e.start()
	tb.Cleanup(e.cleanup)
	return e
}

func (e *Env) start() {
	e.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	logger := hclog.New(&hclog.LoggerOptions{Name: "test", Level: hclog.Warn, Output: testWriter{e.tb}})
	p, err := containerd.StartPrivate(ctx, e.Dir, logger)
	if err != nil {
		e.tb.Fatalf("start private containerd: %v", err)
	}
	e.mu.Lock()
	e.private = p
	e.Address = p.Address()
	e.mu.Unlock()
}

// Restart stops the daemon and starts it again on the same directory, as
// after a containerd upgrade; tasks keep running in their shims.
func (e *Env) Restart() {
	e.tb.Helper()
	e.Stop()
	e.start()
}

// Stop stops the daemon (tasks keep running); Restart or the test's
// cleanup start it again.
func (e *Env) Stop() {
	e.tb.Helper()
	e.mu.Lock()
	p := e.private
	e.private = nil
	e.mu.Unlock()
	if p == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := p.Stop(ctx); err != nil {
		e.tb.Errorf("stop private containerd: %v", err)
	}
}

// cleanup removes every container of the namespace, then stops the
// daemon. A stopped daemon is started again first so its shims can be
// told to exit.
func (e *Env) cleanup() {
	e.mu.Lock()
	running := e.private != nil
	e.mu.Unlock()
	if !running {
		e.start()
	}
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := RemoveAll(ctx, e.Address, e.Namespace); err != nil {
		e.tb.Errorf("clean up containers: %v", err)
	}
	e.Stop()
}

// RemoveAll kills every task and deletes every container (with its
// snapshot) of namespace ns on the daemon at address.
func RemoveAll(ctx context.Context, address, ns string) error {
	c, err := client.New(address, client.WithDefaultNamespace(ns), client.WithTimeout(5*time.Second))
	if err != nil {
		return err
	}
	defer c.Close()
	ctx = namespaces.WithNamespace(ctx, ns)
	cs, err := c.Containers(ctx)
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	var firstErr error
	for _, ctr := range cs {
		// Each container on its own clock, so that one stuck task does
		// not leave the rest behind.
		if err := removeOne(ctx, ctr); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// removeOne kills and deletes one container's task, then the container
// with its snapshot, within removeTimeout (and ctx).
func removeOne(ctx context.Context, ctr client.Container) error {
	ctx, cancel := context.WithTimeout(ctx, removeTimeout)
	defer cancel()
	if t, err := ctr.Task(ctx, nil); err == nil {
		if statusC, err := t.Wait(ctx); err == nil {
			if st, err := t.Status(ctx); err == nil && st.Status != client.Stopped {
				_ = t.Kill(ctx, syscall.SIGKILL, client.WithKillAll)
				select { // bounded by ctx
				case <-statusC:
				case <-ctx.Done():
				}
			}
		}
		if _, err := t.Delete(ctx, client.WithProcessKill); err != nil {
			return fmt.Errorf("delete task %s: %w", ctr.ID(), err)
		}
	}
	if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil {
		return fmt.Errorf("delete container %s: %w", ctr.ID(), err)
	}
	return nil
}

// StartRegistry runs /usr/bin/docker-registry (Debian's package of the
// distribution registry) on a free loopback port with storage in a
// temporary directory, waits until /v2/ answers and stops it at cleanup.
// It returns "127.0.0.1:<port>".
func StartRegistry(tb testing.TB) string {
	tb.Helper()
	return startRegistry(tb, "", "")
}

// StartRegistryAuth is StartRegistry for a registry that requires HTTP
// basic authentication (htpasswd) with username and password.
func StartRegistryAuth(tb testing.TB, username, password string) string {
	tb.Helper()
	return startRegistry(tb, username, password)
}

func startRegistry(tb testing.TB, username, password string) string {
	tb.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		skipOrFail(tb, "registry tests need docker-registry on PATH (Debian: apt-get install docker-registry): %v", err)
	}
	dir := tb.TempDir()
	hostport := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(tb))
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(dir, "data"), hostport)
	if username != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		if err != nil {
			tb.Fatal(err)
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(username+":"+string(hash)+"\n"), 0o600); err != nil {
			tb.Fatal(err)
		}
		cfg += fmt.Sprintf("auth:\n  htpasswd:\n    realm: skiff-test\n    path: %s\n", htpasswd)
	}
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		tb.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		tb.Fatalf("start registry: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	// /v2/ answers 200, or 401 when authentication is on.
	deadline := time.Now().Add(startTimeout)
	hc := &http.Client{Timeout: time.Second}
	for {
		resp, err := hc.Get("http://" + hostport + "/v2/")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || username != "" && resp.StatusCode == http.StatusUnauthorized {
				return hostport
			}
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "registry.log"))
			tb.Fatalf("registry exited before answering:\n%s", log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("registry on %s did not answer within %s (last error: %v)", hostport, startTimeout, err)
		}
	}
}

// archiveFormat names the layout ociimage.Build writes; bump it when that
// changes so archives cached by earlier test runs are not reused.
const archiveFormat = "v1"

var busybox struct {
	once sync.Once
	path string
	err  error
	skip string
}

// BusyboxArchive returns the path of an OCI archive of busybox (see
// ociimage.Build) named ociimage.DefaultName. It is built once per
// process from the busybox on PATH, which must be statically linked
// (Debian: busybox-static), and cached in the temporary directory under
// a name derived from the binary's content.
func BusyboxArchive(tb testing.TB) string {
	tb.Helper()
	busybox.once.Do(func() {
		bin, err := exec.LookPath("busybox")
		if err != nil {
			busybox.skip = fmt.Sprintf("busybox is not on PATH (Debian: apt-get install busybox-static): %v", err)
			return
		}
		if f, err := elf.Open(bin); err == nil {
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					busybox.skip = bin + " is dynamically linked and cannot run in an empty image; install busybox-static"
				}
			}
			f.Close()
		}
		if busybox.skip != "" {
			return
		}
		data, err := os.ReadFile(bin)
		if err != nil {
			busybox.err = err
			return
		}
		sum := sha256.Sum256(data)
		path := filepath.Join(os.TempDir(), "skiff-busybox-"+archiveFormat+"-"+hex.EncodeToString(sum[:8])+".tar")
		if _, err := os.Stat(path); err == nil {
			busybox.path = path
			return
		}
		tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
		if busybox.err = ociimage.Build(bin, tmp, ociimage.Options{}); busybox.err != nil {
			return
		}
		if busybox.err = os.Rename(tmp, path); busybox.err == nil {
			busybox.path = path
		}
	})
	if busybox.skip != "" {
		skipOrFail(tb, "%s", busybox.skip)
	}
	if busybox.err != nil {
		tb.Fatalf("build busybox image: %v", busybox.err)
	}
	return busybox.path
}

// testWriter sends log lines to the test's log.
type testWriter struct{ tb testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.tb.Log(string(p))
	return len(p), nil
}
