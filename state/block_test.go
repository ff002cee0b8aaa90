package state

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/skiffhq/skiff/structs"
)

func TestBlock(t *testing.T) {
	const maxWait = time.Minute
	errQuery := errors.New("query failed")
	// jobQuery reads job default/web and reports the jobs table's index.
	jobQuery := func(ws memdb.WatchSet, snap *Snapshot) (uint64, error) {
		if _, err := snap.JobByID(ws, "default", "web"); err != nil {
			return 0, err
		}
		return snap.MaxIndex(TableJobs)
	}
	// wideQuery watches more channels than the limit, then reads the job.
	wideQuery := func(ws memdb.WatchSet, snap *Snapshot) (uint64, error) {
		for range watchLimit + 10 {
			ws.Add(make(chan struct{}))
		}
		return jobQuery(ws, snap)
	}
	changeWeb := func(t *testing.T, s *Store, _ context.CancelFunc) {
		j := testJob("default", "web")
		j.TaskGroups[0].Count = 5
		must(t, s.UpsertJob(20, j))
	}
	tests := []struct {
		name        string
		query       QueryFn
		minIndex    uint64
		before      func(s *Store)                                          // before Block starts
		act         func(t *testing.T, s *Store, cancel context.CancelFunc) // while it is blocked
		wantBlocked bool                                                    // still blocked right after act
		noWait      bool                                                    // maxWait 0
		wantRuns    int64
		wantElapsed time.Duration
		wantIndex   uint64
		wantErr     error
	}{
		{name: "minIndex 0 returns at once", query: jobQuery, minIndex: 0,
			wantRuns: 1, wantIndex: 10},
		{name: "index already past minIndex", query: jobQuery, minIndex: 5,
			wantRuns: 1, wantIndex: 10},
		{name: "write to the watched job wakes", query: jobQuery, minIndex: 10, act: changeWeb,
			wantRuns: 2, wantIndex: 20},
		{name: "write to another table does not wake", query: jobQuery, minIndex: 10,
			act: func(t *testing.T, s *Store, _ context.CancelFunc) {
				must(t, s.UpsertNode(20, testNode("n2")))
				must(t, s.UpsertEvals(21, []*structs.Evaluation{testEval("default", "api", "e1", structs.EvalStatusPending)}))
			},
			wantBlocked: true, wantRuns: 1, wantElapsed: maxWait, wantIndex: 10},
		{name: "write to another job does not wake", query: jobQuery, minIndex: 10,
			act: func(t *testing.T, s *Store, _ context.CancelFunc) {
				must(t, s.UpsertJob(20, testJob("default", "api")))
			},
			wantBlocked: true, wantRuns: 1, wantElapsed: maxWait, wantIndex: 10},
		{name: "times out with the unchanged result", query: jobQuery, minIndex: 10,
			act:         func(*testing.T, *Store, context.CancelFunc) {},
			wantBlocked: true, wantRuns: 1, wantElapsed: maxWait, wantIndex: 10},
		{name: "abandon wakes", query: jobQuery, minIndex: 10,
			act:      func(_ *testing.T, s *Store, _ context.CancelFunc) { s.Abandon() },
			wantRuns: 1, wantIndex: 10},
		{name: "already abandoned does not spin", query: jobQuery, minIndex: 10,
			before:   func(s *Store) { s.Abandon() },
			wantRuns: 1, wantIndex: 10},
		{name: "context cancelled", query: jobQuery, minIndex: 10,
			act:      func(_ *testing.T, _ *Store, cancel context.CancelFunc) { cancel() },
			wantRuns: 1, wantIndex: 10, wantErr: context.Canceled},
		{name: "no wait when maxWait is not positive", query: jobQuery, minIndex: 10, noWait: true,
			wantRuns: 1, wantIndex: 10},
		{name: "query error", minIndex: 10,
			query:    func(memdb.WatchSet, *Snapshot) (uint64, error) { return 0, errQuery },
			wantRuns: 1, wantErr: errQuery},
		{name: "over the watch limit wakes on any write, once", query: wideQuery, minIndex: 10,
			act: func(t *testing.T, s *Store, _ context.CancelFunc) {
				must(t, s.UpsertNode(20, testNode("n2")))
			},
			wantBlocked: true, wantRuns: 2, wantElapsed: maxWait, wantIndex: 10},
		{name: "over the watch limit wakes on the watched write", query: wideQuery, minIndex: 10, act: changeWeb,
			wantRuns: 2, wantIndex: 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := New()
				must(t, s.UpsertJob(10, testJob("default", "web")))
				must(t, s.UpsertNode(11, testNode("n1")))
				if tt.before != nil {
					tt.before(s)
				}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				var runs atomic.Int64
				var lastIndex atomic.Uint64
				query := func(ws memdb.WatchSet, snap *Snapshot) (uint64, error) {
					runs.Add(1)
					idx, err := tt.query(ws, snap)
					lastIndex.Store(idx)
					return idx, err
				}
				start := time.Now()
				var elapsed time.Duration
				done := make(chan error, 1)
				go func() {
					wait := maxWait
					if tt.noWait {
						wait = 0
					}
					err := s.Block(ctx, tt.minIndex, wait, query)
					elapsed = time.Since(start)
					done <- err
				}()
				synctest.Wait()
				var err error
				returned := false
				if tt.act != nil {
					if got := runs.Load(); got != 1 {
						t.Fatalf("before any write: got %d runs, want 1", got)
					}
					tt.act(t, s, cancel)
					synctest.Wait()
					select {
					case err = <-done:
						returned = true
					default:
					}
					if returned == tt.wantBlocked {
						t.Fatalf("right after the write: got returned %v, want %v", returned, !tt.wantBlocked)
					}
				}
				if !returned {
					err = <-done // advances the fake clock to the deadline if still blocked
				}
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("got error %v, want %v", err, tt.wantErr)
				}
				if got := runs.Load(); got != tt.wantRuns {
					t.Errorf("got %d runs, want %d", got, tt.wantRuns)
				}
				if elapsed != tt.wantElapsed {
					t.Errorf("got Block returning after %v, want %v", elapsed, tt.wantElapsed)
				}
				if got := lastIndex.Load(); got != tt.wantIndex {
					t.Errorf("got last index %d, want %d", got, tt.wantIndex)
				}
			})
		})
	}
}
