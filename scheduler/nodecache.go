package scheduler

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/skiffhq/skiff/structs"
)

// NodeCache remembers, for one version of the nodes table, the candidate
// nodes of each node pool and datacenter list that jobs asked for. Without
// it every evaluation reads and filters every node of the cluster, which
// on 5,000 nodes was an eighth of the scheduler's time while no node had
// changed. What it returns depends only on the nodes table at the state's
// nodes index (NodesIndexer), so a cached answer is the one a fresh read
// would give and the scheduler stays deterministic. One NodeCache may be
// shared by every scheduler of a server; it is safe for concurrent use.
type NodeCache struct {
	mu    sync.Mutex
	index uint64
	sets  map[string]*nodeSet
}

// NodesIndexer is an optional extension of State: the index of the last
// write to the nodes table. A NodeCache is used only with a State that
// has it.
type NodesIndexer interface {
	NodesIndex() (uint64, error)
}

// nodeCacheSets bounds the distinct pool and datacenter lists kept for one
// nodes index.
const nodeCacheSets = 64

// nodeSet is the ready nodes of one node pool and datacenter list, with
// what placement reads of every node kept by position, so that the
// scheduler's hot loop reads a few dense slices instead of chasing each
// node's pointers and hashing its ID and class. All of it is shared by
// the evaluations that use the set: read only, but for the usage rows
// kept under usageMu.
type nodeSet struct {
	nodes   []*structs.Node // sorted by ID
	inPool  int             // nodes in the pool, ready or not
	dcAvail structs.Counts  // ready nodes by datacenter
	pos     map[string]int32
	// class numbers each node's computed class (-1: none), from 0 to
	// classes-1, so that feasibility by class is a slice lookup.
	class   []int32
	classes int
	caps    []capacity // what each node offers allocations

	// usageRows are the usage rows of the nodes, by position, as of the
	// latest usage log position seen (usageSeq); see usageFrom. Positions
	// of different stores never match, so rows of a store a restore
	// replaced are never brought up to date from the new one's log.
	usageMu   sync.Mutex
	usageRows []*structs.NodeUsage // guarded by usageMu; read only once kept
	usageSeq  uint64               // guarded by usageMu
}

// capacity is a node's resources less what it reserves.
type capacity struct{ cpu, mem, disk int64 }

// index fills the per-position tables once the nodes are sorted.
func (s *nodeSet) index() {
	s.pos = make(map[string]int32, len(s.nodes))
	s.class = make([]int32, len(s.nodes))
	s.caps = make([]capacity, len(s.nodes))
	classes := map[string]int32{}
	for k, n := range s.nodes {
		s.pos[n.ID] = int32(k)
		s.class[k] = -1
		if cls := n.ComputedClass; cls != "" {
			c, ok := classes[cls]
			if !ok {
				c = int32(len(classes))
				classes[cls] = c
			}
			s.class[k] = c
		}
		cpu, mem, disk := n.Capacity()
		s.caps[k] = capacity{cpu, mem, disk}
	}
	s.classes = len(classes)
}

// nodesFor returns the ready nodes of pool in the datacenters matching
// patterns, from the cache when the state's nodes table has not changed
// since it was filled.
func (nc *NodeCache) nodesFor(st State, pool string, patterns []string) (*nodeSet, error) {
	ix, ok := st.(NodesIndexer)
	if nc == nil || !ok {
		return readNodeSet(st, pool, patterns)
	}
	index, err := ix.NodesIndex()
	if err != nil || index == 0 {
		return readNodeSet(st, pool, patterns)
	}
	key := pool + "\x00" + strings.Join(patterns, "\x00")
	nc.mu.Lock()
	if nc.index == index {
		if s, hit := nc.sets[key]; hit {
			nc.mu.Unlock()
			return s, nil
		}
	}
	nc.mu.Unlock()
	s, err := readNodeSet(st, pool, patterns)
	if err != nil {
		return nil, err
	}
	nc.mu.Lock()
	defer nc.mu.Unlock()
	switch {
	case index > nc.index:
		nc.index, nc.sets = index, map[string]*nodeSet{}
	case index < nc.index:
		return s, nil // an older snapshot: keep the newer entries
	}
	if len(nc.sets) >= nodeCacheSets {
		clear(nc.sets)
	}
	nc.sets[key] = s
	return s, nil
}

// readNodeSet reads every node and keeps the ready ones of pool ("all":
// any pool) in datacenters matching patterns.
func readNodeSet(st State, pool string, patterns []string) (*nodeSet, error) {
	all, err := st.Nodes(nil)
	if err != nil {
		return nil, fmt.Errorf("read nodes: %w", err)
	}
	s := &nodeSet{dcAvail: map[string]int{}}
	for _, dc := range patterns {
		if !strings.ContainsAny(dc, "*?[") {
			s.dcAvail[dc] = 0
		}
	}
	dcOK := map[string]bool{} // datacenter -> matches the job's patterns
	for _, n := range all {
		np := n.NodePool
		if np == "" {
			np = structs.DefaultNodePool
		}
		if pool != "all" && np != pool {
			continue
		}
		s.inPool++
		if !n.Ready() {
			continue
		}
		ok, seen := dcOK[n.Datacenter]
		if !seen {
			ok = dcMatch(patterns, n.Datacenter)
			dcOK[n.Datacenter] = ok
		}
		if !ok {
			continue
		}
		s.dcAvail[n.Datacenter]++
		s.nodes = append(s.nodes, n)
	}
	byID := func(a, b *structs.Node) int { return strings.Compare(a.ID, b.ID) }
	if !slices.IsSortedFunc(s.nodes, byID) {
		slices.SortFunc(s.nodes, byID)
	}
	s.index()
	return s, nil
}

// dcMatch reports whether dc matches one of the job's datacenter patterns
// (globs such as "*" or "dc*"). No datacenters means any.
func dcMatch(patterns []string, dc string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if ok, err := path.Match(p, dc); err == nil && ok {
			return true
		}
	}
	return false
}
