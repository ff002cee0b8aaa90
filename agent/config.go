package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// Config is the agent configuration file, HCL. Several files (or a
// directory of *.hcl) may be given; later values win.
type Config struct {
	DataDir    string `hcl:"data_dir,optional"`
	BindAddr   string `hcl:"bind_addr,optional"`
	Region     string `hcl:"region,optional"`
	Datacenter string `hcl:"datacenter,optional"`
	Name       string `hcl:"name,optional"`
	LogLevel   string `hcl:"log_level,optional"`
	LogJSON    *bool  `hcl:"log_json,optional"`
	// LeaveOnInterrupt / LeaveOnTerminate: on SIGINT / SIGTERM the server
	// leaves the cluster (the leader removes it from raft) instead of only
	// stopping (it stays a voter and rejoins when restarted).
	LeaveOnInterrupt *bool            `hcl:"leave_on_interrupt,optional"`
	LeaveOnTerminate *bool            `hcl:"leave_on_terminate,optional"`
	Ports            *Ports           `hcl:"ports,block"`
	Advertise        *Advertise       `hcl:"advertise,block"`
	Server           *ServerConfig    `hcl:"server,block"`
	Client           *ClientConfig    `hcl:"client,block"`
	TLS              *EnabledBlock    `hcl:"tls,block"`
	ACL              *EnabledBlock    `hcl:"acl,block"`
	Telemetry        *TelemetryConfig `hcl:"telemetry,block"`
	Limits           *LimitsConfig    `hcl:"limits,block"`

	dev bool // set by -dev
}

// Ports are the agent's listening ports.
type Ports struct {
	HTTP int `hcl:"http,optional"`
	RPC  int `hcl:"rpc,optional"`
	Serf int `hcl:"serf,optional"`
}

// Advertise are the addresses others reach this agent at ("ip" or "ip:port").
type Advertise struct {
	HTTP string `hcl:"http,optional"`
	RPC  string `hcl:"rpc,optional"`
	Serf string `hcl:"serf,optional"`
}

// ServerConfig is the server block.
type ServerConfig struct {
	Enabled               *bool       `hcl:"enabled,optional"`
	BootstrapExpect       int         `hcl:"bootstrap_expect,optional"`
	ServerJoin            *ServerJoin `hcl:"server_join,block"`
	RaftSnapshotThreshold int         `hcl:"raft_snapshot_threshold,optional"`
	RaftSnapshotInterval  string      `hcl:"raft_snapshot_interval,optional"`
	RaftTrailingLogs      int         `hcl:"raft_trailing_logs,optional"`
	RaftHeartbeatTimeout  string      `hcl:"raft_heartbeat_timeout,optional"`
	RaftElectionTimeout   string      `hcl:"raft_election_timeout,optional"`
	// ReadLease (default true) lets the leader answer linearizable reads
	// for a tenth of the heartbeat timeout after confirming its leadership,
	// instead of confirming it for every read (see README "HTTP API").
	ReadLease     *bool  `hcl:"read_lease,optional"`
	GossipProfile string `hcl:"gossip_profile,optional"`
	// NumSchedulers is how many scheduler workers this server runs
	// (default: one per core; 0 keeps the default).
	NumSchedulers int `hcl:"num_schedulers,optional"`
	// DeadServerCleanup: how long a server must be dead before the leader
	// removes it from raft (default 5m; "off" never removes one).
	DeadServerCleanup string `hcl:"dead_server_cleanup,optional"`
	// SchedulerAlgorithm is "binpack" (fill nodes first, the default) or
	// "spread" (emptiest nodes first). Give every server the same.
	SchedulerAlgorithm string `hcl:"scheduler_algorithm,optional"`
	// Client failure detection (see README "Failure detection"):
	// MinHeartbeatTTL (default 10s) and MaxHeartbeatsPerSecond (default
	// 50) set the heartbeat TTL, the backstop; NodeReconnectGrace
	// (default 2s) is how long a client whose liveness connection ended
	// has to come back before it is marked down; HeartbeatGrace (default
	// 10s) is added to every TTL by a new leader.
	MinHeartbeatTTL        string  `hcl:"min_heartbeat_ttl,optional"`
	MaxHeartbeatsPerSecond float64 `hcl:"max_heartbeats_per_second,optional"`
	NodeReconnectGrace     string  `hcl:"node_reconnect_grace,optional"`
	HeartbeatGrace         string  `hcl:"heartbeat_grace,optional"`
}

