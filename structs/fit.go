package structs

// AllocsFit reports whether the allocations fit on the node together:
// CPU, memory and disk within what the node offers after its
// reservations, and no host port used twice. When they do not, it names
// the first dimension exhausted: "cpu", "memory", "disk" or "ports".
// The plan applier uses it to re-check every node of a plan.
func AllocsFit(node *Node, allocs []*Allocation) (bool, string) {
	var capCPU, capMem, capDisk int64
	if r := node.NodeResources; r != nil {
		capCPU, capMem, capDisk = r.Cpu.CpuShares, r.Memory.MemoryMB, r.Disk.DiskMB
	}
	if r := node.ReservedResources; r != nil {
		capCPU -= r.Cpu.CpuShares
		capMem -= r.Memory.MemoryMB
		capDisk -= r.Disk.DiskMB
	}
	var cpu, mem, disk int64
	ports := map[int]bool{}
	dup := false
	// An allocation lists its ports in several places (Shared.Ports and the
	// networks they came from): collect each allocation's set, then check
	// it against the others'.
	var mine map[int]bool
	use := func(p int) {
		if p != 0 {
			mine[p] = true
		}
	}
	for _, a := range allocs {
		r := a.AllocatedResources
		if r == nil {
			continue
		}
		mine = map[int]bool{}
		for _, t := range r.Tasks {
			cpu += t.Cpu.CpuShares
			mem += t.Memory.MemoryMB
			for _, n := range t.Networks {
				for _, p := range n.ReservedPorts {
					use(p.Value)
				}
				for _, p := range n.DynamicPorts {
					use(p.Value)
				}
			}
		}
		disk += r.Shared.DiskMB
		for _, p := range r.Shared.Ports {
			use(p.Value)
		}
		for _, n := range r.Shared.Networks {
			for _, p := range n.ReservedPorts {
				use(p.Value)
			}
			for _, p := range n.DynamicPorts {
				use(p.Value)
			}
		}
		for p := range mine {
			if ports[p] {
				dup = true
			}
			ports[p] = true
		}
	}
	switch {
	case cpu > capCPU:
		return false, "cpu"
	case mem > capMem:
		return false, "memory"
	case disk > capDisk:
		return false, "disk"
	case dup:
		return false, "ports"
	}
	return true, ""
}
