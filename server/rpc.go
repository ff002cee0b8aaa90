package server

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"

	skiffrpc "github.com/skiffhq/skiff/rpc"
	"github.com/skiffhq/skiff/state"
	"github.com/skiffhq/skiff/structs"
)

const (
	// raftApplyTimeout bounds how long a write waits to be enqueued.
	raftApplyTimeout = 30 * time.Second
	// defaultQueryTime and maxQueryTime bound blocking queries.
	defaultQueryTime = 5 * time.Minute
	maxQueryTime     = 10 * time.Minute
	// leaderPoll is how often a follower looks for a new leader while
	// holding a request.
	leaderPoll = 20 * time.Millisecond
)

// forward routes a request. It returns handled=false when this server
// must answer it itself: it is the leader (after confirming leadership for
// a linearizable read), or the read allows stale data. Otherwise it
// forwards the request to the leader, retrying for RPCHoldTimeout while
// there is none, and returns handled=true with the leader's answer in reply.
func (s *Server) forward(method string, info structs.RPCInfo, args, reply any) (bool, error) {
	if r := info.RequestRegion(); r != "" && r != s.config.Region {
		return true, fmt.Errorf("%w: region %q is not this cluster's region %q (Skiff does not federate regions yet)", ErrBadRequest, r, s.config.Region)
	}
	if info.IsRead() && info.IsStale() {
		return false, nil
	}
	deadline := time.Now().Add(s.config.RPCHoldTimeout)
	var lastErr error
	for {
		if s.IsLeader() {
			if !info.IsRead() {
				// A new leader answers writes only once it has applied the
				// log of earlier terms: they check against its state.
				if s.consistentReads.Load() {
					return false, nil
				}
				lastErr = fmt.Errorf("%w: new leader is still applying the log", structs.ErrNoLeader)
			} else if err := s.verifyLeader(); err == nil {
				return false, nil
			} else {
				lastErr = err
			}
		} else if addr := s.Leader(); addr != "" {
			info.SetForwarded()
			timeout := maxQueryTime + time.Minute
			if !info.IsRead() {
				// A write's callers have no context to cancel it: bound it,
				// so one sent to a leader that was cut off just then does
				// not hold its caller for the length of a blocking read.
				timeout = forwardWriteTimeout
			}
			ctx, cancel := s.callerContext(info.Context(), timeout)
			err := s.pool.Call(ctx, addr, method, args, reply)
			cancel()
			if err == nil || !retryable(err, info.IsRead()) {
				return true, err
			}
			if cerr := info.Context().Err(); cerr != nil {
				return true, cerr // the caller went away: nobody to retry for
			}
			lastErr = err
		}
		if time.Now().After(deadline) {
			return true, s.noLeaderError(lastErr)
		}
		select {
		case <-s.shutdownCtx.Done():
			return true, errors.New("server is shutting down")
		case <-info.Context().Done():
			return true, info.Context().Err()
		case <-time.After(leaderPoll):
		}
	}
}

// forwardWriteTimeout bounds a write forwarded to the leader: well above
// a raft commit under load and a worker's dequeue wait (maxDequeueWait).
const forwardWriteTimeout = time.Minute

// retryable reports whether a forwarded call may be sent again: it failed
// for want of a leader, or on the way to it. A read may always be sent
// again; a write only when it certainly did not reach the leader (the
// connection failed before the request was sent). A write whose outcome is
// unknown is reported, never repeated.
func retryable(err error, isRead bool) bool {
	if structs.IsErr(err, structs.ErrOutcomeUnknown) {
		return false
	}
	var te *skiffrpc.TransportError
	if errors.As(err, &te) {
		return isRead || !te.Sent
	}
	return structs.IsErr(err, structs.ErrNoLeader)
}