// ServerJoin lists gossip addresses to join at start.
type ServerJoin struct {
	RetryJoin     []string `hcl:"retry_join,optional"`
	RetryInterval string   `hcl:"retry_interval,optional"`
}

// ClientConfig is the client block (the client agent arrives in a later
// version; the block is parsed so configs can be written now).
type ClientConfig struct {
	Enabled    *bool             `hcl:"enabled,optional"`
	Servers    []string          `hcl:"servers,optional"`
	NodeClass  string            `hcl:"node_class,optional"`
	Meta       map[string]string `hcl:"meta,optional"`
	HostVolume []*HostVolume     `hcl:"host_volume,block"`
	// GC of terminal allocations: keep at most GCMaxAllocs, and collect
	// while the data dir's disk is fuller than GCDiskUsageThreshold percent.
	GCMaxAllocs          int               `hcl:"gc_max_allocs,optional"`
	GCDiskUsageThreshold float64           `hcl:"gc_disk_usage_threshold,optional"`
	ReservedCPU          int               `hcl:"reserved_cpu,optional"`
	ReservedMemoryMB     int               `hcl:"reserved_memory,optional"`
	Containerd           *ContainerdConfig `hcl:"containerd,block"`
}

// HostVolume is a host directory offered to jobs.
type HostVolume struct {
	Name     string `hcl:"name,label"`
	Path     string `hcl:"path"`
	ReadOnly bool   `hcl:"read_only,optional"`
}

// ContainerdConfig points the client at containerd and says what tasks
// may do.
type ContainerdConfig struct {
	Address     string `hcl:"address,optional"`
	Namespace   string `hcl:"namespace,optional"`
	Snapshotter string `hcl:"snapshotter,optional"`
	// InsecureRegistries are registries (host or host:port) pulled from
	// over plain HTTP.
	InsecureRegistries []string        `hcl:"insecure_registries,optional"`
	AllowPrivileged    bool            `hcl:"allow_privileged,optional"`
	AllowHostMounts    bool            `hcl:"allow_host_mounts,optional"`
	Auth               []*RegistryAuth `hcl:"auth,block"`
}

// RegistryAuth is the credentials for one registry.
type RegistryAuth struct {
	Registry string `hcl:"registry,label"`
	Username string `hcl:"username"`
	Password string `hcl:"password"`
}

// EnabledBlock is a block this version only parses.
type EnabledBlock struct {
	Enabled bool     `hcl:"enabled,optional"`
	Remain  hcl.Body `hcl:",remain"`
}

// TelemetryConfig configures metrics.
type TelemetryConfig struct {
	PrometheusMetrics bool `hcl:"prometheus_metrics,optional"`
}

// LimitsConfig bounds requests.
type LimitsConfig struct {
	HTTPMaxRequestBytes int64 `hcl:"http_max_request_bytes,optional"`
}

// LoadConfigFiles reads the files (or directories of *.hcl files) in
// order and merges them, later values winning.
func LoadConfigFiles(paths []string) (*Config, error) {
	out := &Config{}
	for _, p := range paths {
		files, err := expandConfigPath(p)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			c, err := parseConfigFile(f)
			if err != nil {
				return nil, err
			}
			out.merge(c)
		}
	}
	return out, nil
}

func expandConfigPath(p string) ([]string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", p, err)
	}
	if !fi.IsDir() {
		return []string{p}, nil
	}
	matches, err := filepath.Glob(filepath.Join(p, "*.hcl"))
	if err != nil {
		return nil, err
	}
	sort.Strings(matches)
	return matches, nil
}

func parseConfigFile(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return ParseConfig(src, path)
}

// ParseConfig parses one HCL config file. Unknown blocks and attributes
// are errors with their position.
func ParseConfig(src []byte, filename string) (*Config, error) {
	p := hclparse.NewParser()
	f, diags := p.ParseHCL(src, filename)
	if diags.HasErrors() {
		return nil, diagErr(diags)
	}
	var c Config
	if diags := gohcl.DecodeBody(f.Body, nil, &c); diags.HasErrors() {
		return nil, diagErr(diags)
	}
	for name, b := range map[string]*EnabledBlock{"tls": c.TLS, "acl": c.ACL} {
		if b != nil && b.Enabled {
			return nil, fmt.Errorf("%s: %s { enabled = true } is not supported by this version of Skiff yet; remove the block or set enabled = false", filename, name)
		}
	}
	return &c, nil
}

