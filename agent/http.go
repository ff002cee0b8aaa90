package agent

import (
	"bytes"
	"encoding/json"

	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-metrics"

	"github.com/skiffhq/skiff/server"
	"github.com/skiffhq/skiff/structs"
)

const (
	// defaultMaxRequestBytes bounds JSON request bodies; the limit applies
	// before any parsing.
	defaultMaxRequestBytes = 4 << 20
	// maxSnapshotBytes bounds snapshot uploads.
	maxSnapshotBytes = 1 << 30
)

// httpError is an error with the status code to answer it with.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// handlerFunc is an API handler: it returns the value to encode as JSON,
// or an error to answer in plain text.
type handlerFunc func(w http.ResponseWriter, r *http.Request) (any, error)

func (a *Agent) wrap(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		defer metrics.MeasureSinceWithLabels([]string{"http", "request"}, time.Now(),
			[]metrics.Label{{Name: "route", Value: r.Pattern}})
		out, err := h(w, r)
		if err != nil {
			code, msg := errorStatus(err)
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(code)
			io.WriteString(w, msg+"\n")
			return
		}
		if out == nil {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, pretty := r.URL.Query()["pretty"]
		if p, ok := out.(*pooledJSON); ok {
			defer p.release()
			out = rawJSON(p.json)
		}
		if raw, ok := out.(rawJSON); ok {
			if pretty {
				var buf bytes.Buffer
				_ = json.Indent(&buf, raw, "", "    ") // raw is valid JSON
				raw = buf.Bytes()
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(raw)))
			if _, err := w.Write(raw); err != nil {
				a.logger.Warn("write http response", "path", r.URL.Path, "error", err)
			}
			return
		}
		enc := json.NewEncoder(w)
		if pretty {
			enc.SetIndent("", "    ")
		}
		if err := enc.Encode(out); err != nil {
			a.logger.Warn("write http response", "path", r.URL.Path, "error", err)
		}
	}
}

// errorStatus maps an error to a status code and the text a person reads.
func errorStatus(err error) (int, string) {
	var he *httpError
	if errors.As(err, &he) {
		return he.code, he.msg
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than the %d-byte limit", mbe.Limit)
	}
	msg := err.Error()
	switch {
	case strings.HasPrefix(msg, "invalid job"):
		return http.StatusBadRequest, msg
	case strings.HasPrefix(msg, server.ErrBadRequest.Error()+": "):
		return http.StatusBadRequest, strings.TrimPrefix(msg, server.ErrBadRequest.Error()+": ")
	case structs.IsErr(err, server.ErrBadSnapshot):
		return http.StatusBadRequest, msg
	case structs.IsErr(err, structs.ErrIndexMismatch):
		return http.StatusConflict, msg
	case structs.IsErr(err, structs.ErrNotFound):
		return http.StatusNotFound, msg
	case structs.IsErr(err, structs.ErrNoLeader), structs.IsErr(err, structs.ErrOutcomeUnknown):
		return http.StatusServiceUnavailable, msg
	case structs.IsErr(err, structs.ErrNodeSecret):
		return http.StatusForbidden, msg
	}
	return http.StatusInternalServerError, msg
}

