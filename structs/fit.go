package structs

// AllocsFit reports whether the allocations fit on the node together:
// CPU, memory and disk within what the node offers after its
// reservations, and no host port used twice. When they do not, it names
// the first dimension exhausted: "cpu", "memory", "disk" or "ports".
func AllocsFit(node *Node, allocs []*Allocation) (bool, string) {
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

// Exhausted names the first dimension in which u exceeds what the node
// offers ("cpu", "memory", "disk", or "ports" when a port is held twice),
// or returns "" when u fits. The plan applier checks every node of a
// plan with it.
func (n *Node) Exhausted(u *NodeUsage) string {
	cpu, mem, disk := n.Capacity()
	switch {
	case u.CPU > cpu:
		return "cpu"
	case u.MemoryMB > mem:
		return "memory"
	case u.DiskMB > disk:
		return "disk"
	}
	for _, c := range u.Ports {
		if c > 1 {
			return "ports"
		}
	}
	return ""
}

// Capacity is what a node offers to allocations: its resources minus its
// reservations.
func (n *Node) Capacity() (cpu, mem, disk int64) {
	if r := n.NodeResources; r != nil {
		cpu, mem, disk = r.Cpu.CpuShares, r.Memory.MemoryMB, r.Disk.DiskMB
	}
	if r := n.ReservedResources; r != nil {
		cpu -= r.Cpu.CpuShares
		mem -= r.Memory.MemoryMB
		disk -= r.Disk.DiskMB
	}
	return cpu, mem, disk
}
