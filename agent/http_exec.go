package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"github.com/hashicorp/go-hclog"

	"github.com/skiffhq/skiff/client/allocrunner"
	"github.com/skiffhq/skiff/client/driver"
	"github.com/skiffhq/skiff/client/driver/containerd"
	"github.com/skiffhq/skiff/structs"
)

// Exec, signal and restart act on the tasks of a running allocation. Like
// logs and stats they are served by the agent whose client runs the
// allocation; any other agent proxies them there (see localRunner), the
// exec websocket included.
//
// GET /v1/client/allocation/{id}/exec?task=T&command=["sh","-c","..."]&tty=true
// upgrades to a websocket of JSON text messages, in Nomad's shapes:
//
//	client -> agent   {"stdin":{"data":"<base64>"}}    {"stdin":{"close":true}}
//	                  {"tty_size":{"height":24,"width":80}}    {} (heartbeat)
//	agent -> client   {"stdout":{"data":"<base64>"}}   {"stderr":{"data":"<base64>"}}
//	                  {"exited":true,"result":{"exit_code":0}}
//
// After the exit message the agent closes the websocket normally. A
// failure after the upgrade closes it with code 4000 + the HTTP status the
// failure would have had (4409: the task stopped running, 4500: the
// runtime failed) and the message as the close reason. When the client
// closes the websocket or stops answering, the command is killed.

const (
	// execMaxMessage bounds one message from the client (stdin arrives
	// base64-encoded in JSON, so about 48 KiB of input per message).
	execMaxMessage = 64 << 10
	// execOutputChunk bounds the output carried by one message.
	execOutputChunk = 16 << 10
	// execMaxCommand bounds the command's JSON in the query.
	execMaxCommand = 64 << 10
	// execWriteTimeout bounds sending one message to the client.
	execWriteTimeout = 30 * time.Second
	// execPingInterval is how often the agent pings the client; a client
	// that neither sends nor answers for execReadTimeout is gone.
	execPingInterval = 30 * time.Second
	execReadTimeout  = 2*execPingInterval + 15*time.Second
	// execCloseGrace is how long the agent waits for the client to answer
	// its close message before it drops the connection.
	execCloseGrace = 5 * time.Second
	// closeCodeHTTP + an HTTP status is the close code of a failure.
	closeCodeHTTP = 4000
)

// execUpgrader keeps gorilla's default origin check: a browser page of
// another origin cannot open an exec session with the user's cookies.
var execUpgrader = websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096}

// allocExec runs a command in a task of the allocation over a websocket.
// Everything that can be checked before the upgrade is answered in plain
// text with a 4xx status, as on every other endpoint.
func (a *Agent) allocExec(w http.ResponseWriter, r *http.Request) (any, error) {
	allocID := r.PathValue("id")
	q := r.URL.Query()
	command, err := parseExecCommand(q.Get("command"))
	if err != nil {
		return nil, err
	}
	tty := false
	if s := q.Get("tty"); s != "" {
		if tty, err = strconv.ParseBool(s); err != nil {
			return nil, badRequest("tty=%q is not true or false", s)
		}
	}
	ar, done, err := a.localRunner(w, r, allocID)
	if err != nil || done {
		return nil, err
	}
	task, err := execTaskName(ar.Alloc(), q.Get("task"))
	if err != nil {
		return nil, err
	}
	if !websocket.IsWebSocketUpgrade(r) {
		return nil, badRequest("exec streams over a websocket: send the request with \"Connection: Upgrade\" and \"Upgrade: websocket\" (the skiff CLI and api package do)")
	}
	conn, err := execUpgrader.Upgrade(w, r, nil)
	if err != nil {
		return nil, nil // the upgrader has answered with the reason
	}
	s := &execSession{conn: conn, allocID: allocID, logger: a.logger.Named("exec").With("alloc_id", allocID, "task", task)}
	s.run(r.Context(), ar, task, &driver.ExecOptions{Command: command, TTY: tty})
	return nil, nil
}

