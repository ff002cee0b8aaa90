package server

import (
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/structs"
)

func testNode() *structs.Node {
	return &structs.Node{
		ID: structs.GenerateUUID(), SecretID: structs.GenerateUUID(), Name: "n1", Datacenter: "dc1",
		NodeResources: &structs.NodeResources{Cpu: structs.NodeCpuResources{CpuShares: 14000}, Memory: structs.NodeMemoryResources{MemoryMB: 32000},
			Disk: structs.NodeDiskResources{DiskMB: 100000}},
		Drivers: map[string]*structs.DriverInfo{"containerd": {Detected: true, Healthy: true}},
	}
}

func nodeStatus(t *testing.T, s *Server, id string) string {
	t.Helper()
	n, err := s.State().NodeByID(nil, id)
	if err != nil || n == nil {
		t.Fatalf("node %s: %v %v", id, n, err)
	}
	return n.Status
}

func heartbeat(s *Server, n *structs.Node) (*structs.NodeUpdateResponse, error) {
	var reply structs.NodeUpdateResponse
	err := s.RPC("Node.UpdateStatus", &structs.NodeUpdateStatusRequest{NodeID: n.ID, SecretID: n.SecretID, Status: structs.NodeStatusReady}, &reply)
	return &reply, err
}

func TestNodeHeartbeatKeepsReadyAndSilenceMarksDown(t *testing.T) {
	shortNodeTTL(t)
	c := newTestCluster(t, 1)
	s := c.leader()
	n := testNode()
	var reply structs.NodeUpdateResponse
	if err := s.RPC("Node.Register", &structs.NodeRegisterRequest{Node: n}, &reply); err != nil {
		t.Fatal(err)
	}
	if reply.HeartbeatTTL < s.config.MinHeartbeatTTL || len(reply.Servers) != 1 {
		t.Fatalf("register reply = %+v, want a TTL >= %s and the server list", reply, s.config.MinHeartbeatTTL)
	}
	if got := nodeStatus(t, s, n.ID); got != structs.NodeStatusReady {
		t.Fatalf("status after register = %q, want ready", got)
	}
	// Heartbeats at half the TTL keep it ready well past one TTL.
	until := time.Now().Add(3 * reply.HeartbeatTTL)
	for time.Now().Before(until) {
		r, err := heartbeat(s, n)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(r.HeartbeatTTL / 2)
	}
	if got := nodeStatus(t, s, n.ID); got != structs.NodeStatusReady {
		t.Fatalf("status while heartbeating = %q, want ready", got)
	}
	// Silence: down within the TTL plus its jitter (a quarter).
	silent := time.Now()
	testutil.WaitFor(t, 3*time.Second, "the silent node to be marked down", func() bool {
		return nodeStatus(t, s, n.ID) == structs.NodeStatusDown
	})
	if took := time.Since(silent); took > 2*reply.HeartbeatTTL {
		t.Errorf("node marked down %s after its last heartbeat, TTL %s", took, reply.HeartbeatTTL)
	}
	// A heartbeat brings it back.
	if _, err := heartbeat(s, n); err != nil {
		t.Fatal(err)
	}
	if got := nodeStatus(t, s, n.ID); got != structs.NodeStatusReady {
		t.Fatalf("status after heartbeating again = %q, want ready", got)
	}
}

func TestNodeSecretsAreChecked(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.leader()
	n := testNode()
	var reply structs.NodeUpdateResponse
	if err := s.RPC("Node.Register", &structs.NodeRegisterRequest{Node: n}, &reply); err != nil {
		t.Fatal(err)
	}
	impostor := *n
	impostor.SecretID = structs.GenerateUUID()
	if err := s.RPC("Node.Register", &structs.NodeRegisterRequest{Node: &impostor}, &reply); err == nil || !strings.Contains(err.Error(), "another secret") {
		t.Fatalf("re-register with another secret: err = %v", err)
	}
	if _, err := heartbeat(s, &impostor); err == nil || !strings.Contains(err.Error(), "wrong secret") {
		t.Fatalf("heartbeat with a wrong secret: err = %v", err)
	}
	if err := s.RPC("Node.Register", &structs.NodeRegisterRequest{Node: &structs.Node{ID: "short"}}, &reply); err == nil || !strings.Contains(err.Error(), "not a UUID") {
		t.Fatalf("bad node ID: err = %v", err)
	}
}

// TestNewLeaderGivesClientsGrace: after a leader change, nodes that keep
// heartbeating (through followers, forwarded) are never marked down.
func TestNewLeaderGivesClientsGrace(t *testing.T) {
	shortNodeTTL(t)
	c := newTestCluster(t, 3)
	f := c.follower()
	n := testNode()
	var reply structs.NodeUpdateResponse
	if err := f.RPC("Node.Register", &structs.NodeRegisterRequest{Node: n}, &reply); err != nil {
		t.Fatal(err)
	}
	old := c.leader()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // the client: heartbeats through a server that stays up
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(reply.HeartbeatTTL / 3):
			}
			_, _ = heartbeat(f, n)
		}
	}()
	if f == old {
		t.Fatal("follower is the leader")
	}
	old.Shutdown()
	newLeader := c.leader()
	deadline := time.Now().Add(4 * reply.HeartbeatTTL)
	for time.Now().Before(deadline) {
		if got := nodeStatus(t, newLeader, n.ID); got != structs.NodeStatusReady {
			t.Fatalf("node marked %q during a leader change although it kept heartbeating", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	<-done
}
