// Package state is the cluster state of a Skiff server: jobs and their
// versions and summaries, evaluations, allocations, nodes and deployments,
// in memory, indexed, on github.com/hashicorp/go-memdb.
//
// # Who writes, who reads
//
//	raft log --> FSM.Apply --> Store.UpsertX / DeleteX (index = raft index)
//	                                |
//	                     memdb write txn, one at a time
//	                                v
//	       +---------------- immutable radix trees ----------------+
//	       |                        |                              |
//	 Store.JobByID(ws, ...)   Store.Snapshot()             FSM.Snapshot
//	 (latest state)           (scheduler, RPC, Block)      (Persist to disk)
//
// The FSM is the only writer. Each write method runs in one memdb
// transaction at a raft index: it sets the CreateIndex and ModifyIndex of
// the rows it writes, keeps derived data (job versions, job summaries, job
// status) consistent in the same transaction, and moves the index-table
// entry of every table it writes to that raft index. A write that fails
// leaves no trace.
//
// # Immutability
//
// memdb trees are persistent: a write copies the path to what it changes
// and readers keep the old root. So Snapshot costs a few pointer copies, a
// read never blocks a write, and rows are shared, never copied, on the way
// out. The price is a rule: a stored object is never modified. Writers copy
// their input before setting fields on it and copy a stored row before
// changing it (a shallow copy when only top-level fields change; nested
// values are immutable too); readers do not modify what they get.
//
// # Blocking queries
//
// Every read takes a memdb.WatchSet and adds the channels of the radix
// nodes it visited; memdb closes a channel when a write changes anything
// below its node. Block runs a query on a fresh snapshot, and while the
// result's index has not passed the client's index, waits on those
// channels (plus the store's abandon channel and a deadline) and runs it
// again. A write to another table closes none of them, so it does not wake
// the query.
//
// # Derived data
//
// Job versions: UpsertJob compares the new spec with the stored one,
// ignoring the fields the servers manage; an unchanged spec keeps its
// version, a changed one gets the next, and the job_version table keeps the
// last JobTrackedVersions. Job summaries are counted incrementally: each
// allocation write moves the allocation's count from its old (job, group,
// status) slot to the new one, and a property test checks the result
// against a recount. Job status is recomputed, at the end of each write,
// for every job whose allocations or evaluations it changed.
//
// Allocations by job, node and deployment: the allocations table has only
// its ID index. A derived table (TableAllocRefs, refs.go) holds one row per
// job, node and deployment with the sorted IDs of its allocations (in
// chunks, so that a write copies only the chunks it changes), and an empty
// one per registered node without allocations (so that a pull watches a
// row of its own, about 600 bytes), written when the node registers and
// once per transaction for every row whose allocations it changed: a memdb
// index entry costs about 600 bytes, a row 16 bytes per allocation. The
// node usage table (usage.go) is derived the same way. Neither is in raft
// snapshots: Restore rebuilds them.
package state
