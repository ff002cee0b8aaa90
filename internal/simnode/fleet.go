package simnode

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/skiffhq/skiff/rpc"
	"github.com/skiffhq/skiff/structs"
)

// Config describes a fleet. Zero values take the defaults documented on
// each field; Servers and Count are required.
type Config struct {
	// Servers are the RPC addresses (host:port) of the servers. Node i
	// starts with server i mod len(Servers) and moves to the next one
	// when a call fails.
	Servers []string
	// Count is the number of nodes.
	Count int
	// Name seeds the nodes' names ("<Name>-00042") and their stable IDs
	// and secrets: two fleets with the same Name register the same nodes.
	// Default "sim".
	Name string

	// Datacenters are given to the nodes in turn (node i gets
	// Datacenters[i mod len]). Default ["dc1"].
	Datacenters []string
	// NodeClass and NodePool of every node; NodePool defaults to
	// "default".
	NodeClass, NodePool string
	// Racks, if > 0, sets meta.rack = "r<i mod Racks>" on node i.
	Racks int
	// CPUMHz (default 14,000: 4 cores x 3,500 MHz), Cores (default 4),
	// MemoryMB (default 32,000) and DiskMB (default 100 GiB) are each
	// node's resources.
	CPUMHz   int64
	Cores    int
	MemoryMB int64
	DiskMB   int64
	// Attributes and Meta are added to (and override) the defaults
	// (kernel.name=linux, cpu.arch=amd64, driver.containerd=1, ...).
	Attributes map[string]string
	Meta       map[string]string

	// Idle nodes register and heartbeat but never pull their allocations
	// nor report on them: for benchmarks that measure placements only.
	Idle bool
	// AllocStatus, if set, is called once for each allocation a node sees
	// for the first time while it is desired to run, on that node's pull
	// goroutine, and returns the client status to report:
	// "running" (also for ""), "failed" or "complete". Tests use it to
	// fail allocations.
	AllocStatus func(n *Node, a *structs.Allocation) string

	// Liveness makes every node hold a liveness connection to a server,
	// as real clients do (rpc.ConnLiveness): Kill then closes it, and the
	// servers notice at once. One TCP connection per node.
	Liveness bool

	// PullWait is the MaxQueryTime of the blocking pull. Default 1 minute.
	PullWait time.Duration
	// RPCTimeout bounds one call that is not a blocking pull. Default 30 s.
	RPCTimeout time.Duration
	// RegisterConcurrency bounds the registrations Start has in flight.
	// Default 32.
	RegisterConcurrency int
	// Conns is the number of connections (yamux sessions) per server the
	// fleet spreads its nodes over. Default one per 250 nodes, at most 16.
	Conns int

	// Logger receives retries and failures; default none.
	Logger hclog.Logger
}

func (c *Config) setDefaults() error {
	switch {
	case len(c.Servers) == 0:
		return errors.New("simnode: Config.Servers is empty; give the servers' RPC addresses")
	case c.Count <= 0:
		return fmt.Errorf("simnode: Config.Count must be > 0 (got %d)", c.Count)
	}
	if c.Name == "" {
		c.Name = "sim"
	}
	if len(c.Datacenters) == 0 {
		c.Datacenters = []string{"dc1"}
	}
	if c.NodePool == "" {
		c.NodePool = structs.DefaultNodePool
	}
	if c.CPUMHz == 0 {
		c.CPUMHz = 4 * 3500
	}
	if c.Cores == 0 {
		c.Cores = 4
	}
	if c.MemoryMB == 0 {
		c.MemoryMB = 32000
	}
	if c.DiskMB == 0 {
		c.DiskMB = 100 * 1024
	}
	if c.PullWait <= 0 {
		c.PullWait = time.Minute
	}
	if c.RPCTimeout <= 0 {
		c.RPCTimeout = 30 * time.Second
	}
	if c.RegisterConcurrency <= 0 {
		c.RegisterConcurrency = 32
	}
	if c.Conns <= 0 {
		c.Conns = min(16, 1+(c.Count-1)/250)
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return nil
}

// Fleet is a set of simulated client nodes. Start creates and registers
// it; Close stops it. Its methods are safe for concurrent use.
type Fleet struct {
	cfg     Config
	logger  hclog.Logger
	pools   []*rpc.Pool
	nodes   []*Node
	ctx     context.Context
	cancel  context.CancelFunc
	closing sync.Once
	stats   counters
}

// counters are the fleet's statistics; see Stats.
type counters struct {
	registered, heartbeats, heartbeatErrors, pulls, rpcRetries atomic.Int64
	running, failed, complete, updates, updatedAllocs          atomic.Int64
}

// Stats is a snapshot of a fleet's counters since Start.
type Stats struct {
	Registered      int64 // nodes whose Node.Register succeeded (re-registrations count again)
	Heartbeats      int64 // successful Node.UpdateStatus calls
	HeartbeatErrors int64 // heartbeats that failed on every server tried
	Pulls           int64 // Node.GetClientAllocs answers received
	RPCRetries      int64 // calls sent again, to the same or the next server
	Running         int64 // allocations reported running (acknowledged by a server)
	Failed          int64 // allocations reported failed
	Complete        int64 // allocations reported complete
	Updates         int64 // acknowledged Node.UpdateAlloc calls
	UpdatedAllocs   int64 // allocation updates carried by them
}

// Start builds the fleet, registers every node (RegisterConcurrency at a
// time) and starts their heartbeats and pulls. It returns once every node
// is registered, or the first registration error (with the fleet
// closed). ctx bounds the registration only; the fleet runs until Close.
func Start(ctx context.Context, cfg Config) (*Fleet, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	f := &Fleet{cfg: cfg, logger: cfg.Logger.Named("simnode")}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	for range cfg.Conns {
		f.pools = append(f.pools, rpc.NewPool(5*time.Second))
	}
	now := time.Now()
	for i := range cfg.Count {
		f.nodes = append(f.nodes, newNode(f, i, now))
	}

	sem := make(chan struct{}, cfg.RegisterConcurrency)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for _, n := range f.nodes {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := n.register(ctx); err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("register node %s: %w", n.Name(), err)
				}
				mu.Unlock()
				return
			}
			n.start()
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = fmt.Errorf("register %d nodes: %w", cfg.Count, ctx.Err())
	}
	if first != nil {
		f.Close()
		return nil, first
	}
	return f, nil
}

