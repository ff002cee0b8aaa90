package server

import (
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testutil"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/skiffhq/skiff/structs"
)

// testCluster is an in-process cluster of servers on loopback, port 0.
type testCluster struct {
	t       *testing.T
	servers []*Server
}

func newTestServer(t *testing.T, name string, expect int, join []string, dir string) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.NodeName = name
	cfg.DataDir = dir
	cfg.RPCListener = ln
	cfg.SerfBindAddr = "127.0.0.1"
	cfg.BootstrapExpect = expect
	cfg.RetryJoin = join
	cfg.RetryInterval = 100 * time.Millisecond
	cfg.GossipProfile = "local"
	cfg.ReconcileInterval = 200 * time.Millisecond
	cfg.MinHeartbeatTTL = testMinHeartbeatTTL
	cfg.HeartbeatGrace = 2 * time.Second
	cfg.NodeReconnectGrace = 500 * time.Millisecond
	cfg.DeadServerCleanup = testDeadServerCleanup
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Warn, Output: testWriter{t}})
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("start server %s: %v", name, err)
	}
	return s
}

// testDeadServerCleanup is the servers' DeadServerCleanup in tests; a
// test that needs it short sets it before starting its cluster (server
// tests do not run in parallel).
var testDeadServerCleanup = 5 * time.Minute

// testMinHeartbeatTTL is the servers' MinHeartbeatTTL in tests; set it
// before starting a cluster. A minute by default, so that a missed TTL
// never marks a node down in a test about something else: on a loaded
// CI machine simulated nodes were starved of heartbeats for a couple of
// seconds, marked down and their allocations lost (this failed
// TestUnpromotedCanariesFailAtProgressDeadline and
// TestDrainMigratesAtMigratePace), and tests of the liveness connection
// must see it act alone. Tests of the TTL itself call shortNodeTTL.
var testMinHeartbeatTTL = time.Minute

// shortNodeTTL gives the nodes of the cluster the test starts next a
// heartbeat TTL of 300 ms, so that a silent node goes down fast.
func shortNodeTTL(t *testing.T) {
	old := testMinHeartbeatTTL
	testMinHeartbeatTTL = 300 * time.Millisecond
	t.Cleanup(func() { testMinHeartbeatTTL = old })
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// newTestCluster starts n servers that find each other by gossip and
// bootstrap with bootstrap_expect n.
func newTestCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	c := &testCluster{t: t}
	first := newTestServer(t, "s0", n, nil, t.TempDir())
	c.servers = append(c.servers, first)
	for i := 1; i < n; i++ {
		c.servers = append(c.servers, newTestServer(t, fmt.Sprintf("s%d", i), n, []string{first.SerfAddr()}, t.TempDir()))
	}
	t.Cleanup(func() {
		for _, s := range c.servers {
			s.Shutdown()
		}
	})
	c.waitForVoters(n)
	// A follower that has not yet heard the new leader may time out and
	// start an election of its own, which failed a write made right after
	// the cluster formed ("leadership changed while committing"): wait
	// until every server follows the one leader.
	testutil.WaitFor(t, 15*time.Second, "every server to know the one leader", func() bool {
		var leader raft.ServerAddress
		for _, s := range c.servers {
			addr, _ := s.raft.LeaderWithID()
			if addr == "" || (leader != "" && addr != leader) {
				return false
			}
			leader = addr
		}
		return true
	})
	return c
}

// leader returns the live server that leads.
func (c *testCluster) leader() *Server {
	c.t.Helper()
	var l *Server
	testutil.WaitFor(c.t, 10*time.Second, "a leader", func() bool {
		for _, s := range c.servers {
			if s.shutdownCtx.Err() == nil && s.IsLeader() && s.consistentReads.Load() {
				l = s
				return true
			}
		}
		return false
	})
	return l
}

func (c *testCluster) follower() *Server {
	l := c.leader()
	for _, s := range c.servers {
		if s != l && s.shutdownCtx.Err() == nil {
			return s
		}
	}
	c.t.Fatal("no live follower")
	return nil
}

