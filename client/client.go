// Package client is Skiff's node agent: it fingerprints the machine,
// registers it with the servers, heartbeats, pulls the allocations placed
// on it with a blocking query, runs them through alloc runners and task
// drivers, and reports their status back.
//
// One Client per agent. Its goroutines (heartbeat, alloc watch, status
// sender, GC) are started by Start and joined by Shutdown; alloc runners
// keep their tasks running across agent restarts: a restarted client
// restores them from its local state database and re-attaches.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/skiffhq/skiff/client/allocrunner"
	"github.com/skiffhq/skiff/client/driver"
	"github.com/skiffhq/skiff/client/state"
	"github.com/skiffhq/skiff/structs"
)

// Config configures a client.
type Config struct {
	DataDir    string // the client keeps <DataDir>/client and <DataDir>/alloc
	NodeName   string
	Datacenter string
	Region     string
	NodeClass  string
	NodePool   string
	Meta       map[string]string
	HTTPAddr   string // where this agent's HTTP API answers (logs, exec)
	Version    string

	// RPC reaches the servers. If nil, Servers (RPC addresses) are dialled.
	RPC     RPCer
	Servers []string

	// Drivers by the names tasks use ("containerd", and "docker" as its alias).
	Drivers map[string]driver.Driver

	ReservedCPU      int // MHz kept back for the system
	ReservedMemoryMB int

	// GC: terminal allocations beyond MaxTerminalAllocs, or any while the
	// data dir's disk is fuller than GCDiskUsagePercent, are destroyed,
	// oldest first.
	MaxTerminalAllocs  int
	GCDiskUsagePercent float64
	GCInterval         time.Duration

	// FingerprintInterval is how often driver health is checked again; a
	// change re-registers the node (default 15s).
	FingerprintInterval time.Duration

	Logger hclog.Logger
}

// Client is a running node agent.
type Client struct {
	config  *Config
	logger  hclog.Logger
	rpc     RPCer
	servers *serverList // nil when RPC was given
	db      state.DB

	nodeMu sync.Mutex
	node   *structs.Node // guarded by nodeMu

	runnersMu sync.Mutex
	runners   map[string]*allocrunner.AllocRunner // guarded by runnersMu

	updates *updateBatcher

	registered chan struct{} // closed after the first successful registration
	regOnce    sync.Once

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// identity is the node's ID and secret, kept across restarts.
type identity struct {
	ID       string
	SecretID string
}

// New prepares a client: it loads or creates the node identity, opens the
// local state database and fingerprints the machine. Start runs it.
func New(cfg *Config) (*Client, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("client: a data_dir is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.MaxTerminalAllocs <= 0 {
		cfg.MaxTerminalAllocs = 50
	}
	if cfg.GCDiskUsagePercent <= 0 {
		cfg.GCDiskUsagePercent = 80
	}
	if cfg.GCInterval <= 0 {
		cfg.GCInterval = time.Minute
	}
	if cfg.FingerprintInterval <= 0 {
		cfg.FingerprintInterval = refingerprintEvery
	}
	if cfg.Datacenter == "" {
		cfg.Datacenter = "dc1"
	}
	if cfg.NodePool == "" {
		cfg.NodePool = structs.DefaultNodePool
	}
	dir := filepath.Join(cfg.DataDir, "client")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "alloc"), 0o711); err != nil {
		return nil, fmt.Errorf("create alloc dir: %w", err)
	}
	id, err := loadIdentity(filepath.Join(dir, "node-id.json"))
	if err != nil {
		return nil, err
	}
	c := &Client{
		config: cfg, logger: cfg.Logger.Named("client"), rpc: cfg.RPC,
		runners: map[string]*allocrunner.AllocRunner{}, registered: make(chan struct{}),
	}
	if c.rpc == nil {
		c.servers = newServerList(cfg.Servers)
		c.rpc = c.servers
	}
	if c.db, err = state.Open(filepath.Join(dir, "state.db")); err != nil {
		return nil, err
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.updates = newUpdateBatcher(c)
	n := &structs.Node{
		ID: id.ID, SecretID: id.SecretID, Name: cfg.NodeName, Datacenter: cfg.Datacenter,
		NodeClass: cfg.NodeClass, NodePool: cfg.NodePool, HTTPAddr: cfg.HTTPAddr,
		Meta: cfg.Meta, Status: structs.NodeStatusReady,
	}
	c.fingerprint(c.ctx, n)
	c.node = n
	return c, nil
}

// loadIdentity reads the node's ID and secret, creating them on first start.
func loadIdentity(path string) (*identity, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		var id identity
		if err := json.Unmarshal(b, &id); err != nil || len(id.ID) != 36 || id.SecretID == "" {
			return nil, fmt.Errorf("node identity %s is damaged (%v); delete it to register as a new node", path, err)
		}
		return &id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read node identity: %w", err)
	}
	id := &identity{ID: structs.GenerateUUID(), SecretID: structs.GenerateUUID()}
	b, _ = json.Marshal(id)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return nil, fmt.Errorf("write node identity: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("write node identity: %w", err)
	}
	return id, nil
}

// Start restores the allocations of an earlier run, then registers and
// starts the heartbeat, the allocation watch, the status sender and GC.
// It returns at once; registration retries in the background.
func (c *Client) Start() {
	c.restore()
	c.goFunc(c.updates.run)
	c.goFunc(c.registerAndHeartbeat)
	if c.servers != nil {
		c.goFunc(c.holdLiveness)
	}
	c.goFunc(c.watchAllocs)
	c.goFunc(c.gcLoop)
}

func (c *Client) goFunc(f func()) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
}

// Node returns a copy of this node as last registered.
func (c *Client) Node() *structs.Node {
	c.nodeMu.Lock()
	defer c.nodeMu.Unlock()
	return c.node.Copy()
}

// NodeID returns this node's ID.
func (c *Client) NodeID() string { return c.Node().ID }

// Registered is closed once the node first registered with the servers.
func (c *Client) Registered() <-chan struct{} { return c.registered }

// AllocRunner returns the runner of an allocation on this node, or nil.
func (c *Client) AllocRunner(allocID string) *allocrunner.AllocRunner {
	c.runnersMu.Lock()
	defer c.runnersMu.Unlock()
	return c.runners[allocID]
}

// Shutdown stops the client's loops and alloc runners, leaving tasks
// running (a restarted agent re-attaches to them), and closes the state
// database.
func (c *Client) Shutdown() {
	c.cancel()
	c.wg.Wait()
	c.runnersMu.Lock()
	runners := make([]*allocrunner.AllocRunner, 0, len(c.runners))
	for _, ar := range c.runners {
		runners = append(runners, ar)
	}
	c.runnersMu.Unlock()
	for _, ar := range runners {
		ar.Shutdown()
	}
	if c.servers != nil {
		c.servers.close()
	}
	if err := c.db.Close(); err != nil {
		c.logger.Warn("close client state", "error", err)
	}
}

// RPC calls the servers through the client's connection to them.
func (c *Client) RPC(ctx context.Context, method string, args, reply any) error {
	return c.rpc.RPC(ctx, method, args, reply)
}

// DestroyAll stops and destroys every allocation on this node (dev mode's
// exit, whose state is thrown away).
func (c *Client) DestroyAll(ctx context.Context) error {
	c.runnersMu.Lock()
	runners := make([]*allocrunner.AllocRunner, 0, len(c.runners))
	for id, ar := range c.runners {
		runners = append(runners, ar)
		delete(c.runners, id)
	}
	c.runnersMu.Unlock()
	var errs []error
	for _, ar := range runners {
		if err := ar.Destroy(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
