package containerd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"

	"github.com/skiffhq/skiff/client/driver"
)

// execCleanupTimeout bounds killing and deleting an exec process whose
// caller gave up.
const execCleanupTimeout = 10 * time.Second

// execIOGrace bounds how long output is still copied after an exec
// process exited.
const execIOGrace = 5 * time.Second

// ExecTask runs opts.Command inside the task, with the task's user,
// environment and working directory, and returns its exit code once it
// has exited and its output has been copied. With opts.TTY the process
// gets a terminal (stderr is merged into stdout) that follows
// opts.Resize. When opts.Stdin ends, the process sees end of input. If
// ctx ends first, the process is killed and ctx's error returned.
func (d *Driver) ExecTask(ctx context.Context, taskID string, opts *driver.ExecOptions) (code int, err error) {
	defer func() {
		// A call that failed because ctx ended says so in a way callers
		// can test (errors.Is), whatever containerd's error looked like.
		if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
	}()
	if opts == nil || len(opts.Command) == 0 {
		return -1, fmt.Errorf("exec in task %q: no command given", taskID)
	}
	ctx = d.nsCtx(ctx)
	ts, err := d.lookup(ctx, taskID)
	if err != nil {
		return -1, err
	}
	if ts.exited() {
		return -1, fmt.Errorf("exec in task %q: the task has exited", taskID)
	}
	spec, err := ts.container.Spec(ctx)
	if err != nil {
		return -1, fmt.Errorf("exec in task %q: read container spec: %w", taskID, unwrapGRPC(err))
	}
	pspec := *spec.Process
	pspec.Args = opts.Command
	pspec.Terminal = opts.TTY
	pspec.ConsoleSize = nil

	execID, err := newExecID()
	if err != nil {
		return -1, fmt.Errorf("exec in task %q: %w", taskID, err)
	}
	stdinEOF := make(chan struct{})
	ioOpts := []cio.Opt{cio.WithStreams(eofNotifier(opts.Stdin, stdinEOF), orDiscard(opts.Stdout), orDiscard(opts.Stderr))}
	if opts.TTY {
		ioOpts = []cio.Opt{cio.WithStreams(eofNotifier(opts.Stdin, stdinEOF), orDiscard(opts.Stdout), nil), cio.WithTerminal}
	}
	p, err := ts.task.Exec(ctx, execID, &pspec, cio.NewCreator(ioOpts...))
	if err != nil {
		return -1, fmt.Errorf("exec in task %q: %w", taskID, unwrapGRPC(err))
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), execCleanupTimeout)
		defer cancel()
		_, _ = p.Delete(dctx, client.WithProcessKill)
	}()
	statusC, err := p.Wait(ctx)
	if err != nil {
		return -1, fmt.Errorf("exec in task %q: %w", taskID, unwrapGRPC(err))
	}
	// Start is not cut short by ctx: a start cancelled halfway could leave
	// the process running in the container after the deferred Delete. If
	// ctx ends meanwhile, the select below kills the started process.
	sctx, cancelStart := context.WithTimeout(context.WithoutCancel(ctx), execCleanupTimeout)
	err = p.Start(sctx)
	cancelStart()
	if err != nil {
		return -1, fmt.Errorf("exec in task %q: start %q: %w", taskID, opts.Command[0], unwrapGRPC(err))
	}

	done := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(done)
	wg.Add(1)
	go func() { // closes the process's stdin once ours ends
		defer wg.Done()
		if opts.Stdin == nil {
			return
		}
		select {
		case <-stdinEOF:
			if err := p.CloseIO(ctx, client.WithStdinCloser); err != nil {
				d.logger.Debug("exec: close stdin", "task_id", taskID, "error", err)
			}
		case <-done:
		}
	}()
	if opts.TTY && opts.Resize != nil {
		wg.Add(1)
		go func() { // follows terminal size changes until the process ends
			defer wg.Done()
			for {
				select {
				case sz, ok := <-opts.Resize:
					if !ok {
						return
					}
					if err := p.Resize(ctx, uint32(sz.Width), uint32(sz.Height)); err != nil {
						d.logger.Debug("exec: resize terminal", "task_id", taskID, "error", err)
					}
				case <-done:
					return
				}
			}
		}()
	}

	select {
	case st := <-statusC:
		code, _, err := st.Result()
		if err != nil {
			return -1, fmt.Errorf("exec in task %q: wait: %w", taskID, unwrapGRPC(err))
		}
		waitIO(ctx, p.IO())
		return int(code), nil
	case <-ctx.Done():
		kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), execCleanupTimeout)
		defer cancel()
		_ = p.Kill(kctx, syscall.SIGKILL)
		return -1, fmt.Errorf("exec in task %q: %w", taskID, ctx.Err())
	}
}

// waitIO waits until the output of an exited process has been copied.
// A background process that inherited stdout can keep the streams open
// forever, so the wait is bounded; then the streams are closed.
func waitIO(ctx context.Context, pio cio.IO) {
	copied := make(chan struct{})
	go func() { // owned here: ends once Close below unblocks the copiers
		pio.Wait()
		close(copied)
	}()
	timer := time.NewTimer(execIOGrace)
	defer timer.Stop()
	select {
	case <-copied:
		return
	case <-timer.C:
	case <-ctx.Done():
	}
	pio.Cancel()
	_ = pio.Close()
	<-copied
}

func newExecID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "exec-" + hex.EncodeToString(b), nil
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// eofNotifier wraps r so that eof is closed when r is exhausted; nil stays
// nil (the process gets no stdin).
func eofNotifier(r io.Reader, eof chan struct{}) io.Reader {
	if r == nil {
		return nil
	}
	return &notifyingReader{r: r, eof: eof}
}

type notifyingReader struct {
	r    io.Reader
	eof  chan struct{}
	once sync.Once
}

func (n *notifyingReader) Read(p []byte) (int, error) {
	c, err := n.r.Read(p)
	if errors.Is(err, io.EOF) {
		n.once.Do(func() { close(n.eof) })
	}
	return c, err
}
