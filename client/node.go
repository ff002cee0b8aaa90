package client

import (
	"context"
	"math/rand/v2"
	"time"

	skiffrpc "github.com/skiffhq/skiff/rpc"
	"github.com/skiffhq/skiff/structs"
)

// Retry pacing for registration and heartbeats while servers are away.
const (
	retryMin = 200 * time.Millisecond
	retryMax = 10 * time.Second
	// refingerprintEvery is the default of Config.FingerprintInterval.
	refingerprintEvery = 15 * time.Second
)

// registerAndHeartbeat registers the node, then heartbeats on the TTL the
// servers give, registering again when they no longer know the node or a
// driver's health changes. It runs until the client shuts down.
func (c *Client) registerAndHeartbeat() {
	ttl := time.Duration(0)
	backoff := retryMin
	registered := false
	fp := time.NewTicker(c.config.FingerprintInterval)
	defer fp.Stop()
	for {
		var next time.Duration
		if !registered {
			t, err := c.register()
			if err != nil {
				c.logger.Warn("register node; will retry", "error", err, "retry_in", backoff)
				next, backoff = backoff, min(backoff*2, retryMax)
			} else {
				registered, ttl, backoff = true, t, retryMin
				c.regOnce.Do(func() { close(c.registered) })
				c.logger.Info("node registered", "node_id", c.NodeID(), "heartbeat_ttl", ttl)
				next = beatIn(ttl)
			}
		} else {
			t, err := c.heartbeat()
			switch {
			case isNotFound(err):
				c.logger.Warn("servers do not know this node; registering again")
				registered, next = false, 0
			case err != nil:
				c.logger.Warn("heartbeat failed; will retry", "error", err, "retry_in", backoff)
				next, backoff = backoff, min(backoff*2, ttl/3+retryMin)
			default:
				ttl, backoff = t, retryMin
				next = beatIn(ttl)
			}
		}
		timer := time.NewTimer(next)
		select {
		case <-c.ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		case <-fp.C:
			timer.Stop()
			if c.refingerprint() {
				registered = false
			}
		}
	}
}

// beatIn is when to send the next heartbeat: about half the TTL, jittered,
// so one lost heartbeat is not yet a missed TTL.
func beatIn(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		return time.Second
	}
	half := ttl / 2
	return half - time.Duration(rand.Int64N(int64(half)/4+1))
}

func (c *Client) register() (time.Duration, error) {
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	req := &structs.NodeRegisterRequest{Node: c.Node(), WriteRequest: structs.WriteRequest{Region: c.config.Region}}
	var reply structs.NodeUpdateResponse
	if err := c.rpc.RPC(ctx, "Node.Register", req, &reply); err != nil {
		return 0, err
	}
	c.learnServers(reply.Servers)
	return reply.HeartbeatTTL, nil
}

func (c *Client) heartbeat() (time.Duration, error) {
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	n := c.Node()
	req := &structs.NodeUpdateStatusRequest{NodeID: n.ID, SecretID: n.SecretID, Status: structs.NodeStatusReady,
		WriteRequest: structs.WriteRequest{Region: c.config.Region}}
	var reply structs.NodeUpdateResponse
	if err := c.rpc.RPC(ctx, "Node.UpdateStatus", req, &reply); err != nil {
		return 0, err
	}
	c.learnServers(reply.Servers)
	return reply.HeartbeatTTL, nil
}

func (c *Client) learnServers(addrs []string) {
	if c.servers != nil && len(addrs) > 0 {
		c.servers.set(addrs)
	}
}

// refingerprint re-reads driver health and reports whether it changed.
func (c *Client) refingerprint() bool {
	n := c.Node()
	changed := false
	for name, d := range c.config.Drivers {
		ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		fp := d.Fingerprint(ctx)
		cancel()
		old := n.Drivers[name]
		if old == nil || old.Healthy != fp.Healthy {
			changed = true
			c.logger.Info("driver health changed", "driver", name, "healthy", fp.Healthy, "description", fp.Description)
		}
		n.Drivers[name] = driverInfo(fp)
	}
	if changed {
		c.nodeMu.Lock()
		c.node.Drivers = n.Drivers
		c.nodeMu.Unlock()
	}
	return changed
}

// holdLiveness keeps a liveness connection open to the current server
// while the client runs (rpc.ConnLiveness): when the process dies, its
// kernel closes the connection and the servers know at once. A
// connection that breaks is opened again, to the next server if this one
// cannot be reached.
func (c *Client) holdLiveness() {
	select {
	case <-c.registered:
	case <-c.ctx.Done():
		return
	}
	skiffrpc.KeepLiveness(c.ctx, skiffrpc.LivenessSession{
		Pick:   func() string { addr, _ := c.servers.pick(); return addr },
		Failed: c.servers.failed,
		Hello: func(gen uint64) *structs.NodeLivenessRequest {
			n := c.Node()
			return &structs.NodeLivenessRequest{NodeID: n.ID, SecretID: n.SecretID, Generation: gen}
		},
		Ended: func(addr string, held bool, err error) {
			c.logger.Debug("liveness connection ended; opening another", "server", addr, "held", held, "error", err)
		},
	})
}
