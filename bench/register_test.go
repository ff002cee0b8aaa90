package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/skiffhq/skiff/agent"
	"github.com/skiffhq/skiff/fsm"
	"github.com/skiffhq/skiff/server"
	"github.com/skiffhq/skiff/structs"
)

var concurrencies = []int{1, 32, 64}

// BenchmarkRegister is S1: raft-committed job registrations per second
// through the HTTP API of the leader of a 3-server cluster with fsync on,
// next to raw raft Apply of same-sized entries on the same store, timing
// and concurrency.
func BenchmarkRegister(b *testing.B) {
	for _, c := range concurrencies {
		b.Run(fmt.Sprintf("impl=skiff/clients=%d", c), func(b *testing.B) {
			agents := startSkiff(b, 3)
			url := "http://" + leaderOf(agents).HTTPAddr() + "/v1/jobs"
			client := httpClient()
			term := leaderOf(agents).Server().Raft().Stats()["term"]
			// The bodies are encoded before the clock starts: a client's
			// JSON encoding is the CLI's work, on another machine, not the
			// servers'; here it would take the servers' two cores.
			bodies := make([][]byte, b.N)
			for i := range bodies {
				bodies[i] = registerBody(fmt.Sprintf("job-%d-%06d", c, i))
			}
			report := writesPerEntry(b, leaderOf(agents).Server())
			run(b, c, func(i int) error { return put(client, url, bodies[i]) })
			report()
			if now := leaderOf(agents).Server().Raft().Stats()["term"]; now != term {
				b.Errorf("raft term moved from %s to %s under load: a spurious election", term, now)
			}
		})
		b.Run(fmt.Sprintf("impl=skiff-inproc/clients=%d", c), func(b *testing.B) {
			agents := startSkiff(b, 3)
			srv := leaderOf(agents).Server()
			report := writesPerEntry(b, srv)
			run(b, c, func(i int) error {
				var reply structs.JobRegisterResponse
				return srv.RPC("Job.Register", &structs.JobRegisterRequest{Job: benchJob(fmt.Sprintf("job-%d-%06d", c, i))}, &reply)
			})
			report()
		})
		b.Run(fmt.Sprintf("impl=raw-raft-skiff-fsm/clients=%d", c), func(b *testing.B) {
			rc := startRawFSM(b, 3, func() raft.FSM { return fsm.New(hclog.NewNullLogger()) })
			run(b, c, func(i int) error {
				j := benchJob(fmt.Sprintf("job-%d-%06d", c, i))
				j.Canonicalize()
				buf, err := structs.Encode(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: j, SubmitTime: 1,
					Eval: &structs.Evaluation{ID: structs.GenerateUUID(), Namespace: "default", JobID: j.ID, Status: "pending", Type: "service", Priority: 50}})
				if err != nil {
					return err
				}
				return rc.leader().Apply(buf, 10*time.Second).Error()
			})
		})
		b.Run(fmt.Sprintf("impl=raw-raft/clients=%d", c), func(b *testing.B) {
			rc := startRaw(b, 3)
			entry := bytes.Repeat([]byte{0x42}, entrySize(b))
			run(b, c, func(i int) error { return rc.leader().Apply(entry, 10*time.Second).Error() })
		})
	}
}

