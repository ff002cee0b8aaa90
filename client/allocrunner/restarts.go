package allocrunner

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/skiffhq/skiff/client/state"
	"github.com/skiffhq/skiff/structs"
)

// restartDecision is what to do after an instance of a task ended.
type restartDecision struct {
	restart bool
	delay   time.Duration // before the next start, when restart
	reason  string        // for the Restarting or Not Restarting event
	failed  bool          // when !restart: the task failed (else it completed)
}

// decideRestart applies a restart policy to one end of a task instance:
// an exit (success says whether it exited 0 on its own) or a failure to
// start. completes says a successful exit ends the task (batch jobs,
// and lifecycle hooks that are not sidecars); otherwise every end counts
// against the policy, as for Nomad's service jobs. It updates the
// bookkeeping in st, which the caller persists. jitter returns the extra
// delay added to p.Delay.
//
// Within p.Interval at most p.Attempts restarts happen, each after
// p.Delay. Past that, mode "fail" fails the task, and mode "delay" waits
// until the interval is over, when the count starts again.
func decideRestart(p *structs.RestartPolicy, completes, success bool, st *state.RestartState,
	now time.Time, jitter func(time.Duration) time.Duration) restartDecision {
	if success && completes {
		return restartDecision{reason: "task completed successfully"}
	}
	if st.IntervalStart.IsZero() || now.Sub(st.IntervalStart) >= p.Interval {
		st.IntervalStart, st.Count = now, 0
	}
	st.Count++
	if st.Count <= p.Attempts {
		return restartDecision{restart: true, delay: p.Delay + jitter(p.Delay), reason: "restart within policy"}
	}
	if p.Mode == structs.RestartModeDelay {
		wait := max(st.IntervalStart.Add(p.Interval).Sub(now), p.Delay)
		return restartDecision{restart: true, delay: wait, reason: fmt.Sprintf(
			"exceeded %d restart attempts in %s; restart mode is \"delay\", so waiting for the interval to end", p.Attempts, p.Interval)}
	}
	if p.Attempts == 0 {
		return restartDecision{failed: true, reason: "restart policy allows no restarts"}
	}
	return restartDecision{failed: true, reason: fmt.Sprintf(
		"exceeded %d restart attempts in %s and restart mode is \"fail\"", p.Attempts, p.Interval)}
}

// randomJitter returns up to a quarter of d, so that tasks failing
// together do not restart in lockstep.
func randomJitter(d time.Duration) time.Duration {
	if d < 4 {
		return 0
	}
	return rand.N(d / 4)
}

// restartPolicy returns the task's policy, else its group's, else the
// default of the job type.
func restartPolicy(job *structs.Job, tg *structs.TaskGroup, t *structs.Task) *structs.RestartPolicy {
	switch {
	case t.RestartPolicy != nil:
		return t.RestartPolicy
	case tg.RestartPolicy != nil:
		return tg.RestartPolicy
	}
	return structs.DefaultRestartPolicy(job.Type)
}
