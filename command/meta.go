package command

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/skiffhq/skiff/api"
	"golang.org/x/term"
)

// Meta is what every command shares: its streams, environment, clock, and
// the flags that say which agent to talk to. Each command holds its own
// copy.
type Meta struct {
	ctx    context.Context
	stdout io.Writer
	stderr io.Writer
	stdin  io.Reader
	env    map[string]string
	now    func() time.Time
	// terminal reports whether a stream is a terminal.
	terminal func(io.Writer) bool

	// Flags of every agent-facing command; they override the environment.
	address, token, namespace, region string
}

func newMeta(ctx context.Context, o options) *Meta {
	m := &Meta{ctx: ctx, stdout: o.stdout, stderr: o.stderr, stdin: o.stdin, now: o.now, terminal: o.terminal, env: map[string]string{}}
	if m.now == nil {
		m.now = time.Now
	}
	if m.terminal == nil {
		m.terminal = isTerminal
	}
	for _, kv := range o.env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m.env[k] = v
		}
	}
	return m
}

func (m *Meta) getenv(k string) string { return m.env[k] }

// environ returns the environment as KEY=VALUE entries.
func (m *Meta) environ() []string {
	out := make([]string, 0, len(m.env))
	for k, v := range m.env {
		out = append(out, k+"="+v)
	}
	return out
}

// flagSet returns a flag set that reports errors on stderr followed by the
// command's help. With global, it has -address, -token, -namespace and
// -region.
func (m *Meta) flagSet(name string, help func() string, global bool) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(m.stderr)
	fs.Usage = func() { fmt.Fprintf(m.stderr, "\n%s\n", help()) }
	if global {
		fs.StringVar(&m.address, "address", "", "")
		fs.StringVar(&m.token, "token", "", "")
		fs.StringVar(&m.namespace, "namespace", "", "")
		fs.StringVar(&m.region, "region", "", "")
	}
	return fs
}

// usageError reports a wrong use of a command and returns exit code 1.
func (m *Meta) usageError(help, format string, args ...any) int {
	fmt.Fprintf(m.stderr, "Error: %s\n\n%s\n", fmt.Sprintf(format, args...), help)
	return 1
}

// client returns an API client for the agent the environment and flags
// name.
func (m *Meta) client() (*api.Client, error) {
	cfg := api.ConfigFromEnv(m.getenv)
	if m.address != "" {
		cfg.Address = m.address
	}
	if m.token != "" {
		cfg.Token = m.token
	}
	if m.namespace != "" {
		cfg.Namespace = m.namespace
	}
	if m.region != "" {
		cfg.Region = m.region
	}
	return api.NewClient(cfg)
}

// fail prints err as a person should read it, after what the command was
// doing, and returns exit code 1.
func (m *Meta) fail(err error, doing string, args ...any) int {
	fmt.Fprintln(m.stderr, errorLine(err, fmt.Sprintf(doing, args...)))
	return 1
}

// errorLine renders err for stderr. An unreachable agent gets the same
// advice whatever the command; an HTTP error shows the server's message.
func errorLine(err error, doing string) string {
	var ue *api.UnreachableError
	if errors.As(err, &ue) {
		return fmt.Sprintf("Error: cannot reach the Skiff agent at %s (%s); is \"skiff agent\" running? "+
			"Set SKIFF_ADDR or -address to point elsewhere", ue.Address, ue.Reason())
	}
	if errors.Is(err, context.Canceled) {
		if doing == "" {
			return "Error: interrupted"
		}
		return "Error: interrupted while " + doing
	}
	msg := err.Error()
	var se *api.StatusError
	if errors.As(err, &se) {
		msg = se.Body
		if msg == "" {
			msg = http.StatusText(se.StatusCode)
		}
		switch se.StatusCode {
		case http.StatusForbidden:
			msg += " (check the token in SKIFF_TOKEN or -token)"
		case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable:
			msg += fmt.Sprintf(" (HTTP %d)", se.StatusCode)
		}
	}
	if doing == "" {
		return "Error: " + msg
	}
	return "Error " + doing + ": " + msg
}

// confirm asks a yes/no question on stderr and reads the answer from
// stdin. Without a stdin it answers no.
func (m *Meta) confirm(question string) bool {
	if m.stdin == nil {
		return false
	}
	fmt.Fprintf(m.stderr, "%s [y/N] ", question)
	line, _ := bufio.NewReader(m.stdin).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	return false
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// resolveArg connects to the agent and resolves arg, an ID or a unique
// prefix of one, of kind "allocation", "deployment", "evaluation", "job"
// or "node". On failure it has reported the error, and the code it
// returns is the command's exit code (else exitOK).
func (m *Meta) resolveArg(kind, arg string) (*api.Client, string, int) {
	client, err := m.client()
	if err != nil {
		return nil, "", m.fail(err, "")
	}
	var resolve func(context.Context, string, *api.QueryOptions) (string, error)
	switch kind {
	case "allocation":
		resolve = client.Allocations().Resolve
	case "deployment":
		resolve = client.Deployments().Resolve
	case "evaluation":
		resolve = client.Evaluations().Resolve
	case "job":
		resolve = client.Jobs().Resolve
	case "node":
		resolve = client.Nodes().Resolve
	default:
		panic("resolveArg: unknown kind " + kind) // a bug in a command
	}
	id, err := resolve(m.ctx, arg, nil)
	if err != nil {
		return nil, "", m.fail(err, "looking up %s %q", kind, arg)
	}
	return client, id, exitOK
}
