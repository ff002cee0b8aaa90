package bench

import (
	"bytes"
	"sort"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// BenchmarkRawRaftFailover is S6's baseline: raw raft, 3 nodes, the same
// timing as Skiff's servers; shut the leader down and time the first
// Apply that succeeds on the new leader. Ten kills per run.
func BenchmarkRawRaftFailover(b *testing.B) {
	entry := bytes.Repeat([]byte{1}, 512)
	var gaps []time.Duration
	for range b.N {
		for range 10 {
			rc := startRaw(b, 3)
			old := rc.leader()
			if err := old.Apply(entry, time.Second).Error(); err != nil {
				b.Fatal(err)
			}
			killed := time.Now()
			_ = old.Shutdown().Error()
			for {
				var l *raft.Raft
				for _, r := range rc.nodes {
					if r != old && r.State() == raft.Leader {
						l = r
					}
				}
				if l != nil && l.Apply(entry, time.Second).Error() == nil {
					break
				}
				if time.Since(killed) > 20*time.Second {
					b.Fatal("no new leader")
				}
				time.Sleep(time.Millisecond)
			}
			gaps = append(gaps, time.Since(killed))
		}
	}
	sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
	b.ReportMetric(float64(gaps[len(gaps)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(gaps[len(gaps)-1].Milliseconds()), "worst-ms")
	b.Logf("raw raft leader shutdown -> first Apply: %v", gaps)
}

// BenchmarkRawRaftBootstrap is S10's baseline: one raw raft node with the
// timing dev mode uses (50 ms), from NewRaft to leader.
func BenchmarkRawRaftBootstrap(b *testing.B) {
	saved := *timing
	timing.RaftHeartbeatTimeout, timing.RaftElectionTimeout, timing.RaftLeaderLeaseTimeout = 50*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond
	defer func() { *timing = saved }()
	var times []time.Duration
	for range b.N {
		start := time.Now()
		startRaw(b, 1)
		times = append(times, time.Since(start))
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50-ms")
}
