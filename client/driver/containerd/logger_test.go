package containerd

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testLoggerArg is the argument with which TestMain (main_test.go) runs
// LoggerMain in this test binary.
const testLoggerArg = "skiff-test-logmon"

func TestLogSpecRoundTrip(t *testing.T) {
	in := LogSpec{Dir: "/var/lib/skiff/alloc/x y/logs", Task: "web", MaxFiles: 3, MaxSize: 1 << 20}
	out, err := ParseLogSpec(in.Encode())
	if err != nil || out != in {
		t.Fatalf("ParseLogSpec(Encode(%+v)) = %+v, %v", in, out, err)
	}
	for _, bad := range []string{"", "dir=rel&task=t&max-files=1&max-size=1", "dir=/d&task=a/b&max-files=1&max-size=1", "dir=/d&task=t&max-files=0&max-size=1"} {
		if _, err := ParseLogSpec(bad); err == nil {
			t.Errorf("ParseLogSpec(%q) succeeded, want an error", bad)
		}
	}
}

// files returns the names of dir's files with their contents.
func files(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

func TestRotator(t *testing.T) {
	dir := t.TempDir()
	r, err := openRotator(dir, "web.stdout", 3, 10)
	if err != nil {
		t.Fatal(err)
	}
	// 45 bytes in uneven writes: files 0..4 of 10, 10, 10, 10, 5 bytes;
	// the newest 3 are kept.
	for _, chunk := range []string{"0123456", "789abcdefghij", "klmnopqrstuvwxyzABCDEFGHI"} {
		if n, err := r.Write([]byte(chunk)); err != nil || n != len(chunk) {
			t.Fatalf("Write(%q) = %d, %v", chunk, n, err)
		}
	}
	r.Close()
	want := map[string]string{"web.stdout.2": "klmnopqrst", "web.stdout.3": "uvwxyzABCD", "web.stdout.4": "EFGHI"}
	if got := files(t, dir); !mapsEqual(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}

	// A new logger (the task restarted) continues with the newest file.
	r, err = openRotator(dir, "web.stdout", 3, 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Write([]byte("JKLMNOP")); err != nil {
		t.Fatal(err)
	}
	r.Close()
	want = map[string]string{"web.stdout.3": "uvwxyzABCD", "web.stdout.4": "EFGHIJKLMN", "web.stdout.5": "OP"}
	if got := files(t, dir); !mapsEqual(got, want) {
		t.Fatalf("after reopen: files %v, want %v", got, want)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// loggerProc is LoggerMain running in a child process.
type loggerProc struct {
	cmd            *exec.Cmd
	stdout, stderr *os.File      // write ends of the task's streams
	done           chan struct{} // closed when the process has exited
	err            error         // of Wait, set before done is closed
}

// wait waits at most d for the process to exit and returns its error.
func (p *loggerProc) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		t.Fatalf("logger still running after %s", d)
		return nil
	}
}

// startLogger runs LoggerMain in a child process (this test binary) the
// way containerd's shim does: output pipes on fds 3 and 4, a readiness
// pipe on fd 5. It waits for readiness.
func startLogger(t *testing.T, spec LogSpec) *loggerProc {
	t.Helper()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], testLoggerArg, spec.Encode())
	cmd.ExtraFiles = []*os.File{outR, errR, readyW}
	cmd.Env = []string{"CONTAINER_ID=test", "CONTAINER_NAMESPACE=test"} // all the shim passes
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	outR.Close()
	errR.Close()
	readyW.Close()
	p := &loggerProc{cmd: cmd, stdout: outW, stderr: errW, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		outW.Close()
		errW.Close()
	})

	// Like the shim: block until the logger closes its end of fd 5. Read
	// returns at EOF; the pipe has no deadline, so guard with a timer.
	readyC := make(chan error, 1)
	go func() {
		_, err := readyR.Read(make([]byte, 1))
		readyC <- err
	}()
	select {
	case err := <-readyC:
		if err != io.EOF {
			t.Fatalf("ready pipe: %v, want EOF", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("logger never signalled readiness")
	}
	readyR.Close()
	return p
}

func TestLoggerMain(t *testing.T) {
	dir := t.TempDir()
	p := startLogger(t, LogSpec{Dir: dir, Task: "web", MaxFiles: 2, MaxSize: 8})
	if _, err := io.WriteString(p.stdout, "line-1\nline-2\nline-3\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(p.stderr, "oops\n"); err != nil {
		t.Fatal(err)
	}
	p.stdout.Close()
	p.stderr.Close() // the task exited: both streams end, the logger too
	if err := p.wait(t, 10*time.Second); err != nil {
		t.Fatalf("logger: %v", err)
	}
	// 21 bytes of stdout in 8-byte files: 0 (deleted), 1, 2.
	want := map[string]string{"web.stdout.1": "ine-2\nli", "web.stdout.2": "ne-3\n", "web.stderr.0": "oops\n"}
	if got := files(t, dir); !mapsEqual(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
}

func TestLoggerMainStopsOnSIGTERM(t *testing.T) {
	dir := t.TempDir()
	p := startLogger(t, LogSpec{Dir: dir, Task: "web", MaxFiles: 2, MaxSize: 1 << 20})
	if _, err := io.WriteString(p.stdout, "before-term\n"); err != nil {
		t.Fatal(err)
	}
	// The streams stay open (a daemonised child still holds them): the
	// logger must give up after its drain grace instead of hanging.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(t, loggerDrainGrace+5*time.Second); err != nil {
		t.Fatalf("logger: %v", err)
	}
	if got := files(t, dir)["web.stdout.0"]; got != "before-term\n" {
		t.Errorf("stdout file %q, want the line written before SIGTERM", got)
	}
}

func TestLoggerMainUsage(t *testing.T) {
	out, err := exec.Command(os.Args[0], testLoggerArg, "max-files=x").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "max-files") {
		t.Errorf("bad spec: exit %v, output %q; want exit 2 and a message about max-files", err, out)
	}
}