// parseExecCommand decodes the command query parameter: a JSON array of
// strings, the first of which is the program.
func parseExecCommand(raw string) ([]string, error) {
	const want = `command must be a JSON array of strings, the program first, e.g. command=["/bin/sh","-c","echo hi"]`
	if raw == "" {
		return nil, badRequest("no command given; %s", want)
	}
	if len(raw) > execMaxCommand {
		return nil, badRequest("command is longer than %d bytes", execMaxCommand)
	}
	var cmd []string
	if err := json.Unmarshal([]byte(raw), &cmd); err != nil {
		return nil, badRequest("%s (got %q: %v)", want, truncate(raw, 80), err)
	}
	if len(cmd) == 0 || cmd[0] == "" {
		return nil, badRequest("command is empty; %s", want)
	}
	return cmd, nil
}

// execTaskName returns the task to exec in: the named one, or the only
// one. The task must be running.
func execTaskName(alloc *structs.Allocation, task string) (string, error) {
	names := alloc.TaskNames()
	if task == "" {
		if len(names) != 1 {
			return "", badRequest("allocation %s has several tasks (%s); name one with ?task=", alloc.ID, strings.Join(names, ", "))
		}
		task = names[0]
	}
	if err := checkTaskName(alloc, names, task); err != nil {
		return "", err
	}
	state := "pending"
	if st := alloc.TaskStates[task]; st != nil && st.State != "" {
		state = st.State
	}
	if state != allocrunner.TaskStateRunning {
		return "", &httpError{http.StatusConflict, fmt.Sprintf("task %q of allocation %s is %s; exec needs a running task", task, alloc.ID, state)}
	}
	return task, nil
}

// checkTaskName fails with 404 when the allocation has no task by that name.
func checkTaskName(alloc *structs.Allocation, names []string, task string) error {
	for _, n := range names {
		if n == task {
			return nil
		}
	}
	return &httpError{http.StatusNotFound, fmt.Sprintf("allocation %s has no task %q (its tasks: %s)", alloc.ID, task, strings.Join(names, ", "))}
}

// taskOpError gives errors of the alloc runner's task operations their
// status: a task that is not running is a conflict, not a server failure.
func taskOpError(err error) error {
	if errors.Is(err, allocrunner.ErrTaskNotRunning) {
		return &httpError{http.StatusConflict, err.Error()}
	}
	return err
}

// execSession is one exec over one websocket. Its goroutines: run (the
// handler's) waits for the command; readInput feeds stdin and terminal
// sizes; keepalive pings. run owns and joins the other two.
type execSession struct {
	conn    *websocket.Conn
	allocID string
	logger  hclog.Logger
	cancel  context.CancelFunc // ends the command: the client is gone

	wmu sync.Mutex // serializes data messages (gorilla allows one writer)
}

// run runs the command with opts' streams wired to the websocket, then
// reports the exit (or the failure) and closes the websocket. It returns
// once every goroutine of the session has ended.
func (s *execSession) run(parent context.Context, ar *allocrunner.AllocRunner, task string, opts *driver.ExecOptions) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	s.cancel = cancel
	stdinR, stdinW := io.Pipe()
	resize := make(chan driver.TerminalSize, 1)
	opts.Stdin, opts.Resize = stdinR, resize
	opts.Stdout, opts.Stderr = &execStream{s: s}, &execStream{s: s, stderr: true}

	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		s.readInput(stdinW, resize)
		cancel() // the client closed or went away: kill the command
	}()
	pingDone := make(chan struct{})
	go func() {
		defer close(pingDone)
		s.keepalive(ctx)
	}()

	code, err := ar.Exec(ctx, task, opts)
	// Unblock whoever still reads or writes stdin: the driver's copier and
	// readInput's write of the last message.
	stdinR.Close()
	switch {
	case ctx.Err() != nil:
		// The client is gone; nobody is left to tell.
	case err != nil:
		s.logger.Debug("exec failed", "error", err)
		s.closeWith(execFailure(err, s.allocID, task, opts.Command[0]))
	default:
		if err := s.send(&structs.ExecStreamingOutput{Exited: true, Result: &structs.ExecStreamingExitResult{ExitCode: code}}); err == nil {
			s.closeWith(websocket.CloseNormalClosure, "")
		}
	}
	// The client answers the close, which ends readInput; do not wait
	// for a client that does not.
	grace := time.NewTimer(execCloseGrace)
	select {
	case <-readDone:
	case <-grace.C:
	}
	grace.Stop()
	s.conn.Close()
	<-readDone
	cancel()
	<-pingDone
}

