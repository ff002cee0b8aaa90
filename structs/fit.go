package structs

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
