package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/structs"
)

// recorder is a fake agent: it answers with the handler and keeps the last
// request it saw.
type recorder struct {
	last    *http.Request
	body    []byte
	handler http.HandlerFunc
}

func newTestClient(t *testing.T, h http.HandlerFunc, cfg *Config) (*Client, *recorder) {
	t.Helper()
	rec := &recorder{handler: h}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.last = r
		rec.body, _ = io.ReadAll(r.Body)
		rec.handler(w, r)
	}))
	t.Cleanup(srv.Close)
	if cfg == nil {
		cfg = &Config{}
	}
	cfg.Address = srv.URL
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, rec
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func TestQueryMetaHeaders(t *testing.T) {
	tests := []struct {
		name    string
		headers map[string]string
		want    QueryMeta
	}{
		{"all", map[string]string{HeaderIndex: "42", HeaderLastContact: "150", HeaderKnownLeader: "true"},
			QueryMeta{LastIndex: 42, LastContact: 150 * time.Millisecond, KnownLeader: true}},
		{"no leader", map[string]string{HeaderIndex: "7", HeaderKnownLeader: "false"}, QueryMeta{LastIndex: 7}},
		{"missing", nil, QueryMeta{}},
		{"malformed", map[string]string{HeaderIndex: "x", HeaderLastContact: "-1"}, QueryMeta{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.headers {
					w.Header().Set(k, v)
				}
				writeJSON(w, []any{})
			}, nil)
			_, qm, err := c.Jobs().List(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			qm.RequestTime = 0
			if *qm != tt.want {
				t.Errorf("got %+v, want %+v", *qm, tt.want)
			}
		})
	}
}

func TestQueryParamsAndToken(t *testing.T) {
	c, rec := newTestClient(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, []any{}) },
		&Config{Token: "cfg-token", Namespace: "cfg-ns", Region: "cfg-region"})
	ctx := context.Background()

	if _, _, err := c.Jobs().List(ctx, nil); err != nil {
		t.Fatal(err)
	}
	q := rec.last.URL.Query()
	if got := q.Get("namespace"); got != "cfg-ns" {
		t.Errorf("default namespace: got %q, want cfg-ns", got)
	}
	if got := q.Get("region"); got != "cfg-region" {
		t.Errorf("default region: got %q, want cfg-region", got)
	}
	if got := rec.last.Header.Get(HeaderToken); got != "cfg-token" {
		t.Errorf("default token: got %q, want cfg-token", got)
	}
	for _, k := range []string{"stale", "index", "wait", "prefix"} {
		if q.Has(k) {
			t.Errorf("unexpected parameter %q in %s", k, rec.last.URL.RawQuery)
		}
	}

	opts := &QueryOptions{Namespace: "prod", Region: "eu", AllowStale: true, WaitIndex: 17,
		WaitTime: 30 * time.Second, Prefix: "we", AuthToken: "query-token"}
	if _, _, err := c.Jobs().List(ctx, opts); err != nil {
		t.Fatal(err)
	}
	q = rec.last.URL.Query()
	want := url.Values{"namespace": {"prod"}, "region": {"eu"}, "stale": {""}, "index": {"17"}, "wait": {"30s"}, "prefix": {"we"}}
	for k, v := range want {
		if got := q[k]; len(got) != 1 || got[0] != v[0] {
			t.Errorf("param %s: got %q, want %q", k, got, v)
		}
	}
	if got := rec.last.Header.Get(HeaderToken); got != "query-token" {
		t.Errorf("token: got %q, want query-token", got)
	}
	if rec.last.URL.Path != "/v1/jobs" || rec.last.Method != http.MethodGet {
		t.Errorf("got %s %s, want GET /v1/jobs", rec.last.Method, rec.last.URL.Path)
	}
}

func TestStatusErrors(t *testing.T) {
	tests := []struct {
		code     int
		body     string
		wantMsg  string
		notFound bool
	}{
		{404, "job \"web\" not found\n", `api: 404 Not Found: job "web" not found`, true},
		{400, "count must be >= 0", `api: 400 Bad Request: count must be >= 0`, false},
		{500, "", `api: 500 Internal Server Error`, false},
	}
	for _, tt := range tests {
		c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, strings.TrimSuffix(tt.body, "\n"), tt.code)
		}, nil)
		_, _, err := c.Jobs().Info(context.Background(), "web", nil)
		if err == nil {
			t.Fatalf("%d: got no error", tt.code)
		}
		if err.Error() != tt.wantMsg {
			t.Errorf("%d: got %q, want %q", tt.code, err.Error(), tt.wantMsg)
		}
		if IsNotFound(err) != tt.notFound {
			t.Errorf("%d: IsNotFound = %v, want %v", tt.code, IsNotFound(err), tt.notFound)
		}
		var se *StatusError
		if !errors.As(err, &se) || se.StatusCode != tt.code {
			t.Errorf("%d: got %#v, want *StatusError with that code", tt.code, err)
		}
	}
}

func TestUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close()
	c, err := NewClient(&Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Status().Leader(context.Background())
	var ue *UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("got %v, want *UnreachableError", err)
	}
	if got := ue.Reason(); got != "connection refused" {
		t.Errorf("reason: got %q, want connection refused", got)
	}
	if want := "cannot reach the Skiff agent at " + addr + " (connection refused)"; err.Error() != want {
		t.Errorf("got %q, want %q", err.Error(), want)
	}
	if IsNotFound(err) {
		t.Error("unreachable must not be not-found")
	}
}

func TestCanceledContextIsNotUnreachable(t *testing.T) {
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, "") }, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Status().Leader(ctx)
	if !errors.Is(err, context.Canceled) || IsUnreachable(err) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

func TestConfigFromEnv(t *testing.T) {
	env := map[string]string{EnvToken: "t", EnvNamespace: "ns", EnvRegion: "r"}
	cfg := ConfigFromEnv(func(k string) string { return env[k] })
	if cfg.Address != DefaultAddress || cfg.Token != "t" || cfg.Namespace != "ns" || cfg.Region != "r" {
		t.Errorf("got %+v", cfg)
	}
	tests := []struct{ in, want string }{
		{"127.0.0.1:4646", "http://127.0.0.1:4646"},
		{"http://10.0.0.1:4646/", "http://10.0.0.1:4646"},
		{"https://skiff.example:443", "https://skiff.example:443"},
	}
	for _, tt := range tests {
		c, err := NewClient(&Config{Address: tt.in})
		if err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		if c.Address() != tt.want {
			t.Errorf("%s: got %q, want %q", tt.in, c.Address(), tt.want)
		}
	}
	for _, bad := range []string{"ftp://x", "http://"} {
		if _, err := NewClient(&Config{Address: bad}); err == nil {
			t.Errorf("%s: got no error", bad)
		}
	}
	if _, err := NewClient(&Config{TLS: TLSConfig{CACert: "/nonexistent/ca.pem"}}); err == nil {
		t.Error("missing CA file: got no error")
	}
}

func TestRegisterBody(t *testing.T) {
	c, rec := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(HeaderIndex, "12")
		writeJSON(w, structs.JobRegisterResponse{EvalID: "e1", JobModifyIndex: 12})
	}, nil)
	job := &structs.Job{ID: "web", Name: "web"}
	resp, wm, err := c.Jobs().Register(context.Background(), job, &RegisterOptions{EnforceIndex: true, ModifyIndex: 5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.EvalID != "e1" || wm.LastIndex != 12 {
		t.Errorf("got %+v %+v", resp, wm)
	}
	if rec.last.Method != http.MethodPut || rec.last.URL.Path != "/v1/jobs" {
		t.Errorf("got %s %s, want PUT /v1/jobs", rec.last.Method, rec.last.URL.Path)
	}
	var body struct {
		Job            *structs.Job
		EnforceIndex   bool
		JobModifyIndex uint64
	}
	if err := json.Unmarshal(rec.body, &body); err != nil {
		t.Fatal(err)
	}
	if body.Job == nil || body.Job.ID != "web" || !body.EnforceIndex || body.JobModifyIndex != 5 {
		t.Errorf("body: got %s", rec.body)
	}
}

func TestDeregisterPurge(t *testing.T) {
	c, rec := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, structs.JobDeregisterResponse{EvalID: "e2"})
	}, nil)
	resp, _, err := c.Jobs().Deregister(context.Background(), "my job", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.EvalID != "e2" || rec.last.Method != http.MethodDelete ||
		rec.last.URL.EscapedPath() != "/v1/job/my%20job" || rec.last.URL.Query().Get("purge") != "true" {
		t.Errorf("got %s %s, resp %+v", rec.last.Method, rec.last.URL, resp)
	}
}

func TestSnapshotStreams(t *testing.T) {
	snap := bytes.Repeat([]byte("raft"), 1000)
	c, rec := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			w.Header().Set(HeaderIndex, "99")
			_, _ = w.Write(snap)
		}
	}, nil)
	ctx := context.Background()
	body, qm, err := c.Operator().SnapshotSave(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(body)
	body.Close()
	if err != nil || !bytes.Equal(got, snap) || qm.LastIndex != 99 {
		t.Errorf("save: got %d bytes, index %d, err %v", len(got), qm.LastIndex, err)
	}
	if _, err := c.Operator().SnapshotRestore(ctx, bytes.NewReader(snap), nil); err != nil {
		t.Fatal(err)
	}
	if rec.last.Method != http.MethodPut || !bytes.Equal(rec.body, snap) {
		t.Errorf("restore: got %s with %d bytes", rec.last.Method, len(rec.body))
	}
}

func TestJoin(t *testing.T) {
	c, rec := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, JoinResponse{NumJoined: 1, Error: "10.0.0.9: connection refused"})
	}, nil)
	n, err := c.Agent().Join(context.Background(), "10.0.0.8", "10.0.0.9")
	if n != 1 || err == nil {
		t.Errorf("got %d, %v; want 1 and an error", n, err)
	}
	if got := rec.last.URL.Query()["address"]; len(got) != 2 {
		t.Errorf("addresses: got %q", got)
	}
}
