// Package agent runs a Skiff agent: it reads the configuration, starts a
// server (and, in a later version, a client), and serves the HTTP API.
package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	sockaddr "github.com/hashicorp/go-sockaddr"

	"github.com/skiffhq/skiff/client"
	"github.com/skiffhq/skiff/client/driver/containerd"
	"github.com/skiffhq/skiff/server"
)

// Default ports.
const (
	DefaultHTTPPort = 4646
	DefaultRPCPort  = 4647
	DefaultSerfPort = 4648
)

// Agent is a running agent.
type Agent struct {
	config    *Config
	logger    hclog.Logger
	server    *server.Server
	client    *client.Client
	private   *containerd.Private // dev mode's own containerd, if it started one
	http      *http.Server
	httpLn    net.Listener
	telemetry *telemetry
	devDir    string // removed on shutdown in dev mode
	// stubBytes is the size of a job list's JSON per job, the last time:
	// the next list's buffer is made that large, so that appending 10,000
	// stubs does not copy the buffer as it grows (a fifth of the list's
	// encoding time).
	stubBytes atomic.Int64
}

type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

// Run is "skiff agent": it parses flags, runs the agent until SIGINT or
// SIGTERM and returns the exit code.
func Run(args []string, stderr io.Writer) int {
	cfg, err := ParseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 1
	}
	a, err := Start(cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "Error starting agent: %v\n", err)
		return 1
	}
	if a.server != nil {
		SetServerGC(a.logger)
	}
	started := "HTTP API on http://" + a.HTTPAddr()
	if a.server != nil {
		started += ", RPC on " + a.server.RPCAddr()
	}
	if a.client != nil {
		started += ", client node " + a.client.NodeID()
	}
	fmt.Fprintf(stderr, "==> Skiff agent started. %s, data in %s\n", started, a.config.DataDir)

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	sig := <-sigs
	leave := a.server != nil && ((sig == syscall.SIGINT && isTrue(a.config.LeaveOnInterrupt)) || (sig == syscall.SIGTERM && isTrue(a.config.LeaveOnTerminate)))
	what := "shutting down"
	if leave {
		what = "leaving the cluster and shutting down"
	}
	fmt.Fprintf(stderr, "==> Caught %s; %s (again to force)\n", sig, what)
	done := make(chan struct{})
	go func() {
		if leave {
			if err := a.server.Leave(); err != nil {
				fmt.Fprintf(stderr, "Error leaving the cluster: %v\n", err)
			}
		}
		a.Shutdown()
		close(done)
	}()
	select {
	case <-done:
		return 0
	case <-sigs:
		return 1
	}
}

func isTrue(b *bool) bool { return b != nil && *b }

// ParseFlags turns "skiff agent" arguments into a config: files first
// (-config, repeatable, later wins), then flags over them.
func ParseFlags(args []string, stderr io.Writer) (*Config, error) {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		configs, retryJoin, servers                     stringsFlag
		dev, srv, client                                bool
		bootstrapExpect                                 int
		dataDir, bind, node, dc, region, logLevel, join string
	)
	fs.Var(&configs, "config", "config file or directory (repeatable; later wins)")
	fs.BoolVar(&dev, "dev", false, "development mode: one server with state in a temporary directory, bound to 127.0.0.1")
	fs.BoolVar(&srv, "server", false, "run a server")
	fs.BoolVar(&client, "client", false, "run a client: run allocations on this machine through containerd")
	fs.IntVar(&bootstrapExpect, "bootstrap-expect", 0, "servers to wait for before bootstrapping raft")
	fs.Var(&retryJoin, "retry-join", "gossip address of a server to join (repeatable)")
	fs.StringVar(&join, "join", "", "comma-separated gossip addresses to join")
	fs.Var(&servers, "servers", "server RPC addresses for a client (repeatable)")
	fs.StringVar(&dataDir, "data-dir", "", "directory for state")
	fs.StringVar(&bind, "bind", "", "address to bind every listener to")
	fs.StringVar(&node, "node", "", "node name")
	fs.StringVar(&dc, "dc", "", "datacenter")
	fs.StringVar(&region, "region", "", "region")
	fs.StringVar(&logLevel, "log-level", "", "TRACE, DEBUG, INFO, WARN or ERROR")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: skiff agent [-dev] [-config FILE]... [-server] [-bootstrap-expect N] [-retry-join ADDR]... [-data-dir DIR] [-bind IP] [-node NAME] [-dc DC]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q; skiff agent takes only flags", fs.Arg(0))
	}
	cfg, err := LoadConfigFiles(configs)
	if err != nil {
		return nil, err
	}
	over := &Config{DataDir: dataDir, BindAddr: bind, Name: node, Datacenter: dc, Region: region, LogLevel: logLevel}
	if srv || bootstrapExpect > 0 || len(retryJoin) > 0 || join != "" {
		over.Server = &ServerConfig{BootstrapExpect: bootstrapExpect}
		if srv {
			over.Server.Enabled = new(true)
		}
		for _, j := range strings.Split(join, ",") {
			if j = strings.TrimSpace(j); j != "" {
				retryJoin = append(retryJoin, j)
			}
		}
		if len(retryJoin) > 0 {
			over.Server.ServerJoin = &ServerJoin{RetryJoin: retryJoin}
		}
	}
	cfg.merge(over)
	if client || len(servers) > 0 {
		if cfg.Client == nil {
			cfg.Client = &ClientConfig{}
		}
		if client {
			cfg.Client.Enabled = new(true)
		}
		if len(servers) > 0 {
			cfg.Client.Servers = servers
		}
	}
	if dev {
		cfg.dev = true
	}
	return cfg, cfg.finish()
}

