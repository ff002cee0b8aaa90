package client

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiffhq/skiff/client/allocrunner"
	"github.com/skiffhq/skiff/client/driver"
	"github.com/skiffhq/skiff/structs"
)

// pullWait is how long one blocking pull of allocations waits.
const pullWait = 5 * time.Minute

// watchAllocs pulls the node's allocations with a blocking query, fetches
// the ones that changed and hands them to runners, until shutdown.
func (c *Client) watchAllocs() {
	select {
	case <-c.registered:
	case <-c.ctx.Done():
		return
	}
	var index uint64
	known := map[string]uint64{} // alloc ID -> AllocModifyIndex handed to a runner
	backoff := retryMin
	for c.ctx.Err() == nil {
		n := c.Node()
		req := &structs.NodeClientAllocsRequest{NodeID: n.ID, SecretID: n.SecretID, QueryOptions: structs.QueryOptions{
			Region: c.config.Region, MinQueryIndex: index, MaxQueryTime: pullWait, AllowStale: true,
		}}
		var resp structs.NodeClientAllocsResponse
		ctx, cancel := context.WithTimeout(c.ctx, pullWait+30*time.Second)
		err := c.rpc.RPC(ctx, "Node.GetClientAllocs", req, &resp)
		cancel()
		if err != nil {
			if c.ctx.Err() != nil {
				return
			}
			c.logger.Warn("pull allocations; will retry", "error", err, "retry_in", backoff)
			if !c.sleep(backoff) {
				return
			}
			backoff = min(backoff*2, retryMax)
			continue
		}
		backoff = retryMin
		if resp.Index < index {
			index = 0 // the servers' state was reset (snapshot restore): start over
			continue
		}
		var changed []string
		for id, mi := range resp.Allocs {
			if known[id] < mi {
				changed = append(changed, id)
			}
		}
		allocs, err := c.fetchAllocs(changed, resp.Index)
		if err != nil {
			c.logger.Warn("fetch changed allocations; will retry", "error", err)
			if !c.sleep(backoff) {
				return
			}
			continue
		}
		for _, a := range allocs {
			c.runAlloc(a)
			known[a.ID] = a.AllocModifyIndex
		}
		for id := range known {
			if _, ok := resp.Allocs[id]; !ok {
				delete(known, id)
				c.removeAlloc(id) // garbage-collected by the servers
			}
		}
		if index == 0 {
			// The first answer also settles the runners restored from the
			// local state: one the servers no longer know is destroyed.
			for _, id := range c.runnerIDs() {
				if _, ok := resp.Allocs[id]; !ok {
					c.removeAlloc(id)
				}
			}
		}
		index = resp.Index
	}
}

// fetchAllocs reads allocations by ID from a server that has applied at
// least index.
func (c *Client) fetchAllocs(ids []string, index uint64) ([]*structs.Allocation, error) {
	var out []*structs.Allocation
	slices.Sort(ids)
	for chunk := range slices.Chunk(ids, 512) {
		req := &structs.AllocsGetRequest{AllocIDs: chunk, QueryOptions: structs.QueryOptions{
			Region: c.config.Region, MinQueryIndex: index - 1, AllowStale: true, MaxQueryTime: 30 * time.Second,
		}}
		var resp structs.AllocsGetResponse
		ctx, cancel := context.WithTimeout(c.ctx, time.Minute)
		err := c.rpc.RPC(ctx, "Alloc.GetAllocs", req, &resp)
		cancel()
		if err != nil {
			return nil, err
		}
		out = append(out, resp.Allocs...)
	}
	return out, nil
}

func (c *Client) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// runAlloc hands a new version of an allocation to its runner, starting a
// runner for one this node has not run yet.
func (c *Client) runAlloc(a *structs.Allocation) {
	c.runnersMu.Lock()
	ar := c.runners[a.ID]
	c.runnersMu.Unlock()
	if ar != nil {
		ar.Update(a)
		return
	}
	if a.TerminalStatus() {
		return // never ran here and is not to run
	}
	ar, err := c.newRunner(a)
	if err != nil {
		c.logger.Error("start allocation", "alloc_id", a.ID, "error", err)
		failed := &structs.Allocation{ID: a.ID, ClientStatus: structs.AllocClientStatusFailed,
			ClientDescription: "the client could not set the allocation up: " + err.Error()}
		c.updates.add(failed)
		return
	}
	c.runnersMu.Lock()
	c.runners[a.ID] = ar
	c.runnersMu.Unlock()
	ar.Run()
}

func (c *Client) newRunner(a *structs.Allocation) (*allocrunner.AllocRunner, error) {
	return allocrunner.New(&allocrunner.Config{
		Alloc: a, Node: c.Node(), Region: c.config.Region, Drivers: c.config.Drivers,
		AllocDirRoot: c.allocRoot(), StateDB: c.db, Updater: c.updates.add,
		Logger: c.logger.With("alloc_id", a.ID),
	})
}

