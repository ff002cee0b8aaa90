package scheduler

import (
	"cmp"
	"slices"
	"time"

	"github.com/skiffhq/skiff/structs"
)

// placement is one allocation to place.
type placement struct {
	tg   *structs.TaskGroup
	name string
	// prev is the allocation this one replaces (lost, migrated, failed or
	// destructively updated), or nil.
	prev       *structs.Allocation
	reschedule bool // prev failed: record the reschedule, avoid its node
	update     bool // prev is stopped for a destructive update: kept if this finds no node
	canary     bool // a canary of the version's deployment (deployment.go)
	node       *structs.Node
}

// followUpWindow batches delayed reschedules due within it into one
// follow-up evaluation.
const followUpWindow = 5 * time.Second

// reconcileGeneric plans a service or batch job: it stops what is no
// longer wanted, updates in place what can be, and places the rest.
func (c *planCtx) reconcileGeneric() error {
	c.decideCanaries()
	for _, a := range c.allocs {
		if !a.TerminalStatus() && c.job.LookupTaskGroup(a.TaskGroup) == nil {
			c.stop(a, descGroupRemoved, "")
		}
	}
	var places []placement
	for _, tg := range c.job.TaskGroups {
		ps, err := c.reconcileGroup(tg)
		if err != nil {
			return err
		}
		places = append(places, ps...)
	}
	c.syncDesiredTotals()
	if err := c.placeAll(places); err != nil {
		return err
	}
	c.markBlocked()
	return nil
}

// reconcileGroup decides the stops, in-place updates and placements of
// one group.
func (c *planCtx) reconcileGroup(tg *structs.TaskGroup) ([]placement, error) {
	c.queued[tg.Name] = 0
	held, live, replace, err := c.classify(tg)
	if err != nil {
		return nil, err
	}
	live, canaries := c.splitCanaries(tg, live)
	kept, budget := c.keep(tg, held, live)
	places := c.update(tg, kept)
	places = append(places, c.placeCanaries(tg, canaries)...)
	return c.name(tg, held, budget-len(kept), replace, places), nil
}

// classify sorts the group's allocations: held are the indexes of
// finished or failed allocations that are not to be placed again; live are
// running allocations on healthy nodes; replace are placements for
// allocations lost, migrated or rescheduled now (their stops are planned).
func (c *planCtx) classify(tg *structs.TaskGroup) (held map[int]bool, live []*structs.Allocation, replace []placement, err error) {
	batch := c.job.Type == structs.JobTypeBatch
	held = map[int]bool{}
	for _, a := range c.allocs {
		if a.TaskGroup != tg.Name || a.DesiredStatus != structs.AllocDesiredStatusRun {
			continue
		}
		switch a.ClientStatus {
		case structs.AllocClientStatusComplete:
			if batch {
				held[allocIndex(a.Name)] = true
			}
			continue
		case structs.AllocClientStatusLost:
			continue
		case structs.AllocClientStatusFailed:
			if a.NextAllocation != "" {
				continue
			}
			switch {
			case c.failedAlloc(a, tg):
				replace = append(replace, placement{tg: tg, name: a.Name, prev: a, reschedule: true})
			case !c.current(a):
				// Out of reschedules, but of an older version: the new
				// version places its own (a rollback must fill the slot
				// of the version that failed).
			default:
				held[allocIndex(a.Name)] = true
			}
			continue
		}
		n, err := c.node(a.NodeID)
		if err != nil {
			return nil, nil, nil, err
		}
		switch {
		case n == nil || n.Status == structs.NodeStatusDown ||
			(n.Status == structs.NodeStatusDisconnected && tg.Disconnect == nil):
			// A disconnected node counts as down unless the group
			// tolerates disconnects (disconnect.go).
			c.stop(a, descNodeLost, structs.AllocClientStatusLost)
			replace = append(replace, placement{tg: tg, name: a.Name, prev: a})
		case n.Status == structs.NodeStatusDisconnected:
			isLive, p := c.disconnected(a, tg, n)
			if isLive {
				live = append(live, a)
			}
			if p != nil {
				replace = append(replace, *p)
			}
		case n.DrainStrategy != nil && a.DesiredTransition.ShouldMigrate():
			// The drainer lets allocations leave a draining node a few at
			// a time (the group's migrate max_parallel); the others stay.
			c.stop(a, descMigrating, "")
			replace = append(replace, placement{tg: tg, name: a.Name, prev: a})
		default:
			live = append(live, a)
		}
	}
	return held, c.reconnected(tg, live), replace, nil
}

