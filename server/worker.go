package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/skiffhq/skiff/scheduler"
	"github.com/skiffhq/skiff/state"
	"github.com/skiffhq/skiff/structs"
)

// schedulerTypes are the evaluation types the workers serve.
var schedulerTypes = []string{structs.JobTypeService, structs.JobTypeBatch, structs.JobTypeSystem, structs.JobTypeSysBatch}

// runScheduling is the leader's part of scheduling for one term of
// leadership: the broker refilled from state, the plan applier, and the
// reaper of failed and superseded evaluations. It returns, with all of
// them stopped, when ctx ends. The workers run on every server all the
// time (see worker).
func (s *Server) runScheduling(ctx context.Context) {
	s.broker.SetEnabled(true)
	s.blocked.SetEnabled(true)
	s.planTerm.Store(&ctx)
	defer s.planTerm.Store(nil)
	// Leadership ends: stop handing out evaluations (and accepting their
	// tokens) at once, before waiting for the applier and reaper.
	stop := context.AfterFunc(ctx, func() {
		s.broker.SetEnabled(false)
		s.blocked.SetEnabled(false)
	})
	defer stop()
	defer s.broker.SetEnabled(false)
	defer s.blocked.SetEnabled(false)
	if err := s.restoreEvals(); err != nil {
		s.logger.Error("refill the evaluation broker", "error", err)
	}
	var wg sync.WaitGroup
	run := func(f func(context.Context)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(ctx)
		}()
	}
	run(s.planApplier)
	run(s.reapEvals)
	run(s.drainer)
	run(s.deploymentWatcher)
	wg.Wait()
}

// restoreEvals enqueues every pending evaluation of the state and tracks
// the blocked ones.
func (s *Server) restoreEvals() error {
	evals, err := s.fsm.State().Evals(nil)
	if err != nil {
		return err
	}
	for _, ev := range evals {
		switch ev.Status {
		case structs.EvalStatusPending:
			s.broker.Enqueue(ev)
		case structs.EvalStatusBlocked:
			s.blocked.Block(ev)
		}
	}
	return nil
}

// enqueueEvals hands evaluations committed at index to the broker; the
// endpoints that create evaluations call it on the leader.
func (s *Server) enqueueEvals(index uint64, evals ...*structs.Evaluation) {
	if !s.IsLeader() {
		return
	}
	for _, ev := range evals {
		if ev == nil {
			continue
		}
		c := ev.Copy()
		c.CreateIndex, c.ModifyIndex = index, index
		switch ev.Status {
		case structs.EvalStatusPending:
			s.broker.Enqueue(c)
		case structs.EvalStatusBlocked:
			s.blocked.Block(c)
		}
	}
}

// Worker pacing.
const (
	dequeueWait     = time.Second            // one long poll of the leader's broker
	workerBackoff   = 200 * time.Millisecond // after an error (no leader yet, ...)
	stateCatchUpMax = 5 * time.Second        // how long a worker waits for its state to reach an eval
)