// finish fills defaults and checks the merged config.
func (c *Config) finish() error {
	if c.dev {
		if c.BindAddr == "" {
			c.BindAddr = "127.0.0.1"
		}
		if c.Server == nil {
			c.Server = &ServerConfig{}
		}
		c.Server.Enabled = new(true)
		c.Server.BootstrapExpect = 1
	}
	if c.dev {
		// Dev mode runs a client too, unless the config turns it off.
		if c.Client == nil {
			c.Client = &ClientConfig{}
		}
		if c.Client.Enabled == nil {
			c.Client.Enabled = new(true)
		}
	}
	if !c.serverEnabled() && !c.clientEnabled() {
		return errors.New("nothing to run: pass -server and/or -client (or server/client { enabled = true } in a config file), or -dev")
	}
	if c.clientEnabled() && !c.serverEnabled() && len(c.Client.Servers) == 0 {
		return errors.New("a client without a server in the same agent needs the servers' RPC addresses: -servers host:4647 or client { servers = [\"host:4647\"] }")
	}
	if c.DataDir == "" && !c.dev {
		return errors.New("a data_dir is required (flag -data-dir or data_dir in the config file); use -dev for a throwaway agent")
	}
	if c.BindAddr == "" {
		c.BindAddr = "0.0.0.0"
	}
	if c.Region == "" {
		c.Region = "global"
	}
	if c.Datacenter == "" {
		c.Datacenter = "dc1"
	}
	if c.Name == "" {
		c.Name, _ = os.Hostname()
	}
	if c.LogLevel == "" {
		c.LogLevel = "INFO"
	}
	if hclog.LevelFromString(c.LogLevel) == hclog.NoLevel {
		return fmt.Errorf("log_level %q is not one of TRACE, DEBUG, INFO, WARN, ERROR", c.LogLevel)
	}
	if c.Ports == nil {
		c.Ports = &Ports{}
	}
	if c.Ports.HTTP == 0 {
		c.Ports.HTTP = DefaultHTTPPort
	}
	if c.Ports.RPC == 0 {
		c.Ports.RPC = DefaultRPCPort
	}
	if c.Ports.Serf == 0 {
		c.Ports.Serf = DefaultSerfPort
	}
	if c.Server != nil && c.Server.BootstrapExpect < 0 {
		return fmt.Errorf("bootstrap_expect must be >= 1 (got %d)", c.Server.BootstrapExpect)
	}
	return nil
}

