package scheduler

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/skiffhq/skiff/structs"
)

// Descriptions given to the allocations a plan stops.
const (
	descJobStopped   = "alloc not needed as job is stopped"
	descNotNeeded    = "alloc not needed due to job update"
	descNodeLost     = "alloc is lost since its node is down"
	descUpdating     = "alloc is being updated due to job update"
	descMigrating    = "alloc is being migrated"
	descRescheduled  = "alloc was rescheduled because it failed"
	descNotFeasible  = "alloc not needed as node is no longer feasible"
	descGroupRemoved = "alloc not needed as its task group was removed"
)

// planCtx is the working state of one plan attempt: what was read, what
// the plan already does, and the per-node bookkeeping placement needs. It
// belongs to one Process call and one goroutine.
type planCtx struct {
	state         State
	nodeCache     *NodeCache // nil: read the nodes every time
	eval          *structs.Evaluation
	job           *structs.Job
	now           time.Time
	typ           string
	spread        bool // rank emptier nodes first (the spread algorithm)
	rng           *rand.Rand
	snapshotIndex uint64
	plan          *structs.Plan

	allocs []*structs.Allocation // the job's allocations, sorted by ID
	// set holds the ready nodes in the job's datacenters and node pool, in
	// ID order; order is their positions in set, shuffled: placement
	// visits set.nodes[order[i]] for i from offset on, where the next
	// placement starts looking. usageAt, baseAt, set.caps and a group's
	// feasibility cache are by position in set; spread counts by i.
	set    *nodeSet
	order  []int32
	offset int

	nodeOf  map[string]*structs.Node // node lookups, nil for gone nodes
	stopped map[string]bool          // alloc IDs the plan stops
	// stoppedOn are the live allocations the plan stops, by node.
	stoppedOn map[string][]*structs.Allocation
	// usageAt is the usage of the nodes of set, by position, filled
	// lazily; usage, by node ID, that of other nodes. baseAt, by position,
	// holds usage rows read in bulk (nil: not read).
	usageAt   []*nodeUsage
	usage     map[string]*nodeUsage
	baseAt    []*structs.NodeUsage
	bulkTried bool
	// jobOn holds, by node ID, the job's allocations that will be running
	// once the plan applies (existing minus stopped, plus placed).
	jobOn map[string][]*structs.Allocation

	// deployment is the deployment of the job's current version, if any;
	// deploymentsOn says the job rolls through deployments (deployment.go).
	deployment    *structs.Deployment
	deploymentsOn bool
	canaryGroups  map[string]bool // groups that start with canaries

	classOK   map[string]bool // node class -> feasible for some group
	queued    map[string]int
	failed    map[string]*structs.AllocMetric
	followUps []*structs.Evaluation
}

