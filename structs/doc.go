// Package structs holds the plain data types shared by every Skiff package:
// jobs and their groups and tasks, nodes, allocations, evaluations,
// deployments, and the request and response types of the RPC layer.
//
// Field names follow Nomad's HTTP API (PascalCase, the names of Nomad's
// MPL-licensed api package) so that the JSON encoding of these types is what
// Nomad clients send and expect. Durations are time.Duration, which JSON
// encodes as integer nanoseconds, as Nomad does.
//
// Values stored in the state store are immutable: code that wants to change
// one copies it first (Copy) and writes the copy back through raft.
//
// The package imports nothing of Skiff's and does no I/O.
package structs
