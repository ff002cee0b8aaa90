package agent

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/skiffhq/skiff/server"
	"github.com/skiffhq/skiff/structs"
)

func (a *Agent) evalGet(w http.ResponseWriter, r *http.Request) (any, error) {
	args := structs.EvalSpecificRequest{EvalID: r.PathValue("id")}
	var reply structs.SingleEvalResponse
	if err := a.read(w, r, "Eval.GetEval", &args, &args.QueryOptions, &reply, &reply.QueryMeta); err != nil {
		return nil, err
	}
	if reply.Eval == nil {
		return nil, &httpError{http.StatusNotFound, fmt.Sprintf("evaluation %q not found", args.EvalID)}
	}
	return reply.Eval, nil
}

func (a *Agent) evalList(w http.ResponseWriter, r *http.Request) (any, error) {
	var args structs.GenericRequest
	var reply structs.EvalListResponse
	if err := a.read(w, r, "Eval.List", &args, &args.QueryOptions, &reply, &reply.QueryMeta); err != nil {
		return nil, err
	}
	return reply.Evaluations, nil
}

func (a *Agent) evalAllocations(w http.ResponseWriter, r *http.Request) (any, error) {
	args := structs.EvalSpecificRequest{EvalID: r.PathValue("id")}
	var reply structs.JobAllocationsResponse
	if err := a.read(w, r, "Eval.Allocations", &args, &args.QueryOptions, &reply, &reply.QueryMeta); err != nil {
		return nil, err
	}
	return reply.Allocations, nil
}

func (a *Agent) allocGet(w http.ResponseWriter, r *http.Request) (any, error) {
	args := server.AllocSpecificRequest{AllocID: r.PathValue("id")}
	var reply server.SingleAllocResponse
	if err := a.read(w, r, "Alloc.GetAlloc", &args, &args.QueryOptions, &reply, &reply.QueryMeta); err != nil {
		return nil, err
	}
	if reply.Alloc == nil {
		return nil, &httpError{http.StatusNotFound, fmt.Sprintf("allocation %q not found", args.AllocID)}
	}
	return reply.Alloc, nil
}

func (a *Agent) allocList(w http.ResponseWriter, r *http.Request) (any, error) {
	var args structs.GenericRequest
	var reply structs.JobAllocationsResponse
	if err := a.read(w, r, "Alloc.List", &args, &args.QueryOptions, &reply, &reply.QueryMeta); err != nil {
		return nil, err
	}
	return reply.Allocations, nil
}

func (a *Agent) nodeGet(w http.ResponseWriter, r *http.Request) (any, error) {
	args := server.NodeSpecificRequest{NodeID: r.PathValue("id")}
	var reply server.SingleNodeResponse
	if err := a.read(w, r, "Node.GetNode", &args, &args.QueryOptions, &reply, &reply.QueryMeta); err != nil {
		return nil, err
	}
	if reply.Node == nil {
		return nil, &httpError{http.StatusNotFound, fmt.Sprintf("node %q not found", args.NodeID)}
	}
	return reply.Node, nil
}

func (a *Agent) nodeList(w http.ResponseWriter, r *http.Request) (any, error) {
	var args structs.GenericRequest
	var reply server.NodeListResponse
	if err := a.read(w, r, "Node.List", &args, &args.QueryOptions, &reply, &reply.QueryMeta); err != nil {
		return nil, err
	}
	return reply.Nodes, nil
}

func (a *Agent) statusLeader(w http.ResponseWriter, r *http.Request) (any, error) {
	var leader string
	if err := a.rpc("Status.Leader", &structs.GenericRequest{}, &leader); err != nil {
		return nil, err
	}
	return leader, nil
}

func (a *Agent) statusPeers(w http.ResponseWriter, r *http.Request) (any, error) {
	var peers []string
	if err := a.rpc("Status.Peers", &structs.GenericRequest{}, &peers); err != nil {
		return nil, err
	}
	return peers, nil
}

func (a *Agent) agentMembers(w http.ResponseWriter, r *http.Request) (any, error) {
	if a.server == nil {
		return nil, errNotServer
	}
	return a.server.Members(), nil
}

// errNotServer answers server-only endpoints on a client-only agent.
var errNotServer = &httpError{code: http.StatusBadRequest, msg: "this agent is a client only; ask a server's HTTP API (SKIFF_ADDR)"}

func (a *Agent) agentSelf(w http.ResponseWriter, r *http.Request) (any, error) {
	s := a.server
	if s == nil {
		out := map[string]any{"config": map[string]any{
			"Region": a.config.Region, "Datacenter": a.config.Datacenter, "NodeName": a.config.Name,
			"DataDir": a.config.DataDir, "Version": map[string]string{"Version": server.Version},
			"Client": map[string]any{"Enabled": true},
		}}
		if a.client != nil {
			out["stats"] = map[string]any{"client": map[string]string{"node_id": a.client.NodeID()}}
		}
		return out, nil
	}
	var local *structs.ServerMember
	for _, m := range s.Members().Members {
		if m.Tags["id"] == s.NodeID() {
			local = m
		}
	}
	raftStats := s.Raft().Stats()
	return map[string]any{
		"config": map[string]any{
			"Region": a.config.Region, "Datacenter": a.config.Datacenter, "NodeName": a.config.Name,
			"DataDir": a.config.DataDir, "BindAddr": a.config.BindAddr, "Version": map[string]string{"Version": server.Version},
			"Server": map[string]any{"Enabled": true, "BootstrapExpect": a.config.Server.BootstrapExpect},
		},
		"member": local,
		"stats": map[string]any{
			"raft": raftStats,
			"nomad": map[string]string{
				"leader": strconv.FormatBool(s.IsLeader()), "server": "true",
				"known_regions": "1", "leader_addr": s.Leader(),
			},
		},
	}, nil
}

