package api

import (
	"context"
	"io"
	"net/http"

	"github.com/skiffhq/skiff/structs"
)

// Operator is the cluster-operation endpoints.
type Operator struct{ c *Client }

// Operator returns the operator endpoints.
func (c *Client) Operator() *Operator { return &Operator{c} }

// RaftGetConfiguration returns the raft configuration (GET
// /v1/operator/raft/configuration).
func (o *Operator) RaftGetConfiguration(ctx context.Context, q *QueryOptions) (*structs.RaftConfigurationResponse, error) {
	var out structs.RaftConfigurationResponse
	if _, err := o.c.query(ctx, "/v1/operator/raft/configuration", q, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RaftRemovePeerByID removes a server from the raft configuration (DELETE
// /v1/operator/raft/peer?id=X).
func (o *Operator) RaftRemovePeerByID(ctx context.Context, id string, w *WriteOptions) error {
	r := o.c.newRequest(http.MethodDelete, "/v1/operator/raft/peer")
	r.setWrite(w)
	r.params.Set("id", id)
	_, err := o.c.send(ctx, r, nil)
	return err
}

// SnapshotSave streams a snapshot of the cluster state (GET
// /v1/operator/snapshot). The caller reads and closes the body; the meta's
// LastIndex is the raft index the snapshot holds.
func (o *Operator) SnapshotSave(ctx context.Context, q *QueryOptions) (io.ReadCloser, *QueryMeta, error) {
	r := o.c.newRequest(http.MethodGet, "/v1/operator/snapshot")
	r.setQuery(q)
	resp, rtt, err := o.c.do(ctx, r)
	if err != nil {
		return nil, nil, err
	}
	qm := parseQueryMeta(resp)
	qm.RequestTime = rtt
	return resp.Body, qm, nil
}

// SnapshotRestore replaces the cluster state with the snapshot read from
// snap (PUT /v1/operator/snapshot).
func (o *Operator) SnapshotRestore(ctx context.Context, snap io.Reader, w *WriteOptions) (*WriteMeta, error) {
	r := o.c.newRequest(http.MethodPut, "/v1/operator/snapshot")
	r.setWrite(w)
	r.body, r.ctype = snap, "application/octet-stream"
	return o.c.send(ctx, r, nil)
}