// routes builds the HTTP API, Nomad's paths.
func (a *Agent) routes() http.Handler {
	mux := http.NewServeMux()
	h := func(pattern string, fn handlerFunc) { mux.Handle(pattern, a.wrap(fn)) }

	h("GET /v1/jobs", a.jobList)
	h("PUT /v1/jobs", a.jobRegister)
	h("POST /v1/jobs", a.jobRegister)
	h("PUT /v1/jobs/parse", a.jobParse)
	h("POST /v1/jobs/parse", a.jobParse)
	h("GET /v1/job/{id}", a.jobGet)
	h("PUT /v1/job/{id}", a.jobRegister)
	h("POST /v1/job/{id}", a.jobRegister)
	h("DELETE /v1/job/{id}", a.jobDeregister)
	h("GET /v1/job/{id}/versions", a.jobVersions)
	h("GET /v1/job/{id}/allocations", a.jobAllocations)
	h("GET /v1/job/{id}/evaluations", a.jobEvaluations)
	h("GET /v1/job/{id}/summary", a.jobSummary)
	h("PUT /v1/job/{id}/plan", a.jobPlan)
	h("POST /v1/job/{id}/plan", a.jobPlan)
	h("GET /v1/job/{id}/deployments", a.jobDeployments)
	h("GET /v1/job/{id}/deployment", a.jobLatestDeployment)
	h("PUT /v1/job/{id}/revert", a.jobRevert)
	h("POST /v1/job/{id}/revert", a.jobRevert)

	h("GET /v1/deployments", a.deploymentList)
	h("GET /v1/deployment/{id}", a.deploymentGet)
	h("GET /v1/deployment/allocations/{id}", a.deploymentAllocations)
	h("PUT /v1/deployment/fail/{id}", a.deploymentFail)
	h("POST /v1/deployment/fail/{id}", a.deploymentFail)
	h("PUT /v1/deployment/pause/{id}", a.deploymentPause)
	h("POST /v1/deployment/pause/{id}", a.deploymentPause)
	h("PUT /v1/deployment/promote/{id}", a.deploymentPromote)
	h("POST /v1/deployment/promote/{id}", a.deploymentPromote)
	h("PUT /v1/deployment/allocation-health/{id}", a.deploymentAllocHealth)
	h("POST /v1/deployment/allocation-health/{id}", a.deploymentAllocHealth)

	h("GET /v1/evaluations", a.evalList)
	h("GET /v1/evaluation/{id}", a.evalGet)
	h("GET /v1/evaluation/{id}/allocations", a.evalAllocations)
	h("GET /v1/allocations", a.allocList)
	h("GET /v1/allocation/{id}", a.allocGet)
	h("GET /v1/nodes", a.nodeList)
	h("GET /v1/node/{id}", a.nodeGet)
	h("GET /v1/node/{id}/allocations", a.nodeAllocations)
	h("PUT /v1/node/{id}/eligibility", a.nodeEligibility)
	h("PUT /v1/node/{id}/drain", a.nodeDrain)
	h("POST /v1/node/{id}/drain", a.nodeDrain)
	h("POST /v1/node/{id}/eligibility", a.nodeEligibility)
	h("GET /v1/client/fs/logs/{alloc}", a.allocLogs)
	h("GET /v1/client/allocation/{id}/stats", a.allocStats)
	h("GET /v1/client/allocation/{id}/exec", a.allocExec)
	h("POST /v1/client/allocation/{id}/signal", a.allocSignal)
	h("PUT /v1/client/allocation/{id}/signal", a.allocSignal)
	h("POST /v1/client/allocation/{id}/restart", a.allocRestart)
	h("PUT /v1/client/allocation/{id}/restart", a.allocRestart)

	h("GET /v1/status/leader", a.statusLeader)
	h("GET /v1/status/peers", a.statusPeers)
	h("GET /v1/agent/self", a.agentSelf)
	h("GET /v1/agent/members", a.agentMembers)
	h("PUT /v1/agent/join", a.agentJoin)
	h("POST /v1/agent/join", a.agentJoin)
	h("GET /v1/operator/raft/configuration", a.raftConfiguration)
	h("DELETE /v1/operator/raft/peer", a.raftRemovePeer)
	h("GET /v1/operator/snapshot", a.snapshotSave)
	h("PUT /v1/operator/snapshot", a.snapshotRestore)
	h("POST /v1/operator/snapshot", a.snapshotRestore)
	h("GET /v1/metrics", a.metrics)

	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, fmt.Sprintf("no such endpoint: %s %s (this Skiff version serves the /v1 paths listed in the README)", r.Method, r.URL.Path), http.StatusNotFound)
	})
	return mux
}

// notYet answers an endpoint of the Nomad API that this version does not
// serve yet with 501 and what it needs.
func (a *Agent) notYet(what string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) (any, error) {
		return nil, &httpError{http.StatusNotImplemented, fmt.Sprintf("%s %s is not available in this version of Skiff: %s, which is not served yet", r.Method, r.URL.Path, what)}
	}
}

// read serves a read through the server: the request's query parameters
// (index, wait, stale, prefix, ...) into q, the RPC, and the answer's
// X-Nomad-* headers from m. q and m are the QueryOptions and QueryMeta
// embedded in args and reply.
func (a *Agent) read(w http.ResponseWriter, r *http.Request, method string, args any, q *structs.QueryOptions, reply any, m *structs.QueryMeta) error {
	if err := parseQuery(r, q); err != nil {
		return err
	}
	if err := a.rpc(method, args, reply); err != nil {
		return err
	}
	setMeta(w, m)
	return nil
}

// parseQuery reads Nomad's query parameters: index, wait, stale,
// prefix, namespace, region, and the token.
func parseQuery(r *http.Request, q *structs.QueryOptions) error {
	v := r.URL.Query()
	if s := v.Get("index"); s != "" {
		idx, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return badRequest("index=%q is not a number", s)
		}
		q.MinQueryIndex = idx
	}
	if s := v.Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			// Nomad also accepts a bare number of seconds? No: of duration units only.
			return badRequest("wait=%q is not a duration (use e.g. wait=30s)", s)
		}
		q.MaxQueryTime = d
	}
	if _, ok := v["stale"]; ok && v.Get("stale") != "false" {
		q.AllowStale = true
	}
	if c := v.Get("consistent"); c != "" {
		q.AllowStale = false
	}
	q.Prefix = v.Get("prefix")
	q.Namespace = v.Get("namespace")
	q.Region = v.Get("region")
	q.AuthToken = token(r)
	q.SetContext(r.Context()) // a client that goes away ends its blocking query
	return nil
}