// run performs b.N operations over c workers and reports ops/s and
// latency percentiles.
func run(b *testing.B, c int, op func(i int) error) {
	var next atomic.Int64
	lat := make([]latencies, c)
	var wg sync.WaitGroup
	var failed atomic.Int64
	b.ResetTimer()
	cpu0 := processCPU()
	start := time.Now()
	for w := range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				t0 := time.Now()
				if err := op(i); err != nil {
					if failed.Add(1) == 1 {
						b.Errorf("operation %d: %v", i, err)
					}
					continue
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := processCPU() - cpu0
	b.StopTimer()
	if b.N > 0 {
		b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/op")
	}
	var all latencies
	for _, l := range lat {
		all = append(all, l...)
	}
	all.report(b, elapsed)
}

// writesPerEntry starts counting the raft entries srv's writes go out in;
// call the function it returns after the run to report how many writes an
// entry carried on average (group commit, server/batch.go).
func writesPerEntry(b *testing.B, srv *server.Server) func() {
	e0, w0 := srv.WriteBatches()
	return func() {
		if e, w := srv.WriteBatches(); e > e0 {
			b.ReportMetric(float64(w-w0)/float64(e-e0), "writes/entry")
		}
	}
}

// registerBody is the body of PUT /v1/jobs that registers benchJob(id).
func registerBody(id string) []byte { return jobBody(benchJob(id)) }

// jobBody is the body of PUT /v1/jobs that registers job.
func jobBody(job *structs.Job) []byte {
	body, _ := json.Marshal(map[string]any{"Job": job})
	return body
}

// BenchmarkFsync is the disk's floor: one 4 KiB write plus fsync.
func BenchmarkFsync(b *testing.B) {
	f, err := os.CreateTemp(b.TempDir(), "fsync")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := bytes.Repeat([]byte{1}, 4096)
	var lat latencies
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := f.WriteAt(buf, int64(i%256)*4096); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	lat.report(b, time.Since(start))
}

// BenchmarkGetUnderLoad is S9: single-job GET (linearizable, through the
// leader) while 64 writers register jobs, next to the same GET idle.
// writes/s is the writers' rate meanwhile.
func BenchmarkGetUnderLoad(b *testing.B) {
	for _, bc := range []struct {
		writers int
		query   string
	}{{0, ""}, {64, ""}, {64, "?stale"}} {
		writers := bc.writers
		name := fmt.Sprintf("writers=%d/read=linearizable", writers)
		if bc.query != "" {
			name = fmt.Sprintf("writers=%d/read=stale", writers)
		}
		b.Run(name, func(b *testing.B) {
			agents := startSkiff(b, 3)
			leader := leaderOf(agents)
			base := "http://" + leader.HTTPAddr()
			client := httpClient()
			if err := put(client, base+"/v1/jobs", registerBody("probe")); err != nil {
				b.Fatal(err)
			}
			term := leader.Server().Raft().Stats()["term"]
			load := startWriters(client, base+"/v1/jobs", writers, func(w, i int) *structs.Job {
				return benchJob(fmt.Sprintf("load-%d-%d", w, i))
			})
			run(b, 1, func(int) error {
				_, err := getBody(client, base+"/v1/job/probe"+bc.query)
				return err
			})
			load.finish(b)
			if now := leader.Server().Raft().Stats()["term"]; now != term {
				b.Errorf("raft term moved from %s to %s under load: an election", term, now)
			}
		})
	}
}

// listJobs is how many jobs BenchmarkListUnderLoad lists.
const listJobs = 10_000

// BenchmarkListUnderLoad is S9's second figure: GET /v1/jobs of 10,000
// jobs (linearizable, through the leader) while 64 writers register jobs,
// next to the same list idle. The writers' 64 jobs are among the 10,000
// preloaded ones and they register updates of them (a changed Meta value
// each time), so every write is a new job version committed through raft,
// as in S1, while the list keeps its length. cpu-us/op is the whole
// process's CPU (three servers and the writers) per list; writes/s is
// the writers' rate during the lists.
func BenchmarkListUnderLoad(b *testing.B) {
	for _, writers := range []int{0, 64} {
		b.Run(fmt.Sprintf("writers=%d/jobs=%d", writers, listJobs), func(b *testing.B) {
			agents := startSkiff(b, 3)
			leader := leaderOf(agents)
			base := "http://" + leader.HTTPAddr()
			client := httpClient()
			preload(b, leader.Server(), listJobs, func(i int) *structs.Job {
				if i < writers {
					return benchJobVersion(fmt.Sprintf("load-%d", i), 0)
				}
				return benchJob(fmt.Sprintf("job-%06d", i))
			})
			settle(b, leader.Server().Raft())
			load := startWriters(client, base+"/v1/jobs", writers, func(w, i int) *structs.Job {
				return benchJobVersion(fmt.Sprintf("load-%d", w), i+1)
			})
			// A list is timed until its last byte arrives; the last one
			// is decoded afterwards, to check it.
			var last []byte
			var buf bytes.Buffer
			run(b, 1, func(int) error {
				var err error
				last, err = getInto(client, base+"/v1/jobs", &buf)
				return err
			})
			load.finish(b)
			var jobs []json.RawMessage
			if err := json.Unmarshal(last, &jobs); err != nil || len(jobs) != listJobs {
				b.Errorf("the last list held %d jobs (%v), want %d", len(jobs), err, listJobs)
			}
		})
	}
}

// loadWriters is the write load of the read benchmarks (S9): goroutines
// that each register jobs through HTTP, one after another, until
// finish.
type loadWriters struct {
	n                int
	stop             context.CancelFunc
	wg               sync.WaitGroup
	writes, failures atomic.Int64
	failure          atomic.Value // the last error
	start            time.Time
	startWrites      int64
}

// startWriters starts n writers, writer w registering job(w, 0), job(w,
// 1), ... at url, and (when n > 0) returns once they have made 4n writes
// (or after 30 s).
func startWriters(client *http.Client, url string, n int, job func(w, i int) *structs.Job) *loadWriters {
	ctx, stop := context.WithCancel(context.Background())
	l := &loadWriters{n: n, stop: stop}
	for w := range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; i < 1_000_000 && ctx.Err() == nil; i++ {
				if err := put(client, url, jobBody(job(w, i))); err != nil {
					l.failures.Add(1)
					l.failure.Store(err)
					continue
				}
				l.writes.Add(1)
			}
		}()
	}
	// Let the load build up: a new cluster may take a while to take
	// writes (its first leader's barrier), and reads measured before any
	// write went through would be reads of an idle cluster.
	for deadline := time.Now().Add(30 * time.Second); n > 0 && l.writes.Load() < int64(4*n) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	l.start, l.startWrites = time.Now(), l.writes.Load()
	return l
}

