package api

import (
	"context"
	"net/url"

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
