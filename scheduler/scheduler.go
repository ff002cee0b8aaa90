package scheduler

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-memdb"

	"github.com/skiffhq/skiff/structs"
)

// State is the read-only view the scheduler plans against; *state.Snapshot
// satisfies it. The scheduler never keeps or changes the objects it returns.
type State interface {
	JobByID(ws memdb.WatchSet, namespace, id string) (*structs.Job, error)
	AllocsByJob(ws memdb.WatchSet, namespace, jobID string, anyCreateIndex bool) ([]*structs.Allocation, error)
	AllocsByNode(ws memdb.WatchSet, nodeID string) ([]*structs.Allocation, error)
	Nodes(ws memdb.WatchSet) ([]*structs.Node, error)
	NodeByID(ws memdb.WatchSet, id string) (*structs.Node, error)
	LatestIndex() (uint64, error)
}

// evalLister is an optional extension of State: when the state can list a
// job's evaluations, the scheduler uses it to avoid creating a second
// blocked evaluation for a job that already has one.
type evalLister interface {
	EvalsByJob(ws memdb.WatchSet, namespace, jobID string) ([]*structs.Evaluation, error)
}

// Planner is how a scheduler acts: the server implements it (submit to the
// plan applier, write evaluations through raft); tests record.
type Planner interface {
	// SubmitPlan hands a plan to the plan applier. If result.RefreshIndex
	// != 0 some nodes were refused and newState is a snapshot at least
	// that new to plan again against.
	SubmitPlan(plan *structs.Plan) (result *structs.PlanResult, newState State, err error)
	// UpdateEval records the processed evaluation, with Status,
	// StatusDescription, FailedTGAllocs, QueuedAllocations and BlockedEval set.
	UpdateEval(eval *structs.Evaluation) error
	// CreateEval records a follow-up evaluation: a blocked evaluation for
	// unplaced allocations, or a delayed reschedule evaluation (WaitUntil).
	CreateEval(eval *structs.Evaluation) error
}

// Config is everything a scheduler depends on. Time and randomness come
// only from here, so that the same Config and evaluation give the same plan.
type Config struct {
	Logger  hclog.Logger
	State   State
	Planner Planner
	// Now is the scheduler's notion of the current time (reschedule
	// delays, CreateTime/ModifyTime of what it writes).
	Now time.Time
	// Seed drives node shuffling and the IDs of new objects. 0 derives it
	// from the evaluation ID (FNV-64a).
	Seed uint64
	// MaxPlanAttempts bounds the plans submitted for one evaluation when
	// the plan applier refuses part of them. 0 means 5.
	MaxPlanAttempts int
	// Algorithm ranks nodes by how full they would be: AlgorithmBinPack
	// (the default, fill nodes first) or AlgorithmSpread (emptiest first).
	Algorithm string
	// Nodes, when set, caches the candidate nodes across evaluations while
	// the nodes table does not change (see NodeCache).
	Nodes *NodeCache
}

// Scheduling algorithms.
const (
	AlgorithmBinPack = "binpack"
	AlgorithmSpread  = "spread"
)

// Scheduler turns one evaluation into plans and follow-up evaluations.
type Scheduler interface {
	// Process plans eval to completion: it submits plans, creates
	// follow-up evaluations and finally updates eval through the Planner.
	// An error means the evaluation was not processed (the caller should
	// nack it); placement failures are not errors.
	Process(eval *structs.Evaluation) error
}

// ErrUnknownType is returned by New for a scheduler type it does not know.
var ErrUnknownType = errors.New("unknown scheduler type")