func (a *Agent) agentJoin(w http.ResponseWriter, r *http.Request) (any, error) {
	addrs := r.URL.Query()["address"]
	if len(addrs) == 0 {
		return nil, badRequest("give the gossip address to join: ?address=IP:PORT")
	}
	if a.server == nil {
		return nil, errNotServer
	}
	n, err := a.server.Join(addrs)
	out := map[string]any{"NumJoined": n, "Error": ""}
	if err != nil {
		out["Error"] = err.Error()
	}
	return out, nil
}

func (a *Agent) raftConfiguration(w http.ResponseWriter, r *http.Request) (any, error) {
	var args structs.GenericRequest
	if err := parseQuery(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var reply structs.RaftConfigurationResponse
	if err := a.rpc("Operator.RaftGetConfiguration", &args, &reply); err != nil {
		return nil, err
	}
	return reply, nil
}

func (a *Agent) raftRemovePeer(w http.ResponseWriter, r *http.Request) (any, error) {
	q := r.URL.Query()
	args := structs.RaftPeerRequest{ID: q.Get("id"), Address: q.Get("address")}
	if args.ID == "" && args.Address == "" {
		return nil, badRequest("name the peer to remove: ?id=RAFT-ID or ?address=IP:PORT (see \"skiff operator raft list-peers\")")
	}
	parseWrite(r, &args.WriteRequest)
	var reply structs.GenericResponse
	if err := a.rpc("Operator.RaftRemovePeer", &args, &reply); err != nil {
		return nil, err
	}
	setIndex(w, reply.Index)
	return nil, nil
}

func (a *Agent) snapshotSave(w http.ResponseWriter, r *http.Request) (any, error) {
	var args structs.GenericRequest
	var reply structs.SnapshotResponse
	if err := a.read(w, r, "Operator.SnapshotSave", &args, &args.QueryOptions, &reply, &reply.QueryMeta); err != nil {
		return nil, err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(reply.Snapshot)))
	_, _ = io.Copy(w, bytes.NewReader(reply.Snapshot))
	return nil, nil
}

func (a *Agent) snapshotRestore(w http.ResponseWriter, r *http.Request) (any, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSnapshotBytes))
	if err != nil {
		if strings.Contains(err.Error(), "too large") {
			return nil, err
		}
		return nil, badRequest("read snapshot upload: %v; nothing was changed", err)
	}
	if len(body) == 0 {
		return nil, badRequest("the request body is empty; send the snapshot file written by \"skiff operator snapshot save\"")
	}
	args := structs.SnapshotRestoreRequest{Snapshot: body}
	parseWrite(r, &args.WriteRequest)
	var reply structs.GenericResponse
	if err := a.rpc("Operator.SnapshotRestore", &args, &reply); err != nil {
		return nil, err
	}
	setIndex(w, reply.Index)
	return nil, nil
}

// nodeEligibility is PUT /v1/node/:id/eligibility {"Eligibility": "eligible"|"ineligible"}.
func (a *Agent) nodeEligibility(w http.ResponseWriter, r *http.Request) (any, error) {
	var body struct {
		NodeID      string
		Eligibility string
	}
	if _, err := a.readJSON(w, r, &body); err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	if body.NodeID != "" && body.NodeID != id {
		return nil, badRequest("node ID in the path (%q) does not match the body's NodeID (%q)", id, body.NodeID)
	}
	args := structs.NodeUpdateEligibilityRequest{NodeID: id, Eligibility: body.Eligibility}
	parseWrite(r, &args.WriteRequest)
	var reply structs.NodeEligibilityUpdateResponse
	if err := a.rpc("Node.UpdateEligibility", &args, &reply); err != nil {
		return nil, err
	}
	setIndex(w, reply.Index)
	return reply, nil
}

// nodeDrain is PUT /v1/node/:id/drain {"DrainSpec": {"Deadline": ns,
// "IgnoreSystemJobs": bool} | null, "MarkEligible": bool}.
func (a *Agent) nodeDrain(w http.ResponseWriter, r *http.Request) (any, error) {
	var body struct {
		NodeID    string
		DrainSpec *struct {
			Deadline         int64
			IgnoreSystemJobs bool
		}
		MarkEligible bool
	}
	if _, err := a.readJSON(w, r, &body); err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	if body.NodeID != "" && body.NodeID != id {
		return nil, badRequest("node ID in the path (%q) does not match the body's NodeID (%q)", id, body.NodeID)
	}
	args := structs.NodeUpdateDrainRequest{NodeID: id, MarkEligible: body.MarkEligible}
	if d := body.DrainSpec; d != nil {
		args.DrainStrategy = &structs.DrainStrategy{Deadline: time.Duration(d.Deadline), IgnoreSystemJobs: d.IgnoreSystemJobs}
	}
	parseWrite(r, &args.WriteRequest)
	var reply structs.NodeDrainUpdateResponse
	if err := a.rpc("Node.UpdateDrain", &args, &reply); err != nil {
		return nil, err
	}
	setIndex(w, reply.Index)
	return reply, nil
}
