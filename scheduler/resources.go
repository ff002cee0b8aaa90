package scheduler

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/skiffhq/skiff/structs"
)

// Resource dimensions, as recorded in AllocMetric.DimensionExhausted.
const (
	dimCPU    = "cpu"
	dimMemory = "memory"
	dimDisk   = "disk"
	dimPorts  = "ports"
)

// Default dynamic port range of a node that does not set one.
const (
	defaultMinDynamicPort = 20000
	defaultMaxDynamicPort = 32000
)

// ask is what one allocation of a group needs.
type ask struct {
	cpu, mem, disk int64
	tasks          map[string]*structs.AllocatedTaskResources
	// networks to give ports to: the group's (shared) and each task's.
	groupNets []*structs.NetworkResource
	taskNets  map[string][]*structs.NetworkResource
	needPorts bool
}

func newAsk(tg *structs.TaskGroup) *ask {
	a := &ask{tasks: map[string]*structs.AllocatedTaskResources{}, taskNets: map[string][]*structs.NetworkResource{}}
	for _, t := range tg.Tasks {
		r := t.Resources
		if r == nil {
			r = &structs.Resources{}
		}
		a.cpu += int64(r.CPU)
		a.mem += int64(r.MemoryMB)
		a.tasks[t.Name] = &structs.AllocatedTaskResources{
			Cpu:    structs.AllocatedCpuResources{CpuShares: int64(r.CPU)},
			Memory: structs.AllocatedMemoryResources{MemoryMB: int64(r.MemoryMB), MemoryMaxMB: int64(r.MemoryMaxMB)},
		}
		if len(r.Networks) > 0 {
			a.taskNets[t.Name] = r.Networks
			a.needPorts = true
		}
	}
	if tg.EphemeralDisk != nil {
		a.disk = int64(tg.EphemeralDisk.SizeMB)
	}
	a.groupNets = tg.Networks
	if len(tg.Networks) > 0 {
		a.needPorts = true
	}
	return a
}

// resources returns the allocated resources of one allocation, without ports.
func (a *ask) resources() *structs.AllocatedResources {
	res := &structs.AllocatedResources{Tasks: make(map[string]*structs.AllocatedTaskResources, len(a.tasks)),
		Shared: structs.AllocatedSharedResources{DiskMB: a.disk}}
	for name, t := range a.tasks {
		cp := *t
		res.Tasks[name] = &cp
	}
	return res
}

// nodeUsage is what is used on a node once the plan applies.
//
// It starts either from the state's per-node usage (base, when the state
// keeps one: a single lookup) or from the node's allocations (allocs).
// Placements of this plan are added to allocs; stops are released.
type nodeUsage struct {
	cpu, mem, disk int64
	ports          map[int]bool // nil until a group asks for ports
	allocs         []*structs.Allocation
	// base is the state's port counts when the usage started from the
	// state; released are allocations it counts that the plan stops.
	base     map[int]int
	fromBase bool
	released []*structs.Allocation
}

func (u *nodeUsage) add(a *structs.Allocation) {
	cpu, mem, disk, _ := structs.AllocUsage(a)
	u.cpu, u.mem, u.disk = u.cpu+cpu, u.mem+mem, u.disk+disk
	u.allocs = append(u.allocs, a)
	if u.ports != nil {
		forPorts(a, func(p int) { u.ports[p] = true })
	}
}

func (u *nodeUsage) release(a *structs.Allocation) {
	i := slices.IndexFunc(u.allocs, func(x *structs.Allocation) bool { return x.ID == a.ID })
	switch {
	case i >= 0:
		u.allocs = slices.Delete(u.allocs, i, i+1)
	case u.fromBase:
		u.released = append(u.released, a) // counted by the state's usage
	default:
		return
	}
	cpu, mem, disk, _ := structs.AllocUsage(a)
	u.cpu, u.mem, u.disk = u.cpu-cpu, u.mem-mem, u.disk-disk
	if u.ports != nil {
		forPorts(a, func(p int) { delete(u.ports, p) })
	}
}