// current reports whether an allocation runs the job's current version.
func (c *planCtx) current(a *structs.Allocation) bool {
	return a.Job != nil && a.Job.Version == c.job.Version && a.Job.JobModifyIndex == c.job.JobModifyIndex
}

// keep keeps the live allocations with the lowest indexes, up to count
// minus the held indexes, marking their indexes held; it stops the rest,
// highest index first. budget is how many allocations may run besides
// the held ones.
func (c *planCtx) keep(tg *structs.TaskGroup, held map[int]bool, live []*structs.Allocation) (kept []*structs.Allocation, budget int) {
	// By index; of two with the same index (a promoted canary and the
	// allocation it shadows) the current version's first.
	older := func(a *structs.Allocation) int {
		if c.current(a) {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(live, func(x, y *structs.Allocation) int {
		return cmp.Or(cmp.Compare(allocIndex(x.Name), allocIndex(y.Name)), cmp.Compare(older(x), older(y)), cmp.Compare(x.CreateIndex, y.CreateIndex))
	})
	inRange := 0
	for i := range held {
		if i >= 0 && i < tg.Count {
			inRange++
		}
	}
	budget = max(tg.Count-inRange, 0)
	for _, a := range live {
		if len(kept) < budget && !held[allocIndex(a.Name)] {
			kept = append(kept, a)
			held[allocIndex(a.Name)] = true
		}
	}
	for i := len(live) - 1; i >= 0; i-- {
		if !slices.Contains(kept, live[i]) {
			c.stop(live[i], descNotNeeded, "")
		}
	}
	return kept, budget
}

// update moves kept allocations to the job's version: in place when
// possible, else by a stop and a placement (returned).
func (c *planCtx) update(tg *structs.TaskGroup, kept []*structs.Allocation) []placement {
	var places []placement
	budget := c.updateBudget(tg) // -1: any number
	for _, a := range kept {
		if c.current(a) {
			continue
		}
		if destructive(a.Job, c.job, tg.Name) {
			if budget == 0 {
				continue // a rolling update: it waits for the replacements in flight
			}
			if budget > 0 {
				budget--
			}
			c.stop(a, descUpdating, "")
			places = append(places, placement{tg: tg, name: a.Name, prev: a, update: true})
			continue
		}
		up := a.Copy()
		up.Job, up.EvalID, up.ModifyTime = c.job, c.eval.ID, c.now.UnixNano()
		if d := c.deploymentFor(tg); d != nil {
			// It joins the version's deployment with the health it has
			// (a nil DeploymentStatus keeps the stored one); one never
			// judged is judged by its client.
			up.DeploymentID = d.ID
		}
		c.plan.AppendAlloc(up)
	}
	return places
}

// name completes places (destructive updates) with want more: the
// replacements first, then new allocations. Replacements keep their names
// when free; new names take the lowest free indexes.
func (c *planCtx) name(tg *structs.TaskGroup, held map[int]bool, want int, replace, places []placement) []placement {
	for _, p := range replace {
		if want <= 0 {
			break
		}
		if i := allocIndex(p.name); i < 0 || i >= tg.Count || held[i] {
			p.name = ""
		} else {
			held[i] = true
		}
		places = append(places, p)
		want--
	}
	next := 0
	for i := range places {
		if places[i].name != "" {
			continue
		}
		for held[next] {
			next++
		}
		held[next] = true
		places[i].name = allocName(c.job.ID, tg.Name, next)
	}
	for ; want > 0; want-- {
		for held[next] {
			next++
		}
		held[next] = true
		places = append(places, placement{tg: tg, name: allocName(c.job.ID, tg.Name, next)})
	}
	return places
}

// failedAlloc applies the group's reschedule policy to a failed
// allocation: it reports true to replace it now; when the replacement is
// delayed it creates (once) the follow-up evaluation that will do it.
func (c *planCtx) failedAlloc(a *structs.Allocation, tg *structs.TaskGroup) bool {
	when, ok := c.rescheduleTime(a, tg.ReschedulePolicy)
	if !ok {
		return false
	}
	if !when.After(c.now) || (a.FollowupEvalID != "" && a.FollowupEvalID == c.eval.ID) {
		return true
	}
	if a.FollowupEvalID != "" {
		return false // a follow-up evaluation is already waiting
	}
	f := c.followUp(when, structs.EvalTriggerRetryFailed, "created for delayed rescheduling")
	up := a.Copy()
	up.FollowupEvalID, up.ModifyTime = f.ID, c.now.UnixNano()
	c.plan.AppendAlloc(up)
	return false
}

// rescheduleTime returns when a failed allocation may be replaced, and
// false when its policy allows no more attempts.
func (c *planCtx) rescheduleTime(a *structs.Allocation, p *structs.ReschedulePolicy) (time.Time, bool) {
	if p == nil || (!p.Unlimited && p.Attempts <= 0) {
		return time.Time{}, false
	}
	var events []*structs.RescheduleEvent
	if a.RescheduleTracker != nil {
		events = a.RescheduleTracker.Events
	}
	if !p.Unlimited {
		n := 0
		for _, e := range events {
			if p.Interval <= 0 || c.now.Sub(time.Unix(0, e.RescheduleTime)) < p.Interval {
				n++
			}
		}
		if n >= p.Attempts {
			return time.Time{}, false
		}
	}
	return failTime(a, c.now).Add(rescheduleDelay(p, events)), true
}

// rescheduleDelay is the policy's delay for the next attempt after events.
func rescheduleDelay(p *structs.ReschedulePolicy, events []*structs.RescheduleEvent) time.Duration {
	d := p.Delay
	n := len(events)
	switch p.DelayFunction {
	case "exponential":
		if n > 0 {
			d = max(events[n-1].Delay, p.Delay) * 2
		}
	case "fibonacci":
		if n >= 2 {
			d = events[n-1].Delay + events[n-2].Delay
		}
	}
	if p.MaxDelay > 0 && d > p.MaxDelay {
		d = p.MaxDelay
	}
	return d
}

// failTime is when an allocation failed: its last task finish, else its
// last modification, else now.
func failTime(a *structs.Allocation, now time.Time) time.Time {
	var t time.Time
	for _, s := range a.TaskStates {
		if s != nil && s.FinishedAt.After(t) {
			t = s.FinishedAt
		}
	}
	if t.IsZero() && a.ModifyTime != 0 {
		t = time.Unix(0, a.ModifyTime)
	}
	if t.IsZero() {
		t = now
	}
	return t
}

// placeAll places every placement, group by group. After the first failure
// of a group its remaining placements are counted as coalesced failures.
func (c *planCtx) placeAll(places []placement) error {
	var g *groupChecks
	var a *ask
	for _, p := range places {
		if g == nil || g.tg != p.tg {
			g, a = newGroupChecks(c.job, p.tg, c.set, c.classOK), newAsk(p.tg)
			c.prepareSpreads(g)
		}
		if m := c.failed[p.tg.Name]; m != nil {
			if p.update {
				c.unstop(p.prev)
			}
			m.CoalescedFailures++
			c.queued[p.tg.Name]++
			continue
		}
		if _, err := c.placeOne(g, a, p); err != nil {
			return err
		}
	}
	return nil
}

// newMetric returns a metric with the node counts of the attempt.
func (c *planCtx) newMetric() *structs.AllocMetric {
	m := &structs.AllocMetric{}
	if c.set == nil { // the nodes were not read: nothing to place
		return m
	}
	m.NodesInPool = c.set.inPool
	if len(c.set.dcAvail) > 0 {
		m.NodesAvailable = c.set.dcAvail // read-only, as the set: shared by the plan's metrics
	}
	return m
}

// placeOne places one allocation, on p.node when set, else on the best
// node. A failure is recorded in c.failed and c.queued.
func (c *planCtx) placeOne(g *groupChecks, a *ask, p placement) (bool, error) {
	m := c.newMetric()
	penalty := ""
	if p.reschedule {
		penalty = p.prev.NodeID
	}
	var cand *candidate
	var err error
	if p.node != nil {
		cand, err = c.checkNode(g, a, m, p.node)
	} else {
		cand, err = c.selectNode(g, a, m, penalty)
	}
	if err != nil {
		return false, err
	}
	if cand == nil {
		if p.update {
			c.unstop(p.prev)
		}
		if first := c.failed[p.tg.Name]; first != nil {
			mergeMetric(first, m)
		} else {
			c.failed[p.tg.Name] = m
		}
		c.queued[p.tg.Name]++
		return false, nil
	}
	now := c.now.UnixNano()
	alloc := &structs.Allocation{
		ID: c.newID(), Namespace: c.job.Namespace, EvalID: c.eval.ID, Name: p.name,
		NodeID: cand.node.ID, NodeName: cand.node.Name, JobID: c.job.ID, Job: c.job,
		TaskGroup: p.tg.Name, AllocatedResources: cand.res, Metrics: m,
		DesiredStatus: structs.AllocDesiredStatusRun, ClientStatus: structs.AllocClientStatusPending,
		CreateTime: now, ModifyTime: now,
	}
	if p.canary {
		d := c.planDeployment(p.tg)
		alloc.DeploymentID = d.ID
		alloc.DeploymentStatus = &structs.AllocDeploymentStatus{Canary: true}
		st := d.TaskGroups[p.tg.Name]
		st.PlacedCanaries = append(st.PlacedCanaries, alloc.ID)
	} else if d := c.deploymentFor(p.tg); d != nil {
		alloc.DeploymentID = d.ID
	}
	if p.prev != nil {
		alloc.PreviousAllocation = p.prev.ID
		if p.reschedule {
			var events []*structs.RescheduleEvent
			if p.prev.RescheduleTracker != nil {
				events = slices.Clone(p.prev.RescheduleTracker.Events)
			}
			events = append(events, &structs.RescheduleEvent{
				RescheduleTime: now, PrevAllocID: p.prev.ID, PrevNodeID: p.prev.NodeID,
				Delay: rescheduleDelay(p.tg.ReschedulePolicy, events),
			})
			alloc.RescheduleTracker = &structs.RescheduleTracker{Events: events}
			c.stop(p.prev, descRescheduled, "")
		}
		for _, s := range c.plan.NodeUpdate[p.prev.NodeID] {
			if s.ID == p.prev.ID {
				s.NextAllocation = alloc.ID
			}
		}
	}
	c.plan.AppendAlloc(alloc)
	cand.usage.add(alloc)
	c.jobOn[cand.node.ID] = append(c.jobOn[cand.node.ID], alloc)
	c.countSpread(g, cand.node, 1)
	return true, nil
}

// mergeMetric folds the metric of a later failed placement into the first.
func mergeMetric(into, m *structs.AllocMetric) {
	into.CoalescedFailures++
	into.NodesEvaluated += m.NodesEvaluated
	into.NodesFiltered += m.NodesFiltered
	into.NodesExhausted += m.NodesExhausted
	for k, v := range m.ConstraintFiltered {
		into.ConstraintFiltered = addTo(into.ConstraintFiltered, k, v)
	}
	for k, v := range m.DimensionExhausted {
		into.DimensionExhausted = addTo(into.DimensionExhausted, k, v)
	}
	for k, v := range m.ClassExhausted {
		into.ClassExhausted = addTo(into.ClassExhausted, k, v)
	}
}

func addTo(m structs.Counts, k string, v int) structs.Counts {
	if m == nil {
		m = map[string]int{}
	}
	m[k] += v
	return m
}

func sortByID(allocs []*structs.Allocation) {
	slices.SortFunc(allocs, func(a, b *structs.Allocation) int { return cmp.Compare(a.ID, b.ID) })
}
