package server

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testutil"
	skiffrpc "github.com/skiffhq/skiff/rpc"
	"github.com/skiffhq/skiff/structs"
)

func TestLivenessNoteOrdersConnections(t *testing.T) {
	var l liveness
	steps := []struct {
		gen       uint64
		connected bool
		news      bool
	}{
		{5, true, true},   // first connection
		{5, true, false},  // the same, again
		{4, false, false}, // an older connection's end: the node moved on
		{7, true, true},   // a newer connection
		{5, false, false}, // the older one ends after it
		{7, false, true},  // the newest ends: news
		{7, true, false},  // its "connected", arriving late, does not undo it
		{8, true, true},   // the node comes back
	}
	for i, s := range steps {
		if got := l.note("n1", s.gen, s.connected); got != s.news {
			t.Errorf("step %d (gen %d connected %v): news = %v, want %v", i, s.gen, s.connected, got, s.news)
		}
	}
	if !l.note("n2", 1, false) {
		t.Error("another node's first event is news")
	}
}

// holdLiveness opens a liveness connection for n to the server at addr and
// returns once the server has accepted it; cancel ends it.
func holdLiveness(t *testing.T, addr string, n *structs.Node, gen uint64) (cancel func()) {
	t.Helper()
	ctx, cancelCtx := context.WithCancel(context.Background())
	connected := make(chan struct{})
	ended := make(chan error, 1)
	go func() {
		ended <- skiffrpc.HoldLiveness(ctx, addr, &structs.NodeLivenessRequest{NodeID: n.ID, SecretID: n.SecretID, Generation: gen}, time.Second, connected)
	}()
	select {
	case <-connected:
	case err := <-ended:
		t.Fatalf("liveness connection to %s: %v", addr, err)
	case <-time.After(5 * time.Second):
		t.Fatalf("liveness connection to %s not accepted", addr)
	}
	t.Cleanup(cancelCtx)
	return func() { cancelCtx(); <-ended }
}

// TestLivenessConnectionEndMarksNodeDownFast: with a heartbeat TTL of a
// minute, a node whose liveness connection (here to a follower) ends is
// marked down within the reconnect grace; one that moved its connection to
// another server first is not.
func TestLivenessConnectionEndMarksNodeDownFast(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.leader()
	var followers []*Server
	for _, s := range c.servers {
		if s != leader {
			followers = append(followers, s)
		}
	}
	n := testNode()
	var reply structs.NodeUpdateResponse
	if err := leader.RPC("Node.Register", &structs.NodeRegisterRequest{Node: n}, &reply); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 5*time.Second, "the followers to know the node", func() bool {
		for _, f := range followers {
			if got, _ := f.State().NodeByID(nil, n.ID); got == nil {
				return false
			}
		}
		return true
	})

	// A wrong secret is refused.
	bad := *n
	bad.SecretID = structs.GenerateUUID()
	err := skiffrpc.HoldLiveness(context.Background(), followers[0].RPCAddr(),
		&structs.NodeLivenessRequest{NodeID: bad.ID, SecretID: bad.SecretID, Generation: 1}, time.Second, nil)
	if !errors.Is(err, skiffrpc.ErrLivenessRefused) {
		t.Fatalf("liveness with a wrong secret: %v, want refused", err)
	}

	// The node moves its connection from one follower to the other: the
	// first one's end is old news.
	end1 := holdLiveness(t, followers[0].RPCAddr(), n, 1)
	end2 := holdLiveness(t, followers[1].RPCAddr(), n, 2)
	end1()
	time.Sleep(4 * leader.config.NodeReconnectGrace)
	if got := nodeStatus(t, leader, n.ID); got != structs.NodeStatusReady {
		t.Fatalf("node moved its liveness connection and is %q, want ready", got)
	}

	// The node's last connection ends: down within the grace, not the TTL.
	ended := time.Now()
	end2()
	// Waits up to 25 s, under the TTL/2 that the check below holds it to:
	// 10 s ran out once under -race on a VM with heavy steal.
	testutil.WaitFor(t, 25*time.Second, "the node to be marked down", func() bool {
		return nodeStatus(t, leader, n.ID) == structs.NodeStatusDown
	})
	took := time.Since(ended)
	t.Logf("liveness connection ended -> node down in %s (grace %s, TTL %s)", took, leader.config.NodeReconnectGrace, reply.HeartbeatTTL)
	if took >= reply.HeartbeatTTL/2 {
		t.Errorf("node marked down %s after its connection ended: that is the TTL's doing, not the liveness signal", took)
	}
}