// finish stops the writers and waits for them. It reports their rate
// since the load built up (writes/s) and fails b if a write failed or,
// with writers, none succeeded. A short run (testing's first round runs
// one read, well under a write's latency) waits for a write first, for
// at most 30 s.
func (l *loadWriters) finish(b *testing.B) {
	for deadline := time.Now().Add(30 * time.Second); l.n > 0 && l.writes.Load() == l.startWrites && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	writes, elapsed := l.writes.Load()-l.startWrites, time.Since(l.start)
	l.stop()
	l.wg.Wait()
	b.ReportMetric(float64(writes)/elapsed.Seconds(), "writes/s")
	if n := l.failures.Load(); n > 0 {
		b.Errorf("%d writes failed, the last: %v", n, l.failure.Load())
	}
	if l.n > 0 && writes == 0 {
		b.Error("no write succeeded while the reads ran")
	}
}

// preload registers the n jobs job(0) ... job(n-1) through the leader's
// RPC, 32 at a time.
func preload(tb testing.TB, srv *server.Server, n int, job func(i int) *structs.Job) {
	tb.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				var reply structs.JobRegisterResponse
				if err := srv.RPC("Job.Register", &structs.JobRegisterRequest{Job: job(i)}, &reply); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		tb.Fatalf("preload %d jobs: %v", n, err)
	}
}

// settle waits, for at most two minutes, until r's last index has not
// moved for a second: a sign that the servers' workers are done with the
// preloaded jobs' evaluations (each of which ends in a raft write), not a
// proof.
func settle(tb testing.TB, r *raft.Raft) {
	tb.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	last, since := r.LastIndex(), time.Now()
	for time.Since(since) < time.Second {
		if time.Now().After(deadline) {
			tb.Fatalf("raft still writing after two minutes (index %d)", last)
		}
		time.Sleep(50 * time.Millisecond)
		if i := r.LastIndex(); i != last {
			last, since = i, time.Now()
		}
	}
}

// benchJobVersion is benchJob with a Meta value that differs for each
// version, so that registering it again is an update.
func benchJobVersion(id string, version int) *structs.Job {
	j := benchJob(id)
	j.Meta = map[string]string{"version": fmt.Sprint(version)}
	return j
}

func put(client *http.Client, url string, body []byte) error {
	req, _ := http.NewRequestWithContext(context.Background(), "PUT", url, bytes.NewReader(body))
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("%d: %s", resp.StatusCode, msg)
	}
	return nil
}

// getBody returns the body of a GET that must answer 200.
func getBody(client *http.Client, url string) ([]byte, error) {
	var buf bytes.Buffer
	return getInto(client, url, &buf)
}

// getInto is getBody reading into buf (reset first), so that a client
// that reads large bodies again and again does not grow a new buffer
// each time: the load generator shares the servers' two cores, and
// io.ReadAll's growing and zeroing of a 5 MB list was a tenth of the list
// benchmark's CPU.
func getInto(client *http.Client, url string, buf *bytes.Buffer) ([]byte, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	buf.Reset()
	_, err = buf.ReadFrom(resp.Body)
	body := buf.Bytes()
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("GET %s: %d %.200s", url, resp.StatusCode, body)
	}
	return body, err
}

var _ = agent.DefaultHTTPPort
