package scheduler

import "sync"

// perNode holds an attempt's buffers that are as long as its node set:
// the order it visits the nodes in and their usage by position. At 5,000
// nodes they were a tenth of the bytes the C1M benchmark's server
// allocated (a usage for each node a placement looks at, and two slices
// of 5,000 for each evaluation), so an attempt returns them when it is
// done and a later attempt, of any evaluation, reuses them. Nothing the
// plan holds points into them.
type perNode struct {
	order   []int32
	usageAt []nodeUsage
	read    []int32 // the positions of usageAt that were read, to clear
}

var perNodePool = sync.Pool{New: func() any { return &perNode{} }}

// getPerNode returns buffers for n nodes: order of length n (to be filled)
// and usageAt of length n, every usage not read.
func getPerNode(n int) *perNode {
	p := perNodePool.Get().(*perNode)
	if cap(p.order) < n {
		p.order = make([]int32, n)
	}
	if cap(p.usageAt) < n {
		p.usageAt = make([]nodeUsage, n)
	}
	p.order, p.usageAt = p.order[:n], p.usageAt[:n]
	return p
}

// usage returns the usage at position k, reading it with read the first
// time.
func (p *perNode) usage(k int32, read func(u *nodeUsage) error) (*nodeUsage, error) {
	u := &p.usageAt[k]
	if u.loaded {
		return u, nil
	}
	if err := read(u); err != nil {
		*u = nodeUsage{}
		return nil, err
	}
	u.loaded = true
	p.read = append(p.read, k)
	return u, nil
}

// loadedAt returns the usage at position k if it was read, else nil.
func (p *perNode) loadedAt(k int32) *nodeUsage {
	if u := &p.usageAt[k]; u.loaded {
		return u
	}
	return nil
}

// put clears what was read (dropping the allocations and maps the usages
// point to) and returns p to the pool.
func (p *perNode) put() {
	for _, k := range p.read {
		p.usageAt[k] = nodeUsage{}
	}
	p.read = p.read[:0]
	perNodePool.Put(p)
}
