// Package allocrunner runs the allocations placed on this node: one
// AllocRunner per allocation, one task runner per task.
//
// The AllocRunner owns the allocation's directory and lifecycle (prestart
// tasks, then main tasks, poststart hooks once the main tasks run,
// sidecars stopped when the main tasks are done, poststop tasks last; see
// lifecycle.go) and derives the client status from the task states. Each
// task runner owns one task's state machine (see taskstep.go): start
// through the driver, watch for the exit, apply the restart policy, stop
// with the kill signal and timeout.
//
// Concurrency: every state machine is owned by one goroutine and receives
// work through a mailbox that never blocks the sender. The AllocRunner's
// goroutine is started by Run; it starts one goroutine per task and joins
// them all in Shutdown. Driver calls that may block for long (StartTask,
// StopTask) run on goroutines owned by the task runner that report their
// result as events, so a kill or a shutdown is never stuck behind an
// image pull.
//
// Persistence: each task runner writes its driver handle, task state and
// restart bookkeeping to the client state DB on every change, before the
// AllocRunner reports it to the servers, so an agent killed at any point
// re-attaches to the same containers after Restore and never starts a
// second copy of a running task.
package allocrunner
