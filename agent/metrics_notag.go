//go:build !hashicorpmetrics

package agent

// raftMetricsWired is false: without -tags hashicorpmetrics, raft and
// memberlist report to armon/go-metrics, which nothing here reads.
const raftMetricsWired = false