// worker processes evaluations until the server shuts down. Workers run
// on every server: each dequeues from the leader's broker (through the
// Eval.Dequeue RPC, in process on the leader), schedules against its own
// state once that state has reached the evaluation's index, and submits
// plans to the leader's plan applier. Spreading scheduling over the
// servers spreads its CPU; the applier keeps it consistent.
func (s *Server) worker() {
	ctx := s.shutdownCtx
	for ctx.Err() == nil {
		var resp structs.EvalDequeueResponse
		err := s.RPC("Eval.Dequeue", &structs.EvalDequeueRequest{Schedulers: schedulerTypes, Timeout: dequeueWait}, &resp)
		if err != nil {
			if ctx.Err() == nil {
				s.logger.Trace("dequeue an evaluation", "error", err)
			}
			sleepCtx(ctx, workerBackoff)
			continue
		}
		ev := resp.Eval
		if ev == nil {
			continue
		}
		err = s.waitForState(ctx, resp.WaitIndex)
		if err == nil {
			err = s.processEval(ctx, ev, resp.Token)
		}
		method := "Eval.Ack"
		if err != nil {
			s.logger.Warn("evaluation failed; it will be retried", "eval_id", ev.ID, "job_id", ev.JobID, "error", err)
			method = "Eval.Nack"
		}
		var reply structs.GenericResponse
		if err := s.RPC(method, &structs.EvalAckRequest{EvalID: ev.ID, Token: resp.Token}, &reply); err != nil && ctx.Err() == nil {
			s.logger.Warn("report an evaluation to the broker", "eval_id", ev.ID, "method", method, "error", err)
		}
		s.evalsProcessed.Add(1)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// waitForState waits until this server's state has applied index.
func (s *Server) waitForState(ctx context.Context, index uint64) error {
	deadline := time.Now().Add(stateCatchUpMax)
	for {
		latest, err := s.fsm.State().LatestIndex()
		if err != nil {
			return err
		}
		if latest >= index {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("this server's state is at index %d, behind the evaluation's %d", latest, index)
		}
		sleepCtx(ctx, 2*time.Millisecond)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

func (s *Server) processEval(ctx context.Context, ev *structs.Evaluation, token string) error {
	p := &workerPlanner{srv: s, ctx: ctx, eval: ev, token: token}
	store := s.fsm.State()
	sched, err := scheduler.New(ev.Type, scheduler.Config{
		Logger: s.logger.Named("scheduler").With("eval_id", ev.ID, "job_id", ev.JobID),
		State:  store.Snapshot(), Planner: p, Now: time.Now(), Algorithm: s.config.SchedulerAlgorithm,
		Nodes: s.schedulerNodes(store),
	})
	if err != nil {
		return err
	}
	return sched.Process(ev)
}

// schedulerNodes returns the candidate-node cache of the schedulers that
// read store, a new one after a restore replaced the store.
func (s *Server) schedulerNodes(store *state.Store) *scheduler.NodeCache {
	s.nodeCacheMu.Lock()
	defer s.nodeCacheMu.Unlock()
	if s.nodeCacheOf != store {
		s.nodeCache, s.nodeCacheOf = &scheduler.NodeCache{}, store
	}
	return s.nodeCache
}

// workerPlanner is how a scheduler acts from a worker: plans go to the
// leader's plan applier, evaluations through raft, both by RPC.
type workerPlanner struct {
	srv   *Server
	ctx   context.Context
	eval  *structs.Evaluation
	token string
	// created holds the evaluations the scheduler creates until its next
	// write (a plan, or the processed evaluation), so they go in one raft
	// entry with it or just before it: an evaluation that places nothing
	// and blocks costs one write, not two, and a worker that fails first
	// leaves none of them (the evaluation is then delivered again).
	created []*structs.Evaluation
}

var _ scheduler.Planner = (*workerPlanner)(nil)

func (p *workerPlanner) SubmitPlan(plan *structs.Plan) (*structs.PlanResult, scheduler.State, error) {
	if err := p.flush(); err != nil {
		return nil, nil, err
	}
	plan.EvalID = p.eval.ID
	var resp structs.PlanSubmitResponse
	if err := p.srv.RPC("Plan.Submit", &structs.PlanSubmitRequest{Plan: plan, EvalToken: p.token}, &resp); err != nil {
		return nil, nil, err
	}
	res := resp.Result
	if res == nil {
		return nil, nil, errors.New("the plan applier returned no result")
	}
	if res.RefreshIndex != 0 {
		if err := p.srv.waitForState(p.ctx, res.RefreshIndex); err != nil {
			return nil, nil, err
		}
		return res, p.srv.fsm.State().Snapshot(), nil
	}
	return res, nil, nil
}

func (p *workerPlanner) UpdateEval(ev *structs.Evaluation) error {
	ev.ModifyTime = time.Now().UnixNano()
	p.created = append(p.created, ev)
	return p.flush()
}

func (p *workerPlanner) CreateEval(ev *structs.Evaluation) error {
	now := time.Now().UnixNano()
	ev.CreateTime, ev.ModifyTime = now, now
	p.created = append(p.created, ev)
	return nil
}

// flush writes the evaluations held back, if any: follow-ups exist before
// the plan that points at them, blocked ones with their evaluation.
func (p *workerPlanner) flush() error {
	if len(p.created) == 0 {
		return nil
	}
	evals := p.created
	p.created = nil
	return p.writeEvals(evals...)
}

func (p *workerPlanner) writeEvals(evals ...*structs.Evaluation) error {
	var reply structs.GenericResponse
	return p.srv.RPC("Eval.Update", &structs.EvalUpdateRequest{Evals: evals}, &reply)
}

// reapEvals marks evaluations failed that used up their deliveries, and
// superseded ones canceled.
func (s *Server) reapEvals(ctx context.Context) {
	for ctx.Err() == nil {
		wait, cancel := context.WithTimeout(ctx, time.Second)
		ev, token, err := s.broker.Dequeue(wait, []string{failedQueue})
		cancel()
		var updates []*structs.Evaluation
		if err == nil {
			failed := ev.Copy()
			failed.Type = s.evalType(ev)
			failed.Status = structs.EvalStatusFailed
			failed.StatusDescription = fmt.Sprintf("evaluation failed %d times; giving up (see the server log)", s.config.EvalDeliveryLimit)
			updates = append(updates, failed)
		}
		for _, c := range append(s.broker.Cancelable(), s.blocked.Cancelable()...) {
			canceled := c.Copy()
			canceled.Status = structs.EvalStatusCanceled
			canceled.StatusDescription = "superseded by a newer evaluation of the job"
			updates = append(updates, canceled)
		}
		if len(updates) > 0 {
			if _, err := s.raftApplyLater(structs.EvalUpdateRequestType, &structs.EvalUpdateRequest{Evals: updates}); err != nil {
				s.logger.Error("record failed and canceled evaluations", "error", err)
			}
		}
		if ev != nil {
			_ = s.broker.Ack(ev.ID, token)
		}
	}
}

// evalType returns the scheduler type of an evaluation from the failed
// queue, read back from state.
func (s *Server) evalType(ev *structs.Evaluation) string {
	if stored, err := s.fsm.State().EvalByID(nil, ev.ID); err == nil && stored != nil {
		return stored.Type
	}
	return ev.Type
}
