package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// DefaultAddress is the agent's HTTP address when SKIFF_ADDR is unset.
const DefaultAddress = "http://127.0.0.1:4646"

// Environment variables read by ConfigFromEnv.
const (
	EnvAddress    = "SKIFF_ADDR"
	EnvToken      = "SKIFF_TOKEN"
	EnvNamespace  = "SKIFF_NAMESPACE"
	EnvRegion     = "SKIFF_REGION"
	EnvCACert     = "SKIFF_CACERT"
	EnvClientCert = "SKIFF_CLIENT_CERT"
	EnvClientKey  = "SKIFF_CLIENT_KEY"
)

// Headers of Nomad's HTTP API that Skiff speaks.
const (
	HeaderToken       = "X-Nomad-Token"
	HeaderIndex       = "X-Nomad-Index"
	HeaderLastContact = "X-Nomad-LastContact"
	HeaderKnownLeader = "X-Nomad-KnownLeader"
)

// Config says where the agent is and how to talk to it.
type Config struct {
	// Address is the agent's HTTP address, such as http://127.0.0.1:4646.
	// Without a scheme, http is assumed (https when TLS files are given).
	Address string
	// Token is sent as X-Nomad-Token on every request that does not carry
	// its own AuthToken.
	Token string
	// Namespace and Region are the defaults of requests that do not set
	// their own.
	Namespace string
	Region    string
	TLS       TLSConfig
	// HTTPClient, when set, is used as is and TLS is ignored.
	HTTPClient *http.Client
}

// TLSConfig names the PEM files used for HTTPS.
type TLSConfig struct {
	CACert     string // CA bundle that signed the agent's certificate
	ClientCert string // client certificate, for agents that verify clients
	ClientKey  string
	ServerName string // overrides the name checked in the agent's certificate
	Insecure   bool   // skip verification of the agent's certificate
}

func (t TLSConfig) empty() bool { return t == TLSConfig{} }

// DefaultConfig returns a Config from the process environment.
func DefaultConfig() *Config { return ConfigFromEnv(os.Getenv) }

// ConfigFromEnv returns a Config from SKIFF_ADDR, SKIFF_TOKEN,
// SKIFF_NAMESPACE, SKIFF_REGION, SKIFF_CACERT, SKIFF_CLIENT_CERT and
// SKIFF_CLIENT_KEY as getenv reports them.
func ConfigFromEnv(getenv func(string) string) *Config {
	c := &Config{
		Address:   getenv(EnvAddress),
		Token:     getenv(EnvToken),
		Namespace: getenv(EnvNamespace),
		Region:    getenv(EnvRegion),
		TLS: TLSConfig{
			CACert:     getenv(EnvCACert),
			ClientCert: getenv(EnvClientCert),
			ClientKey:  getenv(EnvClientKey),
		},
	}
	if c.Address == "" {
		c.Address = DefaultAddress
	}
	return c
}

// Client talks to one Skiff agent. It is safe for concurrent use.
type Client struct {
	config Config // Address normalized: scheme, no trailing slash
	http   *http.Client
}

// NewClient returns a client for cfg (DefaultConfig when nil). It fails
// only on a malformed address or unreadable TLS files.
func NewClient(cfg *Config) (*Client, error) {
	if cfg == nil {
		cfg = DefaultConfig()
	}
	c := &Client{config: *cfg}
	addr := cfg.Address
	if addr == "" {
		addr = DefaultAddress
	}
	if !strings.Contains(addr, "://") {
		scheme := "http://"
		if !cfg.TLS.empty() {
			scheme = "https://"
		}
		addr = scheme + addr
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("invalid agent address %q: want http://host:port or https://host:port", cfg.Address)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	c.config.Address = u.String()

	c.http = cfg.HTTPClient
	if c.http == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if !cfg.TLS.empty() {
			tc, err := cfg.TLS.build()
			if err != nil {
				return nil, err
			}
			tr.TLSClientConfig = tc
		}
		// No client timeout: blocking queries last as long as they ask
		// to, and callers bound requests with their context.
		c.http = &http.Client{Transport: tr}
	}
	return c, nil
}