// TestLivenessReconnectWithinGraceKeepsNodeReady: a client whose
// connection breaks and that opens a new one within the grace stays ready.
func TestLivenessReconnectWithinGraceKeepsNodeReady(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.leader()
	n := testNode()
	var reply structs.NodeUpdateResponse
	if err := s.RPC("Node.Register", &structs.NodeRegisterRequest{Node: n}, &reply); err != nil {
		t.Fatal(err)
	}
	end := holdLiveness(t, s.RPCAddr(), n, 1)
	end()
	time.Sleep(s.config.NodeReconnectGrace / 4)
	holdLiveness(t, s.RPCAddr(), n, 2)
	time.Sleep(4 * s.config.NodeReconnectGrace)
	if got := nodeStatus(t, s, n.ID); got != structs.NodeStatusReady {
		t.Fatalf("node that reconnected within the grace is %q, want ready", got)
	}
}

// TestSilentNodeWithDisconnectBlockIsDisconnectedThenDown: a silent node
// that runs an allocation of a group with disconnect { lost_after } is
// marked disconnected at its TTL, and down once lost_after has passed;
// its allocation is unknown in between, then lost.
func TestSilentNodeWithDisconnectBlockIsDisconnectedThenDown(t *testing.T) {
	shortNodeTTL(t)
	c := newTestCluster(t, 1)
	s := c.leader()
	n := testNode()
	var nreply structs.NodeUpdateResponse
	if err := s.RPC("Node.Register", &structs.NodeRegisterRequest{Node: n}, &nreply); err != nil {
		t.Fatal(err)
	}
	stopHeartbeats := every(t, 100*time.Millisecond, func() { _, _ = heartbeat(s, n) })
	job := testJob("web")
	job.TaskGroups[0].Count = 1
	job.TaskGroups[0].Disconnect = &structs.DisconnectStrategy{LostAfter: 3 * time.Second}
	register(t, s, job)
	var alloc *structs.Allocation
	testutil.WaitFor(t, 10*time.Second, "the allocation placed", func() bool {
		live := liveAllocs(t, s, "web")
		if len(live) == 1 {
			alloc = live[0]
		}
		return alloc != nil
	})
	stopHeartbeats()
	silent := time.Now()
	testutil.WaitFor(t, 5*time.Second, "the node disconnected", func() bool {
		return nodeStatus(t, s, n.ID) == structs.NodeStatusDisconnected
	})
	testutil.WaitFor(t, 5*time.Second, "the allocation unknown", func() bool {
		a, _ := s.State().AllocByID(nil, alloc.ID)
		return a != nil && a.ClientStatus == structs.AllocClientStatusUnknown
	})
	if nodeStatus(t, s, n.ID) != structs.NodeStatusDisconnected {
		t.Fatal("the node left disconnected before lost_after")
	}
	testutil.WaitFor(t, 10*time.Second, "the node down", func() bool {
		return nodeStatus(t, s, n.ID) == structs.NodeStatusDown
	})
	if took := time.Since(silent); took < 3*time.Second {
		t.Errorf("node down %s after its last heartbeat, before lost_after (3s)", took)
	}
	testutil.WaitFor(t, 5*time.Second, "the allocation lost", func() bool {
		a, _ := s.State().AllocByID(nil, alloc.ID)
		return a != nil && a.ClientStatus == structs.AllocClientStatusLost
	})
}

// TestNewLeaderLearnsLivenessFromServers: when the leader dies, a node
// whose liveness connection died with it (the node is gone too) is
// marked down soon after a new leader takes office, not after its TTL
// plus the failover grace; a node whose connection is held by a
// surviving server stays ready.
func TestNewLeaderLearnsLivenessFromServers(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.leader()
	var follower *Server
	for _, s := range c.servers {
		if s != leader {
			follower = s
			break
		}
	}
	register := func(name string) *structs.Node {
		n := testNode()
		n.Name = name
		n.Attributes = map[string]string{structs.AttrLiveness: "1"}
		var reply structs.NodeUpdateResponse
		if err := leader.RPC("Node.Register", &structs.NodeRegisterRequest{Node: n}, &reply); err != nil {
			t.Fatal(err)
		}
		return n
	}
	gone, alive := register("gone"), register("alive")
	testutil.WaitFor(t, 5*time.Second, "the follower to know both nodes", func() bool {
		a, _ := follower.State().NodeByID(nil, alive.ID)
		g, _ := follower.State().NodeByID(nil, gone.ID)
		return a != nil && g != nil
	})
	endGone := holdLiveness(t, leader.RPCAddr(), gone, 1)
	holdLiveness(t, follower.RPCAddr(), alive, 1)

	// The leader dies, and the node connected to it with it.
	leader.Shutdown()
	endGone()
	newLeader := c.leader()
	took := time.Now()
	testutil.WaitFor(t, 30*time.Second, "the node that died with the leader marked down", func() bool {
		n, _ := newLeader.State().NodeByID(nil, gone.ID)
		return n != nil && n.Status == structs.NodeStatusDown
	})
	t.Logf("node down %s after the new leader was found (TTL %s)", time.Since(took).Round(time.Millisecond), testMinHeartbeatTTL)
	if got := nodeStatus(t, newLeader, alive.ID); got != structs.NodeStatusReady {
		t.Fatalf("the node whose connection a surviving server holds is %q, want ready", got)
	}
}
