// Package state is the client's local database: the allocations this node
// runs, and per task the driver handle, the task state and the restart
// bookkeeping. It is what lets an agent killed with SIGKILL come back,
// re-attach to its running tasks and carry on where it was.
//
// Two implementations share one contract: BoltDB, a file under the
// client's data dir written with an fsync per change, and MemDB for tests.
// Both store encoded copies, so callers never share memory with the store.
package state

import (
	"time"

	"github.com/skiffhq/skiff/client/driver"
	"github.com/skiffhq/skiff/structs"
)

// DB is the client's persistent state. Every method is safe for concurrent
// use. A write has reached stable storage when it returns nil. Errors say
// what failed and where; a damaged store is reported by Open, or by a read
// with an error naming the file.
type DB interface {
	// PutAlloc stores the allocation (with its job), replacing any earlier
	// version.
	PutAlloc(alloc *structs.Allocation) error
	// Allocs returns every stored allocation, in no particular order.
	Allocs() ([]*structs.Allocation, error)
	// PutTaskState stores the local state of one task of an allocation.
	PutTaskState(allocID, task string, s *LocalTaskState) error
	// TaskStates returns the local states of the allocation's tasks by task
	// name; an allocation without any gives an empty map, not an error.
	TaskStates(allocID string) (map[string]*LocalTaskState, error)
	// DeleteAlloc removes the allocation and the states of its tasks. A
	// missing allocation is not an error.
	DeleteAlloc(allocID string) error
	// Close releases the store. Calls after Close fail.
	Close() error
}

// LocalTaskState is what the client keeps about one task between agent
// restarts.
type LocalTaskState struct {
	// Handle is the driver's handle of the task's current instance, nil
	// when no instance has been started or the last one was cleaned up.
	Handle *driver.TaskHandle
	// State is the task state as reported to the servers.
	State *structs.TaskState
	// Restart is the restart-policy bookkeeping.
	Restart RestartState
}

// RestartState is the restart-policy bookkeeping of a task, enough to
// resume the policy after an agent restart.
type RestartState struct {
	// IntervalStart is when the current restart interval began; zero
	// before the task first exited.
	IntervalStart time.Time
	// Count is how many exits were counted against the policy's Attempts
	// within the current interval.
	Count int
	// NextStart is when a restart that was decided is due; zero when no
	// restart is pending.
	NextStart time.Time
}