// bulkUsageFactor: the usage rows are read in one pass when the
// evaluation may look at more than 1/bulkUsageFactor of the nodes, which
// one pass over the table costs less than that many lookups.
const bulkUsageFactor = 8

// readUsageInBulk fills c.baseAt with the usage row of each candidate
// node (c.set.usage) when the job places enough to visit many nodes. It
// is done once per attempt; without a usage lister it does nothing.
func (c *planCtx) readUsageInBulk(limit int) error {
	if c.bulkTried {
		return nil
	}
	c.bulkTried = true
	ul, ok := c.state.(usageLister)
	if !ok || c.job == nil {
		return nil
	}
	count := 0
	for _, tg := range c.job.TaskGroups {
		count += tg.Count
	}
	if n := len(c.order); count*limit*2 < n/bulkUsageFactor {
		return nil
	}
	rows, err := c.set.usage(ul)
	if err != nil {
		return err
	}
	c.baseAt = rows
	return nil
}

// usage returns the usage row of each node of the set, by position (nil:
// none), as of st: from the rows kept for an earlier snapshot and those
// written since when st can tell them (usageFrom), else by a merge of
// every row with the set's nodes (both in ID order), which it keeps for
// the next evaluation when st has a usage log. The rows are shared: read
// only.
func (s *nodeSet) usage(st usageLister) ([]*structs.NodeUsage, error) {
	tracker, tracked := st.(usageTracker)
	if tracked {
		if rows, ok := s.usageFrom(tracker); ok {
			return rows, nil
		}
	}
	rows, err := st.NodeUsages()
	if err != nil {
		return nil, fmt.Errorf("read node usage: %w", err)
	}
	out := make([]*structs.NodeUsage, len(s.nodes))
	k := 0
	for _, row := range rows {
		// Most nodes have a row: test for the match first, a cheaper
		// comparison than the order (the IDs often share their bytes).
		for k < len(s.nodes) {
			if id := s.nodes[k].ID; id == row.NodeID {
				out[k] = row
				k++
				break
			} else if id > row.NodeID {
				break // a row of a node not in the set
			}
			k++
		}
		if k == len(s.nodes) {
			break
		}
	}
	if tracked {
		s.keepUsage(tracker.UsageSeq(), out)
	}
	return out, nil
}

// usageReader is an optional extension of State: the usage of a node's
// live allocations in one lookup (the state store keeps it).
type usageReader interface {
	NodeUsage(nodeID string) (*structs.NodeUsage, error)
}

// usageLister is an optional extension of a usageReader: every node's
// usage row, sorted by node ID, in one pass.
type usageLister interface {
	usageReader
	NodeUsages() ([]*structs.NodeUsage, error)
}

// usageTracker is an optional extension of a usageLister (a snapshot of
// the state store): the usage rows written since an earlier snapshot, so
// that the rows read in bulk for one evaluation are brought up to date
// for the next instead of read again.
type usageTracker interface {
	usageLister
	// UsageSeq is the snapshot's position in the store's log of usage
	// writes.
	UsageSeq() uint64
	// UsageSince returns the rows written after position seq up to the
	// snapshot, oldest first, or false when they are not known.
	UsageSince(seq uint64) ([][]*structs.NodeUsage, bool)
}

// usageFrom returns the usage row of each node of the set (nil: none) as
// of st, from the rows kept for an earlier snapshot and those written
// since; false when there are none kept, or st is older than them, or st
// does not know what was written since. The rows are shared: read only.
func (s *nodeSet) usageFrom(st usageTracker) ([]*structs.NodeUsage, bool) {
	s.usageMu.Lock()
	kept, seq := s.usageRows, s.usageSeq
	s.usageMu.Unlock()
	now := st.UsageSeq()
	if kept == nil || now < seq {
		return nil, false
	}
	if now == seq {
		return kept, true
	}
	written, ok := st.UsageSince(seq)
	if !ok {
		return nil, false
	}
	rows := slices.Clone(kept)
	for _, batch := range written {
		for _, u := range batch {
			if k, ok := s.pos[u.NodeID]; ok {
				rows[k] = u
			}
		}
	}
	s.keepUsage(now, rows)
	return rows, true
}

