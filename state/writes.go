package state

import (
	"errors"
	"fmt"
	"slices"

	"github.com/skiffhq/skiff/structs"
)

// UpsertEvals writes evaluations at raft index index. Only the FSM calls
// it. Each is copied; an existing one keeps its CreateIndex. An evaluation
// with QueuedAllocations sets the Queued counts of its job's summary. The
// statuses of the jobs concerned are updated.
func (w writer) UpsertEvals(index uint64, evals []*structs.Evaluation) error {
	return w.run(index, func(t *txn) error {
		t.touch(TableEvals)
		for _, e := range evals {
			if err := t.upsertEval(e); err != nil {
				return fmt.Errorf("upsert evaluation %q: %w", e.ID, err)
			}
		}
		return nil
	})
}

func (t *txn) upsertEval(in *structs.Evaluation) error {
	if in.ID == "" {
		return errors.New("ID is required")
	}
	existing, err := byID[structs.Evaluation](t, TableEvals, in.ID)
	if err != nil {
		return err
	}
	e := in
	if !t.owned { // the caller keeps its object: change a copy
		e = in.Copy()
	}
	e.CreateIndex = t.index
	if existing != nil {
		e.CreateIndex = existing.CreateIndex
		t.markJob(existing.Namespace, existing.JobID)
	}
	e.ModifyIndex = t.index
	if err := t.insert(TableEvals, e); err != nil {
		return err
	}
	t.markJob(e.Namespace, e.JobID)
	return t.setQueued(e)
}

// DeleteEvals garbage collects evaluations and allocations at raft index
// index. Only the FSM calls it. IDs no longer in the store are skipped.
// Deleted allocations leave their jobs' summaries; jobs left with neither
// allocations nor evaluations become dead.
func (w writer) DeleteEvals(index uint64, evalIDs, allocIDs []string) error {
	return w.run(index, func(t *txn) error {
		t.touch(TableEvals, TableAllocs)
		t.evalDelete = true
		for _, id := range evalIDs {
			e, err := byID[structs.Evaluation](t, TableEvals, id)
			if err == nil && e != nil {
				err = t.delete(TableEvals, e)
				t.markJob(e.Namespace, e.JobID)
			}
			if err != nil {
				return fmt.Errorf("delete evaluation %q: %w", id, err)
			}
		}
		for _, id := range allocIDs {
			a, err := t.allocByID(id)
			if err == nil && a != nil {
				err = t.putAlloc(a, nil)
			}
			if err != nil {
				return fmt.Errorf("delete allocation %q: %w", id, err)
			}
		}
		return nil
	})
}

// UpsertNode registers a node or replaces it, at raft index index. Only
// the FSM calls it. The node is copied; an existing node keeps its
// CreateIndex.
func (w writer) UpsertNode(index uint64, node *structs.Node) error {
	if node == nil || node.ID == "" {
		return errors.New("upsert node: node ID is required")
	}
	return w.run(index, func(t *txn) error {
		existing, err := byID[structs.Node](t, TableNodes, node.ID)
		if err != nil {
			return fmt.Errorf("upsert node %q: %w", node.ID, err)
		}
		n := node.Copy()
		n.CreateIndex = t.index
		if existing != nil {
			// A client re-registering (after a restart) must not undo what
			// operators set: drain and eligibility have their own writes.
			n.CreateIndex = existing.CreateIndex
			n.SchedulingEligibility = existing.SchedulingEligibility
			n.DrainStrategy = existing.DrainStrategy
			n.Drain = existing.Drain
		}
		n.ModifyIndex = t.index
		if err := t.insert(TableNodes, n); err != nil {
			return fmt.Errorf("upsert node %q: %w", node.ID, err)
		}
		t.names.addNode(n)
		return t.nodeRegistered(n.ID)
	})
}

// DeleteNodes deregisters nodes at raft index index. Only the FSM calls it.
// If any node is missing nothing is deleted, and the error wraps
// structs.ErrNotFound.
func (w writer) DeleteNodes(index uint64, nodeIDs []string) error {
	return w.run(index, func(t *txn) error {
		// Every node is looked up before any is deleted, so that a missing
		// one fails the write having changed nothing.
		nodes := make([]*structs.Node, 0, len(nodeIDs))
		seen := make(map[string]bool, len(nodeIDs))
		for _, id := range nodeIDs {
			n, err := byID[structs.Node](t, TableNodes, id)
			if err == nil && n == nil {
				err = structs.ErrNotFound
			}
			if err != nil {
				return fmt.Errorf("delete node %q: %w", id, err)
			}
			if !seen[id] {
				seen[id] = true
				nodes = append(nodes, n)
			}
		}
		t.touch(TableNodes)
		for _, n := range nodes {
			err := t.delete(TableNodes, n)
			if err == nil {
				t.names.dropNode(n.ID)
				err = t.nodeDeregistered(n.ID)
			}
			if err != nil {
				return fmt.Errorf("delete node %q: %w", n.ID, err)
			}
		}
		return nil
	})
}

// UpdateNodeStatus sets a node's Status and StatusUpdatedAt at raft index
// index. Only the FSM calls it; updatedAt comes from the log entry (the
// leader's clock), never from the applying server's. The error wraps
// structs.ErrNotFound if there is no such node.
func (w writer) UpdateNodeStatus(index uint64, nodeID, status string, updatedAt int64) error {
	return w.editNode(index, nodeID, "status", func(n *structs.Node) {
		n.Status = status
		n.StatusUpdatedAt = updatedAt
	})
}