func (c *Client) allocRoot() string { return c.config.DataDir + "/alloc" }

// runnerIDs lists the allocations this client runs.
func (c *Client) runnerIDs() []string {
	c.runnersMu.Lock()
	defer c.runnersMu.Unlock()
	ids := make([]string, 0, len(c.runners))
	for id := range c.runners {
		ids = append(ids, id)
	}
	return ids
}

// removeAlloc destroys the runner of an allocation the servers forgot or
// GC collects. A runner whose Destroy fails stays, so the next GC pass
// tries again.
func (c *Client) removeAlloc(id string) {
	c.runnersMu.Lock()
	ar := c.runners[id]
	c.runnersMu.Unlock()
	if ar == nil {
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, time.Minute)
	defer cancel()
	if err := ar.Destroy(ctx); err != nil {
		c.logger.Warn("destroy allocation; will retry", "alloc_id", id, "error", err)
		return
	}
	c.runnersMu.Lock()
	if c.runners[id] == ar {
		delete(c.runners, id)
	}
	c.runnersMu.Unlock()
}

// restore restarts runners for the allocations of an earlier run of this
// agent, re-attaching to their tasks, and then removes containers that
// belong to no allocation.
func (c *Client) restore() {
	allocs, err := c.db.Allocs()
	readAll := err == nil
	if err != nil {
		c.logger.Error("read client state; some running allocations cannot be re-attached", "error", err)
	}
	for _, a := range allocs {
		ar, err := c.newRunner(a)
		if err != nil {
			c.logger.Error("restore allocation", "alloc_id", a.ID, "error", err)
			continue
		}
		ctx, cancel := context.WithTimeout(c.ctx, time.Minute)
		err = ar.Restore(ctx)
		cancel()
		if err != nil {
			c.logger.Error("re-attach allocation", "alloc_id", a.ID, "error", err)
		}
		c.runnersMu.Lock()
		c.runners[a.ID] = ar
		c.runnersMu.Unlock()
		ar.Run()
	}
	if readAll {
		c.removeOrphans()
	} else {
		// Containers of allocations the damaged state did not list may
		// still be wanted: leave them rather than kill healthy tasks.
		c.logger.Warn("not removing containers unknown to the client state, because it could not be read whole")
	}
}

// removeOrphans destroys tasks the drivers hold that belong to no
// allocation of this client (left behind by a lost state file, or by an
// allocation destroyed while the agent was down).
func (c *Client) removeOrphans() {
	for name, d := range c.distinctDrivers() {
		ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
		tasks, err := d.ListTasks(ctx)
		cancel()
		if err != nil {
			c.logger.Debug("list driver tasks", "driver", name, "error", err)
			continue
		}
		for _, h := range tasks {
			allocID, _, _ := strings.Cut(h.ID, "/")
			if c.AllocRunner(allocID) != nil {
				continue
			}
			c.logger.Info("removing a container that belongs to no allocation", "task", h.ID, "container", h.ContainerID)
			ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
			if err := d.DestroyTask(ctx, h.ID, true); err != nil {
				c.logger.Warn("remove orphaned container", "task", h.ID, "error", err)
			}
			cancel()
		}
	}
}

// gcLoop destroys terminal allocations beyond the configured count, or
// while the disk is too full.
func (c *Client) gcLoop() {
	t := time.NewTicker(c.config.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			c.collectGarbage()
		}
	}
}

func (c *Client) collectGarbage() {
	type term struct {
		id string
		at int64
	}
	var terminal []term
	c.runnersMu.Lock()
	for id, ar := range c.runners {
		select {
		case <-ar.WaitCh():
			terminal = append(terminal, term{id, ar.Alloc().ModifyTime})
		default:
		}
	}
	c.runnersMu.Unlock()
	sort.Slice(terminal, func(i, j int) bool { return terminal[i].at < terminal[j].at })
	removed := 0
	for i, t := range terminal {
		over := len(terminal)-i > c.config.MaxTerminalAllocs
		if !over && diskUsedPercent(c.config.DataDir) < c.config.GCDiskUsagePercent {
			break
		}
		c.logger.Debug("garbage-collecting a terminal allocation", "alloc_id", t.id)
		c.removeAlloc(t.id)
		removed++
	}
	if removed > 0 {
		c.pruneImages()
	}
}

// imagePruner is implemented by drivers that can delete images no task
// uses (the containerd driver).
type imagePruner interface {
	PruneImages(ctx context.Context) (int, error)
}

