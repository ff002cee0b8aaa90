package allocrunner

import (
	"fmt"
	"strconv"
	"time"

	"github.com/skiffhq/skiff/client/driver"
	"github.com/skiffhq/skiff/structs"
)

// Task states (structs.TaskState.State), as in Nomad.
const (
	TaskStatePending = "pending"
	TaskStateRunning = "running"
	TaskStateDead    = "dead"
)

// Task event types (structs.TaskEvent.Type), as Nomad names them, so that
// tools built for Nomad read them.
const (
	EventReceived       = "Received"
	EventSetup          = "Task Setup"
	EventSetupFailure   = "Setup Failure"
	EventStarted        = "Started"
	EventTerminated     = "Terminated"
	EventRestarting     = "Restarting"
	EventNotRestarting  = "Not Restarting"
	EventKilling        = "Killing"
	EventKilled         = "Killed"
	EventDriverFailure  = "Driver Failure"
	EventSiblingFailed  = "Sibling Task Failed"
	EventLeaderDead     = "Leader Task Dead"
	EventRestartSignal  = "Restart Signaled"
	maxEventsPerTask    = 10
	defaultKillSignal   = "SIGTERM"
	defaultKillTimeout  = 5 * time.Second
	detailExitCode      = "exit_code"
	detailSignal        = "signal"
	detailOOMKilled     = "oom_killed"
	detailStartDelay    = "start_delay"
	detailKillTimeout   = "kill_timeout"
	detailKillSignal    = "kill_signal"
	detailFailedSibling = "failed_sibling"
	detailRestartReason = "restart_reason"
	detailError         = "error"
)

// newEvent returns an event of type typ at now whose message is msg (the
// same text in Message and DisplayMessage, which `alloc status` shows).
func newEvent(now time.Time, typ, msg string) *structs.TaskEvent {
	return &structs.TaskEvent{Type: typ, Time: now.UnixNano(), Message: msg, DisplayMessage: msg}
}

func withDetail(e *structs.TaskEvent, k, v string) *structs.TaskEvent {
	if e.Details == nil {
		e.Details = map[string]string{}
	}
	e.Details[k] = v
	return e
}

// terminatedEvent describes how an instance of a task ended.
func terminatedEvent(now time.Time, res *driver.ExitResult) *structs.TaskEvent {
	var msg string
	switch {
	case res.Err != nil:
		msg = fmt.Sprintf("Task lost: %v", res.Err)
	case res.OOMKilled:
		msg = fmt.Sprintf("OOM Killed (exit code %d)", res.ExitCode)
	case res.Signal != 0:
		msg = fmt.Sprintf("Exit Code: %d, Signal: %d", res.ExitCode, res.Signal)
	default:
		msg = fmt.Sprintf("Exit Code: %d", res.ExitCode)
	}
	e := newEvent(now, EventTerminated, msg)
	e.ExitCode, e.Signal = res.ExitCode, res.Signal
	withDetail(e, detailExitCode, strconv.Itoa(res.ExitCode))
	withDetail(e, detailSignal, strconv.Itoa(res.Signal))
	withDetail(e, detailOOMKilled, strconv.FormatBool(res.OOMKilled))
	if res.Err != nil {
		withDetail(e, detailError, res.Err.Error())
	}
	return e
}

func restartingEvent(now time.Time, delay time.Duration, reason string) *structs.TaskEvent {
	e := newEvent(now, EventRestarting, fmt.Sprintf("Task restarting in %s", delay.Round(time.Millisecond)))
	withDetail(e, detailStartDelay, strconv.FormatInt(int64(delay), 10))
	return withDetail(e, detailRestartReason, reason)
}

func killingEvent(now time.Time, signal string, timeout time.Duration) *structs.TaskEvent {
	e := newEvent(now, EventKilling, fmt.Sprintf("Sent %s, waiting %s before force killing", signal, timeout))
	withDetail(e, detailKillSignal, signal)
	return withDetail(e, detailKillTimeout, timeout.String())
}

func siblingFailedEvent(now time.Time, sibling string) *structs.TaskEvent {
	e := newEvent(now, EventSiblingFailed, fmt.Sprintf("Task's sibling %q failed", sibling))
	return withDetail(e, detailFailedSibling, sibling)
}

func leaderDeadEvent(now time.Time, leader string) *structs.TaskEvent {
	return newEvent(now, EventLeaderDead, fmt.Sprintf("Leader task %q is dead", leader))
}

// copyTaskState returns a copy of s whose event list may be appended to
// without touching s. Events themselves are never changed once recorded.
func copyTaskState(s *structs.TaskState) *structs.TaskState {
	if s == nil {
		return nil
	}
	c := *s
	c.Events = append([]*structs.TaskEvent(nil), s.Events...)
	return &c
}