// keepUsage keeps rows, the usage rows of the set at usage log position
// seq, unless rows of a later position are kept already.
func (s *nodeSet) keepUsage(seq uint64, rows []*structs.NodeUsage) {
	s.usageMu.Lock()
	defer s.usageMu.Unlock()
	if s.usageRows == nil || seq > s.usageSeq {
		s.usageRows, s.usageSeq = rows, seq
	}
}

// forPorts calls fn with every host port an allocation holds, once each.
func forPorts(a *structs.Allocation, fn func(int)) {
	_, _, _, ports := structs.AllocUsage(a)
	for _, p := range ports {
		fn(p)
	}
}

// nodeUsage returns the usage of node n, reading it once.
func (c *planCtx) nodeUsage(n *structs.Node) (*nodeUsage, error) {
	if c.set != nil {
		if k, ok := c.set.pos[n.ID]; ok {
			return c.usageOf(k)
		}
	}
	if u := c.usage[n.ID]; u != nil {
		return u, nil
	}
	u, err := c.readUsage(n, -1)
	if err == nil {
		c.usage[n.ID] = u
	}
	return u, err
}

// usageOf returns the usage of the node at position k of c.set, reading
// it once.
func (c *planCtx) usageOf(k int32) (*nodeUsage, error) {
	if u := c.usageAt[k]; u != nil {
		return u, nil
	}
	u, err := c.readUsage(c.set.nodes[k], k)
	if err == nil {
		c.usageAt[k] = u
	}
	return u, err
}

// loadedUsage returns the usage of a node this attempt has read, or nil.
func (c *planCtx) loadedUsage(nodeID string) *nodeUsage {
	if c.set != nil {
		if k, ok := c.set.pos[nodeID]; ok {
			return c.usageAt[k]
		}
	}
	return c.usage[nodeID]
}

// readUsage reads the usage of node n (at position k of c.set, or -1)
// less what the plan stops there: from the rows read in bulk when there
// are some, else from the state.
func (c *planCtx) readUsage(n *structs.Node, k int32) (*nodeUsage, error) {
	if ur, ok := c.state.(usageReader); ok {
		var nu *structs.NodeUsage
		if k >= 0 && c.baseAt != nil {
			if nu = c.baseAt[k]; nu == nil {
				nu = &structs.NodeUsage{NodeID: n.ID} // no live allocations
			}
		} else {
			var err error
			if nu, err = ur.NodeUsage(n.ID); err != nil {
				return nil, fmt.Errorf("read usage of node %s: %w", n.ID, err)
			}
		}
		u := &nodeUsage{cpu: nu.CPU, mem: nu.MemoryMB, disk: nu.DiskMB, base: nu.Ports, fromBase: true}
		for _, a := range c.stoppedOn[n.ID] {
			u.release(a)
		}
		return u, nil
	}
	allocs, err := c.state.AllocsByNode(nil, n.ID)
	if err != nil {
		return nil, fmt.Errorf("read allocations of node %s: %w", n.ID, err)
	}
	u := &nodeUsage{}
	for _, a := range allocs {
		if !a.TerminalStatus() && !c.stopped[a.ID] {
			u.add(a)
		}
	}
	return u, nil
}

// fit checks whether a fits on n given u; it returns the exhausted
// dimension, or "" and the allocated resources (with ports assigned).
func (c *planCtx) fit(n *structs.Node, u *nodeUsage, a *ask) (string, *structs.AllocatedResources) {
	cpu, mem, disk := n.Capacity()
	return c.fitIn(n, capacity{cpu, mem, disk}, u, a)
}

