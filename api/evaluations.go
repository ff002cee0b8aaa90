package api

import (
	"context"
	"net/url"

	"github.com/skiffhq/skiff/structs"
)

// Evaluations is the evaluation endpoints.
type Evaluations struct{ c *Client }

// Evaluations returns the evaluation endpoints.
func (c *Client) Evaluations() *Evaluations { return &Evaluations{c} }

// Info returns an evaluation (GET /v1/evaluation/:id). With q.WaitIndex
// set it blocks until the evaluation changes past that index.
func (e *Evaluations) Info(ctx context.Context, id string, q *QueryOptions) (*structs.Evaluation, *QueryMeta, error) {
	var out structs.Evaluation
	qm, err := e.c.query(ctx, "/v1/evaluation/"+url.PathEscape(id), q, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, qm, nil
}

// List lists evaluations, by ID prefix when q.Prefix is set.
func (e *Evaluations) List(ctx context.Context, q *QueryOptions) ([]*structs.Evaluation, *QueryMeta, error) {
	var out []*structs.Evaluation
	qm, err := e.c.query(ctx, "/v1/evaluations", q, &out)
	return out, qm, err
}

// Allocations lists the allocations an evaluation placed.
func (e *Evaluations) Allocations(ctx context.Context, id string, q *QueryOptions) ([]*structs.AllocListStub, *QueryMeta, error) {
	var out []*structs.AllocListStub
	qm, err := e.c.query(ctx, "/v1/evaluation/"+url.PathEscape(id)+"/allocations", q, &out)
	return out, qm, err
}

// Resolve returns the full ID of the one evaluation whose ID starts with id.
func (e *Evaluations) Resolve(ctx context.Context, id string, q *QueryOptions) (string, error) {
	return resolve(ctx, "evaluation", id, true, q, e.List, func(ev *structs.Evaluation) string { return ev.ID })
}