// Nodes returns the fleet's nodes, in index order. The slice is shared:
// do not modify it.
func (f *Fleet) Nodes() []*Node { return f.nodes }

// Node returns node i.
func (f *Fleet) Node(i int) *Node { return f.nodes[i] }

// Stats returns the fleet's counters.
func (f *Fleet) Stats() Stats {
	c := &f.stats
	return Stats{
		Registered: c.registered.Load(), Heartbeats: c.heartbeats.Load(), HeartbeatErrors: c.heartbeatErrors.Load(),
		Pulls: c.pulls.Load(), RPCRetries: c.rpcRetries.Load(), Running: c.running.Load(), Failed: c.failed.Load(),
		Complete: c.complete.Load(), Updates: c.updates.Load(), UpdatedAllocs: c.updatedAllocs.Load(),
	}
}

// Close stops every node, waits for all of the fleet's goroutines to end
// and closes its connections. It does not deregister the nodes: the
// servers see them go silent. Close is idempotent.
func (f *Fleet) Close() {
	f.closing.Do(func() {
		f.cancel()
		for _, n := range f.nodes {
			n.wg.Wait()
		}
		for _, p := range f.pools {
			p.Close()
		}
	})
}

// Retry timing of one call: from retryMin doubling to retryMax, with
// jitter, for at most maxAttempts sends.
const (
	retryMin    = 50 * time.Millisecond
	retryMax    = 2 * time.Second
	maxAttempts = 10
)

// call makes one RPC for node n and returns a fresh reply. It starts at
// the node's current server and, on a transport failure or when the
// cluster has no leader, moves to the next server and sends again, up to
// maxAttempts times or until ctx ends. Every call a node makes is
// idempotent (the same registration, status or allocation status sent
// twice changes nothing more), so even a write whose outcome is unknown is
// sent again. timeout bounds each attempt.
func call[R any](ctx context.Context, n *Node, method string, args any, timeout time.Duration) (*R, error) {
	f := n.fleet
	backoff := retryMin
	var err error
	for attempt := range maxAttempts {
		if attempt > 0 {
			f.stats.rpcRetries.Add(1)
			if !sleep(ctx, jitter(backoff)) {
				return nil, ctx.Err()
			}
			backoff = min(2*backoff, retryMax)
		}
		i := int(n.server.Load()) % len(f.cfg.Servers)
		reply := new(R)
		cctx, cancel := context.WithTimeout(ctx, timeout)
		err = n.pool.Call(cctx, f.cfg.Servers[i], method, args, reply)
		cancel()
		if err == nil {
			return reply, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !retryable(err) {
			return nil, err
		}
		f.logger.Debug("rpc failed; trying the next server", "method", method, "node", n.Name(), "server", f.cfg.Servers[i], "error", err)
		n.server.CompareAndSwap(int32(i), int32((i+1)%len(f.cfg.Servers)))
	}
	return nil, err
}

// retryable reports whether a call may succeed if sent again: the server
// was not reached or went away, there was no leader, or leadership moved
// while the write was committed.
func retryable(err error) bool {
	var te *rpc.TransportError
	if errors.As(err, &te) {
		return true
	}
	return structs.IsErr(err, structs.ErrNoLeader) || structs.IsErr(err, structs.ErrOutcomeUnknown) ||
		structs.IsErr(err, errShuttingDown)
}

// errShuttingDown is how a server that is stopping answers.
var errShuttingDown = errors.New("server is shutting down")

// sleep waits for d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// jitter returns a duration in [d/2, d).
func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// stableUUID derives a UUID-shaped string from the fleet name, the node
// index and a purpose, so that a node keeps its ID and secret across runs.
func stableUUID(name string, i int, purpose string) string {
	b := sha256.Sum256([]byte(name + "/" + strconv.Itoa(i) + "/" + purpose))
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
