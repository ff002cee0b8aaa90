package containerd

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Defaults for a TaskConfig without log limits.
const (
	defaultLogMaxFiles = 10
	defaultLogMaxSize  = 10 << 20
)

// loggerDrainGrace is how long the logger keeps copying after containerd's
// shim asks it to stop (SIGTERM, sent when the task is deleted), so the
// last lines a task wrote still reach the files.
const loggerDrainGrace = 2 * time.Second

// LogSpec tells the logger process where a task's output goes. It travels
// URL-encoded as the logger's last argument.
type LogSpec struct {
	Dir      string // directory of the files
	Task     string // file name prefix: <Task>.stdout.N, <Task>.stderr.N
	MaxFiles int    // files kept per stream, at least 1
	MaxSize  int64  // bytes per file before rotating, at least 1
}

// Encode renders s for the logger's command line.
func (s LogSpec) Encode() string {
	return url.Values{
		"dir":       {s.Dir},
		"task":      {s.Task},
		"max-files": {strconv.Itoa(s.MaxFiles)},
		"max-size":  {strconv.FormatInt(s.MaxSize, 10)},
	}.Encode()
}

// ParseLogSpec parses the output of LogSpec.Encode.
func ParseLogSpec(arg string) (LogSpec, error) {
	v, err := url.ParseQuery(arg)
	if err != nil {
		return LogSpec{}, fmt.Errorf("log spec %q: %w", arg, err)
	}
	s := LogSpec{Dir: v.Get("dir"), Task: v.Get("task")}
	if s.MaxFiles, err = strconv.Atoi(v.Get("max-files")); err != nil || s.MaxFiles < 1 {
		return LogSpec{}, fmt.Errorf("log spec %q: max-files must be a number >= 1", arg)
	}
	if s.MaxSize, err = strconv.ParseInt(v.Get("max-size"), 10, 64); err != nil || s.MaxSize < 1 {
		return LogSpec{}, fmt.Errorf("log spec %q: max-size must be a number of bytes >= 1", arg)
	}
	if !filepath.IsAbs(s.Dir) {
		return LogSpec{}, fmt.Errorf("log spec %q: dir must be an absolute path", arg)
	}
	if s.Task == "" || strings.ContainsRune(s.Task, '/') {
		return LogSpec{}, fmt.Errorf("log spec %q: task must be a file name", arg)
	}
	return s, nil
}

// LoggerMain is the logger process that containerd's shim starts for each
// task (containerd "binary" logging). The shim hands it the task's stdout
// on fd 3, its stderr on fd 4, and a pipe on fd 5 that it closes once it
// is ready. It writes <dir>/<task>.stdout.N and .stderr.N, starting a new
// file (N+1) when one reaches the maximum size and deleting the oldest
// beyond max files; after a restart it continues with the newest file.
// It runs as a child of the shim, so output keeps flowing while the agent
// is down. It returns when both streams end, or shortly after SIGTERM.
//
// args is the argument after the subcommand: one LogSpec.Encode string.
// The returned value is the process exit code.
func LoggerMain(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: logmon <log spec>  (started by containerd's shim with the task's output on fds 3 and 4)")
		return 2
	}
	spec, err := ParseLogSpec(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "logmon:", err)
		return 2
	}
	// Take SIGTERM before telling the shim we are ready, so its stop
	// request cannot kill us before we drained.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)

	stdout, stderr, ready := os.NewFile(3, "stdout"), os.NewFile(4, "stderr"), os.NewFile(5, "ready")
	if err := os.MkdirAll(spec.Dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "logmon:", err)
	}
	var wg sync.WaitGroup
	for _, s := range []struct {
		src  *os.File
		name string
	}{{stdout, "stdout"}, {stderr, "stderr"}} {
		r, err := openRotator(spec.Dir, spec.Task+"."+s.name, spec.MaxFiles, spec.MaxSize)
		if err != nil {
			fmt.Fprintln(os.Stderr, "logmon:", err)
			r = nil // still drain the stream so the task never blocks on a full pipe
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			copyStream(r, s.src)
		}()
	}
	if ready != nil {
		ready.Close()
	}

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-sigs:
		select {
		case <-done:
		case <-time.After(loggerDrainGrace):
		}
	}
	return 0
}

// copyStream copies src into r until src ends. Write errors (a full disk)
// drop data but never stop the draining; a nil r discards everything.
func copyStream(r *rotator, src io.Reader) {
	if src == nil {
		return
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && r != nil {
			_, _ = r.Write(buf[:n])
		}
		if err != nil {
			if r != nil {
				r.Close()
			}
			return
		}
	}
}

// rotator writes to <dir>/<base>.<idx>, moving to idx+1 when a file
// reaches maxSize and deleting files older than the newest maxFiles. It
// is used by one goroutine.
type rotator struct {
	dir, base string
	maxFiles  int
	maxSize   int64

	idx  int
	size int64
	f    *os.File
}

// openRotator continues with the newest existing file of base, or starts
// at index 0.
func openRotator(dir, base string, maxFiles int, maxSize int64) (*rotator, error) {
	r := &rotator{dir: dir, base: base, maxFiles: maxFiles, maxSize: maxSize}
	if idx, ok := r.newest(); ok {
		r.idx = idx
	}
	if err := r.open(); err != nil {
		return nil, err
	}
	r.purge()
	return r, nil
}

// indexes lists the indexes of the existing files of r.
func (r *rotator) indexes() []int {
	entries, err := os.ReadDir(r.dir)
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), r.base+".")
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(rest); err == nil && n >= 0 {
			out = append(out, n)
		}
	}
	return out
}

func (r *rotator) newest() (int, bool) {
	best, found := 0, false
	for _, n := range r.indexes() {
		if !found || n > best {
			best, found = n, true
		}
	}
	return best, found
}

func (r *rotator) path(idx int) string {
	return filepath.Join(r.dir, r.base+"."+strconv.Itoa(idx))
}

func (r *rotator) open() error {
	f, err := os.OpenFile(r.path(r.idx), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open log file: %w", err)
	}
	r.f, r.size = f, fi.Size()
	return nil
}

// Write writes p, splitting it across files at the size limit.
func (r *rotator) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if r.size >= r.maxSize || r.f == nil {
			if err := r.rotate(); err != nil {
				return written, err
			}
		}
		chunk := p[:min(int64(len(p)), r.maxSize-r.size)]
		n, err := r.f.Write(chunk)
		written += n
		r.size += int64(n)
		p = p[n:]
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

func (r *rotator) rotate() error {
	if r.f != nil {
		r.f.Close()
		r.f = nil
		r.idx++
	}
	if err := r.open(); err != nil {
		return err
	}
	r.purge()
	return nil
}

// purge deletes the files that fall out of the newest maxFiles.
func (r *rotator) purge() {
	for _, n := range r.indexes() {
		if n <= r.idx-r.maxFiles {
			if err := os.Remove(r.path(n)); err != nil && !errors.Is(err, os.ErrNotExist) {
				fmt.Fprintln(os.Stderr, "logmon:", err)
			}
		}
	}
}

// Close closes the current file.
func (r *rotator) Close() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}
