package rpc

import (
	"context"
	"errors"
	"net"
	"net/rpc"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

type Echo struct{}

type EchoArgs struct{ Msg string }

// slow holds Echo.Slow's calls: each sends on entered as it arrives and
// waits for release to be closed. A test that calls Echo.Slow makes both
// before it starts its server.
var slow struct{ entered, release chan struct{} }

func (Echo) Slow(args *EchoArgs, reply *string) error {
	select {
	case slow.entered <- struct{}{}:
	default:
	}
	<-slow.release
	*reply = "late"
	return nil
}

func (Echo) Say(args *EchoArgs, reply *string) error {
	if args.Msg == "fail" {
		return errors.New("endpoint refused: fail")
	}
	*reply = "echo " + args.Msg
	return nil
}

func serve(t *testing.T, addr string) (*Listener, string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := rpc.NewServer()
	if err := srv.Register(Echo{}); err != nil {
		t.Fatal(err)
	}
	l := NewListener(ln, srv, nil, hclog.NewNullLogger())
	go l.Serve()
	return l, ln.Addr().String()
}

func TestPoolCallAndErrors(t *testing.T) {
	l, addr := serve(t, "127.0.0.1:0")
	defer l.Close()
	p := NewPool(time.Second)
	defer p.Close()
	ctx := context.Background()

	var reply string
	if err := p.Call(ctx, addr, "Echo.Say", &EchoArgs{Msg: "hi"}, &reply); err != nil || reply != "echo hi" {
		t.Fatalf("call: reply %q err %v, want \"echo hi\"", reply, err)
	}
	// An endpoint's error comes back as that error, and the session stays.
	err := p.Call(ctx, addr, "Echo.Say", &EchoArgs{Msg: "fail"}, &reply)
	var te *TransportError
	if err == nil || err.Error() != "endpoint refused: fail" || errors.As(err, &te) {
		t.Fatalf("endpoint error = %v, want it verbatim", err)
	}
	if err := p.Call(ctx, addr, "Echo.Nope", &EchoArgs{}, &reply); err == nil || !strings.Contains(err.Error(), "can't find method") {
		t.Fatalf("unknown method: err = %v", err)
	}
	// Many calls share one session concurrently.
	errs := make(chan error, 50)
	for range 50 {
		go func() {
			var r string
			errs <- p.Call(ctx, addr, "Echo.Say", &EchoArgs{Msg: "x"}, &r)
		}()
	}
	for range 50 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent call: %v", err)
		}
	}
}

func TestPoolRedialsAfterServerRestart(t *testing.T) {
	l, addr := serve(t, "127.0.0.1:0")
	p := NewPool(time.Second)
	defer p.Close()
	var reply string
	if err := p.Call(context.Background(), addr, "Echo.Say", &EchoArgs{Msg: "a"}, &reply); err != nil {
		t.Fatal(err)
	}
	l.Close()
	err := p.Call(context.Background(), addr, "Echo.Say", &EchoArgs{Msg: "b"}, &reply)
	var te *TransportError
	if !errors.As(err, &te) {
		t.Fatalf("call to a closed server: err = %v, want a *TransportError", err)
	}
	l2, _ := serve(t, addr)
	defer l2.Close()
	if err := p.Call(context.Background(), addr, "Echo.Say", &EchoArgs{Msg: "c"}, &reply); err != nil || reply != "echo c" {
		t.Fatalf("after restart: reply %q err %v; the pool should have dialled again", reply, err)
	}
}

func TestRaftConnectionsReachTheRaftLayer(t *testing.T) {
	l, addr := serve(t, "127.0.0.1:0")
	defer l.Close()
	got := make(chan net.Conn, 1)
	go func() {
		c, err := l.RaftLayer().Accept()
		if err == nil {
			got <- c
		}
	}()
	c, err := l.RaftLayer().Dial(raft.ServerAddress(addr), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("ping"))
	select {
	case sc := <-got:
		buf := make([]byte, 4)
		sc.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := sc.Read(buf); err != nil || string(buf) != "ping" {
			t.Fatalf("raft layer read %q (%v), want the bytes after the type byte", buf, err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("raft connection never reached the raft layer")
	}
	// A connection with an unknown first byte is closed.
	bad, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	bad.Write([]byte{0x7f})
	bad.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := bad.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection of unknown type stayed open")
	}
}

func TestCallEndsWhenItsContextIsCancelled(t *testing.T) {
	slow.entered, slow.release = make(chan struct{}, 1), make(chan struct{})
	l, addr := serve(t, "127.0.0.1:0")
	defer func() { close(slow.release); l.Close() }()
	p := NewPool(time.Second)
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		var reply string
		done <- p.Call(ctx, addr, "Echo.Slow", &EchoArgs{}, &reply)
	}()
	select {
	case <-slow.entered: // the call is in flight on the server
	case <-time.After(10 * time.Second):
		t.Fatal("Echo.Slow was not called within 10s")
	}
	cancel()
	select {
	case err := <-done:
		var te *TransportError
		if !errors.As(err, &te) || !te.Sent || !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want a sent TransportError wrapping context.Canceled", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("call still waiting 3s after its context was cancelled")
	}
}

// Closing a listener while connections arrive ends cleanly: Close waits
// for every handler, and no connection is counted after it began waiting
// (run under -race, a late count was a reported race).
func TestCloseWhileConnectionsArrive(t *testing.T) {
	for range 20 {
		l, addr := serve(t, "127.0.0.1:0")
		stop := make(chan struct{})
		done := make(chan struct{})
		dialed := make(chan struct{})
		go func() {
			defer close(done)
			for first := true; ; {
				select {
				case <-stop:
					return
				default:
				}
				if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
					_, _ = c.Write([]byte{0xff})
					c.Close()
					if first {
						first = false
						close(dialed)
					}
				}
			}
		}()
		select {
		case <-dialed: // connections are arriving
		case <-time.After(5 * time.Second):
			t.Fatal("no connection to the listener in 5 s")
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		close(stop)
		<-done
	}
}