func (s *Server) noLeaderError(cause error) error {
	known := 0
	for _, m := range s.serf.Members() {
		if p, ok := parseServer(m); ok && p.Region == s.config.Region && m.Status.String() == "alive" {
			known++
		}
	}
	msg := fmt.Sprintf("%s yet (%d servers alive in gossip", structs.ErrNoLeader, known)
	if s.config.BootstrapExpect > 1 {
		msg += fmt.Sprintf(", bootstrap_expect %d", s.config.BootstrapExpect)
	}
	msg += `); retry, or check "skiff server members"`
	if cause != nil {
		msg += " (last error: " + cause.Error() + ")"
	}
	return errors.New(msg)
}

// verifyLeader confirms that this server is still the leader and that its
// state holds every acknowledged write, so a read from it is linearizable:
// under the read lease (lease.go), or with a round of heartbeats to the
// followers (raft's VerifyLeader).
func (s *Server) verifyLeader() error {
	if !s.consistentReads.Load() {
		return fmt.Errorf("%w: new leader is still applying the log", structs.ErrNoLeader)
	}
	if err := s.lease.confirm(func() error { return s.raft.VerifyLeader().Error() }); err != nil {
		return fmt.Errorf("%w: %w", structs.ErrNoLeader, err)
	}
	return nil
}

// raftApply commits one entry and returns its index. It returns the FSM's
// error for the entry, if any.
func (s *Server) raftApply(t structs.MessageType, msg any) (uint64, error) {
	index, _, err := s.raftApplyResult(t, msg)
	return index, err
}

// raftApplying is an entry handed to raft and not yet known committed.
type raftApplying struct {
	future raft.ApplyFuture
	done   chan struct{} // closed once raft answered the future
	stop   <-chan struct{}
}

// raftSubmit encodes an entry and hands it to raft without waiting for
// the commit, past the batcher: the plan applier's way, which keeps
// several plans in flight and must know each plan's own entry. Entries
// submitted one after another by one goroutine are committed in that
// order, and raft writes those it has queued together with one fsync.
func (s *Server) raftSubmit(t structs.MessageType, msg any) (*raftApplying, error) {
	buf, err := structs.EncodeEntry(t, msg, s.compressEntries())
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", msg, err)
	}
	a := &raftApplying{future: s.raft.Apply(buf, raftApplyTimeout), done: make(chan struct{}), stop: s.shutdownCtx.Done()}
	// raft (1.7, with BatchApplyCh) may take an entry into its buffered apply
	// channel after it shut down, and then never answer its future: wait for
	// our own shutdown too, so that no worker or handler hangs forever.
	go func() {
		_ = a.future.Error()
		close(a.done)
	}()
	return a, nil
}

// wait waits for the commit and returns the entry's index and the FSM's
// response to it (an error is returned as err).
func (a *raftApplying) wait() (uint64, any, error) {
	select {
	case <-a.done:
	case <-a.stop:
		return 0, nil, fmt.Errorf("%w: server is shutting down", structs.ErrOutcomeUnknown)
	}
	o := outcome(raftOutcome(a.future))
	return o.index, o.resp, o.err
}

// raftOutcome waits for future and returns the entry's index and the
// FSM's response, or the commit error in the words a caller needs: may it
// send the entry again, or must it check first?
func raftOutcome(future raft.ApplyFuture) (uint64, any, error) {
	if err := future.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return 0, nil, errNotApplied
		}
		if errors.Is(err, raft.ErrLeadershipLost) {
			return 0, nil, fmt.Errorf("%w: leadership changed while committing; the write may or may not have been applied: check, then retry", structs.ErrOutcomeUnknown)
		}
		return 0, nil, fmt.Errorf("commit to raft: %w", err)
	}
	return future.Index(), future.Response(), nil
}

// errNotApplied: this server stopped leading before the entry was
// appended, so it was certainly not applied and may be sent again.
var errNotApplied = errors.New("not the leader any more; entry not applied")

