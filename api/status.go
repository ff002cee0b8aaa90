package api

import (
	"context"
	"net/http"
	"net/url"

	"github.com/skiffhq/skiff/structs"
)

// Status is the cluster status endpoints.
type Status struct{ c *Client }

// Status returns the status endpoints.
func (c *Client) Status() *Status { return &Status{c} }

// Leader returns the RPC address of the raft leader, "" when there is none
// (GET /v1/status/leader).
func (s *Status) Leader(ctx context.Context) (string, error) {
	var out string
	_, err := s.c.query(ctx, "/v1/status/leader", nil, &out)
	return out, err
}

// Peers returns the RPC addresses of the raft peers (GET /v1/status/peers).
func (s *Status) Peers(ctx context.Context) ([]string, error) {
	var out []string
	_, err := s.c.query(ctx, "/v1/status/peers", nil, &out)
	return out, err
}

// Agent is the endpoints about the agent answering.
type Agent struct{ c *Client }

// Agent returns the agent endpoints.
func (c *Client) Agent() *Agent { return &Agent{c} }

// AgentSelf is the agent's own view: its configuration, gossip member and
// statistics, keyed as Nomad keys them.
type AgentSelf struct {
	Config map[string]any               `json:"config"`
	Member structs.ServerMember         `json:"member"`
	Stats  map[string]map[string]string `json:"stats"`
}

// Self describes the agent answering (GET /v1/agent/self).
func (a *Agent) Self(ctx context.Context) (*AgentSelf, error) {
	var out AgentSelf
	if _, err := a.c.query(ctx, "/v1/agent/self", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Members lists the servers gossip knows (GET /v1/agent/members).
func (a *Agent) Members(ctx context.Context) (*structs.ServerMembersResponse, error) {
	var out structs.ServerMembersResponse
	if _, err := a.c.query(ctx, "/v1/agent/members", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// JoinResponse is the answer of a join, in Nomad's snake-case keys.
type JoinResponse struct {
	NumJoined int    `json:"num_joined"`
	Error     string `json:"error"`
}

// Join asks the agent's server to join the gossip pool of the servers at
// addrs (PUT /v1/agent/join?address=X). It returns how many it reached; a
// partial join returns the count and an error.
func (a *Agent) Join(ctx context.Context, addrs ...string) (int, error) {
	r := a.c.newRequest(http.MethodPut, "/v1/agent/join")
	r.params = url.Values{"address": addrs}
	var out JoinResponse
	if _, err := a.c.send(ctx, r, &out); err != nil {
		return 0, err
	}
	if out.Error != "" {
		return out.NumJoined, &JoinError{Msg: out.Error}
	}
	return out.NumJoined, nil
}

// JoinError is the error the agent reported for a join.
type JoinError struct{ Msg string }

func (e *JoinError) Error() string { return "join: " + e.Msg }
