package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testutil"
)

// BenchmarkLeaderFailover is S6: SIGKILL the leader of a 3-server cluster
// (real processes) while a client writes through a follower, and time
// the first write acknowledged after the kill. Ten kills per run; it
// reports the median and the worst. Raft timing: the server defaults
// (heartbeat and election timeout 500 ms, leader lease 250 ms).
func BenchmarkLeaderFailover(b *testing.B) {
	const kills = 10
	for n := 0; n < b.N; n++ {
		c := newCluster(b, 3, clusterOpts{})
		var gaps []time.Duration
		for k := range kills {
			leader := c.leader()
			var via *agentProc
			for _, a := range c.agents {
				if a != leader {
					via = a
					break
				}
			}
			ctx, stop := context.WithCancel(context.Background())
			var mu sync.Mutex
			var acks []time.Time // of writes sent after the kill
			var killed time.Time
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 100000 && ctx.Err() == nil; i++ {
					sent := time.Now()
					rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					_, err := register(rctx, via, fmt.Sprintf("k%d-%d", k, i))
					cancel()
					mu.Lock()
					if err == nil && !killed.IsZero() && sent.After(killed) {
						acks = append(acks, time.Now())
					}
					mu.Unlock()
				}
			}()
			time.Sleep(200 * time.Millisecond)
			mu.Lock()
			killed = time.Now()
			mu.Unlock()
			leader.kill()
			deadline := time.Now().Add(20 * time.Second)
			var gap time.Duration
			for gap == 0 && time.Now().Before(deadline) {
				mu.Lock()
				if len(acks) > 0 {
					gap = acks[0].Sub(killed)
				}
				mu.Unlock()
				time.Sleep(time.Millisecond)
			}
			stop()
			wg.Wait()
			if gap == 0 {
				b.Fatalf("kill %d: no write acknowledged within 20s", k)
			}
			gaps = append(gaps, gap)
			leader.start()
			c.leader()
			time.Sleep(300 * time.Millisecond) // let the restarted server catch up
		}
		sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
		b.ReportMetric(float64(gaps[len(gaps)/2].Milliseconds()), "p50-ms")
		b.ReportMetric(float64(gaps[len(gaps)-1].Milliseconds()), "worst-ms")
		b.Logf("leader SIGKILL -> first acknowledged write, %d kills: %v", kills, gaps)
		for _, a := range c.agents {
			a.kill()
		}
	}
}

// BenchmarkDevAgentStart is S10: "skiff agent -dev" process start until
// the HTTP API answers with a leader.
func BenchmarkDevAgentStart(b *testing.B) {
	var times []time.Duration
	for range b.N {
		dir := b.TempDir()
		cfg := filepath.Join(dir, "ports.hcl")
		http := testutil.FreePort(b)
		os.WriteFile(cfg, []byte(fmt.Sprintf("ports {\n  http = %d\n  rpc = %d\n  serf = %d\n}\n", http, testutil.FreePort(b), testutil.FreePort(b))), 0o600)
		cmd := exec.Command(skiffBin, "agent", "-dev", "-config", cfg)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		start := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		url := fmt.Sprintf("http://127.0.0.1:%d/v1/status/leader", http)
		for {
			var leader string
			if _, err := call(context.Background(), "GET", url, nil, &leader); err == nil && leader != "" {
				break
			}
			if time.Since(start) > 10*time.Second {
				b.Fatal("dev agent not ready after 10s")
			}
			time.Sleep(2 * time.Millisecond)
		}
		times = append(times, time.Since(start))
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(times[len(times)-1].Microseconds())/1000, "worst-ms")
}
