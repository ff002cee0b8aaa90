// Package simnode runs simulated client nodes against real Skiff servers,
// for end-to-end tests and scale benchmarks with thousands of nodes.
//
// A Fleet of N nodes speaks the client RPCs over the wire, through
// rpc.Pool, exactly as a client agent would:
//
//	Node.Register        once, with a stable ID and SecretID
//	Node.UpdateStatus    the heartbeat, at half to three quarters of the
//	                     TTL the server returned, on the next server when
//	                     one fails
//	Node.GetClientAllocs a blocking pull of the node's allocations (stale
//	                     reads: any server answers)
//	Alloc.GetAllocs      the fetch of the allocations that changed
//	Node.UpdateAlloc     one batched status report per pull: new
//	                     allocations running (or what Config.AllocStatus
//	                     says), stopped ones complete
//
// Nothing runs: an allocation is "running" the moment the node sees it.
// The per-node state is a few goroutines (heartbeat, pull) and a map of
// the node's allocations, so 5,000 nodes fit in one test process. With
// Config.Idle the nodes only register and heartbeat, for benchmarks that
// measure placements and not the clients' reporting.
//
// The package is for tests and benchmarks only; production code must not
// import it.
package simnode
