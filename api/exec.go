package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/skiffhq/skiff/structs"
)

// TerminalSize is a terminal's size in characters.
type TerminalSize = structs.ExecTerminalSize

// The messages of an exec session, in Nomad's shapes (see structs).
type (
	ExecStreamingIOOperation = structs.ExecStreamingIOOperation
	ExecStreamingInput       = structs.ExecStreamingInput
	ExecStreamingExitResult  = structs.ExecStreamingExitResult
	ExecStreamingOutput      = structs.ExecStreamingOutput
)

// CloseCodeHTTP plus an HTTP status is the websocket close code with which
// an agent ends an exec session that failed after it started (4409: the
// task stopped running; 4500: the container runtime failed). Exec turns
// such a close into a *StatusError.
const CloseCodeHTTP = 4000

const (
	// execMaxMessage bounds one message from the agent.
	execMaxMessage = 1 << 20
	// execStdinChunk bounds the stdin data of one message.
	execStdinChunk = 32 << 10
	// execWriteTimeout bounds sending one message to the agent.
	execWriteTimeout = 30 * time.Second
	// execHandshakeTimeout bounds opening the websocket.
	execHandshakeTimeout = 30 * time.Second
)

// Exec runs command in a running task of an allocation and returns the
// command's exit code (GET /v1/client/allocation/:id/exec, a websocket;
// any agent answers, proxying to the node that runs the allocation). task
// may be "" when the allocation has one task. With tty the command gets a
// terminal whose size follows resize (nil: never resized), and stderr is
// merged into stdout.
//
// stdin is sent until it ends, which closes the command's stdin (with
// tty, that hangs the terminal up, as closing a terminal does); a nil
// stdin gives the command an empty stdin, or with tty a terminal on which
// nobody types. Exec returns when the command has exited and
// its output is written, or when ctx ends (the command is then killed).
// It does not wait for a Read of stdin that is under way when it returns:
// that Read's data is dropped.
//
// A request the agent refuses is a *StatusError (404 for an unknown
// allocation or task, 409 when the task is not running); so is a failure
// the agent reports after the command started. The exit code is -1 with
// any error.
func (a *Allocations) Exec(ctx context.Context, allocID, task string, tty bool, command []string,
	stdin io.Reader, stdout, stderr io.Writer, resize <-chan TerminalSize) (exitCode int, err error) {
	if len(command) == 0 {
		return -1, errors.New("exec: no command given")
	}
	conn, err := a.dialExec(ctx, allocID, task, tty, command)
	if err != nil {
		return -1, err
	}
	s := &execClient{conn: conn, stdout: orDiscard(stdout), stderr: orDiscard(stderr)}
	return s.run(ctx, tty, stdin, resize)
}

// dialExec opens the exec websocket. A refusal becomes a *StatusError
// with the agent's explanation.
func (a *Allocations) dialExec(ctx context.Context, allocID, task string, tty bool, command []string) (*websocket.Conn, error) {
	path := "/v1/client/allocation/" + url.PathEscape(allocID) + "/exec"
	r := a.c.newRequest(http.MethodGet, path)
	cmd, err := json.Marshal(command)
	if err != nil {
		return nil, fmt.Errorf("exec: encode command: %w", err)
	}
	r.params.Set("command", string(cmd))
	r.params.Set("tty", strconv.FormatBool(tty))
	if task != "" {
		r.params.Set("task", task)
	}
	u, err := url.Parse(a.c.config.Address + path + "?" + r.params.Encode())
	if err != nil {
		return nil, fmt.Errorf("exec: build URL: %w", err)
	}
	switch u.Scheme {
	case "https":
		u.Scheme = "wss"
	default:
		u.Scheme = "ws"
	}
	header := http.Header{}
	if r.token != "" {
		header.Set(HeaderToken, r.token)
	}
	dialer := &websocket.Dialer{HandshakeTimeout: execHandshakeTimeout, ReadBufferSize: 4096, WriteBufferSize: 4096}
	if tr, ok := a.c.http.Transport.(*http.Transport); ok {
		dialer.Proxy, dialer.NetDialContext, dialer.TLSClientConfig = tr.Proxy, tr.DialContext, tr.TLSClientConfig
	} else if a.c.http.Transport == nil {
		dialer.Proxy = http.ProxyFromEnvironment
	}
	conn, resp, err := dialer.DialContext(ctx, u.String(), header)
	if err == nil {
		return conn, nil
	}
	if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
		var body []byte
		if resp.Body != nil {
			body, _ = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		return nil, &StatusError{StatusCode: resp.StatusCode, Method: http.MethodGet, Path: path, Body: strings.TrimSpace(string(body))}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, &UnreachableError{Address: a.c.config.Address, Err: err}
}

// execClient is the client's end of one exec session. run's goroutine
// waits; the reader writes output; senders forward stdin and sizes.
type execClient struct {
	conn           *websocket.Conn
	stdout, stderr io.Writer

	wmu sync.Mutex // serializes messages to the agent
}

type execEnd struct {
	code int
	err  error
}

func (s *execClient) run(ctx context.Context, tty bool, stdin io.Reader, resize <-chan TerminalSize) (int, error) {
	defer s.conn.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	done := make(chan struct{}) // closed when run returns: senders stop
	defer close(done)

	ended := make(chan execEnd, 1)
	go func() { ended <- s.read() }()

	if resize != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.sendSizes(resize, done)
		}()
	}
	switch {
	case stdin != nil:
		// Not joined: a Read of stdin cannot be interrupted.
		go s.sendStdin(stdin, done)
	case !tty:
		if err := s.send(&ExecStreamingInput{Stdin: &ExecStreamingIOOperation{Close: true}}); err != nil {
			return -1, fmt.Errorf("exec: close stdin: %w", err)
		}
	}

	select {
	case end := <-ended:
		_ = s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""),
			time.Now().Add(time.Second))
		return end.code, end.err
	case <-ctx.Done():
		// Closing tells the agent to kill the command; the reader then ends.
		_ = s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "canceled"),
			time.Now().Add(time.Second))
		s.conn.Close()
		<-ended
		return -1, ctx.Err()
	}
}

