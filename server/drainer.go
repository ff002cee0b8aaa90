package server

import (
	"context"
	"sort"
	"time"

	"github.com/skiffhq/skiff/state"
	"github.com/skiffhq/skiff/structs"
)

// drainInterval is how often the leader's drainer looks at draining nodes.
const drainInterval = 250 * time.Millisecond

// drainer runs on the leader while it leads. For every draining node it
// lets allocations leave at the pace of their group's migrate block:
// at most max_parallel of a group are migrating at once, where an
// allocation migrates from the moment it is marked until its replacement
// has run for min_healthy_time (or ended). Batch allocations are left to
// finish until the deadline; system allocations leave last (not at all
// with IgnoreSystemJobs). At the deadline everything left is marked. A
// node with nothing left to move has its drain ended (it stays
// ineligible).
func (s *Server) drainer(ctx context.Context) {
	// Nothing drains until a node changes.
	s.pollWhileActive(ctx, drainInterval, "drain nodes", []string{state.TableNodes}, s.drainOnce)
}

// drainOnce makes one pass over the draining nodes of snap and reports
// whether any node is draining.
func (s *Server) drainOnce(snap *state.Snapshot, now time.Time) (bool, error) {
	nodes, err := snap.Nodes(nil)
	if err != nil {
		return false, err
	}
	draining := false
	marks := map[string]*structs.DesiredTransition{}
	jobs := map[structs.NamespacedID]*structs.Job{}
	for _, n := range nodes {
		if n.DrainStrategy == nil {
			continue
		}
		draining = true
		done, err := s.drainNode(snap, n, now, marks, jobs)
		if err != nil {
			return true, err
		}
		if done {
			s.logger.Info("node drain complete", "node_id", n.ID, "node", n.Name)
			req := &structs.NodeUpdateDrainRequest{NodeID: n.ID}
			if _, err := s.raftApply(structs.NodeUpdateDrainType, req); err != nil {
				return true, err
			}
		}
	}
	if len(marks) == 0 {
		return draining, nil
	}
	req := &structs.AllocDesiredTransitionRequest{Allocs: marks}
	for _, j := range jobs {
		req.Evals = append(req.Evals, jobEval(j, structs.EvalTriggerNodeDrain))
	}
	index, err := s.raftApply(structs.AllocDesiredTransitionType, req)
	if err != nil {
		return true, err
	}
	s.enqueueEvals(index, req.Evals...)
	return true, nil
}

// drainNode marks the allocations of node n that may migrate now, and
// reports whether nothing is left to move.
func (s *Server) drainNode(snap *state.Snapshot, n *structs.Node, now time.Time,
	marks map[string]*structs.DesiredTransition, jobs map[structs.NamespacedID]*structs.Job) (bool, error) {
	ds := n.DrainStrategy
	forced := !ds.ForceDeadline.IsZero() && !now.Before(ds.ForceDeadline)
	allocs, err := snap.AllocsByNode(nil, n.ID)
	if err != nil {
		return false, err
	}
	sort.Slice(allocs, func(i, j int) bool { return allocs[i].Name < allocs[j].Name })
	type groupKey struct {
		job structs.NamespacedID
		tg  string
	}
	candidates := map[groupKey][]*structs.Allocation{}
	var systemAllocs []*structs.Allocation
	left, others := 0, 0
	for _, a := range allocs {
		if a.TerminalStatus() || a.Job == nil {
			continue
		}
		system := a.Job.Type == structs.JobTypeSystem || a.Job.Type == structs.JobTypeSysBatch
		if system && ds.IgnoreSystemJobs {
			continue
		}
		left++
		if a.DesiredTransition.ShouldMigrate() {
			if !system {
				others++
			}
			continue // marked: the scheduler is moving it
		}
		switch {
		case system:
			systemAllocs = append(systemAllocs, a)
		case a.Job.Type == structs.JobTypeBatch && !forced:
			others++ // batch work is left to finish until the deadline
		default:
			others++
			k := groupKey{a.Job.NamespacedID(), a.TaskGroup}
			candidates[k] = append(candidates[k], a)
		}
	}
	mark := func(a *structs.Allocation) {
		yes := true
		marks[a.ID] = &structs.DesiredTransition{Migrate: &yes}
		jobs[a.Job.NamespacedID()] = a.Job
	}
	for k, list := range candidates {
		allowed := len(list)
		if !forced {
			job, err := snap.JobByID(nil, k.job.Namespace, k.job.ID)
			if err != nil {
				return false, err
			}
			pace := structs.MigrateStrategy{MaxParallel: 1}
			if job != nil {
				if tg := job.LookupTaskGroup(k.tg); tg != nil && tg.Migrate != nil {
					pace = *tg.Migrate
				}
			}
			busy, err := migrating(snap, k.job, k.tg, now, &pace)
			if err != nil {
				return false, err
			}
			allowed = max(max(pace.MaxParallel, 1)-busy, 0)
		}
		for _, a := range list[:min(allowed, len(list))] {
			mark(a)
		}
	}
	if others == 0 || forced {
		for _, a := range systemAllocs {
			mark(a)
		}
	}
	return left == 0, nil
}

// migrating counts the group's allocations that are migrating: marked and
// still running, or replaced by an allocation that has not yet run for
// the migrate block's min_healthy_time. A replacement that ended, or that
// is still not healthy healthy_deadline after it was placed (it counts as
// unhealthy), no longer holds the migration up: a drain always ends.
func migrating(snap *state.Snapshot, job structs.NamespacedID, tg string, now time.Time, pace *structs.MigrateStrategy) (int, error) {
	allocs, err := snap.AllocsByJob(nil, job.Namespace, job.ID, true)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, a := range allocs {
		if a.TaskGroup != tg || !a.DesiredTransition.ShouldMigrate() {
			continue
		}
		if !a.TerminalStatus() {
			n++
			continue
		}
		if a.NextAllocation == "" {
			continue
		}
		r, err := snap.AllocByID(nil, a.NextAllocation)
		if err != nil {
			return 0, err
		}
		if r == nil || r.TerminalStatus() || healthyFor(r, now, pace.MinHealthyTime) {
			continue
		}
		if pace.HealthyDeadline > 0 && now.Sub(time.Unix(0, r.CreateTime)) >= pace.HealthyDeadline {
			continue // unhealthy past its deadline: the drain moves on
		}
		n++
	}
	return n, nil
}

// healthyFor reports whether an allocation has been running, every task
// started, for at least d.
func healthyFor(a *structs.Allocation, now time.Time, d time.Duration) bool {
	if a.ClientStatus != structs.AllocClientStatusRunning || len(a.TaskStates) == 0 {
		return false
	}
	var latest time.Time
	for _, ts := range a.TaskStates {
		if ts.StartedAt.IsZero() {
			return false
		}
		if ts.StartedAt.After(latest) {
			latest = ts.StartedAt
		}
	}
	return now.Sub(latest) >= d
}
