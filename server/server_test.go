package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-memdb"

	"github.com/skiffhq/skiff/internal/testutil"
	skiffrpc "github.com/skiffhq/skiff/rpc"
	"github.com/skiffhq/skiff/state"
	"github.com/skiffhq/skiff/structs"
)

func TestSingleServerRegisterReadStop(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.leader()

	reply := register(t, s, testJob("web"))
	if reply.EvalID == "" || reply.Index == 0 || reply.EvalCreateIndex != reply.Index {
		t.Fatalf("register reply = %+v, want an eval ID created at the entry's index", reply)
	}
	job := getJob(t, s, "web", false)
	if job == nil {
		t.Fatal("job not found after an acknowledged register")
	}
	if job.Version != 0 || job.Namespace != "default" || job.Priority != 50 || job.TaskGroups[0].RestartPolicy == nil {
		t.Fatalf("stored job not canonicalized: version %d ns %q prio %d", job.Version, job.Namespace, job.Priority)
	}
	var ev structs.SingleEvalResponse
	if err := s.RPC("Eval.GetEval", &structs.EvalSpecificRequest{EvalID: reply.EvalID}, &ev); err != nil || ev.Eval == nil {
		t.Fatalf("eval %s: %v %+v", reply.EvalID, err, ev.Eval)
	}
	if ev.Eval.JobID != "web" || ev.Eval.TriggeredBy != structs.EvalTriggerJobRegister || ev.Eval.CreateIndex != reply.Index {
		t.Fatalf("eval = %+v, want job-register eval of web in the same entry", ev.Eval)
	}

	// Same spec again: no new version.
	register(t, s, testJob("web"))
	if got := getJob(t, s, "web", false).Version; got != 0 {
		t.Fatalf("version after identical re-register = %d, want 0", got)
	}
	changed := testJob("web")
	changed.TaskGroups[0].Count = 3
	register(t, s, changed)
	if got := getJob(t, s, "web", false).Version; got != 1 {
		t.Fatalf("version after change = %d, want 1", got)
	}

	var dereg structs.JobDeregisterResponse
	if err := s.RPC("Job.Deregister", &structs.JobDeregisterRequest{JobID: "web"}, &dereg); err != nil {
		t.Fatal(err)
	}
	if job := getJob(t, s, "web", false); job == nil || !job.Stop {
		t.Fatalf("after stop, job = %+v, want present with Stop", job)
	}
	if err := s.RPC("Job.Deregister", &structs.JobDeregisterRequest{JobID: "web", Purge: true}, &dereg); err != nil {
		t.Fatal(err)
	}
	if job := getJob(t, s, "web", false); job != nil {
		t.Fatalf("after purge, job = %+v, want gone", job)
	}
	err := s.RPC("Job.Deregister", &structs.JobDeregisterRequest{JobID: "web"}, &dereg)
	if !structs.IsErr(err, structs.ErrNotFound) {
		t.Fatalf("deregister of a missing job: err = %v, want not found", err)
	}
}

