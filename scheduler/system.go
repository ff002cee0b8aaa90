package scheduler

import (
	"reflect"
	"time"

	"github.com/skiffhq/skiff/structs"
)

// reconcileSystem plans a system or sysbatch job: one allocation of each
// group on every ready node the group is feasible on.
func (c *planCtx) reconcileSystem() error {
	for _, a := range c.allocs {
		if !a.TerminalStatus() && c.job.LookupTaskGroup(a.TaskGroup) == nil {
			c.stop(a, descGroupRemoved, "")
		}
	}
	for _, tg := range c.job.TaskGroups {
		c.queued[tg.Name] = 0
		g, a := newGroupChecks(c.job, tg, c.set, c.classOK), newAsk(tg)
		live, done, ended := c.systemAllocs(tg)
		if err := c.systemExisting(tg, g, live, ended); err != nil {
			return err
		}
		if tg.Count == 0 {
			continue
		}
		c.prepareSpreads(g)
		for _, k := range c.order {
			n := c.set.nodes[k]
			if live[n.ID] != nil || done[n.ID] || g.static(k, n) != "" {
				continue
			}
			p := placement{tg: tg, name: allocName(c.job.ID, tg.Name, 0), node: n, prev: ended[n.ID]}
			if _, err := c.placeOne(g, a, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// systemAllocs returns what a group has on each node: live allocations
// (duplicates are stopped), nodes done with it (sysbatch allocations that
// completed or failed are not run again), and the latest finished
// allocation a new placement replaces.
func (c *planCtx) systemAllocs(tg *structs.TaskGroup) (live map[string]*structs.Allocation, done map[string]bool, ended map[string]*structs.Allocation) {
	sysbatch := c.job.Type == structs.JobTypeSysBatch
	live, done, ended = map[string]*structs.Allocation{}, map[string]bool{}, map[string]*structs.Allocation{}
	for _, x := range c.allocs {
		if x.TaskGroup == tg.Name && x.TerminalStatus() && x.NextAllocation == "" {
			if e := ended[x.NodeID]; e == nil || x.CreateIndex > e.CreateIndex {
				ended[x.NodeID] = x
			}
		}
		if x.TaskGroup != tg.Name || x.DesiredStatus != structs.AllocDesiredStatusRun {
			continue
		}
		switch {
		case !x.ClientTerminalStatus():
			if live[x.NodeID] != nil {
				c.stop(x, descNotNeeded, "") // a duplicate on the node
				continue
			}
			live[x.NodeID] = x
		case sysbatch && x.ClientStatus == structs.AllocClientStatusComplete:
			done[x.NodeID] = true
		case sysbatch && x.ClientStatus == structs.AllocClientStatusFailed:
			done[x.NodeID] = true // sysbatch allocations are not rescheduled
		}
	}
	return live, done, ended
}

// systemExisting stops the group's live allocations on nodes that are
// gone, down, draining or no longer feasible, and updates the others to
// the job's version (in place, or stop and record in ended for a new
// placement). Stopped allocations leave live.
func (c *planCtx) systemExisting(tg *structs.TaskGroup, g *groupChecks, live, ended map[string]*structs.Allocation) error {
	budget, next := c.systemUpdateBudget(tg)
	waiting := false
	for _, x := range sortedAllocs(live) {
		n, err := c.node(x.NodeID)
		if err != nil {
			return err
		}
		k, ready := c.set.pos[x.NodeID] // ready nodes of the job's pool and datacenters
		switch {
		case n == nil || n.Status == structs.NodeStatusDown:
			c.stop(x, descNodeLost, structs.AllocClientStatusLost)
			delete(live, x.NodeID)
		case !ready && n.DrainStrategy != nil && x.DesiredTransition.ShouldMigrate():
			// System allocations leave a draining node last: the drainer
			// marks them once the other allocations are gone.
			c.stop(x, descMigrating, "")
			delete(live, x.NodeID)
		case !ready:
			// Ineligible or initializing: leave it running, place nothing.
		case tg.Count == 0 || g.static(k, n) != "":
			c.stop(x, descNotFeasible, "")
			delete(live, x.NodeID)
		case !c.current(x):
			if destructive(x.Job, c.job, tg.Name) {
				if budget == 0 {
					waiting = true // the next batch, a stagger later
					continue
				}
				if budget > 0 {
					budget--
				}
				c.stop(x, descUpdating, "")
				delete(live, x.NodeID)
				ended[x.NodeID] = x
				continue
			}
			up := x.Copy()
			up.Job, up.EvalID, up.ModifyTime = c.job, c.eval.ID, c.now.UnixNano()
			c.plan.AppendAlloc(up)
		}
	}
	if waiting {
		c.followUp(next, structs.EvalTriggerRollingUpdate, "created for the next batch of a rolling update")
	}
	return nil
}

// systemUpdateBudget is how many of a system group's allocations a
// destructive update may replace now, and when the next batch may go.
// Without an update block (or with max_parallel = 0) all go at once (-1).
// Otherwise max_parallel go per batch and batches are a stagger apart:
// none while the newest replacement of this version is younger than the
// stagger.
func (c *planCtx) systemUpdateBudget(tg *structs.TaskGroup) (int, time.Time) {
	if !tg.Rolls() {
		return -1, time.Time{}
	}
	var last int64
	for _, a := range c.allocs {
		if a.TaskGroup == tg.Name && a.PreviousAllocation != "" && c.current(a) {
			last = max(last, a.CreateTime)
		}
	}
	if last != 0 {
		if due := time.Unix(0, last).Add(tg.Update.Stagger); c.now.Before(due) {
			return 0, due
		}
	}
	return tg.Update.MaxParallel, c.now.Add(tg.Update.Stagger)
}

// checkNode checks one given node for one allocation (system jobs). A node
// that fails the static checks is not a placement failure and is not
// offered here.
func (c *planCtx) checkNode(g *groupChecks, a *ask, m *structs.AllocMetric, n *structs.Node) (*candidate, error) {
	m.NodesEvaluated++
	if reason := c.dynamic(g, n); reason != "" {
		m.NodesFiltered++
		incr(&m.ConstraintFiltered, reason)
		return nil, nil
	}
	u, err := c.nodeUsage(n)
	if err != nil {
		return nil, err
	}
	dim, res := c.fit(n, u, a)
	if dim != "" {
		m.NodesExhausted++
		incr(&m.DimensionExhausted, dim)
		if n.NodeClass != "" {
			incr(&m.ClassExhausted, n.NodeClass)
		}
		return nil, nil
	}
	if res == nil {
		res = a.resources()
	}
	for _, s := range g.spreads {
		s.bounds()
	}
	sc := c.score(g, -1, n, u, a, "")
	m.ScoreMetaData = []*structs.NodeScoreMeta{sc.meta(n.ID)}
	return &candidate{node: n, usage: u, res: res, sc: sc}, nil
}

func sortedAllocs(m map[string]*structs.Allocation) []*structs.Allocation {
	out := make([]*structs.Allocation, 0, len(m))
	for _, a := range m {
		out = append(out, a)
	}
	sortByID(out)
	return out
}

// destructive reports whether moving an allocation of group from job old
// to job new needs a new allocation (task config, drivers, resources,
// constraints, networks, disk ... changed). Count, meta, update, restart
// and reschedule policies can be updated in place.
func destructive(old, new *structs.Job, group string) bool {
	if old == nil {
		return true
	}
	a, b := old.LookupTaskGroup(group), new.LookupTaskGroup(group)
	if a == nil || b == nil {
		return true
	}
	if !reflect.DeepEqual(old.Constraints, new.Constraints) || !reflect.DeepEqual(old.Affinities, new.Affinities) ||
		!reflect.DeepEqual(old.Spreads, new.Spreads) || !equalStrings(old.Datacenters, new.Datacenters) || old.NodePool != new.NodePool {
		return true
	}
	if !reflect.DeepEqual(a.Constraints, b.Constraints) || !reflect.DeepEqual(a.Affinities, b.Affinities) ||
		!reflect.DeepEqual(a.Spreads, b.Spreads) || !reflect.DeepEqual(a.Networks, b.Networks) ||
		!reflect.DeepEqual(a.EphemeralDisk, b.EphemeralDisk) || !reflect.DeepEqual(a.Volumes, b.Volumes) ||
		len(a.Tasks) != len(b.Tasks) {
		return true
	}
	for _, t := range a.Tasks {
		u := b.LookupTask(t.Name)
		if u == nil || t.Driver != u.Driver || t.User != u.User ||
			!reflect.DeepEqual(t.Config, u.Config) || !reflect.DeepEqual(t.Env, u.Env) ||
			!reflect.DeepEqual(t.Resources, u.Resources) || !reflect.DeepEqual(t.Constraints, u.Constraints) ||
			!reflect.DeepEqual(t.Affinities, u.Affinities) || !reflect.DeepEqual(t.Templates, u.Templates) ||
			!reflect.DeepEqual(t.VolumeMounts, u.VolumeMounts) || !reflect.DeepEqual(t.Lifecycle, u.Lifecycle) ||
			!reflect.DeepEqual(t.Meta, u.Meta) {
			return true
		}
	}
	return false
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