// read writes the command's output until the exit message, and returns
// the exit code or why the session ended without one.
func (s *execClient) read() execEnd {
	s.conn.SetReadLimit(execMaxMessage)
	for {
		_, msg, err := s.conn.ReadMessage()
		if err != nil {
			return execEnd{-1, closeError(err)}
		}
		var out ExecStreamingOutput
		if err := json.Unmarshal(msg, &out); err != nil {
			return execEnd{-1, fmt.Errorf("exec: the agent sent a message that is not exec output: %w", err)}
		}
		switch {
		case out.Stdout != nil && len(out.Stdout.Data) > 0:
			if _, err := s.stdout.Write(out.Stdout.Data); err != nil {
				return execEnd{-1, fmt.Errorf("exec: write stdout: %w", err)}
			}
		case out.Stderr != nil && len(out.Stderr.Data) > 0:
			if _, err := s.stderr.Write(out.Stderr.Data); err != nil {
				return execEnd{-1, fmt.Errorf("exec: write stderr: %w", err)}
			}
		case out.Exited:
			if out.Result == nil {
				return execEnd{-1, errors.New("exec: the agent reported the exit without an exit code")}
			}
			return execEnd{out.Result.ExitCode, nil}
		}
	}
}

// closeError turns the end of the websocket before the exit message into
// an error: a failure the agent reported becomes a *StatusError.
func closeError(err error) error {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		if ce.Code > CloseCodeHTTP && ce.Code < CloseCodeHTTP+1000 {
			return &StatusError{StatusCode: ce.Code - CloseCodeHTTP, Method: http.MethodGet, Body: ce.Text}
		}
		if ce.Text != "" {
			return fmt.Errorf("exec: the agent ended the session: %s", ce.Text)
		}
		return fmt.Errorf("exec: the agent ended the session before the command exited (close code %d)", ce.Code)
	}
	return fmt.Errorf("exec: connection to the agent lost before the command exited: %w", err)
}

// send writes one message to the agent.
func (s *execClient) send(in *ExecStreamingInput) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(execWriteTimeout))
	return s.conn.WriteMessage(websocket.TextMessage, b)
}

// sendStdin sends stdin until it ends, then closes the command's stdin.
// It stops early when done is closed or a send fails.
func (s *execClient) sendStdin(stdin io.Reader, done <-chan struct{}) {
	buf := make([]byte, execStdinChunk)
	for {
		n, err := stdin.Read(buf)
		select {
		case <-done:
			return
		default:
		}
		if n > 0 {
			if s.send(&ExecStreamingInput{Stdin: &ExecStreamingIOOperation{Data: buf[:n]}}) != nil {
				return
			}
		}
		if err != nil {
			break // io.EOF or a failure: either way, stdin has ended
		}
	}
	_ = s.send(&ExecStreamingInput{Stdin: &ExecStreamingIOOperation{Close: true}})
}

// sendSizes forwards terminal sizes until resize is closed or done is.
func (s *execClient) sendSizes(resize <-chan TerminalSize, done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case sz, ok := <-resize:
			if !ok {
				return
			}
			if s.send(&ExecStreamingInput{TTYSize: &sz}) != nil {
				return
			}
		}
	}
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}
