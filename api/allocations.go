package api

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/skiffhq/skiff/structs"
)

// Allocations is the allocation endpoints.
type Allocations struct{ c *Client }

// Allocations returns the allocation endpoints.
func (c *Client) Allocations() *Allocations { return &Allocations{c} }

// Info returns an allocation (GET /v1/allocation/:id).
func (a *Allocations) Info(ctx context.Context, id string, q *QueryOptions) (*structs.Allocation, *QueryMeta, error) {
	var out structs.Allocation
	qm, err := a.c.query(ctx, "/v1/allocation/"+url.PathEscape(id), q, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, qm, nil
}

// List lists allocations, by ID prefix when q.Prefix is set.
func (a *Allocations) List(ctx context.Context, q *QueryOptions) ([]*structs.AllocListStub, *QueryMeta, error) {
	var out []*structs.AllocListStub
	qm, err := a.c.query(ctx, "/v1/allocations", q, &out)
	return out, qm, err
}

// Resolve returns the full ID of the one allocation whose ID starts with id.
func (a *Allocations) Resolve(ctx context.Context, id string, q *QueryOptions) (string, error) {
	return resolve(ctx, "allocation", id, true, q, a.List, func(s *structs.AllocListStub) string { return s.ID })
}

// LogsOptions selects what Logs streams.
type LogsOptions struct {
	Task   string // needed when the allocation has several tasks
	Stderr bool   // stderr instead of stdout
	Follow bool   // keep streaming until the task ends or ctx is done
	Tail   bool   // start Offset bytes before the end instead of at the start
	Offset int64
}

// Logs streams a task's output (GET /v1/client/fs/logs/:alloc, plain
// text). Any agent answers: it proxies to the node that runs the
// allocation. The caller closes the reader; cancel ctx to stop following.
func (a *Allocations) Logs(ctx context.Context, allocID string, o LogsOptions) (io.ReadCloser, error) {
	r := a.c.newRequest(http.MethodGet, "/v1/client/fs/logs/"+url.PathEscape(allocID))
	r.params.Set("plain", "true")
	if o.Task != "" {
		r.params.Set("task", o.Task)
	}
	r.params.Set("type", "stdout")
	if o.Stderr {
		r.params.Set("type", "stderr")
	}
	if o.Follow {
		r.params.Set("follow", "true")
	}
	if o.Tail {
		r.params.Set("origin", "end")
	}
	if o.Offset > 0 {
		r.params.Set("offset", strconv.FormatInt(o.Offset, 10))
	}
	resp, _, err := a.c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// signalRequest is the body of the signal endpoint, Nomad's names.
type signalRequest struct {
	Task   string
	Signal string
}

// Signal sends signal (a name such as "SIGUSR1", or a number) to a task of
// an allocation, or to every running task when task is ""
// (POST /v1/client/allocation/:id/signal; any agent answers, proxying to
// the node that runs the allocation). A task that is not running is a
// *StatusError with status 409.
func (a *Allocations) Signal(ctx context.Context, allocID, task, signal string) error {
	_, err := a.c.write(ctx, http.MethodPost, "/v1/client/allocation/"+url.PathEscape(allocID)+"/signal",
		signalRequest{Task: task, Signal: signal}, nil, nil)
	return err
}

// restartRequest is the body of the restart endpoint, Nomad's names.
type restartRequest struct {
	TaskName string
}

// Restart restarts a task of an allocation in place, or every running
// task when task is "" (POST /v1/client/allocation/:id/restart). It
// returns once the restart has begun; it does not count against the
// task's restart policy. A task that is not running is a *StatusError
// with status 409.
func (a *Allocations) Restart(ctx context.Context, allocID, task string) error {
	_, err := a.c.write(ctx, http.MethodPost, "/v1/client/allocation/"+url.PathEscape(allocID)+"/restart",
		restartRequest{TaskName: task}, nil, nil)
	return err
}
