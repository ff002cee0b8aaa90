package fsm

import (
	"fmt"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/skiffhq/skiff/state"
	"github.com/skiffhq/skiff/structs"
)

// FSM applies raft log entries to a state store. Raft calls Apply,
// Snapshot and Restore from its own goroutines, one at a time; State may
// be called from any goroutine.
type FSM struct {
	state  atomic.Pointer[state.Store]
	logger hclog.Logger
}

var _ raft.FSM = (*FSM)(nil)

// New returns an FSM over an empty store.
func New(logger hclog.Logger) *FSM {
	f := &FSM{logger: logger.Named("fsm")}
	f.state.Store(state.New())
	return f
}

// State returns the current store. After a snapshot restore it is a new
// store, and the old one's AbandonCh is closed.
func (f *FSM) State() *state.Store { return f.state.Load() }

// Apply applies one committed entry. It returns nil or an error for the
// caller of raft.Apply; it panics on an entry it must not skip but cannot
// decode, because skipping it would make this server diverge.
func (f *FSM) Apply(l *raft.Log) any {
	if len(l.Data) == 0 {
		return nil
	}
	t := structs.MessageType(l.Data[0])
	ignorable := t&structs.IgnoreUnknownTypeFlag != 0
	t &^= structs.IgnoreUnknownTypeFlag
	body := l.Data[1:]

	apply, ok := appliers[t]
	if !ok {
		if ignorable {
			f.logger.Warn("skipping log entry of unknown ignorable type", "type", t, "index", l.Index)
			return nil
		}
		panic(fmt.Errorf("raft log entry %d has unknown type %d; this server is older than the cluster's log: upgrade it", l.Index, t))
	}
	return apply(f, l.Index, body)
}

type applier func(f *FSM, index uint64, body []byte) any

var appliers = map[structs.MessageType]applier{
	structs.JobRegisterRequestType:   (*FSM).applyJobRegister,
	structs.JobDeregisterRequestType: (*FSM).applyJobDeregister,
	structs.EvalUpdateRequestType:    (*FSM).applyEvalUpdate,
	structs.NoopRequestType:          func(*FSM, uint64, []byte) any { return nil },
}

// decode decodes a body or panics: a committed entry that does not decode
// is a bug or corruption, and applying the rest of the log without it
// would diverge from the other servers.
func decode(index uint64, body []byte, out any) {
	if err := structs.Decode(body, out); err != nil {
		panic(fmt.Errorf("decode raft log entry %d (%T): %w", index, out, err))
	}
}

func (f *FSM) applyJobRegister(index uint64, body []byte) any {
	var req structs.JobRegisterRequest
	decode(index, body, &req)
	job := req.Job
	job.SubmitTime = req.SubmitTime
	if err := f.State().UpsertJob(index, job); err != nil {
		return fmt.Errorf("register job %q: %w", job.ID, err)
	}
	if req.Eval != nil {
		if err := f.State().UpsertEvals(index, []*structs.Evaluation{req.Eval}); err != nil {
			return fmt.Errorf("register job %q: create evaluation: %w", job.ID, err)
		}
	}
	return nil
}

func (f *FSM) applyJobDeregister(index uint64, body []byte) any {
	var req structs.JobDeregisterRequest
	decode(index, body, &req)
	st := f.State()
	if req.Purge {
		if err := st.DeleteJob(index, req.Namespace, req.JobID); err != nil {
			return fmt.Errorf("purge job %q: %w", req.JobID, err)
		}
	} else {
		cur, err := st.JobByID(nil, req.Namespace, req.JobID)
		if err != nil {
			return fmt.Errorf("stop job %q: %w", req.JobID, err)
		}
		if cur == nil {
			return fmt.Errorf("stop job %q: %w", req.JobID, structs.ErrNotFound)
		}
		if !cur.Stop {
			stopped := cur.Copy()
			stopped.Stop = true
			if err := st.UpsertJob(index, stopped); err != nil {
				return fmt.Errorf("stop job %q: %w", req.JobID, err)
			}
		}
	}
	if req.Eval != nil {
		if err := st.UpsertEvals(index, []*structs.Evaluation{req.Eval}); err != nil {
			return fmt.Errorf("deregister job %q: create evaluation: %w", req.JobID, err)
		}
	}
	return nil
}

// EvalUpdateRequest upserts evaluations.
type EvalUpdateRequest struct {
	Evals []*structs.Evaluation
}

func (f *FSM) applyEvalUpdate(index uint64, body []byte) any {
	var req EvalUpdateRequest
	decode(index, body, &req)
	if err := f.State().UpsertEvals(index, req.Evals); err != nil {
		return fmt.Errorf("update evaluations: %w", err)
	}
	return nil
}