// New returns the scheduler for a job type: "service", "batch", "system"
// or "sysbatch".
func New(schedulerType string, cfg Config) (Scheduler, error) {
	if cfg.State == nil || cfg.Planner == nil {
		return nil, errors.New("scheduler: Config.State and Config.Planner are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.MaxPlanAttempts <= 0 {
		cfg.MaxPlanAttempts = 5
	}
	switch cfg.Algorithm {
	case "", AlgorithmBinPack, AlgorithmSpread:
	default:
		return nil, fmt.Errorf("scheduler: algorithm %q is not %q or %q", cfg.Algorithm, AlgorithmBinPack, AlgorithmSpread)
	}
	switch schedulerType {
	case structs.JobTypeService, structs.JobTypeBatch, structs.JobTypeSystem, structs.JobTypeSysBatch:
		return &scheduler{cfg: cfg, typ: schedulerType}, nil
	}
	return nil, fmt.Errorf("scheduler: %w %q (want service, batch, system or sysbatch)", ErrUnknownType, schedulerType)
}

// scheduler implements every job type; the type picks the reconciler.
type scheduler struct {
	cfg Config
	typ string
}

func (s *scheduler) system() bool {
	return s.typ == structs.JobTypeSystem || s.typ == structs.JobTypeSysBatch
}

// seed returns the seed of one plan attempt.
func (s *scheduler) seed(evalID string, attempt int) uint64 {
	seed := s.cfg.Seed
	if seed == 0 {
		h := fnv.New64a()
		h.Write([]byte(evalID))
		seed = h.Sum64()
	}
	return seed + uint64(attempt)*0x9e3779b97f4a7c15
}

// Process implements Scheduler.
func (s *scheduler) Process(eval *structs.Evaluation) error {
	log := s.cfg.Logger.With("eval_id", eval.ID, "job_id", eval.JobID)
	st := s.cfg.State
	var c *planCtx
	attempt := 0
	for {
		var err error
		c, err = s.compute(st, eval, attempt)
		if err != nil {
			return fmt.Errorf("evaluation %s: %w", eval.ID, err)
		}
		// Follow-up evaluations exist before the plan that points at them
		// (allocations carry their IDs in FollowupEvalID).
		for _, f := range c.followUps {
			if err := s.cfg.Planner.CreateEval(f); err != nil {
				return fmt.Errorf("evaluation %s: create follow-up evaluation: %w", eval.ID, err)
			}
		}
		if c.plan.IsNoOp() {
			break
		}
		result, newState, err := s.cfg.Planner.SubmitPlan(c.plan)
		if err != nil {
			return fmt.Errorf("evaluation %s: submit plan: %w", eval.ID, err)
		}
		if result == nil || result.RefreshIndex == 0 {
			break
		}
		attempt++
		log.Debug("plan partially committed; planning again", "refresh_index", result.RefreshIndex, "attempt", attempt)
		if attempt >= s.cfg.MaxPlanAttempts {
			out := eval.Copy()
			out.Status = structs.EvalStatusFailed
			out.StatusDescription = fmt.Sprintf("maximum attempts reached (%d): the plan applier kept refusing nodes", s.cfg.MaxPlanAttempts)
			out.ModifyTime = s.cfg.Now.UnixNano()
			return s.cfg.Planner.UpdateEval(out)
		}
		if newState == nil {
			return fmt.Errorf("evaluation %s: plan applier asked for a refresh to index %d but gave no state", eval.ID, result.RefreshIndex)
		}
		st = newState
	}
	return s.finish(st, eval, c)
}

// finish creates the blocked evaluation for unplaced allocations, if any,
// and updates eval with the outcome of the last plan.
func (s *scheduler) finish(st State, eval *structs.Evaluation, c *planCtx) error {
	out := eval.Copy()
	out.Status = structs.EvalStatusComplete
	out.StatusDescription = ""
	out.ModifyTime = s.cfg.Now.UnixNano()
	out.SnapshotIndex = c.snapshotIndex
	out.QueuedAllocations = c.queued
	if len(c.failed) > 0 {
		out.FailedTGAllocs = c.failed
	} else {
		out.FailedTGAllocs = nil
	}
	if len(c.failed) > 0 && !s.system() {
		blocked, err := s.blockedEval(st, eval, c)
		if err != nil {
			return err
		}
		if blocked != nil {
			if err := s.cfg.Planner.CreateEval(blocked); err != nil {
				return fmt.Errorf("evaluation %s: create blocked evaluation: %w", eval.ID, err)
			}
			out.BlockedEval = blocked.ID
		}
	}
	return s.cfg.Planner.UpdateEval(out)
}

// blockedEval returns the blocked evaluation that carries the unplaced
// allocations of c, or nil when the job already has one.
func (s *scheduler) blockedEval(st State, eval *structs.Evaluation, c *planCtx) (*structs.Evaluation, error) {
	if l, ok := st.(evalLister); ok {
		evals, err := l.EvalsByJob(nil, eval.Namespace, eval.JobID)
		if err != nil {
			return nil, fmt.Errorf("evaluation %s: list evaluations of job: %w", eval.ID, err)
		}
		for _, e := range evals {
			if e.ID != eval.ID && e.Status == structs.EvalStatusBlocked {
				return nil, nil
			}
		}
	}
	b := &structs.Evaluation{
		ID:                c.newID(),
		Namespace:         eval.Namespace,
		Priority:          eval.Priority,
		Type:              eval.Type,
		TriggeredBy:       structs.EvalTriggerQueuedAllocs,
		JobID:             eval.JobID,
		JobModifyIndex:    eval.JobModifyIndex,
		Status:            structs.EvalStatusBlocked,
		StatusDescription: "created to place remaining allocations",
		PreviousEval:      eval.ID,
		ClassEligibility:  c.classEligibility(),
		SnapshotIndex:     c.snapshotIndex,
		CreateTime:        s.cfg.Now.UnixNano(),
		ModifyTime:        s.cfg.Now.UnixNano(),
	}
	if c.job != nil {
		b.JobModifyIndex = c.job.JobModifyIndex
		b.EscapedComputedClass = structs.JobEscapesComputedClass(c.job)
	}
	return b, nil
}

// compute builds the plan of one attempt against st.
func (s *scheduler) compute(st State, eval *structs.Evaluation, attempt int) (*planCtx, error) {
	idx, err := st.LatestIndex()
	if err != nil {
		return nil, fmt.Errorf("read state index: %w", err)
	}
	job, err := st.JobByID(nil, eval.Namespace, eval.JobID)
	if err != nil {
		return nil, fmt.Errorf("read job: %w", err)
	}
	seed := s.seed(eval.ID, attempt)
	c := &planCtx{
		state: st, nodeCache: s.cfg.Nodes, eval: eval, job: job, now: s.cfg.Now, typ: s.typ, spread: s.cfg.Algorithm == AlgorithmSpread,
		rng:           rand.New(rand.NewPCG(seed, seed^0x5deece66d)),
		snapshotIndex: idx,
		plan: &structs.Plan{
			EvalID: eval.ID, Priority: eval.Priority, Job: job, SnapshotIndex: idx,
		},
		queued:  map[string]int{},
		failed:  map[string]*structs.AllocMetric{},
		stopped: map[string]bool{},
		usage:   map[string]*nodeUsage{},
		nodeOf:  map[string]*structs.Node{},
		classOK: map[string]bool{},
	}
	if job != nil {
		c.plan.AllAtOnce = job.AllAtOnce
	}
	if err := c.loadAllocs(); err != nil {
		return nil, err
	}
	if job == nil || job.Stop {
		c.stopAll()
		return c, nil
	}
	if err := c.loadNodes(); err != nil {
		return nil, err
	}
	if s.system() {
		err = c.reconcileSystem()
	} else if err = c.loadDeployment(); err == nil {
		err = c.reconcileGeneric()
	}
	return c, err
}
