package scheduler

import (
	"time"

	"github.com/skiffhq/skiff/structs"
)

// Allocations of groups with a disconnect block, on nodes that lose touch.
//
// While the node is disconnected and its lost_after has not passed, such
// an allocation is marked unknown (it may well still run) and, unless
// replace = false, a replacement is placed elsewhere; it does not count
// towards the group's count meanwhile. Once lost_after has passed (a
// follow-up evaluation is due then) it is lost like any other. When the
// node comes back and its client reports the original again, the group's
// reconcile setting chooses which of the two stays: best_score (the
// default), keep_original, keep_replacement or longest_running.

const (
	descUnknown     = "alloc is unknown since its node is disconnected"
	descReconnected = "alloc not needed: the node of its original reconnected"
	descKeptNew     = "alloc not needed: its replacement is kept after the node reconnected"
)

// disconnected handles an allocation of a group with a disconnect block
// on a disconnected node: it reports whether the allocation still counts
// as live (replace = false) and, when it is to be replaced now, the
// placement. Past lost_after it is stopped as lost and replaced.
func (c *planCtx) disconnected(a *structs.Allocation, tg *structs.TaskGroup, n *structs.Node) (live bool, replace *placement) {
	lostAt := time.Unix(n.StatusUpdatedAt, 0).Add(tg.Disconnect.LostAfter)
	if !c.now.Before(lostAt) {
		c.stop(a, descNodeLost, structs.AllocClientStatusLost)
		return false, &placement{tg: tg, name: a.Name, prev: a}
	}
	if a.ClientStatus != structs.AllocClientStatusUnknown {
		up := a.Copy()
		up.ClientStatus, up.ClientDescription = structs.AllocClientStatusUnknown, descUnknown
		up.FollowupEvalID, up.ModifyTime = c.followUp(lostAt, structs.EvalTriggerMaxDisconnectTimeout, "created for the end of a disconnect").ID, c.now.UnixNano()
		c.plan.AppendAlloc(up)
	}
	if r := tg.Disconnect.Replace; r != nil && !*r {
		return true, nil
	}
	if c.hasReplacement(a) {
		return false, nil
	}
	return false, &placement{tg: tg, name: a.Name, prev: a}
}

// hasReplacement reports whether a live allocation replaces a.
func (c *planCtx) hasReplacement(a *structs.Allocation) bool {
	for _, r := range c.allocs {
		if r.PreviousAllocation == a.ID && r.DesiredStatus == structs.AllocDesiredStatusRun && !r.TerminalStatus() && !c.stopped[r.ID] {
			return true
		}
	}
	return false
}

// reconnected settles the live allocations of a group with a disconnect
// block where an original, back on a ready node, and its replacement both
// run: one of the two is stopped. An original whose client has not yet
// reported since it came back (still unknown) waits, counting for
// nothing, while its replacement runs.
func (c *planCtx) reconnected(tg *structs.TaskGroup, live []*structs.Allocation) []*structs.Allocation {
	if tg.Disconnect == nil {
		return live
	}
	replacement := map[string]*structs.Allocation{} // original's ID -> its live replacement
	for _, r := range live {
		if r.PreviousAllocation != "" {
			replacement[r.PreviousAllocation] = r
		}
	}
	drop := map[string]bool{}
	for _, a := range live {
		r := replacement[a.ID]
		if r == nil || drop[a.ID] || drop[r.ID] {
			continue
		}
		if a.ClientStatus == structs.AllocClientStatusUnknown {
			drop[a.ID] = true
			continue
		}
		if keepOriginal(tg.Disconnect.Reconcile, a, r) {
			c.stop(r, descReconnected, "")
			drop[r.ID] = true
		} else {
			c.stop(a, descKeptNew, "")
			drop[a.ID] = true
		}
	}
	if len(drop) == 0 {
		return live
	}
	out := make([]*structs.Allocation, 0, len(live))
	for _, a := range live {
		if !drop[a.ID] {
			out = append(out, a)
		}
	}
	return out
}

// keepOriginal applies a reconcile setting to an original that came back
// and its replacement; ties keep the original.
func keepOriginal(how string, orig, repl *structs.Allocation) bool {
	switch how {
	case "keep_original":
		return true
	case "keep_replacement":
		return false
	case "longest_running":
		o, r := firstStart(orig), firstStart(repl)
		return r.IsZero() || !o.IsZero() && !o.After(r)
	default: // best_score
		return placementScore(orig) >= placementScore(repl)
	}
}

// firstStart is when the allocation's first task started (zero if none).
func firstStart(a *structs.Allocation) time.Time {
	var t time.Time
	for _, s := range a.TaskStates {
		if s != nil && !s.StartedAt.IsZero() && (t.IsZero() || s.StartedAt.Before(t)) {
			t = s.StartedAt
		}
	}
	return t
}

// placementScore is the normalised score the scheduler gave the node the
// allocation was placed on (0 when not recorded).
func placementScore(a *structs.Allocation) float64 {
	if a.Metrics == nil {
		return 0
	}
	for _, m := range a.Metrics.ScoreMetaData {
		if m != nil && m.NodeID == a.NodeID {
			return m.NormScore
		}
	}
	return 0
}

// followUp returns a follow-up evaluation due at when: one already made by
// this plan within followUpWindow of it, else a new one.
func (c *planCtx) followUp(when time.Time, trigger, desc string) *structs.Evaluation {
	for _, e := range c.followUps {
		if d := when.Sub(e.WaitUntil); d >= 0 && d < followUpWindow && e.TriggeredBy == trigger {
			return e
		}
	}
	f := &structs.Evaluation{
		ID: c.newID(), Namespace: c.eval.Namespace, Priority: c.eval.Priority, Type: c.eval.Type,
		TriggeredBy: trigger, JobID: c.eval.JobID, JobModifyIndex: c.job.JobModifyIndex,
		Status: structs.EvalStatusPending, StatusDescription: desc,
		WaitUntil: when, PreviousEval: c.eval.ID,
		CreateTime: c.now.UnixNano(), ModifyTime: c.now.UnixNano(),
	}
	c.followUps = append(c.followUps, f)
	return f
}
