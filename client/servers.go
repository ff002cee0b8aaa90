package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	skiffrpc "github.com/skiffhq/skiff/rpc"
	"github.com/skiffhq/skiff/structs"
)

// RPCer makes an RPC to the servers. The agent passes its in-process
// server when it runs both; otherwise the client dials servers itself.
type RPCer interface {
	RPC(ctx context.Context, method string, args, reply any) error
}

// contextSetter is implemented by read requests (structs.QueryOptions):
// an in-process blocking query ends when ctx does.
type contextSetter interface{ SetContext(context.Context) }

// InprocRPC adapts a server's in-process RPC method to RPCer.
type InprocRPC func(method string, args, reply any) error

// RPC calls the in-process server; ctx bounds blocking queries.
func (f InprocRPC) RPC(ctx context.Context, method string, args, reply any) error {
	if cs, ok := args.(contextSetter); ok {
		cs.SetContext(ctx)
	}
	return f(method, args, reply)
}

// serverList calls one of a set of servers, moving to the next when one
// cannot be reached. The servers forward to the leader, so any will do;
// the list is refreshed from heartbeat replies as servers come and go.
type serverList struct {
	pool *skiffrpc.Pool

	mu      sync.Mutex
	addrs   []string // guarded by mu
	current int      // index into addrs; guarded by mu
}

func newServerList(addrs []string) *serverList {
	l := &serverList{pool: skiffrpc.NewPool(5 * time.Second)}
	l.set(addrs)
	return l
}

// set replaces the list, keeping the current server if it is still in it.
func (l *serverList) set(addrs []string) {
	if len(addrs) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := ""
	if len(l.addrs) > 0 {
		cur = l.addrs[l.current]
	}
	l.addrs = append([]string(nil), addrs...)
	rand.Shuffle(len(l.addrs), func(i, j int) { l.addrs[i], l.addrs[j] = l.addrs[j], l.addrs[i] })
	l.current = 0
	for i, a := range l.addrs {
		if a == cur {
			l.current = i
		}
	}
}

func (l *serverList) pick() (string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.addrs) == 0 {
		return "", 0
	}
	return l.addrs[l.current], len(l.addrs)
}

func (l *serverList) failed(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.addrs) > 0 && l.addrs[l.current] == addr {
		l.current = (l.current + 1) % len(l.addrs)
	}
}

// RPC tries the servers in turn while they cannot be reached; an answer
// from a server (even an error) is returned as is. A call that may have
// reached a server is not retried elsewhere: the caller decides.
func (l *serverList) RPC(ctx context.Context, method string, args, reply any) error {
	addr, n := l.pick()
	if n == 0 {
		return errors.New("no servers known: set client { servers = [\"host:4647\"] } or -servers")
	}
	var err error
	for range n {
		err = l.pool.Call(ctx, addr, method, args, reply)
		var te *skiffrpc.TransportError
		if err == nil || !errors.As(err, &te) || ctx.Err() != nil {
			return err
		}
		l.failed(addr)
		if te.Sent {
			return err
		}
		addr, _ = l.pick()
	}
	return fmt.Errorf("no server answered (tried %d): %w", n, err)
}

func (l *serverList) close() { l.pool.Close() }

var _ RPCer = (*serverList)(nil)

// isNotFound reports an error that says the node is unknown to the
// servers (its registration was lost): the client registers again.
func isNotFound(err error) bool { return err != nil && structs.IsErr(err, structs.ErrNotFound) }