func (t TLSConfig) build() (*tls.Config, error) {
	tc := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.Insecure, MinVersion: tls.VersionTLS12}
	if t.CACert != "" {
		pem, err := os.ReadFile(t.CACert)
		if err != nil {
			return nil, fmt.Errorf("read CA certificate: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read CA certificate %s: no PEM certificates found", t.CACert)
		}
		tc.RootCAs = pool
	}
	if (t.ClientCert == "") != (t.ClientKey == "") {
		return nil, fmt.Errorf("client certificate and key must be given together (%s and %s)", EnvClientCert, EnvClientKey)
	}
	if t.ClientCert != "" {
		cert, err := tls.LoadX509KeyPair(t.ClientCert, t.ClientKey)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Address returns the agent address the client uses, with its scheme.
func (c *Client) Address() string { return c.config.Address }

// QueryOptions tune a read. The zero value reads the client's namespace and
// region from the leader, without blocking.
type QueryOptions struct {
	Namespace  string
	Region     string
	AllowStale bool // any server may answer from its own state
	// WaitIndex makes the query block until the data's index exceeds it,
	// or WaitTime passes (the server's default when zero).
	WaitIndex uint64
	WaitTime  time.Duration
	Prefix    string
	AuthToken string
	// Params are extra query parameters.
	Params map[string]string
}

// QueryMeta describes the answer to a read.
type QueryMeta struct {
	LastIndex   uint64        // raft index of the data (X-Nomad-Index)
	LastContact time.Duration // answering server's lag behind the leader
	KnownLeader bool          // whether the answering server knows a leader
	RequestTime time.Duration // round trip as the client measured it
}

// WriteOptions tune a write.
type WriteOptions struct {
	Namespace string
	Region    string
	AuthToken string
}

// WriteMeta describes the answer to a write.
type WriteMeta struct {
	LastIndex   uint64 // raft index at which the write applied
	RequestTime time.Duration
}

// request is one HTTP call being built.
type request struct {
	method string
	path   string
	params url.Values
	token  string
	body   io.Reader
	ctype  string
}

func (c *Client) newRequest(method, path string) *request {
	r := &request{method: method, path: path, params: url.Values{}, token: c.config.Token}
	if c.config.Namespace != "" {
		r.params.Set("namespace", c.config.Namespace)
	}
	if c.config.Region != "" {
		r.params.Set("region", c.config.Region)
	}
	return r
}

func (r *request) setQuery(q *QueryOptions) {
	if q == nil {
		return
	}
	if q.Namespace != "" {
		r.params.Set("namespace", q.Namespace)
	}
	if q.Region != "" {
		r.params.Set("region", q.Region)
	}
	if q.AllowStale {
		r.params.Set("stale", "")
	}
	if q.WaitIndex != 0 {
		r.params.Set("index", strconv.FormatUint(q.WaitIndex, 10))
	}
	if q.WaitTime != 0 {
		r.params.Set("wait", q.WaitTime.String())
	}
	if q.Prefix != "" {
		r.params.Set("prefix", q.Prefix)
	}
	if q.AuthToken != "" {
		r.token = q.AuthToken
	}
	for k, v := range q.Params {
		r.params.Set(k, v)
	}
}

func (r *request) setWrite(w *WriteOptions) {
	if w == nil {
		return
	}
	if w.Namespace != "" {
		r.params.Set("namespace", w.Namespace)
	}
	if w.Region != "" {
		r.params.Set("region", w.Region)
	}
	if w.AuthToken != "" {
		r.token = w.AuthToken
	}
}

// setJSON makes v the JSON body of the request.
func (r *request) setJSON(v any) error {
	if v == nil {
		return nil
	}
	buf, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s %s body: %w", r.method, r.path, err)
	}
	r.body, r.ctype = bytes.NewReader(buf), "application/json"
	return nil
}

// do sends r and returns the response when its status is 2xx; the caller
// closes the body. Other statuses become *StatusError, transport failures
// *UnreachableError (or the context's error).
func (c *Client) do(ctx context.Context, r *request) (*http.Response, time.Duration, error) {
	// r.path is already escaped. A bare "stale" flag encodes as "stale=",
	// which servers accept.
	u := c.config.Address + r.path
	if len(r.params) > 0 {
		u += "?" + r.params.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, r.body)
	if err != nil {
		return nil, 0, fmt.Errorf("build request %s %s: %w", r.method, r.path, err)
	}
	if r.token != "" {
		req.Header.Set(HeaderToken, r.token)
	}
	if r.ctype != "" {
		req.Header.Set("Content-Type", r.ctype)
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	rtt := time.Since(start)
	if err != nil {
		if ctx.Err() != nil {
			return nil, rtt, ctx.Err()
		}
		return nil, rtt, &UnreachableError{Address: c.config.Address, Err: err}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, rtt, &StatusError{
			StatusCode: resp.StatusCode, Method: r.method, Path: r.path,
			Body: strings.TrimSpace(string(body)),
		}
	}
	return resp, rtt, nil
}

// query runs a GET and decodes the JSON answer into out.
func (c *Client) query(ctx context.Context, path string, q *QueryOptions, out any) (*QueryMeta, error) {
	r := c.newRequest(http.MethodGet, path)
	r.setQuery(q)
	resp, rtt, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	qm := parseQueryMeta(resp)
	qm.RequestTime = rtt
	if err := decodeBody(resp, out); err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	return qm, nil
}

// write sends in as the JSON body of method path and decodes the answer
// into out, when out is not nil.
func (c *Client) write(ctx context.Context, method, path string, in, out any, w *WriteOptions) (*WriteMeta, error) {
	r := c.newRequest(method, path)
	r.setWrite(w)
	if err := r.setJSON(in); err != nil {
		return nil, err
	}
	return c.send(ctx, r, out)
}

func (c *Client) send(ctx context.Context, r *request, out any) (*WriteMeta, error) {
	resp, rtt, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	wm := &WriteMeta{LastIndex: parseQueryMeta(resp).LastIndex, RequestTime: rtt}
	if err := decodeBody(resp, out); err != nil {
		return nil, fmt.Errorf("%s %s: %w", r.method, r.path, err)
	}
	return wm, nil
}

func decodeBody(resp *http.Response, out any) error {
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	return nil
}

// parseQueryMeta reads the blocking-query headers. Missing or malformed
// headers leave their fields zero.
func parseQueryMeta(resp *http.Response) *QueryMeta {
	qm := &QueryMeta{}
	if v := resp.Header.Get(HeaderIndex); v != "" {
		qm.LastIndex, _ = strconv.ParseUint(v, 10, 64)
	}
	if v := resp.Header.Get(HeaderLastContact); v != "" {
		if ms, err := strconv.ParseUint(v, 10, 64); err == nil {
			qm.LastContact = time.Duration(ms) * time.Millisecond
		}
	}
	qm.KnownLeader = resp.Header.Get(HeaderKnownLeader) == "true"
	return qm
}
