package simnode

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skiffhq/skiff/rpc"
	"github.com/skiffhq/skiff/structs"
)

// Node is one simulated client node of a Fleet.
type Node struct {
	fleet *Fleet
	index int
	spec  *structs.Node // what Register sends; never changed after newNode
	pool  *rpc.Pool

	server atomic.Int32 // index into Config.Servers of the server to call next
	alive  atomic.Bool  // the liveness connection is open (Config.Liveness)
	ttl    atomic.Int64 // heartbeat TTL of the last reply, in nanoseconds

	ctx      context.Context // ends on Kill or Fleet.Close
	cancel   context.CancelFunc
	hbCancel context.CancelFunc // ends the heartbeat loop only
	hbDone   chan struct{}      // closed when the heartbeat loop returned
	wg       sync.WaitGroup     // the node's goroutines

	mu     sync.Mutex
	allocs map[string]*allocState // guarded by mu; what the node knows of its allocations
	trace  PullTrace              // guarded by mu
}

// PullTrace is what a node's pull loop last did, for diagnosing a node
// that does not see its allocations.
type PullTrace struct {
	Pulls      int       // answers received
	Index      uint64    // the index the next pull blocks on
	LastAllocs int       // allocations in the last answer
	Fetched    int       // allocations the last fetch returned
	LastError  string    // the last failure, if any
	Heartbeats int       // heartbeats acknowledged
	PullSince  time.Time // when the pull in flight (if any) began
}

// Trace returns what the node's pull loop last did.
func (n *Node) Trace() PullTrace {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.trace
}

// allocState is a node's view of one of its allocations.
type allocState struct {
	modifyIndex uint64 // AllocModifyIndex last handled
	status      string // client status last reported, or seen on the server
}

func newNode(f *Fleet, i int, now time.Time) *Node {
	cfg := &f.cfg
	name := fmt.Sprintf("%s-%05d", cfg.Name, i)
	ip := fmt.Sprintf("10.%d.%d.%d", 1+i>>16&0xff, i>>8&0xff, i&0xff)
	attrs := map[string]string{
		"kernel.name": "linux", "kernel.version": "6.8.0", "cpu.arch": "amd64",
		"os.name": "ubuntu", "os.version": "24.04",
		"cpu.numcores":              strconv.Itoa(cfg.Cores),
		"cpu.totalcompute":          strconv.FormatInt(cfg.CPUMHz, 10),
		"cpu.frequency":             strconv.FormatInt(cfg.CPUMHz/int64(cfg.Cores), 10),
		"memory.totalbytes":         strconv.FormatInt(cfg.MemoryMB<<20, 10),
		"unique.hostname":           name,
		"unique.network.ip-address": ip,
		"skiff.version":             "simnode",
		"driver.containerd":         "1",
		"driver.docker":             "1",
	}
	if cfg.Liveness {
		attrs[structs.AttrLiveness] = "1"
	}
	maps.Copy(attrs, cfg.Attributes)
	meta := map[string]string{}
	if cfg.Racks > 0 {
		meta["rack"] = fmt.Sprintf("r%d", i%cfg.Racks)
	}
	maps.Copy(meta, cfg.Meta)
	driver := func() *structs.DriverInfo {
		return &structs.DriverInfo{Detected: true, Healthy: true, HealthDescription: "Healthy", UpdateTime: now}
	}
	spec := &structs.Node{
		ID: stableUUID(cfg.Name, i, "id"), SecretID: stableUUID(cfg.Name, i, "secret"),
		Name: name, Datacenter: cfg.Datacenters[i%len(cfg.Datacenters)],
		NodeClass: cfg.NodeClass, NodePool: cfg.NodePool, HTTPAddr: ip + ":4646",
		Attributes: attrs, Meta: meta,
		NodeResources: &structs.NodeResources{
			Cpu:    structs.NodeCpuResources{CpuShares: cfg.CPUMHz, TotalCpuCores: uint16(cfg.Cores)},
			Memory: structs.NodeMemoryResources{MemoryMB: cfg.MemoryMB},
			Disk:   structs.NodeDiskResources{DiskMB: cfg.DiskMB},
			Networks: []*structs.NetworkResource{{
				Mode: "host", Device: "eth0", IP: ip, CIDR: ip + "/32", MBits: 1000,
			}},
			MinDynamicPort: 20000, MaxDynamicPort: 32000,
		},
		Drivers: map[string]*structs.DriverInfo{"containerd": driver(), "docker": driver()},
		Status:  structs.NodeStatusReady, SchedulingEligibility: structs.NodeSchedulingEligible,
	}
	n := &Node{fleet: f, index: i, spec: spec, pool: f.pools[i%len(f.pools)],
		allocs: map[string]*allocState{}, hbDone: make(chan struct{})}
	n.server.Store(int32(i % len(cfg.Servers)))
	n.ctx, n.cancel = context.WithCancel(f.ctx)
	return n
}

