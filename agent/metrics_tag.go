//go:build hashicorpmetrics

package agent

// raftMetricsWired: raft and gossip report to our metrics sinks (the
// binary was built with -tags hashicorpmetrics, as "make dev" does).
const raftMetricsWired = true
