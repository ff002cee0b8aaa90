package server

import (
	"net"
	"runtime"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Config configures one server. The agent fills it from its config file
// and flags; tests fill it directly.
type Config struct {
	NodeName   string
	Region     string
	Datacenter string
	DataDir    string // raft log, raft snapshots, serf snapshot, node-id

	// RPCListener, if set, is used instead of listening on RPCAddr (tests
	// pass a listener on port 0).
	RPCListener  net.Listener
	RPCAddr      *net.TCPAddr // bind address of the RPC+raft port
	RPCAdvertise *net.TCPAddr // what peers dial; defaults to RPCAddr

	SerfBindAddr      string
	SerfBindPort      int // 0 picks a free port
	SerfAdvertiseAddr string
	SerfAdvertisePort int

	BootstrapExpect int      // servers to wait for before bootstrapping raft
	RetryJoin       []string // gossip addresses to join, retried until one answers
	RetryInterval   time.Duration

	// Raft timing. The defaults are tuned for a LAN: a dead leader is
	// noticed after HeartbeatTimeout (randomised up to twice that).
	RaftHeartbeatTimeout   time.Duration
	RaftElectionTimeout    time.Duration
	RaftLeaderLeaseTimeout time.Duration
	// NoReadLease makes the leader confirm its leadership with a round of
	// heartbeats for every linearizable read, instead of answering reads
	// for a tenth of RaftHeartbeatTimeout after a round (see verifyLeader).
	NoReadLease           bool
	RaftSnapshotThreshold uint64
	RaftSnapshotInterval  time.Duration
	RaftTrailingLogs      uint64
	RaftMaxAppendEntries  int

	// RPCHoldTimeout is how long a follower keeps retrying to forward a
	// request while there is no leader.
	RPCHoldTimeout time.Duration
	// ReconcileInterval is how often the leader reconciles gossip members
	// with the raft configuration, besides on every membership event.
	ReconcileInterval time.Duration
	// DeadServerCleanup is how long a server must have failed (gossip) before
	// the leader removes it from the raft configuration, as long as the
	// servers left are still a healthy majority; 0 turns the clean-up off.
	DeadServerCleanup time.Duration
	// SchedulerAlgorithm is "binpack" (default) or "spread"; every server
	// of a cluster should use the same.
	SchedulerAlgorithm string

	// Client heartbeats: a node's TTL is at least MinHeartbeatTTL and long
	// enough that all nodes together send at most MaxHeartbeatsPerSecond;
	// a new leader adds HeartbeatGrace before marking anyone down. A node
	// whose liveness connection ends has NodeReconnectGrace to come back
	// (liveness.go).
	MinHeartbeatTTL        time.Duration
	MaxHeartbeatsPerSecond float64
	HeartbeatGrace         time.Duration
	NodeReconnectGrace     time.Duration

	// Scheduling: workers on the leader, and how evaluations are retried.
	NumSchedulers     int
	EvalNackTimeout   time.Duration
	EvalDeliveryLimit int

	// GossipProfile "lan" (default) or "local" (faster failure detection,
	// for tests on one machine).
	GossipProfile string

	Logger hclog.Logger
}

// DefaultConfig returns a config with every timing filled in.
func DefaultConfig() *Config {
	return &Config{
		Region:                 "global",
		Datacenter:             "dc1",
		RetryInterval:          2 * time.Second,
		RaftHeartbeatTimeout:   400 * time.Millisecond,
		RaftElectionTimeout:    400 * time.Millisecond,
		RaftLeaderLeaseTimeout: 400 * time.Millisecond,
		RaftSnapshotThreshold:  8192,
		// 120 s as in hashicorp/raft and Nomad: each snapshot encodes the
		// whole state (1.5 GB at a million allocations), so taking one
		// every 30 s cost C1M a tenth of its CPU. The price: a restart
		// replays up to two intervals of entries (raft checks at a random
		// time between one and two intervals).
		RaftSnapshotInterval:   120 * time.Second,
		RaftTrailingLogs:       10240,
		RaftMaxAppendEntries:   512,
		RPCHoldTimeout:         7 * time.Second,
		ReconcileInterval:      10 * time.Second,
		DeadServerCleanup:      5 * time.Minute,
		NumSchedulers:          runtime.NumCPU(),
		EvalNackTimeout:        60 * time.Second,
		EvalDeliveryLimit:      3,
		MinHeartbeatTTL:        10 * time.Second,
		MaxHeartbeatsPerSecond: 50,
		HeartbeatGrace:         10 * time.Second,
		NodeReconnectGrace:     2 * time.Second,
		GossipProfile:          "lan",
	}
}
