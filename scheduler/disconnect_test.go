package scheduler

import (
	"testing"
	"time"

	"github.com/skiffhq/skiff/structs"
)

// disconnectSetup places a 4-allocation job whose group has a disconnect
// block on 4 nodes, then disconnects the node of one allocation and runs
// the node-update evaluation. It returns the job, that node and the
// original allocation on it.
func disconnectSetup(t *testing.T, h *harness, d *structs.DisconnectStrategy) (*structs.Job, string, *structs.Allocation) {
	t.Helper()
	addTestNodes(h, 4, 4)
	j := testJob("web", structs.JobTypeService, 4)
	j.TaskGroups[0].Disconnect = d
	job := h.addJob(j)
	h.process(job, structs.EvalTriggerJobRegister)
	orig := h.liveAllocs(job)[0]
	// The client last said it runs, since a minute ago.
	started := h.now.Add(-time.Minute)
	h.clientReports(orig, structs.AllocClientStatusRunning, started)
	if err := h.store.UpdateNodeStatus(h.next(), orig.NodeID, structs.NodeStatusDisconnected, h.now.Unix()); err != nil {
		t.Fatal(err)
	}
	h.process(job, structs.EvalTriggerNodeUpdate)
	return job, orig.NodeID, orig
}

// clientReports stores a client update of a: its status, and one task
// started at started.
func (h *harness) clientReports(a *structs.Allocation, status string, started time.Time) {
	h.t.Helper()
	u := &structs.Allocation{ID: a.ID, ClientStatus: status, TaskStates: map[string]*structs.TaskState{
		"app": {State: "running", StartedAt: started},
	}}
	if err := h.store.UpdateAllocsFromClient(h.next(), []*structs.Allocation{u}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) alloc(id string) *structs.Allocation {
	h.t.Helper()
	a, err := h.store.AllocByID(nil, id)
	if err != nil || a == nil {
		h.t.Fatalf("alloc %s: %v %v", id, a, err)
	}
	return a
}

// replacementOf returns the live allocation that replaces id, or nil.
func (h *harness) replacementOf(job *structs.Job, id string) *structs.Allocation {
	for _, a := range h.liveAllocs(job) {
		if a.PreviousAllocation == id {
			return a
		}
	}
	return nil
}

// TestDisconnectMarksUnknownAndReplaces: an allocation on a disconnected
// node of a group with a disconnect block is marked unknown, not stopped;
// a replacement runs elsewhere; a follow-up evaluation is due at
// lost_after; evaluating again changes nothing.
func TestDisconnectMarksUnknownAndReplaces(t *testing.T) {
	h := newHarness(t)
	job, node, orig := disconnectSetup(t, h, &structs.DisconnectStrategy{LostAfter: 10 * time.Minute})
	got := h.alloc(orig.ID)
	if got.ClientStatus != structs.AllocClientStatusUnknown || got.DesiredStatus != structs.AllocDesiredStatusRun {
		t.Fatalf("original: %s/%s, want run/unknown", got.DesiredStatus, got.ClientStatus)
	}
	if len(stopped(h.lastPlan())) != 0 {
		t.Errorf("the plan stops %d allocations, want none", len(stopped(h.lastPlan())))
	}
	r := h.replacementOf(job, orig.ID)
	if r == nil || r.NodeID == node || r.Name != orig.Name {
		t.Fatalf("replacement = %+v, want one named %s off node %s", r, orig.Name, node)
	}
	if len(h.created) != 1 || h.created[0].TriggeredBy != structs.EvalTriggerMaxDisconnectTimeout ||
		!h.created[0].WaitUntil.Equal(time.Unix(h.now.Unix(), 0).Add(10*time.Minute)) || got.FollowupEvalID != h.created[0].ID {
		t.Fatalf("follow-ups %+v (alloc's %q), want one max-disconnect-timeout due in 10m", h.created, got.FollowupEvalID)
	}
	plans := len(h.plans)
	h.process(job, structs.EvalTriggerNodeUpdate)
	if len(h.plans) != plans {
		t.Errorf("a second evaluation submitted %+v, want nothing", h.lastPlan())
	}
	if n := len(h.liveAllocs(job)); n != 5 {
		t.Errorf("%d non-terminal allocations, want 4 plus the unknown one", n)
	}

	// lost_after passes: the original is lost; nothing more is placed.
	h.now = h.now.Add(10*time.Minute + time.Second)
	h.process(job, structs.EvalTriggerMaxDisconnectTimeout)
	if got := h.alloc(orig.ID); got.ClientStatus != structs.AllocClientStatusLost || got.DesiredStatus != structs.AllocDesiredStatusStop {
		t.Errorf("original after lost_after: %s/%s, want stop/lost", got.DesiredStatus, got.ClientStatus)
	}
	if n := len(h.liveAllocs(job)); n != 4 {
		t.Errorf("%d live allocations after lost_after, want 4", n)
	}
}

// TestDisconnectWithoutReplace: replace = false keeps the original as
// the group's instance: unknown, with no replacement.
func TestDisconnectWithoutReplace(t *testing.T) {
	h := newHarness(t)
	no := false
	job, _, orig := disconnectSetup(t, h, &structs.DisconnectStrategy{LostAfter: time.Hour, Replace: &no})
	if got := h.alloc(orig.ID); got.ClientStatus != structs.AllocClientStatusUnknown {
		t.Fatalf("original is %s, want unknown", got.ClientStatus)
	}
	if r := h.replacementOf(job, orig.ID); r != nil {
		t.Fatalf("replacement %s placed although replace = false", r.ID)
	}
	if n := len(h.liveAllocs(job)); n != 4 {
		t.Errorf("%d live allocations, want 4", n)
	}
}

// TestReconnectKeepsOneCopy: when the node comes back and its client
// reports the original running, the reconcile setting picks one of the
// original and its replacement and stops the other. Until the client has
// reported, both stay.
func TestReconnectKeepsOneCopy(t *testing.T) {
	for _, tc := range []struct {
		reconcile    string
		keepOriginal bool
	}{
		{"keep_original", true},
		{"keep_replacement", false},
		{"longest_running", true}, // the original started a minute earlier
		{"best_score", true},      // scores tie in this harness: the original stays
	} {
		t.Run(tc.reconcile, func(t *testing.T) {
			h := newHarness(t)
			job, node, orig := disconnectSetup(t, h, &structs.DisconnectStrategy{LostAfter: time.Hour, Reconcile: tc.reconcile})
			repl := h.replacementOf(job, orig.ID)
			if repl == nil {
				t.Fatal("no replacement")
			}
			h.clientReports(repl, structs.AllocClientStatusRunning, h.now)
			if tc.reconcile == "best_score" && placementScore(orig) < placementScore(repl) {
				tc.keepOriginal = false
			}
			if err := h.store.UpdateNodeStatus(h.next(), node, structs.NodeStatusReady, h.now.Unix()); err != nil {
				t.Fatal(err)
			}
			// Back, but its client has not reported yet: nothing stops.
			h.process(job, structs.EvalTriggerNodeUpdate)
			if h.alloc(orig.ID).TerminalStatus() || h.alloc(repl.ID).TerminalStatus() {
				t.Fatal("an allocation was stopped before the returning client reported")
			}
			h.clientReports(orig, structs.AllocClientStatusRunning, h.now.Add(-time.Minute))
			h.process(job, structs.EvalTriggerAllocStop)
			o, r := h.alloc(orig.ID), h.alloc(repl.ID)
			if o.TerminalStatus() == tc.keepOriginal || r.TerminalStatus() != tc.keepOriginal {
				t.Fatalf("original stopped %v, replacement stopped %v; want the original kept = %v",
					o.TerminalStatus(), r.TerminalStatus(), tc.keepOriginal)
			}
			if n := len(h.live(job)); n != 4 {
				t.Errorf("%d live allocations, want 4", n)
			}
		})
	}
}
