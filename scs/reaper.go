package dynamoscs

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/dynamostore/dynamostore"
)

// Reap runs one reaper pass now, through the backend's Reap with the
// Store's reaper options (Options.Reaper), and returns its statistics: for
// a cron job, or a Store without a goroutine. It deletes the rows that
// expired more than the grace (5 minutes by default) ago. With the lease on
// (the default) it does nothing and returns stats with SkippedByLease set
// while another instance holds the lease, or less than the interval has
// passed since the last pass started. It works after StopCleanup too.
func (s *Store) Reap(ctx context.Context) (dynamostore.ReapStats, error) {
	st, err := s.backend.Reap(ctx, s.reaper)
	if s.reaper.OnPass != nil {
		s.reaper.OnPass(st, err)
	}
	return st, err
}

// StopCleanup stops the reaper goroutine, cancelling a pass under way, and
// returns once it has ended, so that a Store made for a test leaves no
// goroutine behind. The Store keeps serving Find, Commit, Delete, All and
// Reap. It may be called more than once, and on a Store without a
// goroutine.
func (s *Store) StopCleanup() {
	s.stopOnce.Do(func() {
		s.cancel()
		if s.done != nil {
			<-s.done
		}
	})
}

// run is the reaper goroutine: a pass every interval, jittered, until ctx
// is cancelled.
func (s *Store) run(ctx context.Context, interval time.Duration) {
	defer close(s.done)
	for {
		t := time.NewTimer(jitter(interval))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if _, err := s.Reap(ctx); err != nil && ctx.Err() == nil {
			log := s.reaper.Logger
			if log == nil {
				log = slog.Default()
			}
			log.Error("dynamoscs: reaper pass failed", "table", s.table, "error", err)
		}
	}
}

// jitter returns d spread uniformly over [d, 3d/2], as dynamostore's own
// reaper does, so that a fleet started together does not scan together. It
// never draws less than d: with the lease on, a pass sooner than d after the
// last one would only be skipped.
func jitter(d time.Duration) time.Duration {
	return d + rand.N(d/2+1)
}
