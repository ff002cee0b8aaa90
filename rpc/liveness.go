package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/skiffhq/skiff/structs"
)

// ConnLiveness is a connection a client node holds open to one server for
// as long as it lives. It carries nothing after the hello: its end (the
// kernel closes it when the client's process dies; TCP keepalive ends it
// when the client's machine or network goes silent) is the fast signal
// that the node may be gone. See LivenessKeepAlive for the timings.
const ConnLiveness ConnType = 0x03

// LivenessKeepAlive is the TCP keepalive of liveness connections, on both
// ends: a peer that stops answering is noticed after Idle + Count*Interval
// (5 s). A network blip shorter than that breaks nothing.
var LivenessKeepAlive = net.KeepAliveConfig{Enable: true, Idle: 2 * time.Second, Interval: time.Second, Count: 3}

// livenessHelloTimeout bounds the hello exchange on both ends.
const livenessHelloTimeout = 10 * time.Second

// LivenessHandler serves one liveness connection after its first byte. It
// owns conn and returns when the connection has ended.
type LivenessHandler func(conn net.Conn)

// SetLivenessHandler routes ConnLiveness connections to h; without one
// they are closed at once. Call it before Serve.
func (l *Listener) SetLivenessHandler(h LivenessHandler) { l.liveness = h }

func (l *Listener) serveLiveness(conn net.Conn) {
	if l.liveness == nil {
		conn.Close()
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetKeepAliveConfig(LivenessKeepAlive)
	}
	if !l.admit(conn, func() { l.held[conn] = struct{}{} }) {
		return
	}
	defer func() {
		l.mu.Lock()
		delete(l.held, conn)
		l.mu.Unlock()
		conn.Close()
	}()
	l.liveness(conn)
}

// ReadLivenessHello reads a client's hello from a liveness connection
// (server side).
func ReadLivenessHello(conn net.Conn) (*structs.NodeLivenessRequest, error) {
	_ = conn.SetReadDeadline(time.Now().Add(livenessHelloTimeout))
	defer conn.SetReadDeadline(time.Time{})
	var hello structs.NodeLivenessRequest
	// A hello is small: a limited reader keeps a bad peer from making the
	// decoder allocate much.
	if err := codec.NewDecoder(io.LimitReader(conn, 4096), structs.MsgpackHandle).Decode(&hello); err != nil {
		return nil, fmt.Errorf("read liveness hello: %w", err)
	}
	return &hello, nil
}

// AnswerLivenessHello tells the client whether its hello was accepted: an
// empty refusal accepts (server side).
func AnswerLivenessHello(conn net.Conn, refusal string) error {
	_ = conn.SetWriteDeadline(time.Now().Add(livenessHelloTimeout))
	defer conn.SetWriteDeadline(time.Time{})
	return codec.NewEncoder(conn, structs.MsgpackHandle).Encode(refusal)
}

// WaitLivenessEnd blocks until the peer closes the connection or it
// fails, and returns why (either side: neither sends anything after the
// hello and its answer).
func WaitLivenessEnd(conn net.Conn) error {
	var b [64]byte
	for {
		if _, err := conn.Read(b[:]); err != nil {
			return err
		}
	}
}

// ErrLivenessRefused is a hello the server turned down (e.g. it does not
// know the node yet).
var ErrLivenessRefused = errors.New("liveness refused")

// HoldLiveness opens a liveness connection to the server at addr,
// introduces the node with hello and holds the connection until it breaks
// or ctx ends (client side). It returns why it ended; connected is closed,
// if not nil, once the server has accepted the hello.
func HoldLiveness(ctx context.Context, addr string, hello *structs.NodeLivenessRequest, dialTimeout time.Duration, connected chan<- struct{}) error {
	d := net.Dialer{Timeout: dialTimeout, KeepAliveConfig: LivenessKeepAlive}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(livenessHelloTimeout))
	if _, err := conn.Write([]byte{byte(ConnLiveness)}); err != nil {
		return err
	}
	if err := codec.NewEncoder(conn, structs.MsgpackHandle).Encode(hello); err != nil {
		return err
	}
	var refusal string
	if err := codec.NewDecoder(io.LimitReader(conn, 4096), structs.MsgpackHandle).Decode(&refusal); err != nil {
		return fmt.Errorf("read liveness answer: %w", err)
	}
	if refusal != "" {
		return fmt.Errorf("%w: %s", ErrLivenessRefused, refusal)
	}
	_ = conn.SetDeadline(time.Time{})
	if connected != nil {
		close(connected)
	}
	err = WaitLivenessEnd(conn)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// LivenessSession is what KeepLiveness needs from its caller.
type LivenessSession struct {
	// Pick returns the server to connect to ("" to stop).
	Pick func() string
	// Failed is told of a server that could not be reached (the caller
	// moves on to another).
	Failed func(addr string)
	// Hello returns the node's hello for a connection of generation gen.
	Hello func(gen uint64) *structs.NodeLivenessRequest
	// Up, if set, is told when a connection is accepted (true) and when it
	// ends (false).
	Up func(bool)
	// Ended, if set, is told why a connection (or an attempt) ended.
	Ended func(addr string, held bool, err error)
}

// Pauses of KeepLiveness: after a connection that held, after a refused
// hello (the server does not know the node yet, it is catching up), and
// the longest back-off for servers that cannot be reached.
const (
	livenessAgain   = 200 * time.Millisecond
	livenessRefused = time.Second
	livenessMaxWait = 10 * time.Second
)

// KeepLiveness holds a node's liveness connection until ctx ends, opening
// a new one, with a larger generation, whenever one ends (client side).
func KeepLiveness(ctx context.Context, s LivenessSession) {
	var gen uint64
	backoff := livenessAgain
	for ctx.Err() == nil {
		addr := s.Pick()
		if addr == "" {
			return
		}
		gen = max(gen+1, uint64(time.Now().UnixNano()))
		connected := make(chan struct{})
		if s.Up != nil {
			go func() {
				select {
				case <-connected:
					s.Up(true)
				case <-ctx.Done():
				}
			}()
		}
		err := HoldLiveness(ctx, addr, s.Hello(gen), 5*time.Second, connected)
		if s.Up != nil {
			s.Up(false)
		}
		if ctx.Err() != nil {
			return
		}
		wait, held := backoff, false
		select {
		case <-connected:
			// It held: open the next one soon (a pause keeps a server that
			// closes at once from making this spin).
			wait, backoff, held = livenessAgain, livenessAgain, true
		default:
			if errors.Is(err, ErrLivenessRefused) {
				wait, backoff = livenessRefused, livenessAgain
			} else {
				s.Failed(addr)
				backoff = min(backoff*2, livenessMaxWait)
			}
		}
		if s.Ended != nil {
			s.Ended(addr, held, err)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
	}
}