// Start starts the agent described by cfg (from ParseFlags).
func Start(cfg *Config, logOut io.Writer) (_ *Agent, err error) {
	logger := hclog.New(&hclog.LoggerOptions{
		Name: "skiff", Level: hclog.LevelFromString(cfg.LogLevel),
		JSONFormat: cfg.LogJSON != nil && *cfg.LogJSON, Output: logOut,
	})
	a := &Agent{config: cfg, logger: logger}
	defer func() {
		if err != nil {
			a.Shutdown()
		}
	}()
	if cfg.dev && cfg.DataDir == "" {
		if a.devDir, err = os.MkdirTemp("", "skiff-dev-"); err != nil {
			return nil, fmt.Errorf("create dev data dir: %w", err)
		}
		cfg.DataDir = a.devDir
	}
	if a.telemetry, err = setupTelemetry(cfg); err != nil {
		return nil, err
	}
	if !raftMetricsWired {
		logger.Warn("this binary was built without -tags hashicorpmetrics: raft and gossip metrics are not collected (build with \"make dev\")")
	}
	var scfg *server.Config
	if cfg.serverEnabled() {
		if scfg, err = serverConfig(cfg, logger); err != nil {
			return nil, err
		}
	}
	// Listen for HTTP first so a port clash fails before raft starts.
	httpAddr := net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.Ports.HTTP))
	if a.httpLn, err = net.Listen("tcp", httpAddr); err != nil {
		return nil, fmt.Errorf("listen for HTTP on %s: %w (is another agent running? set ports { http = ... })", httpAddr, err)
	}
	if scfg != nil {
		if a.server, err = server.New(scfg); err != nil {
			return nil, err
		}
	}
	if cfg.clientEnabled() {
		if err := a.startClient(); err != nil {
			return nil, err
		}
	}
	a.http = &http.Server{Handler: a.routes(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: logger.Named("http").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})}
	go func() {
		if err := a.http.Serve(a.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("http server stopped", "error", err)
		}
	}()
	return a, nil
}

