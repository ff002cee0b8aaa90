package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/rpc"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	msgpackrpc "github.com/hashicorp/net-rpc-msgpackrpc/v2"
	"github.com/hashicorp/raft"
	"github.com/hashicorp/yamux"

	"github.com/skiffhq/skiff/structs"
)

// ConnType is the first byte of a connection to the RPC port.
type ConnType byte

// Connection types. Values are part of the wire protocol.
const (
	ConnRaft      ConnType = 0x01
	ConnMultiplex ConnType = 0x02
)

// firstByteTimeout bounds how long a new connection may take to say what
// it is, so idle probes do not pin goroutines.
const firstByteTimeout = 10 * time.Second

// Listener accepts connections on the RPC port and routes them: raft
// connections to RaftLayer, multiplexed RPC sessions to Server.
type Listener struct {
	ln        net.Listener
	server    *rpc.Server
	raftLayer *RaftLayer
	logger    hclog.Logger

	wg       sync.WaitGroup
	mu       sync.Mutex
	sessions map[*yamux.Session]struct{} // guarded by mu
	held     map[net.Conn]struct{}       // liveness connections; guarded by mu
	closed   bool                        // guarded by mu
	liveness LivenessHandler
}

// NewListener serves srv and a raft stream layer on ln. Call Serve to start.
func NewListener(ln net.Listener, srv *rpc.Server, advertise net.Addr, logger hclog.Logger) *Listener {
	return &Listener{
		ln: ln, server: srv, logger: logger.Named("rpc"),
		raftLayer: newRaftLayer(advertise, ln.Addr()),
		sessions:  map[*yamux.Session]struct{}{},
		held:      map[net.Conn]struct{}{},
	}
}

// RaftLayer returns the stream layer raft's NetworkTransport uses.
func (l *Listener) RaftLayer() *RaftLayer { return l.raftLayer }

// Addr is the listening address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Serve accepts connections until Close. It returns nil after Close.
func (l *Listener) Serve() error {
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			l.mu.Lock()
			closed := l.closed
			l.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("accept rpc connection: %w", err)
		}
		// Counted only while open: an Add that races Close's Wait while
		// nothing else is counted is a misuse of the WaitGroup (the race
		// detector caught one when a connection arrived as a test server
		// shut down).
		if !l.admit(conn, func() { l.wg.Add(1) }) {
			return nil
		}
		go func() {
			defer l.wg.Done()
			l.handleConn(conn)
		}()
	}
}

func (l *Listener) handleConn(conn net.Conn) {
	var b [1]byte
	_ = conn.SetReadDeadline(time.Now().Add(firstByteTimeout))
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		conn.Close()
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	switch ConnType(b[0]) {
	case ConnRaft:
		l.raftLayer.handoff(conn)
	case ConnMultiplex:
		l.serveMultiplex(conn)
	case ConnLiveness:
		l.serveLiveness(conn)
	default:
		l.logger.Warn("unknown connection type; closing", "type", b[0], "remote", conn.RemoteAddr())
		conn.Close()
	}
}

func (l *Listener) serveMultiplex(conn net.Conn) {
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	cfg.Logger = nil
	sess, err := yamux.Server(conn, cfg)
	if err != nil {
		conn.Close()
		return
	}
	if !l.admit(sess, func() { l.sessions[sess] = struct{}{} }) {
		return
	}
	defer func() {
		l.mu.Lock()
		delete(l.sessions, sess)
		l.mu.Unlock()
		sess.Close()
	}()
	for {
		stream, err := sess.Accept()
		if err != nil {
			return
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.server.ServeCodec(msgpackrpc.NewCodecFromHandle(true, true, stream, structs.MsgpackHandle))
		}()
	}
}

// admit runs register under mu while the listener is open and reports
// true; once Close began it closes c instead and reports false, so that
// Close finds everything it must close or wait for.
func (l *Listener) admit(c io.Closer, register func()) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return false
	}
	register()
	return true
}

// Close stops accepting, closes every session and waits for handlers.
func (l *Listener) Close() error {
	l.mu.Lock()
	l.closed = true
	for s := range l.sessions {
		s.Close()
	}
	for c := range l.held {
		c.Close()
	}
	l.mu.Unlock()
	err := l.ln.Close()
	l.raftLayer.Close()
	l.wg.Wait()
	return err
}

// RaftLayer is a raft.StreamLayer over the shared RPC port.
type RaftLayer struct {
	advertise net.Addr
	local     net.Addr
	conns     chan net.Conn
	closeOnce sync.Once
	closed    chan struct{}
}

var _ raft.StreamLayer = (*RaftLayer)(nil)

