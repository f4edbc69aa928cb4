package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// ReapStats describes one reaper pass.
type ReapStats struct {
	// Pages is the number of Scan pages read, over all segments.
	Pages int
	// Scanned is the number of items the Scan examined, expired or not.
	Scanned int
	// Deleted is the number of expired items removed.
	Deleted int
	// Skipped is the number of items that were expired when scanned but
	// no longer so at their delete: refreshed (and so kept), or deleted
	// meanwhile by someone else (DynamoDB's TTL, another reaper). It is
	// always 0 in batch mode, which cannot tell.
	Skipped int
	// ConsumedCapacity is the read and write capacity the pass consumed,
	// as DynamoDB reported it: ReadCapacity plus WriteCapacity. Failed
	// conditional deletes are charged by DynamoDB but not reported, so
	// they are not included.
	ConsumedCapacity float64
	// ReadCapacity is the part of ConsumedCapacity spent on Scan pages.
	ReadCapacity float64
	// WriteCapacity is the part of ConsumedCapacity spent on deletes.
	WriteCapacity float64
	// Segments is the number of parallel scan segments the pass used.
	Segments int
	// Throttled is the number of calls that DynamoDB still throttled after
	// the SDK's own retries, and that the reaper paused and sent again.
	Throttled int
	// Unprocessed is the number of batch-mode deletes that DynamoDB
	// returned as unprocessed and the reaper sent again.
	Unprocessed int
	// SkippedByLease is true when the pass did not run because another
	// Store holds the reaper lease on the table, or a pass started less
	// than a cleanup interval ago. Every count is then zero.
	SkippedByLease bool
	// Duration is how long the pass took, lease handling included.
	Duration time.Duration
}

// add accumulates the counts of o into st.
func (st *ReapStats) add(o ReapStats) {
	st.Pages += o.Pages
	st.Scanned += o.Scanned
	st.Deleted += o.Deleted
	st.Skipped += o.Skipped
	st.ConsumedCapacity += o.ConsumedCapacity
	st.ReadCapacity += o.ReadCapacity
	st.WriteCapacity += o.WriteCapacity
	st.Throttled += o.Throttled
	st.Unprocessed += o.Unprocessed
}

// Reap runs one reaper pass now, through the Backend's Reap with the
// Store's ReaperOptions, and returns its statistics: for cron jobs and
// Lambdas as much as for the Store's own goroutine. With the lease on (the
// default), it does nothing and returns stats with SkippedByLease set
// while another instance holds the lease or less than the interval has
// passed since the last pass started. Passes of one Store run one at a
// time. Close cancels a pass under way; after Close, Reap returns
// ErrClosed.
func (s *Store) Reap(ctx context.Context) (ReapStats, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed || s.reaper == nil {
		return ReapStats{}, ErrClosed
	}
	return s.reaper.reap(ctx)
}

// reaper runs passes for one Store: on demand through Reap, and every
// interval, jittered, from its goroutine unless the interval is negative.
type reaper struct {
	store    *Store
	interval time.Duration
	opts     ReaperOptions

	ctx    context.Context // cancelled by close; parent of every pass
	cancel context.CancelFunc
	done   chan struct{} // closed when the goroutine ends; nil without one
	once   sync.Once
	sem    chan struct{} // one pass at a time, whatever the Backend

	mu     sync.Mutex
	closed bool
	active sync.WaitGroup // passes under way
}

// startReaper returns the Store's reaper and, unless its interval is
// negative, starts its goroutine; the caller stops it with reaper.close.
// The passes use the Store's clock and logger.
func startReaper(s *Store, opts ReaperOptions) *reaper {
	ctx, cancel := context.WithCancel(context.Background())
	seams := *opts.seam()
	if seams.now == nil {
		seams.now = s.now
	}
	opts.seams = &seams
	if opts.Logger == nil {
		opts.Logger = s.log
	}
	r := &reaper{
		store:    s,
		interval: opts.interval(),
		opts:     opts,
		ctx:      ctx,
		cancel:   cancel,
		sem:      make(chan struct{}, 1),
	}
	if r.interval > 0 {
		r.done = make(chan struct{})
		go r.run()
	}
	return r
}

// jitter returns d spread uniformly over [d, 3d/2], so a fleet started
// together does not scan together. It never draws less than d: with the
// lease on, a pass sooner than d after the last one would only be skipped.
func jitter(d time.Duration) time.Duration {
	return d + rand.N(d/2+1)
}

func (r *reaper) run() {
	defer close(r.done)
	for {
		tick := r.opts.seams.tick
		var t *time.Timer
		if tick == nil {
			t = time.NewTimer(jitter(r.interval))
			tick = t.C
		}
		select {
		case <-r.ctx.Done():
			if t != nil {
				t.Stop()
			}
			return
		case <-tick:
		}
		if _, err := r.reap(r.ctx); err != nil && r.ctx.Err() == nil {
			r.store.log.Error("dynamostore: reaper pass failed", "error", err)
		}
	}
}

// reap runs one pass, logs it and calls the hook.
func (r *reaper) reap(ctx context.Context) (ReapStats, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ReapStats{}, ErrClosed
	}
	r.active.Add(1)
	r.mu.Unlock()
	defer r.active.Done()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(r.ctx, cancel)
	defer stop()

	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return ReapStats{}, r.closedOr(ctx.Err())
	}
	start := time.Now()
	st, err := r.store.backend.Reap(ctx, r.opts)
	<-r.sem
	if st.Duration == 0 {
		st.Duration = time.Since(start)
	}
	if err != nil {
		err = r.closedOr(err)
		if !errors.Is(err, ErrClosed) && !errors.Is(err, ErrLeaseLost) && ctx.Err() == nil {
			// A failed call (throttled, say), as Stats counts the
			// request path's.
			r.store.counters.countErr(err)
		}
	}
	if !st.SkippedByLease && (err == nil || st.Pages > 0) {
		r.store.counters.reapPasses.Add(1)
		r.store.counters.reapDeleted.Add(int64(st.Deleted))
	}
	if r.opts.OnPass != nil {
		r.opts.OnPass(st, err)
	}
	switch {
	case err != nil:
	case st.SkippedByLease:
		r.store.log.DebugContext(ctx, "dynamostore: reaper pass skipped: lease held elsewhere or pass not due")
	default:
		r.store.log.InfoContext(ctx, "dynamostore: reaper pass", "pages", st.Pages, "scanned", st.Scanned,
			"deleted", st.Deleted, "skipped", st.Skipped, "capacity", st.ConsumedCapacity,
			"read_capacity", st.ReadCapacity, "write_capacity", st.WriteCapacity, "segments", st.Segments,
			"throttled", st.Throttled, "unprocessed", st.Unprocessed, "duration", st.Duration)
	}
	return st, err
}

// closedOr wraps err with ErrClosed when the reaper was closed, which
// cancels every pass.
func (r *reaper) closedOr(err error) error {
	if r.ctx.Err() != nil && !errors.Is(err, ErrClosed) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}

// close stops the reaper, cancelling any pass under way, and waits for the
// goroutine and the passes to end. It is safe to call more than once.
func (r *reaper) close() {
	r.once.Do(func() {
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		r.cancel()
	})
	if r.done != nil {
		<-r.done
	}
	r.active.Wait()
}
