package state

import (
	"fmt"
	"maps"
	"slices"

	"github.com/skiffhq/skiff/structs"
)

// TableNodeUsage holds one structs.NodeUsage per node that has had live
// allocations (a row stays, at zero, when the last one stops). It is
// derived from the allocations table: written with every allocation
// change, rebuilt on restore, never snapshotted.
const TableNodeUsage = "node_usage"

// NodeUsage returns what the live allocations on a node use, or a zero
// usage when it has none.
func (r reader) NodeUsage(nodeID string) (*structs.NodeUsage, error) {
	u, err := first[structs.NodeUsage](nil, r.txn(), TableNodeUsage, indexID, nodeID)
	if err != nil || u != nil {
		return u, err
	}
	return &structs.NodeUsage{NodeID: nodeID}, nil
}

// NodeUsages returns the usage rows of every node that has had live
// allocations (rows at zero included),
// sorted by node ID: one pass over the table, for a reader about to look
// at most nodes (a point lookup costs some microseconds each).
func (r reader) NodeUsages() ([]*structs.NodeUsage, error) {
	return list[structs.NodeUsage](nil, r.txn(), TableNodeUsage, indexID, nil)
}

// changeUsage adds (sign +1) or removes (sign -1) a live allocation's use
// to or from the transaction's own copy of its node's usage row, which
// flushUsage writes: a write placing many allocations on a node rewrites
// its row once. Terminal allocations use nothing.
func (t *txn) changeUsage(a *structs.Allocation, sign int64) error {
	if a == nil || a.NodeID == "" || a.TerminalStatus() {
		return nil
	}
	cpu, mem, disk, ports := structs.AllocUsage(a)
	t.changes++
	u, ok := t.usage[a.NodeID]
	if !ok {
		// Not in t.usage: the transaction has not written the row yet.
		cur, err := first[structs.NodeUsage](nil, t.base, TableNodeUsage, indexID, a.NodeID)
		if err != nil {
			return err
		}
		u = &structs.NodeUsage{NodeID: a.NodeID}
		if cur != nil {
			*u = *cur
			u.Ports = maps.Clone(cur.Ports)
		}
		if t.usage == nil {
			t.usage = map[string]*structs.NodeUsage{}
		}
		t.usage[a.NodeID] = u
	}
	u.CPU += sign * cpu
	u.MemoryMB += sign * mem
	u.DiskMB += sign * disk
	for _, p := range ports {
		if u.Ports == nil {
			u.Ports = map[int]int{}
		}
		u.Ports[p] += int(sign)
		if u.Ports[p] <= 0 {
			delete(u.Ports, p)
		}
	}
	return nil
}

// flushUsage writes the usage rows the transaction changed.
func (t *txn) flushUsage() error {
	for id, u := range t.usage {
		if err := t.Insert(TableNodeUsage, u); err != nil {
			return fmt.Errorf("update usage of node %s: %w", id, err)
		}
		t.usageWritten = append(t.usageWritten, u)
	}
	t.usage = nil
	return nil
}

// sameUse reports whether two versions of an allocation use the same of
// the same node, so that its node's usage row need not be rewritten.
func sameUse(a, b *structs.Allocation) bool {
	if a == nil || b == nil || a.NodeID != b.NodeID || a.TerminalStatus() != b.TerminalStatus() {
		return false
	}
	if a.TerminalStatus() {
		return true // neither uses anything
	}
	c1, m1, d1, p1 := structs.AllocUsage(a)
	c2, m2, d2, p2 := structs.AllocUsage(b)
	return c1 == c2 && m1 == m2 && d1 == d2 && slices.Equal(p1, p2)
}