func parseWrite(r *http.Request, w *structs.WriteRequest) {
	v := r.URL.Query()
	w.Namespace = v.Get("namespace")
	w.Region = v.Get("region")
	w.AuthToken = token(r)
}

func token(r *http.Request) string {
	if t := r.Header.Get("X-Nomad-Token"); t != "" {
		return t
	}
	if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return t
	}
	return ""
}

// setMeta writes the blocking-query headers Nomad clients read.
func setMeta(w http.ResponseWriter, m *structs.QueryMeta) {
	w.Header().Set("X-Nomad-Index", strconv.FormatUint(m.Index, 10))
	w.Header().Set("X-Nomad-KnownLeader", strconv.FormatBool(m.KnownLeader))
	w.Header().Set("X-Nomad-LastContact", strconv.FormatInt(m.LastContact.Milliseconds(), 10))
}

func setIndex(w http.ResponseWriter, index uint64) {
	w.Header().Set("X-Nomad-Index", strconv.FormatUint(index, 10))
}

// errEmptyBody is readJSON's answer to an empty body; endpoints whose
// body is optional test for it with errors.Is.
var errEmptyBody = &httpError{http.StatusBadRequest, "request body is empty; send the JSON object the endpoint takes"}

// readJSON reads a size-limited body and decodes it into out (a
// pointer), ignoring fields out has no place for. It returns the raw body.
func (a *Agent) readJSON(w http.ResponseWriter, r *http.Request, out any) ([]byte, error) {
	body, err := a.readBody(w, r)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(body, out); err != nil {
		return nil, badJSON(body, err)
	}
	return body, nil
}

// readJSONWarn is readJSON that also returns the fields of the body out
// has no place for and that carry a value (unknownFields), for a warning.
// Most bodies have none, so it first decodes strictly, rejecting unknown
// fields: one decode. Only when that fails does it decode again as
// readJSON does (the same errors) and a third time, generically, to name
// them. (Decoding every body twice was a tenth of the server's CPU in the
// job registration benchmark.)
func (a *Agent) readJSONWarn(w http.ResponseWriter, r *http.Request, out any) (raw []byte, warnings []string, err error) {
	body, err := a.readBody(w, r)
	if err != nil {
		return nil, nil, err
	}
	if decodeStrict(body, out) {
		return body, nil, nil
	}
	// Start again from a zero value: the strict pass may have filled part
	// of out before it stopped.
	reflect.ValueOf(out).Elem().SetZero()
	if err := json.Unmarshal(body, out); err != nil {
		return nil, nil, badJSON(body, err)
	}
	var doc any
	_ = json.Unmarshal(body, &doc) // valid: it just decoded
	return body, unknownFields(doc, out), nil
}

// decodeStrict decodes body, a single JSON value, into out and reports
// whether every object key found a field (encoding/json's
// DisallowUnknownFields). On false out may be partly filled.
func decodeStrict(body []byte, out any) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if dec.Decode(out) != nil {
		return false
	}
	// A decoder stops after the first value; json.Unmarshal refuses
	// anything but white space after it.
	return len(bytes.TrimLeft(body[dec.InputOffset():], " \t\r\n")) == 0
}

// readBody reads the request body, refusing one over the agent's request
// size limit or an empty one.
func (a *Agent) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	limit := int64(defaultMaxRequestBytes)
	if a.config.Limits != nil && a.config.Limits.HTTPMaxRequestBytes > 0 {
		limit = a.config.Limits.HTTPMaxRequestBytes
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return nil, err
	}
	if len(body) == 0 {
		return nil, errEmptyBody
	}
	return body, nil
}

// badJSON is the answer to a body that json.Unmarshal refused with err.
func badJSON(body []byte, err error) error {
	return badRequest("request body is not valid JSON for this endpoint: %v", jsonErrorText(body, err))
}

// jsonErrorText adds the line and column to a JSON syntax error.
func jsonErrorText(body []byte, err error) string {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
		if te.Field != "" {
			return fmt.Sprintf("field %s: got a JSON %s, want %s (at %s)", te.Field, te.Value, te.Type, lineCol(body, off))
		}
	}
	if off < 0 {
		return err.Error()
	}
	return fmt.Sprintf("%v (at %s)", err, lineCol(body, off))
}

func lineCol(body []byte, off int64) string {
	line, col := 1, 1
	for i := int64(0); i < off && i < int64(len(body)); i++ {
		if body[i] == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return fmt.Sprintf("line %d, column %d", line, col)
}