// readInput reads the client's messages until the websocket closes or
// fails: stdin data goes to stdin (blocking while the command does not
// read it), {"stdin":{"close":true}} closes it, terminal sizes go to
// resize (the latest wins).
func (s *execSession) readInput(stdin *io.PipeWriter, resize chan driver.TerminalSize) {
	defer stdin.Close()
	s.conn.SetReadLimit(execMaxMessage)
	s.conn.SetPongHandler(func(string) error {
		return s.conn.SetReadDeadline(time.Now().Add(execReadTimeout))
	})
	stdinOpen := true
	for {
		// The deadline is set before each read, not when the last one
		// ended: a command slow to take its stdin must not look like a
		// client that went away.
		_ = s.conn.SetReadDeadline(time.Now().Add(execReadTimeout))
		_, msg, err := s.conn.ReadMessage()
		if err != nil {
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) {
				s.logger.Debug("exec websocket read ended", "error", err)
			}
			return
		}
		var in structs.ExecStreamingInput
		if err := json.Unmarshal(msg, &in); err != nil {
			s.closeWith(websocket.CloseInvalidFramePayloadData,
				fmt.Sprintf("message is not exec input JSON: %v", err))
			return
		}
		if in.Stdin != nil && stdinOpen {
			if len(in.Stdin.Data) > 0 {
				if _, err := stdin.Write(in.Stdin.Data); err != nil {
					stdinOpen = false // the command has ended
				}
			}
			if in.Stdin.Close {
				stdin.Close()
				stdinOpen = false
			}
		}
		if sz := in.TTYSize; sz != nil && sz.Width > 0 && sz.Height > 0 && sz.Width <= 0xffff && sz.Height <= 0xffff {
			offerSize(resize, driver.TerminalSize{Width: uint16(sz.Width), Height: uint16(sz.Height)})
		}
	}
}

// offerSize puts sz on ch (capacity 1), replacing a size not taken yet.
// Only one goroutine sends on ch.
func offerSize(ch chan driver.TerminalSize, sz driver.TerminalSize) {
	for {
		select {
		case ch <- sz:
			return
		default:
		}
		select {
		case <-ch:
		default:
		}
	}
}

// keepalive pings the client until ctx ends. A ping that cannot be sent
// means the connection is broken: the command is killed.
func (s *execSession) keepalive(ctx context.Context) {
	t := time.NewTicker(execPingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(execWriteTimeout)); err != nil {
				s.cancel()
				return
			}
		}
	}
}

// send writes one message. A failure means the client is gone: the
// command is killed.
func (s *execSession) send(out *structs.ExecStreamingOutput) error {
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(execWriteTimeout))
	if err := s.conn.WriteMessage(websocket.TextMessage, b); err != nil {
		s.cancel()
		return err
	}
	return nil
}

// maxCloseReason is what a close message can carry besides its code.
const maxCloseReason = 123

// closeWith sends a close message.
func (s *execSession) closeWith(code int, reason string) {
	_ = s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, closeReason(reason)),
		time.Now().Add(execWriteTimeout))
}

// closeReason fits reason into a close message: a long one keeps its
// start and its end, where the cause usually is.
func closeReason(reason string) string {
	if len(reason) <= maxCloseReason {
		return reason
	}
	const sep = " ... "
	head := truncate(reason, 40)
	tail := reason[len(reason)-(maxCloseReason-len(head)-len(sep)):]
	for len(tail) > 0 && !utf8.ValidString(tail) {
		tail = tail[1:]
	}
	return head + sep + tail
}

