package state

import (
	"maps"

	"github.com/skiffhq/skiff/structs"
)

// names keeps one copy of the strings that allocations repeat, so that a
// server holding a million allocations does not keep a million copies of
// each node ID, job ID and score name (each decoded from its own raft
// entry). It is used only inside write transactions, which memdb runs one
// at a time, so it needs no lock of its own. It is best effort: a string
// it does not know is kept as given, and a write that aborts may leave a
// name behind, which costs a few bytes and changes nothing else.
type names struct {
	nodes map[string]string // node ID -> the stored node's ID
}

func newNames() *names { return &names{nodes: map[string]string{}} }

func (n *names) addNode(id string)  { n.nodes[id] = id }
func (n *names) dropNode(id string) { delete(n.nodes, id) }

// node returns the stored copy of a node ID.
func (n *names) node(id string) string {
	if c, ok := n.nodes[id]; ok {
		return c
	}
	return id
}

// share points the strings of a, a new allocation the store is about to
// keep, at copies the store already holds: its job's namespace, ID and
// group name, its node's ID, the evaluation ID of the allocation before
// it, and, when owned (the caller gave the store
// its objects), the node IDs and score names of its placement metrics and
// their nodes available, when the same as the last allocation's.
func (t *txn) share(a *structs.Allocation, owned bool) {
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
	if t.names == nil {
		return
	}
	a.NodeID = t.names.node(a.NodeID)
	if a.EvalID == t.lastEval { // a plan's allocations come in a row
		a.EvalID = t.lastEval
	}
	t.lastEval = a.EvalID
	a.DesiredStatus = structs.CanonicalString(a.DesiredStatus)
	a.ClientStatus = structs.CanonicalString(a.ClientStatus)
	if !owned || a.Metrics == nil {
		return
	}
	// The placements of one evaluation saw the same nodes available.
	if avail := a.Metrics.NodesAvailable; t.lastAvail != nil && maps.Equal(avail, t.lastAvail) {
		a.Metrics.NodesAvailable = t.lastAvail
	} else {
		t.lastAvail = avail
	}
	for _, m := range a.Metrics.ScoreMetaData {
		if m == nil {
			continue
		}
		m.NodeID = t.names.node(m.NodeID)
		for i := range m.Scores {
			m.Scores[i].Name = structs.CanonicalString(m.Scores[i].Name)
		}
	}
}
