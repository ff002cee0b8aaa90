package structs

import "testing"

// TestExhausted: the usage of allocations together (AllocUsage) against
// what a node offers (Exhausted), as the plan applier checks it.
func TestExhausted(t *testing.T) {
	node := &Node{NodeResources: &NodeResources{Cpu: NodeCpuResources{CpuShares: 1000}, Memory: NodeMemoryResources{MemoryMB: 1000}, Disk: NodeDiskResources{DiskMB: 1000}},
		ReservedResources: &NodeReservedResources{Cpu: NodeCpuResources{CpuShares: 100}}}
	alloc := func(cpu, mem, disk int64, ports ...int) *Allocation {
		r := &AllocatedResources{Tasks: map[string]*AllocatedTaskResources{"t": {Cpu: AllocatedCpuResources{CpuShares: cpu}, Memory: AllocatedMemoryResources{MemoryMB: mem}}},
			Shared: AllocatedSharedResources{DiskMB: disk}}
		for _, p := range ports {
			r.Shared.Ports = append(r.Shared.Ports, AllocatedPortMapping{Label: "p", Value: p})
		}
		return &Allocation{AllocatedResources: r}
	}
	cases := []struct {
		name   string
		allocs []*Allocation
		fits   bool
		dim    string
	}{
		{"fits", []*Allocation{alloc(400, 500, 500, 8080), alloc(500, 500, 500, 8081)}, true, ""},
		{"cpu after reservation", []*Allocation{alloc(500, 100, 100), alloc(401, 100, 100)}, false, "cpu"},
		{"memory", []*Allocation{alloc(100, 600, 100), alloc(100, 401, 100)}, false, "memory"},
		{"disk", []*Allocation{alloc(100, 100, 1001)}, false, "disk"},
		{"port twice", []*Allocation{alloc(100, 100, 100, 8080), alloc(100, 100, 100, 8080)}, false, "ports"},
		// The scheduler records a port both in Shared.Ports and in the
		// network it came from: one allocation, one use.
		{"port listed twice by one alloc", []*Allocation{withNetworkPort(alloc(100, 100, 100, 20001), 20001)}, true, ""},
	}
	for _, c := range cases {
		fits, dim := allocsFit(node, c.allocs)
		if fits != c.fits || dim != c.dim {
			t.Errorf("%s: got (%v, %q), want (%v, %q)", c.name, fits, dim, c.fits, c.dim)
		}
	}
}

// withNetworkPort also lists port as a dynamic port of a shared network,
// as the scheduler does.
func withNetworkPort(a *Allocation, port int) *Allocation {
	a.AllocatedResources.Shared.Networks = append(a.AllocatedResources.Shared.Networks,
		&NetworkResource{DynamicPorts: []Port{{Label: "p", Value: port}}})
	return a
}

// allocsFit reports whether the allocations fit on the node together:
// CPU, memory and disk within what the node offers after its
// reservations, and no host port used twice. When they do not, it names
// the first dimension exhausted: "cpu", "memory", "disk" or "ports".
func allocsFit(node *Node, allocs []*Allocation) (bool, string) {
	u := &NodeUsage{Ports: map[int]int{}}
	for _, a := range allocs {
		c, m, d, ps := AllocUsage(a) // each port of an allocation once
		u.CPU, u.MemoryMB, u.DiskMB = u.CPU+c, u.MemoryMB+m, u.DiskMB+d
		for _, p := range ps {
			u.Ports[p]++
		}
	}
	dim := node.Exhausted(u)
	return dim == "", dim
}