// execFailure is the close code and reason of an exec that failed: 4409
// when the task is not running (any more), 4400 when the command could
// not be started (a missing program, most often), 4500 otherwise. The
// task's driver ID, which the client does not need, is left out.
func execFailure(err error, allocID, task, program string) (int, string) {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, fmt.Sprintf("exec in task %q: ", allocID+"/"+task))
	switch {
	case errors.Is(err, allocrunner.ErrTaskNotRunning), errors.Is(err, driver.ErrTaskNotFound):
		return closeCodeHTTP + http.StatusConflict, msg
	case strings.HasPrefix(msg, fmt.Sprintf("start %q: ", program)):
		return closeCodeHTTP + http.StatusBadRequest, msg
	}
	return closeCodeHTTP + http.StatusInternalServerError, msg
}

// execStream sends what the command writes to one of its streams.
type execStream struct {
	s      *execSession
	stderr bool
}

func (w *execStream) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), execOutputChunk)]
		op := &structs.ExecStreamingIOOperation{Data: chunk}
		out := &structs.ExecStreamingOutput{Stdout: op}
		if w.stderr {
			out = &structs.ExecStreamingOutput{Stderr: op}
		}
		if err := w.s.send(out); err != nil {
			return n, err
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// allocSignalBody is the body of POST /v1/client/allocation/:id/signal,
// as Nomad's clients send it.
type allocSignalBody struct {
	Task   string // "" signals every running task
	Signal string
}

// allocSignal sends a signal to a task, or every running task.
func (a *Agent) allocSignal(w http.ResponseWriter, r *http.Request) (any, error) {
	ar, done, err := a.localRunner(w, r, r.PathValue("id"))
	if err != nil || done {
		return nil, err
	}
	var body allocSignalBody
	warnings, err := a.readTaskOpBody(w, r, &body)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(body.Signal) == "" {
		return nil, badRequest("Signal is empty; name one, e.g. {\"Signal\": \"SIGUSR1\"}")
	}
	if _, err := containerd.ParseSignal(body.Signal); err != nil {
		return nil, badRequest("%v", err)
	}
	alloc := ar.Alloc()
	if body.Task != "" {
		if err := checkTaskName(alloc, alloc.TaskNames(), body.Task); err != nil {
			return nil, err
		}
	}
	if err := ar.Signal(r.Context(), body.Task, body.Signal); err != nil {
		return nil, taskOpError(err)
	}
	return taskOpReply(warnings), nil
}

// allocRestartBody is the body of POST /v1/client/allocation/:id/restart,
// as Nomad's clients send it.
type allocRestartBody struct {
	TaskName string // "" restarts every running task
	AllTasks bool   // accepted: the same as TaskName ""
}

// allocRestart restarts a task, or every running task, in place.
func (a *Agent) allocRestart(w http.ResponseWriter, r *http.Request) (any, error) {
	ar, done, err := a.localRunner(w, r, r.PathValue("id"))
	if err != nil || done {
		return nil, err
	}
	var body allocRestartBody
	warnings, err := a.readTaskOpBody(w, r, &body)
	if err != nil {
		return nil, err
	}
	if body.AllTasks && body.TaskName != "" {
		return nil, badRequest("give TaskName or AllTasks, not both")
	}
	alloc := ar.Alloc()
	if body.TaskName != "" {
		if err := checkTaskName(alloc, alloc.TaskNames(), body.TaskName); err != nil {
			return nil, err
		}
	}
	if err := ar.RestartTask(r.Context(), body.TaskName); err != nil {
		return nil, taskOpError(err)
	}
	return taskOpReply(warnings), nil
}

// readTaskOpBody decodes the JSON body of signal and restart into out; an
// empty body leaves out zero. It returns the fields out has no place for.
func (a *Agent) readTaskOpBody(w http.ResponseWriter, r *http.Request, out any) ([]string, error) {
	_, warnings, err := a.readJSONWarn(w, r, out)
	if errors.Is(err, errEmptyBody) {
		return nil, nil
	}
	return warnings, err
}

// taskOpReply is the answer to signal and restart: an empty object, as
// Nomad's, with a warning about ignored fields when there were any.
func taskOpReply(warnings []string) map[string]string {
	out := map[string]string{}
	if len(warnings) > 0 {
		out["Warnings"] = "Fields Skiff does not know were ignored: " + strings.Join(warnings, ", ")
	}
	return out
}
