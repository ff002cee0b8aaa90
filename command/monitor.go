package command

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/structs"
)

// Exit codes of commands that follow an evaluation.
const (
	exitOK               = 0
	exitError            = 1
	exitPlacementFailure = 2
)

// pollInterval is the pause between reads of an evaluation when the agent
// answers a blocking query without waiting (it does not block, or the
// index did not move).
var pollInterval = 250 * time.Millisecond

// monitor follows an evaluation the CLI just created and reports how it
// ended. The steps are:
//
//  1. wait for the evaluation to be processed (waitEval), bounded by the
//     timeout: an evaluation still pending then is reported and is not an
//     error, since no scheduler may be running yet;
//  2. follow NextEval when the scheduler failed and chained a retry;
//  3. report the outcome (reportEval): placement failures exit 2;
//  4. follow the registered version's deployment, if it has one, until it
//     ends (successful 0, failed 2); else the placed allocations until
//     they run.
type monitor struct {
	*Meta
	client  *api.Client
	timeout time.Duration
	verbose bool
	// listAllocs makes a successful report list the allocations the
	// evaluation placed (job run), rather than only its status (job stop).
	listAllocs bool
	// jobID and jobModifyIndex, when set, name the job version just
	// registered: its deployment, if it has one, is followed to its end
	// (monitor_deployment.go).
	jobID          string
	jobModifyIndex uint64
}

// run follows evalID and returns the command's exit code.
func (mon *monitor) run(evalID string) int {
	fmt.Fprintf(mon.stderr, "==> Monitoring evaluation %q\n", shortID(evalID, mon.verbose))
	ctx, cancel := context.WithTimeout(mon.ctx, mon.timeout)
	defer cancel()
	for {
		ev, err := mon.waitEval(ctx, evalID)
		if err != nil {
			if ev != nil && errors.Is(err, context.DeadlineExceeded) && mon.ctx.Err() == nil {
				fmt.Fprintf(mon.stderr, "==> Evaluation %q still %q after %s: no scheduler has processed it yet.\n"+
					"    Follow it with \"skiff eval status %s\".\n", shortID(evalID, mon.verbose), ev.Status, mon.timeout, ev.ID)
				if mon.listAllocs {
					return exitError // job run: nothing is placed yet, so not 0
				}
				return exitOK // job stop: the stop is committed
			}
			return mon.fail(err, "following evaluation %q", shortID(evalID, mon.verbose))
		}
		if ev.Status == structs.EvalStatusFailed && ev.NextEval != "" {
			fmt.Fprintf(mon.stderr, "    Evaluation %q failed; following its retry %q\n",
				shortID(ev.ID, mon.verbose), shortID(ev.NextEval, mon.verbose))
			evalID = ev.NextEval
			continue
		}
		return mon.report(ev)
	}
}

// evalDone reports whether the CLI stops following an evaluation: it
// finished, or it is blocked waiting for capacity.
func evalDone(ev *structs.Evaluation) bool {
	return ev.TerminalStatus() || ev.Status == structs.EvalStatusBlocked
}

// waitEval reads the evaluation with blocking queries until evalDone,
// printing its status changes on stderr. On error it also returns the last
// state it read, if any.
func (mon *monitor) waitEval(ctx context.Context, id string) (*structs.Evaluation, error) {
	var last *structs.Evaluation
	var index uint64
	for {
		// The first read is not bounded by the monitor's timeout: however
		// short that is, it reports the evaluation's state.
		qctx, q := ctx, &api.QueryOptions{WaitIndex: index, WaitTime: blockingWait(ctx)}
		if last == nil {
			qctx, q = mon.ctx, nil
		}
		ev, qm, err := mon.client.Evaluations().Info(qctx, id, q)
		if err != nil {
			return last, err
		}
		switch {
		case last == nil:
			fmt.Fprintf(mon.stderr, "    Evaluation triggered by %s of job %q, status %q\n", ev.TriggeredBy, ev.JobID, ev.Status)
		case last.Status != ev.Status:
			fmt.Fprintf(mon.stderr, "    Evaluation status changed: %q -> %q\n", last.Status, ev.Status)
		}
		last = ev
		if evalDone(ev) {
			return ev, nil
		}
		if !pauseIfNotBlocked(ctx, qm, index) {
			return last, ctx.Err()
		}
		index = qm.LastIndex
	}
}