func diagErr(diags hcl.Diagnostics) error {
	var msgs []string
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		m := d.Summary
		if d.Detail != "" {
			m += ": " + d.Detail
		}
		if d.Subject != nil {
			m = d.Subject.String() + ": " + m
		}
		msgs = append(msgs, m)
	}
	return errors.New(strings.Join(msgs, "\n"))
}

// merge overlays the set fields of o onto c.
func (c *Config) merge(o *Config) {
	setStr := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	setStr(&c.DataDir, o.DataDir)
	setStr(&c.BindAddr, o.BindAddr)
	setStr(&c.Region, o.Region)
	setStr(&c.Datacenter, o.Datacenter)
	setStr(&c.Name, o.Name)
	setStr(&c.LogLevel, o.LogLevel)
	if o.LogJSON != nil {
		c.LogJSON = o.LogJSON
	}
	if o.LeaveOnInterrupt != nil {
		c.LeaveOnInterrupt = o.LeaveOnInterrupt
	}
	if o.LeaveOnTerminate != nil {
		c.LeaveOnTerminate = o.LeaveOnTerminate
	}
	if o.Ports != nil {
		if c.Ports == nil {
			c.Ports = &Ports{}
		}
		if o.Ports.HTTP != 0 {
			c.Ports.HTTP = o.Ports.HTTP
		}
		if o.Ports.RPC != 0 {
			c.Ports.RPC = o.Ports.RPC
		}
		if o.Ports.Serf != 0 {
			c.Ports.Serf = o.Ports.Serf
		}
	}
	if o.Advertise != nil {
		if c.Advertise == nil {
			c.Advertise = &Advertise{}
		}
		setStr(&c.Advertise.HTTP, o.Advertise.HTTP)
		setStr(&c.Advertise.RPC, o.Advertise.RPC)
		setStr(&c.Advertise.Serf, o.Advertise.Serf)
	}
	if o.Server != nil {
		if c.Server == nil {
			c.Server = &ServerConfig{}
		}
		s, os := c.Server, o.Server
		if os.Enabled != nil {
			s.Enabled = os.Enabled
		}
		if os.BootstrapExpect != 0 {
			s.BootstrapExpect = os.BootstrapExpect
		}
		if os.ServerJoin != nil {
			s.ServerJoin = os.ServerJoin
		}
		if os.RaftSnapshotThreshold != 0 {
			s.RaftSnapshotThreshold = os.RaftSnapshotThreshold
		}
		if os.RaftTrailingLogs != 0 {
			s.RaftTrailingLogs = os.RaftTrailingLogs
		}
		setStr(&s.RaftSnapshotInterval, os.RaftSnapshotInterval)
		setStr(&s.RaftHeartbeatTimeout, os.RaftHeartbeatTimeout)
		setStr(&s.RaftElectionTimeout, os.RaftElectionTimeout)
		if os.ReadLease != nil {
			s.ReadLease = os.ReadLease
		}
		setStr(&s.GossipProfile, os.GossipProfile)
		if os.NumSchedulers != 0 {
			s.NumSchedulers = os.NumSchedulers
		}
		setStr(&s.DeadServerCleanup, os.DeadServerCleanup)
		setStr(&s.SchedulerAlgorithm, os.SchedulerAlgorithm)
		setStr(&s.MinHeartbeatTTL, os.MinHeartbeatTTL)
		if os.MaxHeartbeatsPerSecond != 0 {
			s.MaxHeartbeatsPerSecond = os.MaxHeartbeatsPerSecond
		}
		setStr(&s.NodeReconnectGrace, os.NodeReconnectGrace)
		setStr(&s.HeartbeatGrace, os.HeartbeatGrace)
	}
	if o.Client != nil {
		c.Client = o.Client
	}
	if o.Telemetry != nil {
		c.Telemetry = o.Telemetry
	}
	if o.Limits != nil {
		c.Limits = o.Limits
	}
}

func parseDur(field, v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a duration (use e.g. \"500ms\", \"30s\")", field, v)
	}
	return d, nil
}