func newRaftLayer(advertise, local net.Addr) *RaftLayer {
	if advertise == nil {
		advertise = local
	}
	return &RaftLayer{advertise: advertise, local: local, conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (r *RaftLayer) handoff(c net.Conn) {
	select {
	case r.conns <- c:
	case <-r.closed:
		c.Close()
	}
}

// Accept waits for the next raft connection.
func (r *RaftLayer) Accept() (net.Conn, error) {
	select {
	case c := <-r.conns:
		return c, nil
	case <-r.closed:
		return nil, errors.New("raft layer closed")
	}
}

// Close stops Accept.
func (r *RaftLayer) Close() error {
	r.closeOnce.Do(func() { close(r.closed) })
	return nil
}

// Addr is the address peers reach this server's raft at.
func (r *RaftLayer) Addr() net.Addr { return r.advertise }

// Dial opens a raft connection to a peer.
func (r *RaftLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.Dial("tcp", string(address))
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write([]byte{byte(ConnRaft)}); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// Pool keeps one multiplexed session per server address.
type Pool struct {
	mu       sync.Mutex
	sessions map[string]*yamux.Session // guarded by mu
	timeout  time.Duration
}

// NewPool returns an empty pool; dials time out after dialTimeout.
func NewPool(dialTimeout time.Duration) *Pool {
	return &Pool{sessions: map[string]*yamux.Session{}, timeout: dialTimeout}
}

func (p *Pool) session(ctx context.Context, addr string) (*yamux.Session, error) {
	p.mu.Lock()
	if s, ok := p.sessions[addr]; ok && !s.IsClosed() {
		p.mu.Unlock()
		return s, nil
	}
	p.mu.Unlock()

	d := net.Dialer{Timeout: p.timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write([]byte{byte(ConnMultiplex)}); err != nil {
		conn.Close()
		return nil, err
	}
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	cfg.Logger = nil
	sess, err := yamux.Client(conn, cfg)
	if err != nil {
		conn.Close()
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if old, ok := p.sessions[addr]; ok && !old.IsClosed() {
		sess.Close() // lost a race; use the winner's
		return old, nil
	}
	p.sessions[addr] = sess
	return sess, nil
}

// TransportError is a call that failed on the way, not in the endpoint:
// the server could not be reached or the connection broke. When Sent is
// false the request never left, so it certainly did not run; when Sent is
// true it may or may not have run on the server.
type TransportError struct {
	Method, Addr string
	Sent         bool
	Err          error
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("rpc %s to %s: %v", e.Method, e.Addr, e.Err)
}
func (e *TransportError) Unwrap() error { return e.Err }

// Call makes one RPC to the server at addr. It returns the endpoint's
// error as is, or a *TransportError; a transport failure drops the session
// so the next call dials again.
func (p *Pool) Call(ctx context.Context, addr, method string, args, reply any) error {
	sess, err := p.session(ctx, addr)
	if err != nil {
		return &TransportError{Method: method, Addr: addr, Err: err}
	}
	stream, err := sess.Open()
	if err != nil {
		p.drop(addr, sess)
		return &TransportError{Method: method, Addr: addr, Err: err}
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = stream.SetDeadline(dl)
	}
	// Cancelling ctx ends the call: a caller that goes away (or a server
	// that shuts down) does not wait for a long blocking query.
	// (yamux's Close only half-closes: an expired deadline is what ends a
	// Read that waits for the answer.)
	stop := context.AfterFunc(ctx, func() {
		_ = stream.SetDeadline(time.Now())
		stream.Close()
	})
	defer stop()
	codec := msgpackrpc.NewCodecFromHandle(true, true, stream, structs.MsgpackHandle)
	defer codec.Close()
	fail := func(sent bool, err error) error {
		if ctx.Err() != nil {
			err = ctx.Err()
		} else {
			p.drop(addr, sess)
		}
		return &TransportError{Method: method, Addr: addr, Sent: sent, Err: err}
	}
	// The steps of msgpackrpc.CallWithCodec, apart so that a failure while
	// sending (the server cannot have run an incomplete request) is told
	// from one while waiting for the answer (it may have run).
	req := rpc.Request{ServiceMethod: method, Seq: 1}
	if err := codec.WriteRequest(&req, args); err != nil {
		return fail(false, err)
	}
	var resp rpc.Response
	if err := codec.ReadResponseHeader(&resp); err != nil {
		return fail(true, err)
	}
	if resp.Error != "" {
		_ = codec.ReadResponseBody(nil)
		return errors.New(resp.Error) // the endpoint's own answer
	}
	if err := codec.ReadResponseBody(reply); err != nil {
		return fail(true, err)
	}
	return nil
}

func (p *Pool) drop(addr string, sess *yamux.Session) {
	p.mu.Lock()
	if p.sessions[addr] == sess {
		delete(p.sessions, addr)
	}
	p.mu.Unlock()
	sess.Close()
}

// Close closes every session.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for a, s := range p.sessions {
		s.Close()
		delete(p.sessions, a)
	}
}