// blockingWait is how long a blocking query may wait: until ctx's deadline,
// at most five minutes.
func blockingWait(ctx context.Context) time.Duration {
	w := 5 * time.Minute
	if dl, ok := ctx.Deadline(); ok {
		w = min(w, time.Until(dl).Round(time.Millisecond))
	}
	return max(w, time.Millisecond)
}

// report prints how a processed evaluation ended and returns the exit code.
func (mon *monitor) report(ev *structs.Evaluation) int {
	id := shortID(ev.ID, mon.verbose)
	if len(ev.FailedTGAllocs) > 0 || ev.Status == structs.EvalStatusBlocked {
		fmt.Fprintf(mon.stdout, "==> Evaluation %q finished with status %q but failed to place all allocations:\n", id, ev.Status)
		printPlacementFailures(mon.stdout, ev, "    ")
		if ev.BlockedEval != "" {
			fmt.Fprintf(mon.stdout, "    Evaluation %q waiting for additional capacity to place the remainder\n",
				shortID(ev.BlockedEval, mon.verbose))
		}
		return exitPlacementFailure
	}
	if ev.Status != structs.EvalStatusComplete {
		fmt.Fprintf(mon.stderr, "Error: evaluation %q finished with status %q: %s\n", id, ev.Status, orDash(ev.StatusDescription))
		return exitError
	}
	fmt.Fprintf(mon.stdout, "==> Evaluation %q finished with status %q\n", id, ev.Status)
	if !mon.listAllocs {
		return exitOK
	}
	allocs, _, err := mon.client.Evaluations().Allocations(mon.ctx, ev.ID, nil)
	if err != nil {
		return mon.fail(err, "listing the allocations of evaluation %q", id)
	}
	slices.SortFunc(allocs, func(a, b *structs.AllocListStub) int { return cmp.Compare(a.Name, b.Name) })
	for _, a := range allocs {
		fmt.Fprintf(mon.stdout, "    Allocation %q created: node %q, group %q\n",
			shortID(a.ID, mon.verbose), shortID(a.NodeID, mon.verbose), a.TaskGroup)
	}
	if mon.jobModifyIndex != 0 {
		d, err := mon.findDeployment(mon.jobID, mon.jobModifyIndex)
		if err != nil {
			return mon.fail(err, "looking up the deployment of job %q", mon.jobID)
		}
		if d != nil {
			return mon.waitDeployment(d)
		}
	}
	if len(allocs) == 0 {
		fmt.Fprintln(mon.stdout, "    No allocations needed to change")
		return exitOK
	}
	return mon.waitRunning(ev.ID)
}

// allocWait bounds how long "job run" follows placed allocations until
// they run (an image pull may take a while).
var allocWait = time.Minute

// waitRunning follows the allocations an evaluation placed until each
// runs (or completed), printing their status changes. A failed
// allocation exits 2, like a failed deployment; allocations still pending
// when allocWait ends are reported and exit 0 (they are placed).
func (mon *monitor) waitRunning(evalID string) int {
	ctx, cancel := context.WithTimeout(mon.ctx, allocWait)
	defer cancel()
	seen := map[string]string{}
	var index uint64
	for {
		q := &api.QueryOptions{WaitIndex: index, WaitTime: blockingWait(ctx)}
		allocs, qm, err := mon.client.Evaluations().Allocations(ctx, evalID, q)
		if err != nil {
			if ctx.Err() != nil && mon.ctx.Err() == nil {
				fmt.Fprintf(mon.stderr, "==> Allocations placed but not all running after %s; follow them with \"skiff job status\"\n", allocWait)
				return exitOK
			}
			return mon.fail(err, "following the allocations of evaluation %q", shortID(evalID, mon.verbose))
		}
		slices.SortFunc(allocs, func(a, b *structs.AllocListStub) int { return cmp.Compare(a.Name, b.Name) })
		waiting, failed := 0, 0
		for _, a := range allocs {
			if a.DesiredStatus != structs.AllocDesiredStatusRun {
				continue
			}
			if seen[a.ID] != a.ClientStatus {
				seen[a.ID] = a.ClientStatus
				msg := ""
				if a.ClientStatus == structs.AllocClientStatusFailed {
					msg = ": " + orDash(a.ClientDescription) + lastTaskEvent(a)
				}
				fmt.Fprintf(mon.stdout, "    Allocation %q %s%s\n", shortID(a.ID, mon.verbose), a.ClientStatus, msg)
			}
			switch a.ClientStatus {
			case structs.AllocClientStatusRunning, structs.AllocClientStatusComplete:
			case structs.AllocClientStatusFailed, structs.AllocClientStatusLost:
				failed++
			default:
				waiting++
			}
		}
		if failed > 0 {
			fmt.Fprintf(mon.stdout, "==> %s failed; see \"skiff alloc status\"\n", plural(failed, "allocation"))
			return exitPlacementFailure
		}
		if waiting == 0 {
			fmt.Fprintln(mon.stdout, "==> All allocations are running")
			return exitOK
		}
		pauseIfNotBlocked(ctx, qm, index)
		index = qm.LastIndex
	}
}

