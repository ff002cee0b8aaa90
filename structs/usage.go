package structs

import "slices"

// NodeUsage is what the live (non-terminal) allocations on a node use,
// kept up to date by the state store as allocations are written, so the
// scheduler reads a node's usage in one lookup instead of summing its
// allocations. Ports counts how many live allocations hold each port.
type NodeUsage struct {
	NodeID   string
	CPU      int64
	MemoryMB int64
	DiskMB   int64
	Ports    map[int]int
}

// AllocUsage returns what one allocation uses: CPU, memory and disk, and
// its host ports (each once).
func AllocUsage(a *Allocation) (cpu, mem, disk int64, ports []int) {
	r := a.AllocatedResources
	if r == nil {
		return 0, 0, 0, nil
	}
	for _, t := range r.Tasks {
		cpu += t.Cpu.CpuShares
		mem += t.Memory.MemoryMB
	}
	disk = r.Shared.DiskMB
	add := func(p int) { // allocations hold few ports: a scan beats a map
		if p != 0 && !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	for _, t := range r.Tasks {
		for _, n := range t.Networks {
			for _, p := range n.ReservedPorts {
				add(p.Value)
			}
			for _, p := range n.DynamicPorts {
				add(p.Value)
			}
		}
	}
	for _, p := range r.Shared.Ports {
		add(p.Value)
	}
	for _, n := range r.Shared.Networks {
		for _, p := range n.ReservedPorts {
			add(p.Value)
		}
		for _, p := range n.DynamicPorts {
			add(p.Value)
		}
	}
	return cpu, mem, disk, ports
}
