package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
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
	// refreshed before their delete, and so kept. It is always 0 in batch
	// mode, which cannot tell.
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

// ReaperOptions configure the reaper, which deletes expired rows so that
// they stop costing storage before DynamoDB's TTL (which takes up to days)
// removes them. They apply to the Store's reaper goroutine, to Store.Reap,
// and to a Backend's Reap called directly (a cron job, a Lambda, the
// command line). The zero value is the default configuration; each field
// says its default.
type ReaperOptions struct {
	// Interval is how often the Store's reaper goroutine runs a pass,
	// jittered to between half and one and a half times it so that a fleet
	// started together does not scan together. With the lease on, it is
	// also the least time between two passes anywhere in the fleet. It
	// must be at least 1 second. Negative: no goroutine (rely on
	// DynamoDB's TTL, or call Reap yourself) and no least time between
	// passes. Default (0): 5 minutes.
	Interval time.Duration

	// Grace makes a pass delete only rows that expired at least Grace
	// before its own clock's now, so that an instance whose clock runs
	// ahead of the others' does not delete sessions they still serve. A
	// session is never served after it expired, whatever the grace: the
	// grace only delays the deletion of expired rows. Negative: none, for
	// a single process or tests. Default (0): 5 minutes, far more than
	// clocks kept by NTP drift apart and little next to DynamoDB's TTL.
	Grace time.Duration

	// Segments splits each pass into parallel scan segments (DynamoDB's
	// parallel Scan), each scanned and cleaned by its own goroutine: a
	// large table is done sooner, and the rate caps still hold for the
	// pass as a whole. From 1 to 1000. Default (0): 1.
	Segments int

	// ReadUnits and WriteUnits cap the read capacity units per second a
	// pass spends on Scan pages and the write capacity units per second it
	// spends on deletes, so that the reaper never starves the request
	// path. The reaper asks DynamoDB what each call consumed and waits
	// before its next call until the average since the start of the pass
	// is back under the cap; unused capacity is never saved up for a
	// burst. A single call can cost more than a second's worth (a 1 MB
	// Scan page is 128 read units): use PageSize against a low read cap.
	// Finite and not negative. Default (0): no cap.
	ReadUnits, WriteUnits float64

	// PageSize is the most items one Scan page examines (the Scan Limit),
	// expired or not. Smaller pages smooth the read rate at the cost of
	// more calls. From 0 to 2^31-1. Default (0): DynamoDB's limit of 1 MB
	// per page.
	PageSize int

	// BatchDelete deletes expired rows with BatchWriteItem, 25 per call,
	// instead of one conditional DeleteItem per row; rows returned as
	// unprocessed are sent again with backoff. Batch deletes carry no
	// condition: a session that was expired when scanned but refreshed
	// before its delete (possible only when other code writes to the
	// table, or with clocks further apart than the grace) is deleted
	// anyway. It needs about 25 times fewer calls for the same write units.
	// Default: false, conditional deletes.
	BatchDelete bool

	// NoLease turns the fleet lease off. With the lease on, a pass first
	// takes a lease item kept in the table itself, and only its holder
	// reaps: a pass does nothing (ReapStats.SkippedByLease) while another
	// instance holds it, or less than Interval has passed since the last
	// completed pass started. The holder renews the lease while its pass
	// runs and releases it at the end; if it dies, the lease runs out after
	// LeaseDuration and another instance takes over. The lease applies to
	// the DynamoDB backend. Default: false, the lease is on.
	NoLease bool

	// LeaseDuration is how long the lease lasts without renewal: how long
	// the fleet waits before another instance takes over from a holder
	// that died. The holder renews it every third of that. Clocks must
	// agree to well within it. At least 1 second. Default (0): 1 minute.
	LeaseDuration time.Duration

	// OnPass, when set, is called after every pass the Store runs (its
	// goroutine's and Reap's) with the pass's statistics and its error,
	// to export them as metrics. It runs on the reaping goroutine and
	// should return quickly. Default: none.
	OnPass func(ReapStats, error)

	seams *reapSeams // for tests; nil in production
}

// Reaper defaults and limits.
const (
	defaultCleanupInterval = 5 * time.Minute
	defaultReaperGrace     = 5 * time.Minute
	defaultReaperSegments  = 1
	maxReaperSegments      = 1000
	defaultLeaseDuration   = time.Minute
)

// reapSeams are the reaper's seams for tests.
type reapSeams struct {
	// wait is the clock of the rate limiters and of every pause (throttling
	// and unprocessed-item backoff).
	wait waitClock
	// now is the clock of the expiry cutoff and of lease times; the Store
	// sets it to its own.
	now func() time.Time
	// log receives the lease's warnings; the Store sets it to its logger.
	log *slog.Logger
	// tick, when set, replaces the jittered interval timer of the reaper
	// goroutine: one pass per value received.
	tick <-chan time.Time
	// renewTick, when set, replaces the lease renewal ticker.
	renewTick <-chan time.Time
	// afterScan is called with the keys of the expired items of each Scan
	// page before they are deleted.
	afterScan func(ctx context.Context, keys []string)
}

