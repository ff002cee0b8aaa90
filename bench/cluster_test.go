package bench

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testutil"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/skiffhq/skiff/agent"
	"github.com/skiffhq/skiff/server"
	"github.com/skiffhq/skiff/structs"
)

// TestMain gives this process the garbage collector settings a server
// agent runs with (agent.SetServerGC), which every benchmark here shares,
// the raw baselines included. GOGC or GOMEMLIMIT in the environment
// override them, as they do for the agent.
func TestMain(m *testing.M) {
	agent.SetServerGC(hclog.New(&hclog.LoggerOptions{Name: "bench", Output: os.Stderr}))
	os.Exit(m.Run())
}

// The raft timing both Skiff and the raw baseline use (server defaults).
var timing = func() *server.Config { return server.DefaultConfig() }()

// startSkiff starts n in-process agents (servers with HTTP) that
// bootstrap together, and returns them once there is a leader.
func startSkiff(tb testing.TB, n int) []*agent.Agent {
	tb.Helper()
	type ports struct{ http, rpc, serf int }
	ps := make([]ports, n)
	var join []string
	for i := range ps {
		ps[i] = ports{testutil.FreePort(tb), testutil.FreePort(tb), testutil.FreePort(tb)}
		join = append(join, fmt.Sprintf("127.0.0.1:%d", ps[i].serf))
	}
	var agents []*agent.Agent
	for i, p := range ps {
		src := fmt.Sprintf(`
name = "b%d"
data_dir = %q
bind_addr = "127.0.0.1"
log_level = "ERROR"
ports {
  http = %d
  rpc = %d
  serf = %d
}
server {
  enabled = true
  bootstrap_expect = %d
  gossip_profile = "local"
  server_join {
    retry_join = [%q, %q, %q]
    retry_interval = "100ms"
  }
}`, i, tb.TempDir(), p.http, p.rpc, p.serf, n, join[0], join[min(1, n-1)], join[min(2, n-1)])
		cfgPath := fmt.Sprintf("%s/agent.hcl", tb.TempDir())
		if err := os.WriteFile(cfgPath, []byte(src), 0o600); err != nil {
			tb.Fatal(err)
		}
		cfg, err := agent.ParseFlags([]string{"-config", cfgPath}, io.Discard)
		if err != nil {
			tb.Fatal(err)
		}
		a, err := agent.Start(cfg, io.Discard)
		if err != nil {
			tb.Fatal(err)
		}
		agents = append(agents, a)
	}
	tb.Cleanup(func() {
		for _, a := range agents {
			a.Shutdown()
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		voters := 0
		for _, a := range agents {
			if a.Server().IsLeader() {
				f := a.Server().Raft().GetConfiguration()
				if f.Error() == nil {
					voters = len(f.Configuration().Servers)
				}
			}
		}
		if voters == n {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatal("no leader with all voters")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return agents
}

func leaderOf(agents []*agent.Agent) *agent.Agent {
	for _, a := range agents {
		if a.Server().IsLeader() {
			return a
		}
	}
	return agents[0]
}

// rawCluster is the baseline: n hashicorp/raft nodes with the same
// boltdb store, TCP transport on loopback and timing as Skiff's servers,
// applying to an FSM that does nothing.
type rawCluster struct {
	nodes  []*raft.Raft
	stores []*raftboltdb.BoltStore
	trans  []*raft.NetworkTransport
}

type nopFSM struct{}

func (nopFSM) Apply(*raft.Log) any                 { return nil }
func (nopFSM) Snapshot() (raft.FSMSnapshot, error) { return nopSnap{}, nil }
func (nopFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

type nopSnap struct{}

func (nopSnap) Persist(s raft.SnapshotSink) error { return s.Close() }
func (nopSnap) Release()                          {}

func startRaw(tb testing.TB, n int) *rawCluster {
	return startRawFSM(tb, n, func() raft.FSM { return nopFSM{} })
}

// startRawFSM is startRaw with the given FSM on every node.
func startRawFSM(tb testing.TB, n int, newFSM func() raft.FSM) *rawCluster {
	tb.Helper()
	c := &rawCluster{}
	var conf raft.Configuration
	for i := range n {
		tr, err := raft.NewTCPTransport("127.0.0.1:0", nil, 3, 10*time.Second, io.Discard)
		if err != nil {
			tb.Fatal(err)
		}
		c.trans = append(c.trans, tr)
		conf.Servers = append(conf.Servers, raft.Server{ID: raft.ServerID(fmt.Sprint(i)), Address: tr.LocalAddr()})
	}
	for i := range n {
		dir := tb.TempDir()
		store, err := raftboltdb.New(raftboltdb.Options{Path: dir + "/raft.db"})
		if err != nil {
			tb.Fatal(err)
		}
		cache, _ := raft.NewLogCache(512, store)
		snaps, _ := raft.NewFileSnapshotStoreWithLogger(dir, 2, hclog.NewNullLogger())
		rc := raft.DefaultConfig()
		rc.LocalID = raft.ServerID(fmt.Sprint(i))
		rc.Logger = hclog.NewNullLogger()
		rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = timing.RaftHeartbeatTimeout, timing.RaftElectionTimeout, timing.RaftLeaderLeaseTimeout
		rc.MaxAppendEntries, rc.BatchApplyCh = timing.RaftMaxAppendEntries, true
		rc.SnapshotThreshold, rc.TrailingLogs = timing.RaftSnapshotThreshold, timing.RaftTrailingLogs
		if err := raft.BootstrapCluster(rc, cache, store, snaps, c.trans[i], conf); err != nil {
			tb.Fatal(err)
		}
		r, err := raft.NewRaft(rc, newFSM(), cache, store, snaps, c.trans[i])
		if err != nil {
			tb.Fatal(err)
		}
		c.nodes = append(c.nodes, r)
		c.stores = append(c.stores, store)
	}
	tb.Cleanup(func() {
		for i, r := range c.nodes {
			_ = r.Shutdown().Error()
			c.trans[i].Close()
			c.stores[i].Close()
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for c.leader() == nil {
		if time.Now().After(deadline) {
			tb.Fatal("raw raft: no leader")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return c
}

func (c *rawCluster) leader() *raft.Raft {
	for _, r := range c.nodes {
		if r.State() == raft.Leader {
			return r
		}
	}
	return nil
}

// benchJob is the job every registration sends (a realistic small job).
func benchJob(id string) *structs.Job {
	return &structs.Job{
		ID: id, Datacenters: []string{"dc1"},
		TaskGroups: []*structs.TaskGroup{{
			Name: "web", Count: 3,
			Networks: []*structs.NetworkResource{{DynamicPorts: []structs.Port{{Label: "http", To: 8080}}}},
			Tasks: []*structs.Task{{
				Name: "server", Driver: "containerd",
				Config:    map[string]any{"image": "registry.example.com/web:1.4.2", "args": []any{"-listen", ":8080"}},
				Env:       map[string]string{"MODE": "production"},
				Resources: &structs.Resources{CPU: 500, MemoryMB: 256},
			}},
		}},
	}
}

// entrySize is the size of the raft entry one benchJob registration
// writes, so the raw baseline applies entries of the same size.
func entrySize(tb testing.TB) int {
	j := benchJob("job-000000")
	j.Canonicalize()
	req := &structs.JobRegisterRequest{Job: j, SubmitTime: time.Now().UnixNano(),
		Eval: &structs.Evaluation{ID: structs.GenerateUUID(), Namespace: "default", Priority: 50, Type: "service",
			TriggeredBy: "job-register", JobID: j.ID, Status: "pending", CreateTime: 1, ModifyTime: 1}}
	buf, err := structs.Encode(structs.JobRegisterRequestType, req)
	if err != nil {
		tb.Fatal(err)
	}
	return len(buf)
}

// latencies collects per-operation latencies and reports p50 and p99.
type latencies []time.Duration

func (l latencies) report(b *testing.B, elapsed time.Duration) {
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	if len(l) == 0 {
		return
	}
	b.ReportMetric(float64(len(l))/elapsed.Seconds(), "ops/s")
	b.ReportMetric(float64(l[len(l)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(l[len(l)*99/100].Microseconds())/1000, "p99-ms")
}

func httpClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}}
}

// processCPU is the user and system CPU time this process has used. On a
// shared VM, CPU time per operation varies much less than throughput,
// which also counts the time other guests took the cores (steal).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
