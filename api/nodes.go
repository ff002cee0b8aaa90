package api

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/skiffhq/skiff/structs"
)

// Nodes is the client-node endpoints.
type Nodes struct{ c *Client }

// Nodes returns the node endpoints.
func (c *Client) Nodes() *Nodes { return &Nodes{c} }

// Info returns a node (GET /v1/node/:id).
func (n *Nodes) Info(ctx context.Context, id string, q *QueryOptions) (*structs.Node, *QueryMeta, error) {
	var out structs.Node
	qm, err := n.c.query(ctx, "/v1/node/"+url.PathEscape(id), q, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, qm, nil
}

// List lists nodes, by ID prefix when q.Prefix is set.
func (n *Nodes) List(ctx context.Context, q *QueryOptions) ([]*structs.NodeListStub, *QueryMeta, error) {
	var out []*structs.NodeListStub
	qm, err := n.c.query(ctx, "/v1/nodes", q, &out)
	return out, qm, err
}

// Allocations lists the allocations placed on a node.
func (n *Nodes) Allocations(ctx context.Context, id string, q *QueryOptions) ([]*structs.Allocation, *QueryMeta, error) {
	var out []*structs.Allocation
	qm, err := n.c.query(ctx, "/v1/node/"+url.PathEscape(id)+"/allocations", q, &out)
	return out, qm, err
}

// Resolve returns the full ID of the one node whose ID starts with id.
func (n *Nodes) Resolve(ctx context.Context, id string, q *QueryOptions) (string, error) {
	return resolve(ctx, "node", id, true, q, n.List, func(s *structs.NodeListStub) string { return s.ID })
}

// ToggleEligibility marks a node eligible or ineligible for new
// placements (PUT /v1/node/:id/eligibility).
func (n *Nodes) ToggleEligibility(ctx context.Context, id string, eligible bool, w *WriteOptions) (*structs.NodeEligibilityUpdateResponse, error) {
	e := structs.NodeSchedulingIneligible
	if eligible {
		e = structs.NodeSchedulingEligible
	}
	var out structs.NodeEligibilityUpdateResponse
	if _, err := n.c.write(ctx, http.MethodPut, "/v1/node/"+url.PathEscape(id)+"/eligibility",
		map[string]string{"NodeID": id, "Eligibility": e}, &out, w); err != nil {
		return nil, err
	}
	return &out, nil
}

// DrainSpec starts a drain: Deadline (0 none, < 0 force now) and whether
// system allocations stay.
type DrainSpec struct {
	Deadline         time.Duration
	IgnoreSystemJobs bool
}

// UpdateDrain starts (spec set) or stops (nil) a node's drain
// (PUT /v1/node/:id/drain). markEligible makes a node whose drain stops
// eligible again.
func (n *Nodes) UpdateDrain(ctx context.Context, id string, spec *DrainSpec, markEligible bool, w *WriteOptions) (*structs.NodeDrainUpdateResponse, error) {
	var out structs.NodeDrainUpdateResponse
	body := map[string]any{"NodeID": id, "DrainSpec": spec, "MarkEligible": markEligible}
	if _, err := n.c.write(ctx, http.MethodPut, "/v1/node/"+url.PathEscape(id)+"/drain", body, &out, w); err != nil {
		return nil, err
	}
	return &out, nil
}
