package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/skiffhq/skiff/structs"
)

// The RPCs of scheduler workers, which run on every server and talk to
// the leader's broker and plan applier through them (a worker on the
// leader calls them in process).

// maxDequeueWait bounds one long poll for an evaluation.
const maxDequeueWait = 10 * time.Second

// Dequeue waits up to args.Timeout for an evaluation of one of the
// scheduler types and hands it out with a token. No evaluation is not an
// error: the reply's Eval is nil.
func (e *Eval) Dequeue(args *structs.EvalDequeueRequest, reply *structs.EvalDequeueResponse) error {
	return e.srv.write("Eval.Dequeue", args, reply, func() error {
		wait := min(max(args.Timeout, 10*time.Millisecond), maxDequeueWait)
		ctx, cancel := context.WithTimeout(e.srv.shutdownCtx, wait)
		defer cancel()
		ev, token, err := e.srv.broker.Dequeue(ctx, args.Schedulers)
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			return nil
		case errors.Is(err, errBrokerDisabled):
			return fmt.Errorf("%w: the leader's scheduling is starting", structs.ErrNoLeader)
		case err != nil:
			return err
		}
		reply.Eval, reply.Token, reply.WaitIndex = ev, token, ev.ModifyIndex
		return nil
	})
}

// Ack reports a dequeued evaluation processed.
func (e *Eval) Ack(args *structs.EvalAckRequest, reply *structs.GenericResponse) error {
	return e.srv.write("Eval.Ack", args, reply, func() error { return e.srv.broker.Ack(args.EvalID, args.Token) })
}

// Nack reports a dequeued evaluation not processed: it is delivered again
// (up to the delivery limit).
func (e *Eval) Nack(args *structs.EvalAckRequest, reply *structs.GenericResponse) error {
	return e.srv.write("Eval.Nack", args, reply, func() error { return e.srv.broker.Nack(args.EvalID, args.Token) })
}

// Update writes evaluations a worker changed or created (the processed
// evaluation's outcome, blocked and follow-up evaluations) and hands the
// new pending and blocked ones to the broker.
func (e *Eval) Update(args *structs.EvalUpdateRequest, reply *structs.GenericResponse) error {
	return e.srv.write("Eval.Update", args, reply, func() error {
		if len(args.Evals) == 0 {
			return fmt.Errorf("%w: no evaluations", ErrBadRequest)
		}
		index, err := e.srv.raftApplyLater(structs.EvalUpdateRequestType, args)
		if err != nil {
			return err
		}
		e.srv.enqueueEvals(index, args.Evals...)
		reply.Index = index
		return nil
	})
}

// Plan is the plan applier's RPC endpoint.
type Plan struct{ srv *Server }

// Submit hands a worker's plan to the leader's plan applier and returns
// its verdict. The evaluation's token must still be valid: a worker whose
// evaluation was redelivered elsewhere (nack timeout) cannot commit.
func (p *Plan) Submit(args *structs.PlanSubmitRequest, reply *structs.PlanSubmitResponse) error {
	return p.srv.write("Plan.Submit", args, reply, func() error {
		if args.Plan == nil {
			return fmt.Errorf("%w: no plan", ErrBadRequest)
		}
		if err := p.srv.broker.OutstandingReset(args.Plan.EvalID, args.EvalToken); err != nil {
			return fmt.Errorf("plan of evaluation %s refused: %w", args.Plan.EvalID, err)
		}
		res, err := p.srv.submitPlan(p.srv.shutdownCtx, args.Plan, args.EvalToken)
		if err != nil {
			return err
		}
		reply.Result = res
		reply.Index = res.AllocIndex
		return nil
	})
}