func serverConfig(cfg *Config, logger hclog.Logger) (*server.Config, error) {
	sc := server.DefaultConfig()
	sc.NodeName, sc.Region, sc.Datacenter, sc.DataDir = cfg.Name, cfg.Region, cfg.Datacenter, cfg.DataDir
	sc.Logger = logger
	sc.BootstrapExpect = cfg.Server.BootstrapExpect
	bindIP := net.ParseIP(cfg.BindAddr)
	if bindIP == nil {
		return nil, fmt.Errorf("bind_addr %q is not an IP address", cfg.BindAddr)
	}
	sc.RPCAddr = &net.TCPAddr{IP: bindIP, Port: cfg.Ports.RPC}
	sc.SerfBindAddr, sc.SerfBindPort = cfg.BindAddr, cfg.Ports.Serf
	if bindIP.IsUnspecified() && (cfg.Advertise == nil || cfg.Advertise.RPC == "") {
		// Bound to every interface: peers dial this machine's private IP,
		// as gossip already advertises it.
		ip, err := sockaddr.GetPrivateIP()
		if err != nil || ip == "" {
			return nil, fmt.Errorf("bind_addr is %s and this machine has no private IP to advertise to other servers (%v); set bind_addr, or advertise { rpc = \"ip:port\" }", cfg.BindAddr, err)
		}
		sc.RPCAdvertise = &net.TCPAddr{IP: net.ParseIP(ip), Port: cfg.Ports.RPC}
	}
	if adv := cfg.Advertise; adv != nil {
		if adv.RPC != "" {
			addr, err := advertiseAddr(adv.RPC, cfg.Ports.RPC)
			if err != nil {
				return nil, fmt.Errorf("advertise.rpc: %w", err)
			}
			sc.RPCAdvertise = addr
		}
		if adv.Serf != "" {
			addr, err := advertiseAddr(adv.Serf, cfg.Ports.Serf)
			if err != nil {
				return nil, fmt.Errorf("advertise.serf: %w", err)
			}
			sc.SerfAdvertiseAddr, sc.SerfAdvertisePort = addr.IP.String(), addr.Port
		}
	}
	if j := cfg.Server.ServerJoin; j != nil {
		sc.RetryJoin = j.RetryJoin
		if d, err := parseDur("server_join.retry_interval", j.RetryInterval); err != nil {
			return nil, err
		} else if d > 0 {
			sc.RetryInterval = d
		}
	}
	s := cfg.Server
	if s.RaftSnapshotThreshold > 0 {
		sc.RaftSnapshotThreshold = uint64(s.RaftSnapshotThreshold)
	}
	if s.RaftTrailingLogs > 0 {
		sc.RaftTrailingLogs = uint64(s.RaftTrailingLogs)
	}
	for _, d := range []struct {
		name, v string
		dst     *time.Duration
	}{
		{"server.raft_snapshot_interval", s.RaftSnapshotInterval, &sc.RaftSnapshotInterval},
		{"server.raft_heartbeat_timeout", s.RaftHeartbeatTimeout, &sc.RaftHeartbeatTimeout},
		{"server.raft_election_timeout", s.RaftElectionTimeout, &sc.RaftElectionTimeout},
		{"server.min_heartbeat_ttl", s.MinHeartbeatTTL, &sc.MinHeartbeatTTL},
		{"server.node_reconnect_grace", s.NodeReconnectGrace, &sc.NodeReconnectGrace},
		{"server.heartbeat_grace", s.HeartbeatGrace, &sc.HeartbeatGrace},
	} {
		v, err := parseDur(d.name, d.v)
		if err != nil {
			return nil, err
		}
		if v > 0 {
			*d.dst = v
		}
	}
	if s.MaxHeartbeatsPerSecond < 0 {
		return nil, fmt.Errorf("server.max_heartbeats_per_second = %v: must be positive", s.MaxHeartbeatsPerSecond)
	} else if s.MaxHeartbeatsPerSecond > 0 {
		sc.MaxHeartbeatsPerSecond = s.MaxHeartbeatsPerSecond
	}
	if cfg.dev {
		// One voter has nobody to be partitioned from: elect it at once.
		sc.RaftHeartbeatTimeout, sc.RaftElectionTimeout, sc.RaftLeaderLeaseTimeout = 50*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond
	}
	sc.RaftLeaderLeaseTimeout = min(sc.RaftLeaderLeaseTimeout, sc.RaftHeartbeatTimeout)
	if s.ReadLease != nil {
		sc.NoReadLease = !*s.ReadLease
	}
	switch s.DeadServerCleanup {
	case "":
	case "off":
		sc.DeadServerCleanup = 0
	default:
		d, err := parseDur("server.dead_server_cleanup", s.DeadServerCleanup)
		if err != nil {
			return nil, err
		}
		if d <= 0 {
			return nil, fmt.Errorf("server.dead_server_cleanup must be a positive duration or \"off\" (got %q)", s.DeadServerCleanup)
		}
		sc.DeadServerCleanup = d
	}
	switch s.SchedulerAlgorithm {
	case "", "binpack", "spread":
		sc.SchedulerAlgorithm = s.SchedulerAlgorithm
	default:
		return nil, fmt.Errorf("server.scheduler_algorithm must be \"binpack\" or \"spread\" (got %q)", s.SchedulerAlgorithm)
	}
	if s.NumSchedulers < 0 {
		return nil, fmt.Errorf("server.num_schedulers must be >= 0 (got %d)", s.NumSchedulers)
	}
	if s.NumSchedulers > 0 {
		sc.NumSchedulers = s.NumSchedulers
	}
	if s.GossipProfile != "" {
		if s.GossipProfile != "lan" && s.GossipProfile != "local" {
			return nil, fmt.Errorf("server.gossip_profile must be \"lan\" or \"local\" (got %q)", s.GossipProfile)
		}
		sc.GossipProfile = s.GossipProfile
	}
	return sc, nil
}

func advertiseAddr(v string, defPort int) (*net.TCPAddr, error) {
	host, port := v, strconv.Itoa(defPort)
	if h, p, err := net.SplitHostPort(v); err == nil {
		host, port = h, p
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, fmt.Errorf("%q is not an IP address (with optional :port)", v)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return nil, fmt.Errorf("%q has a bad port", v)
	}
	return &net.TCPAddr{IP: ip, Port: n}, nil
}

// HTTPAddr is the address the HTTP API listens on.
func (a *Agent) HTTPAddr() string { return a.httpLn.Addr().String() }

// Server returns the agent's server.
func (a *Agent) Server() *server.Server { return a.server }

// Shutdown stops HTTP, then the server, and removes a dev data dir.
func (a *Agent) Shutdown() {
	if a.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = a.http.Shutdown(ctx)
		cancel()
	} else if a.httpLn != nil {
		a.httpLn.Close()
	}
	a.stopClient()
	if a.server != nil {
		a.server.Shutdown()
	}
	if a.private != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		if err := a.private.Stop(ctx); err != nil {
			a.logger.Warn("stop dev containerd", "error", err)
		}
		cancel()
	}
	if a.devDir != "" {
		os.RemoveAll(a.devDir)
	}
}
