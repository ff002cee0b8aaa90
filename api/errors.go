package api

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
)

// StatusError is an answer with a non-2xx status. Body is the server's
// plain-text explanation.
type StatusError struct {
	StatusCode int
	Method     string
	Path       string
	Body       string
}

// Error renders `api: 404 Not Found: job "web" not found`.
func (e *StatusError) Error() string {
	msg := fmt.Sprintf("api: %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// IsNotFound reports whether err says the object asked for does not exist.
func IsNotFound(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.StatusCode == http.StatusNotFound
}

// IsStatus reports whether err is a *StatusError with that code.
func IsStatus(err error, code int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.StatusCode == code
}

// UnreachableError is a request that got no HTTP answer: the agent is not
// listening, the name does not resolve, TLS failed, and so on.
type UnreachableError struct {
	Address string
	Err     error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the Skiff agent at %s (%s)", e.Address, e.Reason())
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Reason is a short cause, such as "connection refused".
func (e *UnreachableError) Reason() string {
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case errors.Is(e.Err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(e.Err, syscall.ECONNRESET):
		return "connection reset"
	case errors.As(e.Err, &dnsErr):
		return "cannot resolve " + dnsErr.Name
	case errors.As(e.Err, &opErr) && opErr.Timeout():
		return "timed out"
	}
	var ue *url.Error
	if errors.As(e.Err, &ue) {
		return ue.Err.Error()
	}
	return e.Err.Error()
}

// IsUnreachable reports whether err is an *UnreachableError.
func IsUnreachable(err error) bool {
	var ue *UnreachableError
	return errors.As(err, &ue)
}

// AmbiguousError is an ID prefix that matches more than one object.
type AmbiguousError struct {
	Kind       string // "job", "evaluation", ...
	Prefix     string
	Candidates []string
}

func (e *AmbiguousError) Error() string {
	const show = 10
	c := e.Candidates
	more := ""
	if len(c) > show {
		more = fmt.Sprintf(", and %d more", len(c)-show)
		c = c[:show]
	}
	return fmt.Sprintf("prefix %q matches %d %ss: %s%s; give more of the ID",
		e.Prefix, len(e.Candidates), e.Kind, strings.Join(c, ", "), more)
}

// notFound is the error of a prefix that matched nothing.
func notFound(kind, prefix string) error {
	return &StatusError{StatusCode: http.StatusNotFound, Body: fmt.Sprintf("no %s with ID or prefix %q", kind, prefix)}
}