func (c *testCluster) waitForVoters(n int) {
	c.t.Helper()
	testutil.WaitFor(c.t, 15*time.Second, fmt.Sprintf("%d raft voters", n), func() bool {
		for _, s := range c.servers {
			if s.shutdownCtx.Err() == nil && s.IsLeader() {
				f := s.raft.GetConfiguration()
				if f.Error() != nil {
					return false
				}
				voters := 0
				for _, srv := range f.Configuration().Servers {
					if srv.Suffrage == raft.Voter {
						voters++
					}
				}
				return voters == n
			}
		}
		return false
	})
}

// waitForIndex waits until every live server's state has reached index.
// (raft.AppliedIndex is not enough: raft advances it when it hands entries
// to the FSM, before the FSM has applied them.)
func (c *testCluster) waitForIndex(index uint64) {
	c.t.Helper()
	testutil.WaitFor(c.t, 10*time.Second, fmt.Sprintf("index %d everywhere", index), func() bool {
		for _, s := range c.servers {
			if s.shutdownCtx.Err() != nil {
				continue
			}
			if idx, err := s.State().LatestIndex(); err != nil || idx < index {
				return false
			}
		}
		return true
	})
}

func testJob(id string) *structs.Job {
	return &structs.Job{
		ID: id, Datacenters: []string{"dc1"},
		TaskGroups: []*structs.TaskGroup{{
			Name: "web", Count: 2,
			Tasks: []*structs.Task{{
				Name: "server", Driver: "containerd",
				Config: map[string]any{"image": "busybox:1.36", "args": []any{"httpd", "-f"}},
			}},
		}},
	}
}

// register registers job through s, as a client would: a write whose
// outcome an election made unknown, or that found no leader, is sent
// again (registering the same job twice is harmless), for up to 10 s. A
// loaded 2-core machine running three servers under -race can miss a
// heartbeat mid-test.
func register(t *testing.T, s *Server, job *structs.Job) *structs.JobRegisterResponse {
	t.Helper()
	reply, err := tryRegister(t, s, &structs.JobRegisterRequest{Job: job})
	if err != nil {
		t.Fatal(err)
	}
	return reply
}

// tryRegister is register returning its error instead of failing the
// test, for goroutines other than the test's.
func tryRegister(t *testing.T, s *Server, req *structs.JobRegisterRequest) (*structs.JobRegisterResponse, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var reply structs.JobRegisterResponse
		err := s.RPC("Job.Register", req, &reply)
		if err == nil {
			return &reply, nil
		}
		retry := structs.IsErr(err, structs.ErrOutcomeUnknown) || structs.IsErr(err, structs.ErrNoLeader)
		if !retry || time.Now().After(deadline) {
			return nil, fmt.Errorf("register %s via %s: %w", req.Job.ID, s.config.NodeName, err)
		}
		t.Logf("register %s via %s: %v; sending it again", req.Job.ID, s.config.NodeName, err)
		time.Sleep(100 * time.Millisecond)
	}
}

func getJob(t *testing.T, s *Server, id string, stale bool) *structs.Job {
	t.Helper()
	var reply structs.SingleJobResponse
	args := &structs.JobSpecificRequest{JobID: id, QueryOptions: structs.QueryOptions{AllowStale: stale}}
	if err := s.RPC("Job.GetJob", args, &reply); err != nil {
		t.Fatalf("get job %s via %s: %v", id, s.config.NodeName, err)
	}
	return reply.Job
}

// every runs fn every interval in its own goroutine until the test ends
// or the returned stop is called (stop waits for the last run; the test's
// cleanup calls it too).
func every(t *testing.T, interval time.Duration, fn func()) (stop func()) {
	quit := make(chan struct{})
	done := make(chan struct{})
	var once sync.Once
	stop = func() { once.Do(func() { close(quit); <-done }) }
	t.Cleanup(stop)
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			case <-time.After(interval):
			}
			fn()
		}
	}()
	return stop
}

// inRaftConfig reports whether server id is in s's raft configuration.
func inRaftConfig(t *testing.T, s *Server, id string) bool {
	t.Helper()
	fut := s.raft.GetConfiguration()
	if err := fut.Error(); err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(fut.Configuration().Servers, func(srv raft.Server) bool { return string(srv.ID) == id })
}