// UpdateNodeEligibility sets a node's scheduling eligibility at raft
// index index. Only the FSM calls it. StatusUpdatedAt, the time of the
// last status change (a disconnected node's lost_after counts from it),
// is left alone.
func (w writer) UpdateNodeEligibility(index uint64, nodeID, eligibility string) error {
	return w.editNode(index, nodeID, "eligibility", func(n *structs.Node) {
		n.SchedulingEligibility = eligibility
	})
}

// UpdateNodeDrain starts (strategy set) or ends (nil) a node's drain at
// raft index index. Only the FSM calls it. A draining node is ineligible;
// an ended drain leaves it so unless markEligible.
func (w writer) UpdateNodeDrain(index uint64, nodeID string, strategy *structs.DrainStrategy, markEligible bool) error {
	return w.editNode(index, nodeID, "drain", func(n *structs.Node) {
		n.DrainStrategy, n.Drain = nil, false
		if strategy != nil {
			s := *strategy
			n.DrainStrategy, n.Drain = &s, true
			n.SchedulingEligibility = structs.NodeSchedulingIneligible
		} else if markEligible {
			n.SchedulingEligibility = structs.NodeSchedulingEligible
		}
	})
}

// editNode changes a copy of a stored node with edit and writes it at
// raft index index; what names the change in errors. The error wraps
// structs.ErrNotFound if there is no such node.
func (w writer) editNode(index uint64, nodeID, what string, edit func(*structs.Node)) error {
	return w.run(index, func(t *txn) error {
		existing, err := byID[structs.Node](t, TableNodes, nodeID)
		if err == nil && existing == nil {
			err = structs.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("update %s of node %q: %w", what, nodeID, err)
		}
		n := existing.Copy()
		edit(n)
		n.ModifyIndex = t.index
		if err := t.insert(TableNodes, n); err != nil {
			return fmt.Errorf("update %s of node %q: %w", what, nodeID, err)
		}
		return nil
	})
}

// UpdateAllocsDesiredTransitions sets the desired transitions of
// allocations at raft index index. Only the FSM calls it; allocations
// that are gone are skipped.
func (w writer) UpdateAllocsDesiredTransitions(index uint64, transitions map[string]*structs.DesiredTransition) error {
	return w.run(index, func(t *txn) error {
		t.touch(TableAllocs)
		for id, tr := range transitions {
			existing, err := t.allocByID(id)
			if err != nil {
				return err
			}
			if existing == nil || tr == nil {
				continue
			}
			a := existing.Copy()
			a.DesiredTransition = *tr
			a.ModifyIndex = t.index
			if err := t.putAlloc(existing, a); err != nil {
				return fmt.Errorf("set desired transition of allocation %q: %w", id, err)
			}
		}
		return nil
	})
}

// UpsertDeployment writes a deployment at raft index index. Only the FSM
// calls it. The deployment is copied; an existing one keeps its
// CreateIndex.
func (w writer) UpsertDeployment(index uint64, d *structs.Deployment) error {
	return w.upsertDeployment(index, d, false)
}

// UpsertPlanDeployment writes the deployment a scheduler's plan carries.
// A plan is computed from a snapshot that may be older than the stored
// deployment, so of an existing one it takes only what the scheduler
// owns: each group's desired total and canaries (canaries placed are
// added), and a move between running and blocked. What an operator or
// the leader's deployment watcher set since (paused, promoted, ended, the
// health counts, the progress deadline) is kept.
func (w writer) UpsertPlanDeployment(index uint64, d *structs.Deployment) error {
	return w.upsertDeployment(index, d, true)
}

// planMerge returns existing with what plan may change of it.
func planMerge(existing, plan *structs.Deployment) *structs.Deployment {
	m := existing.Copy()
	for name, g := range plan.TaskGroups {
		e := m.TaskGroups[name]
		if e == nil {
			c := *g
			c.PlacedCanaries = slices.Clone(g.PlacedCanaries)
			m.TaskGroups[name] = &c
			continue
		}
		e.DesiredTotal, e.DesiredCanaries = g.DesiredTotal, g.DesiredCanaries
		for _, id := range g.PlacedCanaries {
			if !slices.Contains(e.PlacedCanaries, id) {
				e.PlacedCanaries = append(e.PlacedCanaries, id)
			}
		}
	}
	movable := func(status string) bool {
		return status == structs.DeploymentStatusRunning || status == structs.DeploymentStatusBlocked
	}
	if movable(existing.Status) && movable(plan.Status) {
		m.Status, m.StatusDescription = plan.Status, plan.StatusDescription
	}
	return m
}

func (w writer) upsertDeployment(index uint64, d *structs.Deployment, fromPlan bool) error {
	if d == nil || d.ID == "" || d.Namespace == "" || d.JobID == "" {
		return errors.New("upsert deployment: ID, namespace and job ID are required")
	}
	return w.run(index, func(t *txn) error {
		existing, err := byID[structs.Deployment](t, TableDeployments, d.ID)
		if err != nil {
			return fmt.Errorf("upsert deployment %q: %w", d.ID, err)
		}
		c := d.Copy()
		if fromPlan && existing != nil {
			c = planMerge(existing, d)
		}
		c.CreateIndex = t.index
		if existing != nil {
			c.CreateIndex = existing.CreateIndex
		}
		c.ModifyIndex = t.index
		if err := t.insert(TableDeployments, c); err != nil {
			return fmt.Errorf("upsert deployment %q: %w", d.ID, err)
		}
		return nil
	})
}