// fitIn is fit with the node's capacity given.
func (c *planCtx) fitIn(n *structs.Node, cp capacity, u *nodeUsage, a *ask) (string, *structs.AllocatedResources) {
	switch {
	case u.cpu+a.cpu > cp.cpu:
		return dimCPU, nil
	case u.mem+a.mem > cp.mem:
		return dimMemory, nil
	case u.disk+a.disk > cp.disk:
		return dimDisk, nil
	}
	if !a.needPorts {
		return "", nil // resources are built for the chosen node only
	}
	res := a.resources()
	if !c.assignPorts(n, u, a, res) {
		return dimPorts, nil
	}
	return "", res
}

// assignPorts gives the asked static and dynamic ports to res, none of
// them used on the node or reserved by it. Dynamic ports are drawn at
// random from the node's dynamic range.
func (c *planCtx) assignPorts(n *structs.Node, u *nodeUsage, a *ask, res *structs.AllocatedResources) bool {
	if u.ports == nil {
		u.ports = map[int]bool{}
		for p := range u.base {
			u.ports[p] = true
		}
		for _, x := range u.released {
			forPorts(x, func(p int) { delete(u.ports, p) })
		}
		for _, x := range u.allocs {
			forPorts(x, func(p int) { u.ports[p] = true })
		}
	}
	taken := map[int]bool{}
	if n.ReservedResources != nil {
		for _, p := range parsePortList(n.ReservedResources.Networks.ReservedHostPorts) {
			taken[p] = true
		}
	}
	used := func(p int) bool { return u.ports[p] || taken[p] }
	lo, hi := defaultMinDynamicPort, defaultMaxDynamicPort
	if r := n.NodeResources; r != nil && r.MinDynamicPort > 0 && r.MaxDynamicPort >= r.MinDynamicPort {
		lo, hi = r.MinDynamicPort, r.MaxDynamicPort
	}
	// hostIP is where the node's ports answer (its fingerprinted address).
	hostIP := n.Attributes["unique.network.ip-address"]
	assign := func(in *structs.NetworkResource) (*structs.NetworkResource, bool) {
		out := *in
		out.ReservedPorts = slices.Clone(in.ReservedPorts)
		out.DynamicPorts = slices.Clone(in.DynamicPorts)
		for _, p := range out.ReservedPorts {
			if used(p.Value) {
				return nil, false
			}
			taken[p.Value] = true
			res.Shared.Ports = append(res.Shared.Ports, structs.AllocatedPortMapping{Label: p.Label, Value: p.Value, To: p.To, HostIP: hostIP})
		}
		for i := range out.DynamicPorts {
			p, ok := pickPort(c, lo, hi, used)
			if !ok {
				return nil, false
			}
			taken[p] = true
			out.DynamicPorts[i].Value = p
			to := out.DynamicPorts[i].To
			if to == -1 {
				to = p
			}
			res.Shared.Ports = append(res.Shared.Ports, structs.AllocatedPortMapping{Label: out.DynamicPorts[i].Label, Value: p, To: to, HostIP: hostIP})
		}
		return &out, true
	}
	for _, nw := range a.groupNets {
		out, ok := assign(nw)
		if !ok {
			return false
		}
		res.Shared.Networks = append(res.Shared.Networks, out)
	}
	names := make([]string, 0, len(a.taskNets))
	for name := range a.taskNets {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		for _, nw := range a.taskNets[name] {
			out, ok := assign(nw)
			if !ok {
				return false
			}
			res.Tasks[name].Networks = append(res.Tasks[name].Networks, out)
		}
	}
	return true
}

// pickPort draws a free port in [lo, hi]: a few random tries, then a scan.
func pickPort(c *planCtx, lo, hi int, used func(int) bool) (int, bool) {
	span := hi - lo + 1
	for range 20 {
		if p := lo + c.rng.IntN(span); !used(p) {
			return p, true
		}
	}
	for p := lo; p <= hi; p++ {
		if !used(p) {
			return p, true
		}
	}
	return 0, false
}

// parsePortList parses "22,80,8000-8010".
func parsePortList(s string) []int {
	var out []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(strings.TrimSpace(lo))
		if err != nil {
			continue
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(strings.TrimSpace(hi)); err != nil || b < a {
				continue
			}
		}
		for p := a; p <= b; p++ {
			out = append(out, p)
		}
	}
	return out
}