// ID is the node's ID.
func (n *Node) ID() string { return n.spec.ID }

// SecretID is the node's secret, which authenticates its calls.
func (n *Node) SecretID() string { return n.spec.SecretID }

// Name is the node's name.
func (n *Node) Name() string { return n.spec.Name }

// Index is the node's index in its fleet.
func (n *Node) Index() int { return n.index }

// Spec returns a copy of what the node registers (resources, attributes,
// meta).
func (n *Node) Spec() *structs.Node { return n.spec.Copy() }

// Allocs returns, for each allocation the node knows, the client status it
// last reported (or saw on the server, such as "lost").
func (n *Node) Allocs() map[string]string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[string]string, len(n.allocs))
	for id, st := range n.allocs {
		out[id] = st.status
	}
	return out
}

// LivenessOpen reports whether the node's liveness connection is open.
func (n *Node) LivenessOpen() bool { return n.alive.Load() }

// Kill stops the node as if its machine died: no more heartbeats, pulls
// or reports. It returns once none of the node's calls is in flight. The
// servers mark the node down when its TTL runs out.
func (n *Node) Kill() {
	n.cancel()
	n.wg.Wait()
}

// StopHeartbeats stops only the node's heartbeats (it keeps pulling and
// reporting, as a node whose heartbeats are lost would), and returns once
// the heartbeat loop has ended.
func (n *Node) StopHeartbeats() {
	if n.hbCancel != nil {
		n.hbCancel()
		<-n.hbDone
	}
}

// register sends Node.Register and records the TTL the server returned.
func (n *Node) register(ctx context.Context) error {
	reply, err := call[structs.NodeUpdateResponse](ctx, n, "Node.Register",
		&structs.NodeRegisterRequest{Node: n.spec.Copy()}, n.fleet.cfg.RPCTimeout)
	if err != nil {
		return err
	}
	n.ttl.Store(int64(reply.HeartbeatTTL))
	n.fleet.stats.registered.Add(1)
	return nil
}

// start runs the node's heartbeat loop and, unless the fleet is idle, its
// pull loop. It is called once, after the first registration.
func (n *Node) start() {
	hbCtx, hbCancel := context.WithCancel(n.ctx)
	n.hbCancel = hbCancel
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer close(n.hbDone)
		n.heartbeatLoop(hbCtx)
	}()
	if n.fleet.cfg.Liveness {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.livenessLoop(n.ctx)
		}()
	}
	if n.fleet.cfg.Idle {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.pullLoop(n.ctx)
	}()
}

// livenessLoop holds the node's liveness connection until ctx ends,
// opening another (on the next server if this one is unreachable) when
// one ends.
func (n *Node) livenessLoop(ctx context.Context) {
	servers := n.fleet.cfg.Servers
	rpc.KeepLiveness(ctx, rpc.LivenessSession{
		Pick: func() string { return servers[int(n.server.Load())%len(servers)] },
		Failed: func(addr string) {
			i := int(n.server.Load()) % len(servers)
			if servers[i] == addr {
				n.server.CompareAndSwap(int32(i), int32((i+1)%len(servers)))
			}
		},
		Hello: func(gen uint64) *structs.NodeLivenessRequest {
			return &structs.NodeLivenessRequest{NodeID: n.spec.ID, SecretID: n.spec.SecretID, Generation: gen}
		},
		Up: n.alive.Store,
	})
}

// beatAfter is when to heartbeat next after a success: at a random point
// between half and three quarters of the TTL, so that a slow call or one
// retry on another server still lands within it.
func beatAfter(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		ttl = 2 * time.Second
	}
	return ttl/2 + time.Duration(rand.Int64N(int64(ttl/4)+1))
}

