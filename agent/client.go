package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	sockaddr "github.com/hashicorp/go-sockaddr"
	"github.com/skiffhq/skiff/client"
	"github.com/skiffhq/skiff/client/driver"
	"github.com/skiffhq/skiff/client/driver/containerd"
	"github.com/skiffhq/skiff/server"
)

// defaultContainerdAddress is where Debian's containerd listens.
const defaultContainerdAddress = "/run/containerd/containerd.sock"

func (c *Config) serverEnabled() bool {
	return c.Server != nil && c.Server.Enabled != nil && *c.Server.Enabled
}

func (c *Config) clientEnabled() bool {
	return c.Client != nil && c.Client.Enabled != nil && *c.Client.Enabled
}

// startClient starts the client: the containerd driver (in dev mode with
// a private containerd when none answers), then the node agent, which
// talks to the in-process server when there is one.
func (a *Agent) startClient() error {
	httpAddr, err := a.advertisedHTTP()
	if err != nil {
		return err
	}
	cfg := a.config
	cc := cfg.Client
	ctd := cc.Containerd
	if ctd == nil {
		ctd = &ContainerdConfig{}
	}
	address := ctd.Address
	if address == "" {
		address = defaultContainerdAddress
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the skiff binary (the containerd log shim runs it): %w", err)
	}
	dcfg := containerd.Config{
		Address: address, Namespace: ctd.Namespace, Snapshotter: ctd.Snapshotter,
		InsecureRegistries: ctd.InsecureRegistries, AllowPrivileged: ctd.AllowPrivileged, AllowHostMounts: ctd.AllowHostMounts,
		Auth: map[string]containerd.Credentials{}, LoggerBinary: self, LoggerArgs: []string{"logmon"},
		Logger: a.logger.Named("containerd"),
	}
	for _, au := range ctd.Auth {
		dcfg.Auth[au.Registry] = containerd.Credentials{Username: au.Username, Password: au.Password}
	}
	if cfg.dev && ctd.Address == "" && !containerdAnswers(address) {
		if a.private, err = a.startPrivateContainerd(); err != nil {
			return err
		}
		if a.private != nil {
			dcfg.Address = a.private.Address()
		}
	}
	d, err := containerd.New(dcfg)
	if err != nil {
		return fmt.Errorf("containerd driver: %w", err)
	}
	ccfg := &client.Config{
		DataDir: cfg.DataDir, NodeName: cfg.Name, Datacenter: cfg.Datacenter, Region: cfg.Region,
		NodeClass: cc.NodeClass, Meta: cc.Meta, HTTPAddr: httpAddr, Version: server.Version,
		Servers: cc.Servers, Drivers: map[string]driver.Driver{"containerd": d, "docker": d},
		ReservedCPU: cc.ReservedCPU, ReservedMemoryMB: cc.ReservedMemoryMB,
		MaxTerminalAllocs: cc.GCMaxAllocs, GCDiskUsagePercent: cc.GCDiskUsageThreshold,
		Logger: a.logger,
	}
	if a.server != nil {
		ccfg.RPC = client.InprocRPC(a.server.RPC)
	}
	if a.client, err = client.New(ccfg); err != nil {
		return err
	}
	a.client.Start()
	return nil
}

// advertisedHTTP is the HTTP address other agents reach this one at (for
// logs and exec of allocations running here): advertise.http when set;
// else the bound address, or, when bound to every interface, this
// machine's private IP (as the server advertises for RPC).
func (a *Agent) advertisedHTTP() (string, error) {
	if a.config.Advertise != nil && a.config.Advertise.HTTP != "" {
		adv, err := advertiseAddr(a.config.Advertise.HTTP, a.config.Ports.HTTP)
		if err != nil {
			return "", fmt.Errorf("advertise.http: %w", err)
		}
		return adv.String(), nil
	}
	addr := a.HTTPAddr()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
		return addr, nil
	}
	if a.server != nil {
		if h, _, err := net.SplitHostPort(a.server.RPCAddr()); err == nil {
			return net.JoinHostPort(h, port), nil
		}
	}
	priv, err := sockaddr.GetPrivateIP()
	if err != nil || priv == "" {
		return "", fmt.Errorf("bind_addr is %s and this machine has no private IP for other agents to reach its HTTP API at (%v); set bind_addr, or advertise { http = \"ip:port\" }", host, err)
	}
	return net.JoinHostPort(priv, port), nil
}

// containerdAnswers reports whether something listens on the socket.
func containerdAnswers(address string) bool {
	conn, err := net.DialTimeout("unix", address, time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// startPrivateContainerd starts a containerd of this dev agent's own, under
// its data dir, if the binary is installed. With none installed it
// returns nil: the node then reports the driver unhealthy.
func (a *Agent) startPrivateContainerd() (*containerd.Private, error) {
	if _, err := exec.LookPath("containerd"); err != nil {
		a.logger.Warn("no containerd answers and none is installed: tasks cannot run (apt-get install containerd runc)")
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := containerd.StartPrivate(ctx, filepath.Join(a.config.DataDir, "containerd"), a.logger.Named("containerd"))
	if err != nil {
		return nil, fmt.Errorf("start a private containerd for dev mode: %w", err)
	}
	a.logger.Info("started a private containerd for dev mode", "address", p.Address())
	return p, nil
}

// stopClient stops the client. In dev mode, whose state is thrown away,
// it first stops every allocation's tasks so no container outlives it.
func (a *Agent) stopClient() {
	if a.client == nil {
		return
	}
	if a.devDir != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := a.client.DestroyAll(ctx); err != nil {
			a.logger.Warn("stop dev allocations", "error", err)
		}
		cancel()
	}
	a.client.Shutdown()
}

// Client returns the agent's client, or nil.
func (a *Agent) Client() *client.Client { return a.client }

// rpc calls the servers: the in-process server when this agent runs one,
// else one of the client's servers.
func (a *Agent) rpc(method string, args, reply any) error {
	if a.server != nil {
		return a.server.RPC(method, args, reply)
	}
	if a.client == nil {
		return errors.New("this agent runs neither a server nor a client")
	}
	ctx := context.Background()
	if q, ok := args.(interface{ Context() context.Context }); ok && q.Context() != nil {
		ctx = q.Context()
	}
	return a.client.RPC(ctx, method, args, reply)
}
