package state

import (
	"github.com/skiffhq/skiff/structs"
)

// names keeps one copy of the strings that allocations repeat, so that a
// server holding a million allocations does not keep a million copies of
// each node ID and job ID (each decoded from its own raft entry). It is
// used only inside write transactions, which memdb runs one at a time,
// so it needs no lock of its own. It is best effort: a string
// it does not know is kept as given, and a write that aborts may leave a
// name behind, which costs a few bytes and changes nothing else.
type names struct {
	nodes map[string]nodeName // by node ID: the stored node's ID and name
}

type nodeName struct{ id, name string }

func newNames() *names { return &names{nodes: map[string]nodeName{}} }

func (n *names) addNode(node *structs.Node) { n.nodes[node.ID] = nodeName{node.ID, node.Name} }
func (n *names) dropNode(id string)         { delete(n.nodes, id) }

// node returns the stored copy of a node ID.
func (n *names) node(id string) string {
	if c, ok := n.nodes[id]; ok {
		return c.id
	}
	return id
}

// share points the strings and the parts of a, a new allocation the store
// is about to keep, at copies the store already holds: its job's
// namespace, ID and group name; its node's ID and name; and, when equal to
// those of the allocation shared before it (the placements of one plan
// come in a row), its evaluation and deployment IDs and its allocated
// resources when they hold no ports. When the transaction owns its objects
// it does the same for the node IDs of their placement metrics (decoding
// already shares their count maps, structs.Counts, and their score names,
// by the table of known names in structs/scores.go).
func (t *txn) share(a *structs.Allocation) {
	if j := a.Job; j != nil {
		if a.Namespace == j.Namespace {
			a.Namespace = j.Namespace
		}
		if a.JobID == j.ID {
			a.JobID = j.ID
		}
		for _, tg := range j.TaskGroups {
			if tg.Name == a.TaskGroup {
				a.TaskGroup = tg.Name
				break
			}
		}
	}
	if nn, ok := t.names.nodes[a.NodeID]; ok {
		a.NodeID = nn.id
		if a.NodeName == nn.name {
			a.NodeName = nn.name
		}
	}
	a.DesiredStatus = structs.CanonicalString(a.DesiredStatus)
	a.ClientStatus = structs.CanonicalString(a.ClientStatus)
	last := t.lastShared
	t.lastShared = a
	if last != nil {
		if a.EvalID == last.EvalID {
			a.EvalID = last.EvalID
		}
		if a.DeploymentID == last.DeploymentID {
			a.DeploymentID = last.DeploymentID
		}
		if portless(a.AllocatedResources) && portless(last.AllocatedResources) &&
			sameResources(a.AllocatedResources, last.AllocatedResources) {
			a.AllocatedResources = last.AllocatedResources
		}
	}
	if !t.owned || a.Metrics == nil {
		return
	}
	for _, m := range a.Metrics.ScoreMetaData {
		if m != nil {
			m.NodeID = t.names.node(m.NodeID)
		}
	}
}

// portless reports whether r gives its allocation no network or port,
// the only parts of allocated resources that differ between allocations
// of one group.
func portless(r *structs.AllocatedResources) bool {
	if r == nil || len(r.Shared.Networks) > 0 || len(r.Shared.Ports) > 0 {
		return false
	}
	for _, tr := range r.Tasks {
		if tr == nil || len(tr.Networks) > 0 {
			return false
		}
	}
	return true
}

// sameResources compares two portless allocated resources.
func sameResources(a, b *structs.AllocatedResources) bool {
	if a.Shared.DiskMB != b.Shared.DiskMB || len(a.Tasks) != len(b.Tasks) {
		return false
	}
	for name, x := range a.Tasks {
		y, ok := b.Tasks[name]
		if !ok || x.Cpu != y.Cpu || x.Memory != y.Memory {
			return false
		}
	}
	return true
}