// heartbeatLoop sends the node's status, ready, until ctx ends. When a
// heartbeat fails on every server it tries again soon; when the servers
// no longer know the node, it registers again.
func (n *Node) heartbeatLoop(ctx context.Context) {
	f := n.fleet
	wait := beatAfter(time.Duration(n.ttl.Load()))
	for sleep(ctx, wait) {
		reply, err := call[structs.NodeUpdateResponse](ctx, n, "Node.UpdateStatus", &structs.NodeUpdateStatusRequest{
			NodeID: n.spec.ID, SecretID: n.spec.SecretID, Status: structs.NodeStatusReady,
		}, f.cfg.RPCTimeout)
		switch {
		case err == nil:
			f.stats.heartbeats.Add(1)
			n.mu.Lock()
			n.trace.Heartbeats++
			n.mu.Unlock()
			n.ttl.Store(int64(reply.HeartbeatTTL))
			wait = beatAfter(reply.HeartbeatTTL)
			continue
		case ctx.Err() != nil:
			return
		case structs.IsErr(err, structs.ErrNotFound):
			err = n.register(ctx)
		}
		if err != nil {
			f.stats.heartbeatErrors.Add(1)
			f.logger.Warn("heartbeat failed on every server tried", "node", n.Name(), "error", err)
		}
		wait = jitter(max(100*time.Millisecond, time.Duration(n.ttl.Load())/8))
	}
}

// pullLoop is the node's blocking pull of its allocations, until ctx
// ends. After each answer it fetches what changed and reports it.
func (n *Node) pullLoop(ctx context.Context) {
	f := n.fleet
	var index uint64
	backoff := retryMin
	for ctx.Err() == nil {
		req := &structs.NodeClientAllocsRequest{NodeID: n.spec.ID, SecretID: n.spec.SecretID,
			QueryOptions: structs.QueryOptions{MinQueryIndex: index, MaxQueryTime: f.cfg.PullWait, AllowStale: true}}
		n.mu.Lock()
		n.trace.PullSince = time.Now()
		n.mu.Unlock()
		// The server adds up to 1/16 of jitter to the wait.
		resp, err := call[structs.NodeClientAllocsResponse](ctx, n, "Node.GetClientAllocs", req, f.cfg.PullWait*17/16+f.cfg.RPCTimeout)
		if err == nil {
			f.stats.pulls.Add(1)
			n.mu.Lock()
			n.trace.Pulls++
			n.trace.LastAllocs = len(resp.Allocs)
			n.mu.Unlock()
			err = n.sync(ctx, resp)
		}
		if err != nil {
			n.mu.Lock()
			n.trace.LastError = err.Error()
			n.mu.Unlock()
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			// Pull again without blocking once the backoff passed, so that
			// what failed is handled again.
			f.logger.Debug("pull failed", "node", n.Name(), "error", err)
			index = 0
			if !sleep(ctx, jitter(backoff)) {
				return
			}
			backoff = min(2*backoff, retryMax)
			continue
		}
		backoff = retryMin
		index = max(index, resp.Index)
		n.mu.Lock()
		n.trace.Index = index
		n.mu.Unlock()
	}
}

// sync brings the node's view up to resp: it forgets allocations that are
// gone, fetches the ones whose AllocModifyIndex rose, and reports new
// ones running (or what AllocStatus says) and stopped ones complete, in
// batches of at most maxBatch per Node.UpdateAlloc. An allocation is
// marked handled only once its report was acknowledged.
func (n *Node) sync(ctx context.Context, resp *structs.NodeClientAllocsResponse) error {
	n.mu.Lock()
	var changed []string
	for id, mi := range resp.Allocs {
		if st := n.allocs[id]; st == nil || st.modifyIndex < mi {
			changed = append(changed, id)
		}
	}
	for id := range n.allocs {
		if _, ok := resp.Allocs[id]; !ok {
			delete(n.allocs, id) // garbage collected
		}
	}
	n.mu.Unlock()

	for start := 0; start < len(changed); start += maxBatch {
		ids := changed[start:min(start+maxBatch, len(changed))]
		got, err := call[structs.AllocsGetResponse](ctx, n, "Alloc.GetAllocs", &structs.AllocsGetRequest{AllocIDs: ids,
			QueryOptions: structs.QueryOptions{MinQueryIndex: resp.Index - 1, AllowStale: true}}, n.fleet.cfg.RPCTimeout)
		if err != nil {
			return fmt.Errorf("fetch %d allocations: %w", len(ids), err)
		}
		n.mu.Lock()
		n.trace.Fetched = len(got.Allocs)
		n.mu.Unlock()
		if err := n.report(ctx, got.Allocs); err != nil {
			return err
		}
	}
	return nil
}