// newID returns a UUID drawn from the attempt's seeded generator.
func (c *planCtx) newID() string {
	var b [16]byte
	hi, lo := c.rng.Uint64(), c.rng.Uint64()
	for i := range 8 {
		b[i] = byte(hi >> (8 * i))
		b[8+i] = byte(lo >> (8 * i))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// node returns a node by ID (nil when gone), memoised for the attempt.
func (c *planCtx) node(id string) (*structs.Node, error) {
	if n, ok := c.nodeOf[id]; ok {
		return n, nil
	}
	n, err := c.state.NodeByID(nil, id)
	if err != nil {
		return nil, fmt.Errorf("read node %s: %w", id, err)
	}
	c.nodeOf[id] = n
	return n, nil
}

// loadAllocs reads the job's allocations and indexes the live ones by node.
func (c *planCtx) loadAllocs() error {
	allocs, err := c.state.AllocsByJob(nil, c.eval.Namespace, c.eval.JobID, false)
	if err != nil {
		return fmt.Errorf("read allocations of job: %w", err)
	}
	c.allocs = slices.Clone(allocs)
	slices.SortFunc(c.allocs, func(a, b *structs.Allocation) int { return strings.Compare(a.ID, b.ID) })
	c.jobOn = map[string][]*structs.Allocation{}
	for _, a := range c.allocs {
		if !a.TerminalStatus() {
			c.jobOn[a.NodeID] = append(c.jobOn[a.NodeID], a)
		}
	}
	return nil
}

// loadNodes reads the nodes the job may use: ready, in one of its
// datacenters and in its node pool, shuffled by the attempt's seed.
func (c *planCtx) loadNodes() error {
	pool := c.job.NodePool
	if pool == "" {
		pool = structs.DefaultNodePool
	}
	set, err := c.nodeCache.nodesFor(c.state, pool, c.job.Datacenters)
	if err != nil {
		return err
	}
	c.set = set
	c.order = make([]int32, len(set.nodes))
	for k := range c.order {
		c.order[k] = int32(k)
	}
	c.rng.Shuffle(len(c.order), func(i, j int) { c.order[i], c.order[j] = c.order[j], c.order[i] })
	c.usageAt = make([]*nodeUsage, len(c.order))
	return nil
}

// stop adds a stop of a to the plan and forgets a on its node.
func (c *planCtx) stop(a *structs.Allocation, desc, clientStatus string) {
	if c.stopped[a.ID] {
		return
	}
	c.plan.AppendStoppedAlloc(a, desc, clientStatus)
	c.stopped[a.ID] = true
	if !a.TerminalStatus() {
		if c.stoppedOn == nil {
			c.stoppedOn = map[string][]*structs.Allocation{}
		}
		c.stoppedOn[a.NodeID] = append(c.stoppedOn[a.NodeID], a)
	}
	c.jobOn[a.NodeID] = slices.DeleteFunc(slices.Clone(c.jobOn[a.NodeID]), func(x *structs.Allocation) bool { return x.ID == a.ID })
	if u := c.loadedUsage(a.NodeID); u != nil && !a.TerminalStatus() {
		u.release(a)
	}
}

// unstop takes back the stop of a, a live allocation stopped by this plan
// (a destructive update whose replacement found no node: the old version
// keeps running rather than nothing).
func (c *planCtx) unstop(a *structs.Allocation) {
	if !c.stopped[a.ID] {
		return
	}
	delete(c.stopped, a.ID)
	ups := slices.DeleteFunc(c.plan.NodeUpdate[a.NodeID], func(x *structs.Allocation) bool { return x.ID == a.ID })
	if len(ups) == 0 {
		delete(c.plan.NodeUpdate, a.NodeID)
	} else {
		c.plan.NodeUpdate[a.NodeID] = ups
	}
	c.stoppedOn[a.NodeID] = slices.DeleteFunc(c.stoppedOn[a.NodeID], func(x *structs.Allocation) bool { return x.ID == a.ID })
	c.jobOn[a.NodeID] = append(slices.Clone(c.jobOn[a.NodeID]), a)
	if u := c.loadedUsage(a.NodeID); u != nil {
		u.add(a)
	}
}

// stopAll stops every live allocation of the job (the job is gone or stopped).
func (c *planCtx) stopAll() {
	for _, a := range c.allocs {
		if !a.TerminalStatus() {
			c.stop(a, descJobStopped, "")
		}
	}
}

// classEligibility reports, by node class, whether nodes of that class were
// feasible for some group (used to wake blocked evaluations selectively).
func (c *planCtx) classEligibility() map[string]bool {
	if len(c.classOK) == 0 {
		return nil
	}
	return c.classOK
}

// allocName is the name of the index-th instance of a group.
func allocName(jobID, group string, index int) string {
	return jobID + "." + group + "[" + strconv.Itoa(index) + "]"
}

// allocIndex parses the instance index out of an allocation name, or -1.
func allocIndex(name string) int {
	i := strings.LastIndexByte(name, '[')
	if i < 0 || !strings.HasSuffix(name, "]") {
		return -1
	}
	n, err := strconv.Atoi(name[i+1 : len(name)-1])
	if err != nil {
		return -1
	}
	return n
}