// recoverEndpoint turns a panic in an endpoint into an error for its
// caller, logged with its stack. net/rpc runs each call in a goroutine of
// its own, without a recover: a bug that one request reaches (a null
// where a block belongs once did) would otherwise take the whole server
// down, the leader included. Every write (write), read (blockingQuery)
// and operator endpoint goes through it.
// The FSM does not: a panic there must stop the server, whose state could
// otherwise diverge.
func (s *Server) recoverEndpoint(method string, err *error) {
	r := recover()
	if r == nil {
		return
	}
	s.logger.Error("endpoint panicked: a bug, please report it with this log", "method", method, "panic", r, "stack", string(debug.Stack()))
	*err = fmt.Errorf("%s failed with an internal error (a bug, logged by the server with its details): %v", method, r)
}

// write routes a write to the leader and runs apply there. When this
// server loses leadership before its entry was appended, the write goes to
// the new leader instead of failing, within RPCHoldTimeout.
func (s *Server) write(method string, args structs.RPCInfo, reply any, apply func() error) (err error) {
	defer s.recoverEndpoint(method, &err)
	deadline := time.Now().Add(s.config.RPCHoldTimeout)
	for {
		if done, err := s.forward(method, args, args, reply); done {
			return err
		}
		err := apply()
		if !errors.Is(err, errNotApplied) {
			return err
		}
		if time.Now().After(deadline) {
			return s.noLeaderError(err)
		}
		select {
		case <-s.shutdownCtx.Done():
			return errors.New("server is shutting down")
		case <-time.After(leaderPoll):
		}
	}
}

// queryFn reads from a store snapshot, watching what it read, and returns
// the index of its result.
type queryFn func(ws memdb.WatchSet, snap *state.Snapshot) (uint64, error)

// blockingQuery runs fn and, when the caller asked for changes past
// MinQueryIndex, waits for one (or MaxQueryTime) before answering. It
// fills in meta. A panic in fn is a bug: it is logged and answered as an
// internal error of method.
func (s *Server) blockingQuery(method string, opts *structs.QueryOptions, meta *structs.QueryMeta, fn queryFn) (err error) {
	defer s.recoverEndpoint(method, &err)
	wait := opts.MaxQueryTime
	if wait <= 0 {
		wait = defaultQueryTime
	}
	wait = min(wait, maxQueryTime)
	wait += time.Duration(rand.Int64N(int64(wait)/16 + 1))
	deadline := time.Now().Add(wait)
	run := func(ws memdb.WatchSet, snap *state.Snapshot) (uint64, error) {
		idx, err := fn(ws, snap)
		if idx == 0 {
			idx = 1 // never 0, so clients that block on it do not spin (as state.MaxIndex)
		}
		meta.Index = idx
		return idx, err
	}
	// Slack beyond wait: the store's own timer must end an unchanged query
	// (with its result), not this context (with an error).
	ctx, cancel := s.callerContext(opts.Context(), wait+time.Minute)
	defer cancel()
	for {
		st := s.fsm.State()
		err = st.Block(ctx, opts.MinQueryIndex, time.Until(deadline), run)
		// The store was replaced by a snapshot restore: read the new one.
		select {
		case <-st.AbandonCh():
			if time.Now().Before(deadline) {
				continue
			}
		default:
		}
		break
	}
	s.setQueryMeta(meta)
	return err
}

// callerContext ends when the caller's context does, the server shuts
// down, or timeout passes.
func (s *Server) callerContext(caller context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(caller, timeout)
	stop := context.AfterFunc(s.shutdownCtx, cancel)
	return ctx, func() { stop(); cancel() }
}

func (s *Server) setQueryMeta(meta *structs.QueryMeta) {
	if s.IsLeader() {
		meta.LastContact = 0
		meta.KnownLeader = true
		return
	}
	meta.LastContact = time.Since(s.raft.LastContact())
	meta.KnownLeader = s.Leader() != ""
}