// maxBatch bounds the IDs of one Alloc.GetAllocs and the updates of one
// Node.UpdateAlloc (the servers refuse more than 1,024).
const maxBatch = 1024

// report decides what to tell the servers about each fetched allocation,
// sends it in one Node.UpdateAlloc, and records it once acknowledged.
func (n *Node) report(ctx context.Context, allocs []*structs.Allocation) error {
	f := n.fleet
	now := time.Now()
	// Only this node's pull goroutine writes n.allocs: read what it last
	// reported, decide without the lock (AllocStatus may call back).
	prevs := make([]string, len(allocs))
	n.mu.Lock()
	for i, a := range allocs {
		if st := n.allocs[a.ID]; st != nil {
			prevs[i] = st.status
		}
	}
	n.mu.Unlock()
	var updates []*structs.Allocation
	handled := make(map[string]*allocState, len(allocs))
	for i, a := range allocs {
		prev, status := prevs[i], ""
		switch {
		case a.ClientTerminalStatus():
			prev = a.ClientStatus // complete, failed or lost on the server: nothing to say
		case a.DesiredStatus == structs.AllocDesiredStatusRun && prev == "":
			status = structs.AllocClientStatusRunning
			if f.cfg.AllocStatus != nil {
				if s := f.cfg.AllocStatus(n, a); s != "" {
					status = s
				}
			}
		case a.DesiredStatus != structs.AllocDesiredStatusRun && !terminal(prev):
			status = structs.AllocClientStatusComplete
		}
		if status == "" {
			handled[a.ID] = &allocState{modifyIndex: a.AllocModifyIndex, status: prev}
			continue
		}
		handled[a.ID] = &allocState{modifyIndex: a.AllocModifyIndex, status: status}
		updates = append(updates, &structs.Allocation{ID: a.ID, ClientStatus: status, TaskStates: taskStates(a, status, now)})
	}

	if len(updates) > 0 {
		_, err := call[structs.GenericResponse](ctx, n, "Node.UpdateAlloc", &structs.AllocUpdateRequest{
			NodeID: n.spec.ID, SecretID: n.spec.SecretID, Alloc: updates,
		}, f.cfg.RPCTimeout)
		if err != nil {
			return fmt.Errorf("report %d allocations: %w", len(updates), err)
		}
		f.stats.updates.Add(1)
		f.stats.updatedAllocs.Add(int64(len(updates)))
		for _, u := range updates {
			switch u.ClientStatus {
			case structs.AllocClientStatusRunning:
				f.stats.running.Add(1)
			case structs.AllocClientStatusFailed:
				f.stats.failed.Add(1)
			case structs.AllocClientStatusComplete:
				f.stats.complete.Add(1)
			}
		}
	}
	n.mu.Lock()
	maps.Copy(n.allocs, handled)
	n.mu.Unlock()
	return nil
}

func terminal(status string) bool {
	switch status {
	case structs.AllocClientStatusComplete, structs.AllocClientStatusFailed, structs.AllocClientStatusLost:
		return true
	}
	return false
}

// taskStates is one TaskState per task of the allocation's group, as a
// client would report for status.
func taskStates(a *structs.Allocation, status string, now time.Time) map[string]*structs.TaskState {
	var tasks []string
	if a.Job != nil {
		if tg := a.Job.LookupTaskGroup(a.TaskGroup); tg != nil {
			for _, t := range tg.Tasks {
				tasks = append(tasks, t.Name)
			}
		}
	}
	out := make(map[string]*structs.TaskState, len(tasks))
	for _, name := range tasks {
		ts := &structs.TaskState{State: "running", StartedAt: now}
		event := &structs.TaskEvent{Type: "Started", Time: now.UnixNano(), Message: "simulated task started"}
		if status != structs.AllocClientStatusRunning {
			ts.State, ts.FinishedAt, ts.Failed = "dead", now, status == structs.AllocClientStatusFailed
			event = &structs.TaskEvent{Type: "Terminated", Time: now.UnixNano(), Message: "simulated task ended"}
			if ts.Failed {
				event.ExitCode = 1
			}
		}
		ts.Events = []*structs.TaskEvent{event}
		out[name] = ts
	}
	return out
}