// validate checks o, returning an error wrapping ErrInvalidOption that
// names the field.
func (o ReaperOptions) validate() error {
	switch {
	case o.Interval > 0 && o.Interval < time.Second:
		return fmt.Errorf("%w: reaper interval %v must be at least 1s (negative for no reaper goroutine)", ErrInvalidOption, o.Interval)
	case o.Segments < 0 || o.Segments > maxReaperSegments:
		return fmt.Errorf("%w: reaper segments %d must be from 1 to %d", ErrInvalidOption, o.Segments, maxReaperSegments)
	case o.PageSize < 0 || o.PageSize > math.MaxInt32:
		return fmt.Errorf("%w: reaper page size %d must be from 0 (1 MB pages) to %d", ErrInvalidOption, o.PageSize, math.MaxInt32)
	case o.LeaseDuration != 0 && o.LeaseDuration < time.Second:
		return fmt.Errorf("%w: reaper lease duration %v must be at least 1s", ErrInvalidOption, o.LeaseDuration)
	}
	for _, r := range []float64{o.ReadUnits, o.WriteUnits} {
		if r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
			return fmt.Errorf("%w: reaper rate %v must be a finite number of units per second, 0 for no cap", ErrInvalidOption, r)
		}
	}
	return nil
}

// apply replaces o with n, keeping o's seams unless n has its own.
func (o *ReaperOptions) apply(n ReaperOptions) {
	if n.seams == nil {
		n.seams = o.seams
	}
	*o = n
}

// interval returns how often the goroutine runs, 0 for never.
func (o *ReaperOptions) interval() time.Duration {
	switch {
	case o.Interval < 0:
		return 0
	case o.Interval == 0:
		return defaultCleanupInterval
	}
	return o.Interval
}

func (o *ReaperOptions) segmentCount() int {
	if o.Segments == 0 {
		return defaultReaperSegments
	}
	return o.Segments
}

func (o *ReaperOptions) leaseTime() time.Duration {
	if o.LeaseDuration == 0 {
		return defaultLeaseDuration
	}
	return o.LeaseDuration
}

// cutoff returns the expiry before which a pass that starts at now
// deletes rows: now less the grace.
func (o *ReaperOptions) cutoff(now time.Time) time.Time {
	switch {
	case o.Grace < 0:
		return now
	case o.Grace == 0:
		return now.Add(-defaultReaperGrace)
	}
	return now.Add(-o.Grace)
}

func (o *ReaperOptions) seam() *reapSeams {
	if o.seams == nil {
		return &reapSeams{}
	}
	return o.seams
}

func (o *ReaperOptions) clock() waitClock {
	if w := o.seam().wait; w != nil {
		return w
	}
	return realClock{}
}

func (o *ReaperOptions) now() time.Time {
	if n := o.seam().now; n != nil {
		return n()
	}
	return time.Now()
}

func (o *ReaperOptions) logger() *slog.Logger {
	if l := o.seam().log; l != nil {
		return l
	}
	return slog.New(slog.DiscardHandler)
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
	if seams.log == nil {
		seams.log = s.log
	}
	opts.seams = &seams
	r := &reaper{
		store:    s,
		interval: opts.interval(),
		opts:     opts,
		ctx:      ctx,
		cancel:   cancel,
	}
	if r.interval > 0 {
		r.done = make(chan struct{})
		go r.run()
	}
	return r
}

// jitter returns d spread uniformly over [d/2, 3d/2), so a fleet started
// together does not scan together.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d)
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

	start := time.Now()
	st, err := r.store.backend.Reap(ctx, r.opts)
	if st.Duration == 0 {
		st.Duration = time.Since(start)
	}
	if err != nil {
		err = r.closedOr(err)
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

// waitClock is the time source of the rate limiters and pauses.
type waitClock interface {
	Now() time.Time
	// Sleep waits for d or until ctx is done, and returns ctx's error in
	// the latter case.
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// limiter caps a rate of capacity units per second. The cost of a call is
// known only after it (ConsumedCapacity), so the limiter charges it
// afterwards and makes the next caller wait until the debt is paid: after
// any call, the units consumed since the first one never exceed rate times
// the elapsed time by more than that call's cost. Unused time is not saved
// for a later burst. A nil *limiter does not limit.
type limiter struct {
	rate  float64 // units per second, > 0
	clock waitClock

	mu   sync.Mutex
	free time.Time // when the next call may start
}

func newLimiter(rate float64, clock waitClock) *limiter {
	if rate <= 0 {
		return nil
	}
	return &limiter{rate: rate, clock: clock}
}

// wait blocks until the next call may start or ctx is done.
func (l *limiter) wait(ctx context.Context) error {
	if l == nil {
		return ctx.Err()
	}
	l.mu.Lock()
	d := l.free.Sub(l.clock.Now())
	l.mu.Unlock()
	if d <= 0 {
		return ctx.Err()
	}
	return l.clock.Sleep(ctx, d)
}

// charge records that a call consumed units.
func (l *limiter) charge(units float64) {
	if l == nil || units <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := l.clock.Now(); l.free.Before(now) {
		l.free = now
	}
	l.free = l.free.Add(time.Duration(units / l.rate * float64(time.Second)))
}

// backoff returns the pause before retry attempt n (0-based): exponential
// from base, capped at ceiling, with "equal jitter" (a uniform draw from
// the upper half), so that clients throttled together do not retry
// together.
func backoff(n int, base, ceiling time.Duration) time.Duration {
	d := ceiling
	if n < 32 {
		if e := base << n; e > 0 && e < ceiling {
			d = e
		}
	}
	return d/2 + rand.N(d/2+1)
}
