package server

import (
	"context"
	"slices"
	"time"

	"github.com/skiffhq/skiff/state"
)

// pollWhileActive runs pass every interval until ctx ends: the loop of the
// leader's deployment watcher and drainer. A pass reports whether it left
// work in progress; while none is, later passes are skipped until one of
// tables changes (its index moves), so an idle cluster costs one index
// read per interval. A failed pass is logged as what and runs again at
// the next interval.
func (s *Server) pollWhileActive(ctx context.Context, interval time.Duration, what string, tables []string,
	pass func(snap *state.Snapshot, now time.Time) (active bool, err error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	at := make([]uint64, len(tables))
	var idleAt []uint64 // table indexes of the last pass that found nothing in progress
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		snap := s.fsm.State().Snapshot()
		for i, table := range tables {
			at[i], _ = snap.MaxIndex(table)
		}
		if idleAt != nil && slices.Equal(at, idleAt) {
			continue
		}
		active, err := pass(snap, time.Now())
		switch {
		case err != nil && ctx.Err() == nil:
			s.logger.Warn(what, "error", err)
			idleAt = nil
		case active || err != nil:
			idleAt = nil
		default:
			idleAt = slices.Clone(at)
		}
	}
}