func TestRegisterRejectsInvalidJobWithEveryProblem(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.leader()
	job := testJob("bad")
	job.TaskGroups[0].Count = -1
	job.TaskGroups[0].Tasks[0].Resources = &structs.Resources{CPU: -5, MemoryMB: 1}
	var reply structs.JobRegisterResponse
	err := s.RPC("Job.Register", &structs.JobRegisterRequest{Job: job}, &reply)
	if err == nil {
		t.Fatal("invalid job accepted")
	}
	for _, want := range []string{"count must be >= 0", "cpu must be >= 1", "memory must be >= 10"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if j := getJob(t, s, "bad", false); j != nil {
		t.Fatal("invalid job was stored")
	}
}

func TestEnforceIndex(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.leader()
	var reply structs.JobRegisterResponse
	if err := s.RPC("Job.Register", &structs.JobRegisterRequest{Job: testJob("j"), EnforceIndex: true}, &reply); err != nil {
		t.Fatalf("new job with index 0: %v", err)
	}
	err := s.RPC("Job.Register", &structs.JobRegisterRequest{Job: testJob("j"), EnforceIndex: true, JobModifyIndex: reply.JobModifyIndex + 7}, &reply)
	if !structs.IsErr(err, structs.ErrIndexMismatch) {
		t.Fatalf("stale index: err = %v, want index mismatch", err)
	}
}

func TestThreeServersForwardAndFailover(t *testing.T) {
	c := newTestCluster(t, 3)
	f := c.follower()

	// A write through a follower is forwarded and acknowledged.
	reply := register(t, f, testJob("a"))
	// A default (linearizable) read through a follower sees it at once.
	if getJob(t, f, "a", false) == nil {
		t.Fatal("linearizable read through a follower missed an acknowledged write")
	}
	c.waitForIndex(reply.Index)
	for _, s := range c.servers {
		if getJob(t, s, "a", true) == nil {
			t.Fatalf("stale read on %s misses job after it applied index %d", s.config.NodeName, reply.Index)
		}
	}

	old := c.leader()
	old.Shutdown()
	start := time.Now()
	var survivor *Server
	for _, s := range c.servers {
		if s != old {
			survivor = s
			break
		}
	}
	register(t, survivor, testJob("b"))
	t.Logf("first write acknowledged %s after leader shutdown", time.Since(start))
	for _, s := range c.servers {
		if s == old {
			continue
		}
		if getJob(t, s, "a", false) == nil || getJob(t, s, "b", false) == nil {
			t.Fatalf("%s lost an acknowledged job after failover", s.config.NodeName)
		}
	}
}

func TestBlockingQueryWakesOnWrite(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.leader()
	reply := register(t, s, testJob("a"))

	type result struct {
		job *structs.Job
		idx uint64
		err error
	}
	done := make(chan result, 1)
	go func() {
		var r structs.SingleJobResponse
		args := &structs.JobSpecificRequest{JobID: "a", QueryOptions: structs.QueryOptions{MinQueryIndex: reply.Index, MaxQueryTime: 20 * time.Second}}
		err := s.RPC("Job.GetJob", args, &r)
		done <- result{r.Job, r.Index, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("blocking query returned before any change: %+v", r)
	case <-time.After(200 * time.Millisecond):
	}
	changed := testJob("a")
	changed.TaskGroups[0].Count = 5
	second := register(t, s, changed)
	select {
	case r := <-done:
		if r.err != nil || r.idx < second.Index || r.job.TaskGroups[0].Count != 5 {
			t.Fatalf("blocking query woke with idx %d (want >= %d), err %v", r.idx, second.Index, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocking query did not wake on a write to its job")
	}
}

func TestSnapshotSaveRestore(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.leader()
	register(t, s, testJob("kept"))
	var buf bytes.Buffer
	if _, err := s.SaveSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	saved := buf.Bytes()
	register(t, s, testJob("after"))

	// A truncated file is refused and changes nothing.
	err := s.RestoreSnapshot(bytes.NewReader(saved[:len(saved)/2]))
	if !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("truncated restore: err = %v, want ErrBadSnapshot", err)
	}
	if getJob(t, s, "after", false) == nil {
		t.Fatal("a refused restore changed the state")
	}

	if err := s.RestoreSnapshot(bytes.NewReader(saved)); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if getJob(t, s, "kept", false) == nil {
		t.Fatal("restored state lacks the job saved in the snapshot")
	}
	if getJob(t, s, "after", false) != nil {
		t.Fatal("restored state still has a job registered after the snapshot")
	}
}

func TestLeftServerIsRemovedFromRaft(t *testing.T) {
	c := newTestCluster(t, 3)
	f := c.follower()
	id := f.NodeID()
	if err := f.Leave(); err != nil {
		t.Fatalf("leave: %v", err)
	}
	// Leave asks the leader to remove the server and waits for the
	// commit: it is gone as soon as Leave returns.
	if inRaftConfig(t, c.leader(), id) {
		t.Fatalf("server %s is still in the leader's raft configuration when Leave returns", id)
	}
}

// TestLeavingServerAsksTheLeaderToRemoveIt: a leaving server does not
// depend on the leader's gossip having seen it leave: it asks the leader,
// and is out of the configuration once the call returns.
func TestLeavingServerAsksTheLeaderToRemoveIt(t *testing.T) {
	c := newTestCluster(t, 3)
	f := c.follower()
	f.leaveRaft() // without leaving gossip: the leader's gossip sees it alive
	if inRaftConfig(t, c.leader(), f.NodeID()) {
		t.Fatalf("server %s is still in the leader's raft configuration after asking to be removed", f.NodeID())
	}
}

// TestFiveServersTolerateTwoFailures: with the leader and a follower of
// five servers dead, the three left elect a leader, take writes, serve
// linearizable reads and keep scheduling.
func TestFiveServersTolerateTwoFailures(t *testing.T) {
	c := newTestCluster(t, 5)
	register(t, c.follower(), testJob("before"))
	l := c.leader()
	l.Shutdown()
	for _, s := range c.servers {
		if s != l {
			s.Shutdown()
			break
		}
	}
	// Three of five is still a quorum: writes and linearizable reads go on.
	survivor := c.leader()
	reply := register(t, survivor, testJob("after"))
	for _, s := range c.servers {
		if s.shutdownCtx.Err() != nil {
			continue
		}
		if getJob(t, s, "before", false) == nil || getJob(t, s, "after", false) == nil {
			t.Fatalf("%s misses a job with two of five servers down (index %d)", s.config.NodeName, reply.Index)
		}
	}
	// And scheduling: a node joins, both jobs are placed on it.
	registerNode(t, survivor, testNode())
	testutil.WaitFor(t, 10*time.Second, "both jobs placed by the three servers left", func() bool {
		return len(liveAllocs(t, survivor, "before")) == 2 && len(liveAllocs(t, survivor, "after")) == 2
	})
}

// TestConcurrentCheckIndexHasOneWinner: 16 clients register the same job
// with -check-index against the same index; exactly one may win.
func TestConcurrentCheckIndexHasOneWinner(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.leader()
	first := register(t, s, testJob("cas"))
	results := make(chan error, 16)
	for i := range 16 {
		go func() {
			job := testJob("cas")
			job.TaskGroups[0].Count = 10 + i
			var reply structs.JobRegisterResponse
			results <- s.RPC("Job.Register", &structs.JobRegisterRequest{Job: job, EnforceIndex: true, JobModifyIndex: first.JobModifyIndex}, &reply)
		}()
	}
	wins := 0
	for range 16 {
		err := <-results
		switch {
		case err == nil:
			wins++
		case !structs.IsErr(err, structs.ErrIndexMismatch):
			t.Errorf("loser failed with %v, want an index mismatch", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d check-index registrations won, want exactly 1", wins)
	}
}

// TestShutdownDoesNotWaitForForwardedBlockingQueries: a follower holding a
// long blocking query forwarded to the leader still shuts down promptly.
func TestShutdownDoesNotWaitForForwardedBlockingQueries(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	reply := register(t, l, testJob("w"))
	f := c.follower()
	returned := make(chan error, 1)
	client := skiffrpc.NewPool(time.Second) // a client reaching the follower over TCP
	defer client.Close()
	go func() {
		var r structs.SingleJobResponse
		args := &structs.JobSpecificRequest{JobID: "w", QueryOptions: structs.QueryOptions{MinQueryIndex: reply.Index, MaxQueryTime: 2 * time.Minute}}
		returned <- client.Call(context.Background(), f.RPCAddr(), "Job.GetJob", args, &r)
	}()
	time.Sleep(300 * time.Millisecond) // let it reach the leader and block
	start := time.Now()
	done := make(chan struct{})
	go func() { f.Shutdown(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("follower shutdown still waiting after 10s for a forwarded blocking query")
	}
	t.Logf("shutdown took %s", time.Since(start))
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("the blocked call never returned after shutdown")
	}
}

// TestBlockingQueryEndsWhenTheCallerGoesAway: an HTTP client that
// disconnects must not leave its query blocked on the server, locally or
// forwarded to the leader.
func TestBlockingQueryEndsWhenTheCallerGoesAway(t *testing.T) {
	c := newTestCluster(t, 3)
	reply := register(t, c.leader(), testJob("w"))
	for _, s := range []*Server{c.leader(), c.follower()} {
		ctx, cancel := context.WithCancel(context.Background())
		args := &structs.JobSpecificRequest{JobID: "w", QueryOptions: structs.QueryOptions{MinQueryIndex: reply.Index, MaxQueryTime: 2 * time.Minute}}
		args.SetContext(ctx)
		done := make(chan error, 1)
		go func() {
			var r structs.SingleJobResponse
			done <- s.RPC("Job.GetJob", args, &r)
		}()
		time.Sleep(200 * time.Millisecond)
		cancel()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("%s: cancelled query returned no error", s.config.NodeName)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: blocking query still running 5s after its caller went away", s.config.NodeName)
		}
	}
	// An unchanged query that times out still answers normally.
	var r structs.SingleJobResponse
	args := &structs.JobSpecificRequest{JobID: "w", QueryOptions: structs.QueryOptions{MinQueryIndex: reply.Index, MaxQueryTime: 100 * time.Millisecond}}
	if err := c.leader().RPC("Job.GetJob", args, &r); err != nil || r.Job == nil {
		t.Fatalf("timed-out blocking query: err %v, job %v; want the unchanged job", err, r.Job)
	}
}

// TestDeadServerIsRemoved: a server that stays dead longer than
// DeadServerCleanup is removed from the raft configuration by the leader,
// and the two that remain keep committing.
func TestDeadServerIsRemoved(t *testing.T) {
	testDeadServerCleanup = time.Second
	defer func() { testDeadServerCleanup = 5 * time.Minute }()
	c := newTestCluster(t, 3)
	victim := c.follower()
	victim.Shutdown()
	l := c.leader()
	testutil.WaitFor(t, 30*time.Second, "the dead server removed from raft", func() bool {
		f := l.raft.GetConfiguration()
		if f.Error() != nil {
			return false
		}
		for _, srv := range f.Configuration().Servers {
			if string(srv.ID) == victim.nodeID {
				return false
			}
		}
		return len(f.Configuration().Servers) == 2
	})
	register(t, l, testJob("after-cleanup"))
}

// TestRecoverFromPeersJSON: a 3-server cluster loses two servers for good;
// the survivor, restarted with a peers.json that names only itself, leads
// a cluster of one with every committed write.
func TestRecoverFromPeersJSON(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	register(t, l, testJob("kept"))
	survivor := c.follower()
	dir, id, addr := survivor.config.DataDir, survivor.nodeID, survivor.RPCAddr()
	c.waitForIndex(l.raft.AppliedIndex())
	for _, s := range c.servers {
		s.Shutdown()
	}
	peers := fmt.Sprintf(`[{"id": %q, "address": %q, "non_voter": false}]`, id, addr)
	if err := os.WriteFile(filepath.Join(dir, "raft", "peers.json"), []byte(peers), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	cfg := DefaultConfig()
	cfg.NodeName, cfg.DataDir, cfg.RPCListener = "survivor", dir, ln
	cfg.SerfBindAddr, cfg.GossipProfile = "127.0.0.1", "local"
	cfg.BootstrapExpect = 3
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "survivor", Level: hclog.Warn, Output: testWriter{t}})
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	testutil.WaitFor(t, 15*time.Second, "the survivor to lead alone", s.IsLeader)
	if job := getJob(t, s, "kept", false); job == nil {
		t.Fatal("the committed job is gone after recovery")
	}
	register(t, s, testJob("after-recovery"))
	if _, err := os.Stat(filepath.Join(dir, "raft", "peers.json")); !os.IsNotExist(err) {
		t.Errorf("peers.json still there after recovery (%v); it must be applied once", err)
	}
}

func TestJobListGivesEachJobItsSummary(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.leader()
	for _, j := range []struct{ ns, id string }{{"default", "web"}, {"default", "web-2"}, {"default", "api"}, {"prod", "web"}, {"prod", "db"}} {
		job := testJob(j.id)
		job.Namespace = j.ns
		var reply structs.JobRegisterResponse
		if err := s.RPC("Job.Register", &structs.JobRegisterRequest{Job: job}, &reply); err != nil {
			t.Fatalf("register %s/%s: %v", j.ns, j.id, err)
		}
	}
	for _, tc := range []struct {
		ns, prefix string
		want       []string
	}{
		{"default", "", []string{"default/api", "default/web", "default/web-2"}},
		{"default", "web", []string{"default/web", "default/web-2"}},
		{"prod", "", []string{"prod/db", "prod/web"}},
		{"*", "", []string{"default/api", "default/web", "default/web-2", "prod/db", "prod/web"}},
		{"*", "web", []string{"default/web", "default/web-2", "prod/web"}},
	} {
		var reply structs.JobListResponse
		args := &structs.JobListRequest{}
		args.Namespace, args.Prefix = tc.ns, tc.prefix
		if err := s.RPC("Job.List", args, &reply); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, stub := range reply.Jobs {
			got = append(got, stub.Namespace+"/"+stub.ID)
			if sum := stub.JobSummary; sum == nil || sum.Namespace != stub.Namespace || sum.JobID != stub.ID {
				t.Errorf("namespace %q prefix %q: job %s/%s has summary %+v, want its own", tc.ns, tc.prefix, stub.Namespace, stub.ID, sum)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("namespace %q prefix %q: jobs %v, want %v", tc.ns, tc.prefix, got, tc.want)
		}
	}
}

func TestEndpointPanicIsAnErrorNotACrash(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.leader()
	var reply structs.GenericResponse
	err := s.write("Test.Panic", &structs.GenericRequest{}, &reply, func() error {
		var job *structs.Job
		_ = job.TaskGroups // a nil dereference, as a bug would make
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "Test.Panic failed with an internal error") {
		t.Fatalf("write that panicked: err = %v", err)
	}
	var meta structs.QueryMeta
	err = s.blockingQuery("Test.Read", &structs.QueryOptions{}, &meta, func(memdb.WatchSet, *state.Snapshot) (uint64, error) {
		panic("a bug in a read")
	})
	if err == nil || !strings.Contains(err.Error(), "Test.Read failed with an internal error") || !strings.Contains(err.Error(), "a bug in a read") {
		t.Fatalf("query that panicked: err = %v", err)
	}
	// Operator endpoints too (a nil request or reply cannot come through
	// net/rpc; here it stands for a bug).
	op := &Operator{srv: s}
	for method, call := range map[string]func() error{
		"RaftGetConfiguration": func() error { return op.RaftGetConfiguration(&structs.GenericRequest{}, nil) },
		"RaftRemovePeer":       func() error { return op.RaftRemovePeer(nil, &structs.GenericResponse{}) },
		"SnapshotSave":         func() error { return op.SnapshotSave(&structs.GenericRequest{}, nil) },
		"SnapshotRestore":      func() error { return op.SnapshotRestore(nil, &structs.GenericResponse{}) },
	} {
		if err := call(); err == nil || !strings.Contains(err.Error(), "Operator."+method+" failed with an internal error") {
			t.Errorf("Operator.%s that panicked: err = %v", method, err)
		}
	}
	// The server still answers.
	if j := getJob(t, s, "missing", false); j != nil {
		t.Fatal("a job appeared")
	}
	var regReply structs.JobRegisterResponse
	if err := s.RPC("Job.Register", &structs.JobRegisterRequest{Job: testJob("after")}, &regReply); err != nil {
		t.Fatalf("register after the panics: %v", err)
	}
}