// lastTaskEvent describes why a stub's task failed: its newest failure
// event (a driver or setup failure, or how it terminated) and, if later,
// its newest event.
func lastTaskEvent(a *structs.AllocListStub) string {
	var last, cause *structs.TaskEvent
	task := ""
	for name, ts := range a.TaskStates {
		for _, e := range ts.Events {
			if last == nil || e.Time > last.Time {
				last, task = e, name
			}
			switch e.Type {
			case "Driver Failure", "Setup Failure", "Terminated":
				if cause == nil || e.Time > cause.Time {
					cause = e
				}
			}
		}
	}
	if last == nil {
		return ""
	}
	desc := func(e *structs.TaskEvent) string { return e.Type + ": " + cmp.Or(e.DisplayMessage, e.Message) }
	if cause != nil && cause != last {
		return fmt.Sprintf(" (task %q: %s; %s)", task, desc(cause), desc(last))
	}
	return fmt.Sprintf(" (task %q: %s)", task, desc(last))
}

// printPlacementFailures explains, per task group, why the scheduler could
// not place an evaluation's allocations.
func printPlacementFailures(w io.Writer, ev *structs.Evaluation, indent string) {
	for _, tg := range slices.Sorted(maps.Keys(ev.FailedTGAllocs)) {
		m := ev.FailedTGAllocs[tg]
		n := ev.QueuedAllocations[tg]
		if n == 0 {
			n = m.CoalescedFailures + 1
		}
		fmt.Fprintf(w, "%sTask Group %q (failed to place %s):\n", indent, tg, plural(n, "allocation"))
		for _, line := range metricLines(m) {
			fmt.Fprintf(w, "%s  * %s\n", indent, line)
		}
	}
}

// metricLines turns an allocation metric into sentences.
func metricLines(m *structs.AllocMetric) []string {
	var out []string
	if m.NodesEvaluated == 0 {
		out = append(out, "No nodes were eligible for evaluation")
	}
	for _, dc := range slices.Sorted(maps.Keys(m.NodesAvailable)) {
		if m.NodesAvailable[dc] == 0 {
			out = append(out, fmt.Sprintf("No nodes are available in datacenter %q", dc))
		}
	}
	for _, c := range slices.Sorted(maps.Keys(m.ClassFiltered)) {
		out = append(out, fmt.Sprintf("Class %q: %s excluded by filter", c, plural(m.ClassFiltered[c], "node")))
	}
	for _, c := range slices.Sorted(maps.Keys(m.ConstraintFiltered)) {
		out = append(out, fmt.Sprintf("Constraint %q: %s excluded by filter", c, plural(m.ConstraintFiltered[c], "node")))
	}
	if m.NodesExhausted > 0 {
		out = append(out, fmt.Sprintf("Resources exhausted on %s", plural(m.NodesExhausted, "node")))
	}
	for _, c := range slices.Sorted(maps.Keys(m.ClassExhausted)) {
		out = append(out, fmt.Sprintf("Class %q exhausted on %s", c, plural(m.ClassExhausted[c], "node")))
	}
	for _, d := range slices.Sorted(maps.Keys(m.DimensionExhausted)) {
		out = append(out, fmt.Sprintf("Dimension %q exhausted on %s", d, plural(m.DimensionExhausted[d], "node")))
	}
	return out
}

// pauseIfNotBlocked waits pollInterval when a blocking read came back at
// once with nothing new (an agent that does not block must not make its
// caller spin). It reports false if ctx ended meanwhile.
func pauseIfNotBlocked(ctx context.Context, qm *api.QueryMeta, index uint64) bool {
	if qm.LastIndex > index || qm.RequestTime >= pollInterval {
		return true
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(pollInterval):
		return true
	}
}