// pruneImages deletes unused images after allocations were collected.
func (c *Client) pruneImages() {
	for name, d := range c.distinctDrivers() {
		p, ok := d.(imagePruner)
		if !ok {
			continue
		}
		ctx, cancel := context.WithTimeout(c.ctx, time.Minute)
		n, err := p.PruneImages(ctx)
		cancel()
		if err != nil {
			c.logger.Warn("delete unused images", "driver", name, "error", err)
		} else if n > 0 {
			c.logger.Info("deleted unused images", "driver", name, "images", n)
		}
	}
}

func diskUsedPercent(dir string) float64 {
	var fs unix.Statfs_t
	if unix.Statfs(dir, &fs) != nil || fs.Blocks == 0 {
		return 0
	}
	return 100 * float64(fs.Blocks-fs.Bavail) / float64(fs.Blocks)
}

// updateBatcher sends allocation status updates to the servers. An update
// is sent at once when none is in flight; updates that arrive meanwhile
// are merged (newest per allocation wins) and sent together next, so the
// servers see "running" within one round trip and a burst of changes
// costs few raft entries.
type updateBatcher struct {
	c *Client

	mu      sync.Mutex
	pending map[string]*structs.Allocation // guarded by mu
	wake    chan struct{}
}

func newUpdateBatcher(c *Client) *updateBatcher {
	return &updateBatcher{c: c, pending: map[string]*structs.Allocation{}, wake: make(chan struct{}, 1)}
}

// add queues an update; alloc runners call it from their goroutines.
func (u *updateBatcher) add(a *structs.Allocation) {
	u.mu.Lock()
	u.pending[a.ID] = a
	u.mu.Unlock()
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

func (u *updateBatcher) take() []*structs.Allocation {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]*structs.Allocation, 0, len(u.pending))
	for _, a := range u.pending {
		out = append(out, a)
	}
	clear(u.pending)
	return out
}

// putBack re-queues updates that failed, unless newer ones arrived.
func (u *updateBatcher) putBack(batch []*structs.Allocation) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, a := range batch {
		if _, newer := u.pending[a.ID]; !newer {
			u.pending[a.ID] = a
		}
	}
}

func (u *updateBatcher) run() {
	c := u.c
	backoff := retryMin
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-u.wake:
		}
		select {
		case <-c.registered:
		case <-c.ctx.Done():
			return
		}
		for {
			batch := u.take()
			if len(batch) == 0 {
				break
			}
			if err := u.send(batch); err != nil {
				if c.ctx.Err() != nil {
					return
				}
				if structs.IsErr(err, structs.ErrBadRequest) {
					// The servers refuse the batch for (at least) one of its
					// updates: send them one by one, so that only the
					// refused ones are dropped.
					if !u.sendEach(batch) {
						return
					}
					continue
				}
				c.logger.Warn("report allocation status; will retry", "allocs", len(batch), "error", err, "retry_in", backoff)
				u.putBack(batch)
				if !c.sleep(backoff) {
					return
				}
				backoff = min(backoff*2, retryMax)
				continue
			}
			backoff = retryMin
		}
	}
}

// sendEach sends a refused batch one update at a time: one the servers
// refuse is dropped (sending it again cannot help, and would hold back
// every later one), one that fails otherwise goes back in the queue. It
// returns false when the client is shutting down.
func (u *updateBatcher) sendEach(batch []*structs.Allocation) bool {
	for i, a := range batch {
		err := u.send([]*structs.Allocation{a})
		switch {
		case err == nil:
		case u.c.ctx.Err() != nil:
			return false
		case structs.IsErr(err, structs.ErrBadRequest):
			u.c.logger.Error("servers refused an allocation status update; dropping it", "alloc_id", a.ID, "error", err)
		default:
			u.putBack(batch[i:])
			return true
		}
	}
	return true
}

func (u *updateBatcher) send(batch []*structs.Allocation) error {
	n := u.c.Node()
	for chunk := range slices.Chunk(batch, 512) {
		req := &structs.AllocUpdateRequest{NodeID: n.ID, SecretID: n.SecretID, Alloc: chunk,
			WriteRequest: structs.WriteRequest{Region: u.c.config.Region}}
		var reply structs.GenericResponse
		ctx, cancel := context.WithTimeout(u.c.ctx, 30*time.Second)
		err := u.c.rpc.RPC(ctx, "Node.UpdateAlloc", req, &reply)
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}

// distinctDrivers returns each driver once, by one of its names (the
// containerd driver is registered as "containerd" and "docker").
func (c *Client) distinctDrivers() map[string]driver.Driver {
	out := map[string]driver.Driver{}
	seen := map[driver.Driver]bool{}
	names := make([]string, 0, len(c.config.Drivers))
	for name := range c.config.Drivers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if d := c.config.Drivers[name]; !seen[d] {
			seen[d] = true
			out[name] = d
		}
	}
	return out
}
