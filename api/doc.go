// Package api is the Go client of Skiff's HTTP API, which follows Nomad's
// paths, headers and JSON shapes. The CLI (package command) uses it, and so
// may any program that drives a Skiff cluster.
//
// A Client is safe for concurrent use. Every call takes a context first;
// cancelling it aborts the request, including a blocking query.
//
// Reads take *QueryOptions (namespace, region, stale reads, blocking-query
// index and wait) and return *QueryMeta from the X-Nomad-Index,
// X-Nomad-LastContact and X-Nomad-KnownLeader headers. Writes take
// *WriteOptions and return *WriteMeta. Either options value may be nil.
//
// A response with a non-2xx status becomes a *StatusError carrying the code
// and the server's plain-text message; IsNotFound tells a missing object
// from other failures. A request that never reached the agent becomes an
// *UnreachableError (IsUnreachable).
package api
