package server

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/skiffhq/skiff/scheduler"
	"github.com/skiffhq/skiff/structs"
)

// schedulerTypes are the evaluation types the workers serve.
var schedulerTypes = []string{structs.JobTypeService, structs.JobTypeBatch, structs.JobTypeSystem, structs.JobTypeSysBatch}

// runScheduling is the leader's scheduling for one term of leadership: the
// broker refilled from state, the plan applier, the workers, and the
// reaper of failed and superseded evaluations. It returns, with all of
// them stopped, when ctx ends.
func (s *Server) runScheduling(ctx context.Context) {
	s.broker.SetEnabled(true)
	s.blocked.SetEnabled(true)
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
	for range s.config.NumSchedulers {
		run(s.worker)
	}
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

// worker processes evaluations until ctx ends.
func (s *Server) worker(ctx context.Context) {
	for {
		ev, token, err := s.broker.Dequeue(ctx, schedulerTypes)
		if err != nil {
			return // leadership or the server ended
		}
		if err := s.processEval(ctx, ev, token); err != nil {
			s.logger.Warn("evaluation failed; it will be retried", "eval_id", ev.ID, "job_id", ev.JobID, "error", err)
			_ = s.broker.Nack(ev.ID, token)
			continue
		}
		_ = s.broker.Ack(ev.ID, token)
	}
}

func (s *Server) processEval(ctx context.Context, ev *structs.Evaluation, token string) error {
	p := &workerPlanner{srv: s, ctx: ctx, eval: ev, token: token}
	sched, err := scheduler.New(ev.Type, scheduler.Config{
		Logger: s.logger.Named("scheduler").With("eval_id", ev.ID, "job_id", ev.JobID),
		State:  s.fsm.State().Snapshot(), Planner: p, Now: time.Now(),
	})
	if err != nil {
		return err
	}
	return sched.Process(ev)
}

// workerPlanner is how a scheduler acts from a worker: plans go to the
// plan applier, evaluations through raft.
type workerPlanner struct {
	srv   *Server
	ctx   context.Context
	eval  *structs.Evaluation
	token string
}

var _ scheduler.Planner = (*workerPlanner)(nil)

func (p *workerPlanner) SubmitPlan(plan *structs.Plan) (*structs.PlanResult, scheduler.State, error) {
	_ = p.srv.broker.OutstandingReset(p.eval.ID, p.token)
	plan.EvalID = p.eval.ID
	res, err := p.srv.submitPlan(p.ctx, plan)
	if err != nil {
		return nil, nil, err
	}
	if res.RefreshIndex != 0 {
		return res, p.srv.fsm.State().Snapshot(), nil
	}
	return res, nil, nil
}

func (p *workerPlanner) UpdateEval(ev *structs.Evaluation) error {
	ev.ModifyTime = time.Now().UnixNano()
	_, err := p.srv.raftApply(structs.EvalUpdateRequestType, &structs.EvalUpdateRequest{Evals: []*structs.Evaluation{ev}})
	return err
}

func (p *workerPlanner) CreateEval(ev *structs.Evaluation) error {
	now := time.Now().UnixNano()
	ev.CreateTime, ev.ModifyTime = now, now
	index, err := p.srv.raftApply(structs.EvalUpdateRequestType, &structs.EvalUpdateRequest{Evals: []*structs.Evaluation{ev}})
	if err != nil {
		return err
	}
	p.srv.enqueueEvals(index, ev)
	return nil
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
			if _, err := s.raftApply(structs.EvalUpdateRequestType, &structs.EvalUpdateRequest{Evals: updates}); err != nil {
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
