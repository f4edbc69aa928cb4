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

// expiresAt returns when a session saved at now stops being served: after
// maxAge seconds when the cookie has a MaxAge, otherwise after ttl (so a
// browser-session cookie, MaxAge 0, still has a row that expires).
//
// It is rounded up to a whole second, the precision of the stored expiry,
// so a session never lives shorter than asked.
func expiresAt(now time.Time, maxAge int, ttl time.Duration) time.Time {
	t := now.Add(lifetime(maxAge, ttl))
	if whole := t.Truncate(time.Second); !whole.Equal(t) {
		return whole.Add(time.Second)
	}
	return t
}

// maxCookieAge is the longest cookie MaxAge, in seconds, that the Store
// honours: 400 days, the cap browsers put on a cookie's Max-Age (RFC 6265bis).
// A longer MaxAge is treated as this one, so an expiry never overflows.
const maxCookieAge = 400 * 24 * 60 * 60

// lifetime returns how long a session with the cookie MaxAge maxAge lives
// after a write: maxAge seconds (at most maxCookieAge) when it is positive,
// otherwise ttl.
func lifetime(maxAge int, ttl time.Duration) time.Duration {
	if maxAge > 0 {
		return time.Duration(min(maxAge, maxCookieAge)) * time.Second
	}
	return ttl
}

// expired reports whether a row that expires at expires is dead at now.
// Expiry is stored in whole seconds, and a row is dead from that second on:
// now >= expires.
func expired(now, expires time.Time) bool {
	return !now.Before(expires)
}

// validateCleanupInterval checks the reaper interval: 0 disables the reaper;
// otherwise it must be at least a second.
func validateCleanupInterval(d time.Duration) error {
	if d != 0 && d < time.Second {
		return fmt.Errorf("%w: cleanup interval %v must be 0 (off) or at least 1s", ErrInvalidOption, d)
	}
	return nil
}

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

// Reaper defaults and limits.
const (
	// DefaultReaperSegments is the number of parallel scan segments of a
	// pass unless WithReaperSegments says otherwise.
	DefaultReaperSegments = 1
	// MaxReaperSegments is the largest number of segments
	// WithReaperSegments accepts; each segment is scanned by its own
	// goroutine.
	MaxReaperSegments = 1000
	// DefaultLeaseDuration is how long a reaper lease lasts without being
	// renewed unless WithReaperLeaseDuration says otherwise. The holder
	// renews it every third of that while its pass runs.
	DefaultLeaseDuration = time.Minute
)

// defaultReaperGrace is the reaper's grace unless WithReaperGrace says
// otherwise; see there why it is 5 minutes.
const defaultReaperGrace = 5 * time.Minute

// reapSettings holds the reaper's tuning options. The zero value is the
// default configuration.
type reapSettings struct {
	segments      int           // 0 means DefaultReaperSegments
	readRate      float64       // read capacity units per second; 0 = no cap
	writeRate     float64       // write capacity units per second; 0 = no cap
	pageSize      int32         // Scan Limit; 0 = DynamoDB's 1 MB pages
	batch         bool          // BatchWriteItem instead of conditional deletes
	noLease       bool          // lease off
	leaseDuration time.Duration // 0 means DefaultLeaseDuration
	grace         time.Duration // when graceSet; otherwise defaultReaperGrace
	graceSet      bool
	hook          func(ReapStats, error)

	// Seams for tests. Each is nil in production.

	// wait is the clock of the rate limiters and of every pause (throttling
	// and unprocessed-item backoff).
	wait waitClock
	// tick, when set, replaces the jittered interval timer of the reaper
	// goroutine: one pass per value received.
	tick <-chan time.Time
	// renewTick, when set, replaces the lease renewal ticker.
	renewTick <-chan time.Time
	// afterScan is called with the keys of the expired items of each Scan
	// page before they are deleted.
	afterScan func(ctx context.Context, keys []string)
}

func (c *reapSettings) segmentCount() int {
	if c.segments == 0 {
		return DefaultReaperSegments
	}
	return c.segments
}

func (c *reapSettings) leaseTime() time.Duration {
	if c.leaseDuration == 0 {
		return DefaultLeaseDuration
	}
	return c.leaseDuration
}

// cutoff returns the expiry before which a pass that starts at now
// deletes rows: now less the grace.
func (c *reapSettings) cutoff(now time.Time) time.Time {
	if !c.graceSet {
		return now.Add(-defaultReaperGrace)
	}
	return now.Add(-c.grace)
}

func (c *reapSettings) clock() waitClock {
	if c.wait == nil {
		return realClock{}
	}
	return c.wait
}

// WithReaperSegments splits each reaper pass into n parallel scan segments
// (DynamoDB's parallel Scan), each scanned and cleaned by its own
// goroutine. More segments finish a pass on a large table sooner and use
// capacity faster; the rate caps of WithReaperRate still hold for the pass
// as a whole. n must be from 1 to MaxReaperSegments (1000). Default
// DefaultReaperSegments (1).
func WithReaperSegments(n int) Option {
	return func(s *settings) error {
		if n < 1 || n > MaxReaperSegments {
			return fmt.Errorf("%w: reaper segments %d must be from 1 to %d", ErrInvalidOption, n, MaxReaperSegments)
		}
		s.reap.segments = n
		return nil
	}
}

// WithReaperRate caps the capacity a reaper pass consumes, in read capacity
// units per second (Scan pages) and write capacity units per second
// (deletes), so that the reaper never starves the request path. The
// reaper asks DynamoDB for the capacity each call consumed
// (ReturnConsumedCapacity) and waits before its next call until the
// average since the start of the pass is back under the cap; it never
// saves up unused capacity for a burst. 0 leaves that side uncapped; each
// rate must be finite and not negative. Default: no cap.
//
// A single call can consume more than a second's worth (a 1 MB Scan page
// costs 128 read units); use WithReaperPageSize to keep pages small
// against a low read cap.
func WithReaperRate(readUnits, writeUnits float64) Option {
	return func(s *settings) error {
		for _, r := range []float64{readUnits, writeUnits} {
			if r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
				return fmt.Errorf("%w: reaper rate %v must be a finite number of units per second, 0 for no cap", ErrInvalidOption, r)
			}
		}
		s.reap.readRate, s.reap.writeRate = readUnits, writeUnits
		return nil
	}
}

// WithReaperPageSize sets the most items one reaper Scan page examines
// (the Scan Limit), expired or not. Smaller pages smooth the reaper's read
// rate at the cost of more calls. n must be from 0 to 2^31-1; 0 means
// DynamoDB's own limit of 1 MB per page. Default 0.
func WithReaperPageSize(n int) Option {
	return func(s *settings) error {
		if n < 0 || n > math.MaxInt32 {
			return fmt.Errorf("%w: reaper page size %d must be from 0 (1 MB pages) to %d", ErrInvalidOption, n, math.MaxInt32)
		}
		s.reap.pageSize = int32(n)
		return nil
	}
}

// WithReaperBatchDelete makes the reaper delete expired rows with
// BatchWriteItem, 25 per call, instead of one conditional DeleteItem per
// row. Rows that DynamoDB returns as unprocessed are sent again with
// exponential backoff and jitter.
//
// Batch deletes carry no condition, so a session that was expired when the
// Scan read it but was refreshed before the delete is deleted anyway, and
// its user is signed out. That cannot happen through this Store (an expired
// session is never served or refreshed), but it can when other code writes
// to the table, and with clocks that disagree by more than the time between
// scan and delete plus the grace (WithReaperGrace). Use it only where that
// race cannot matter. Batch mode needs about 25 times fewer calls and costs
// the same write units. Default false: conditional deletes.
func WithReaperBatchDelete(batch bool) Option {
	return func(s *settings) error { s.reap.batch = batch; return nil }
}

// WithReaperLease turns the fleet lease on or off. With the lease on,
// every Store reaping a table first takes a lease item stored in the table
// itself, and only its holder reaps: a pass does nothing (SkippedByLease)
// while another Store holds the lease or less than a cleanup interval has
// passed since the last completed pass started. The holder renews the
// lease while its pass runs and releases it at the end; if it dies, the
// lease runs out after WithReaperLeaseDuration and another Store takes
// over. The lease applies to the DynamoDB backend; a custom Backend always
// reaps. Default true.
func WithReaperLease(on bool) Option {
	return func(s *settings) error { s.reap.noLease = !on; return nil }
}

// WithReaperLeaseDuration sets how long the reaper lease lasts without
// renewal: how long the fleet waits before another Store takes over from a
// holder that died. The holder renews it every third of d. Stores'
// clocks must agree to well within d. d must be at least 1 second. Default
// DefaultLeaseDuration (1 minute).
func WithReaperLeaseDuration(d time.Duration) Option {
	return func(s *settings) error {
		if d < time.Second {
			return fmt.Errorf("%w: reaper lease duration %v must be at least 1s", ErrInvalidOption, d)
		}
		s.reap.leaseDuration = d
		return nil
	}
}

// WithReaperGrace makes the reaper delete only rows that expired at least
// d before its own clock's now, so that a Store whose clock runs ahead of
// the others' does not delete sessions they still serve. It applies to
// every pass: the reaper goroutine's and Reap's, in conditional and batch
// mode alike (the Scan filter and the delete condition both compare the
// expiry with now less d), and to a custom Backend, whose DeleteExpired
// is given now less d.
//
// A session is never served after it expired, whatever the grace: every
// load and write compares the expiry with the Store's now. The grace only
// delays the deletion of expired rows, by d.
//
// d must not be negative. 0 deletes rows as soon as this Store's clock
// says they expired: use it only when every clock that serves the table
// is this one (a single process, or tests). Default 5 minutes: far more
// than clocks kept by NTP drift apart (milliseconds), enough to cover a
// host whose clock went unsynchronised for a while, and little next to
// the reaper's own interval (5 minutes by default) and to how long
// DynamoDB's TTL takes (days).
func WithReaperGrace(d time.Duration) Option {
	return func(s *settings) error {
		if d < 0 {
			return fmt.Errorf("%w: reaper grace %v must not be negative (0 for none)", ErrInvalidOption, d)
		}
		s.reap.grace, s.reap.graceSet = d, true
		return nil
	}
}

// WithReapHook calls f after every reaper pass, whether run by the
// Store's reaper goroutine or by Reap, with the pass's statistics and its
// error (nil on success), to export them as metrics. f runs on the
// reaping goroutine and should return quickly. Default: none.
func WithReapHook(f func(ReapStats, error)) Option {
	return func(s *settings) error {
		if f == nil {
			return fmt.Errorf("%w: WithReapHook(nil)", ErrInvalidOption)
		}
		s.reap.hook = f
		return nil
	}
}

// Reap runs one reaper pass now, deleting rows that expired more than the
// grace (WithReaperGrace, default 5 minutes) ago, and returns its
// statistics; it is for cron jobs and Lambdas as much as for
// the Store's own reaper goroutine, and honours the reaper options. With
// the lease on (the default), it does nothing and returns stats with
// SkippedByLease set while another Store holds the lease or less than a
// cleanup interval has passed since the last pass started. Passes of one
// Store run one at a time. Close cancels a pass under way; after Close,
// Reap returns ErrClosed.
func (s *Store) Reap(ctx context.Context) (ReapStats, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed || s.reaper == nil {
		return ReapStats{}, ErrClosed
	}
	return s.reaper.reap(ctx)
}

// passRunner is a Backend that runs passes itself, with the reaper
// options and the lease: the DynamoDB backend. Other Backends are reaped
// through DeleteExpired.
type passRunner interface {
	runPass(ctx context.Context, p *passParams) (ReapStats, error)
}

// passParams is what a passRunner needs from the Store for one pass.
type passParams struct {
	cfg      *reapSettings
	now      func() time.Time // the Store's clock: expiry cutoff and lease times
	owner    string           // lease owner ID of this Store
	interval time.Duration    // cleanup interval; 0 when the Store has no goroutine
	log      *slog.Logger
}

// reaper runs passes for one Store: on demand through Reap, and every
// interval, jittered, from its goroutine when the interval is not 0.
type reaper struct {
	store    *Store
	interval time.Duration
	cfg      reapSettings
	owner    string

	ctx    context.Context // cancelled by close; parent of every pass
	cancel context.CancelFunc
	done   chan struct{} // closed when the goroutine ends; nil without one
	once   sync.Once
	sem    chan struct{} // one pass at a time

	mu     sync.Mutex
	closed bool
	active sync.WaitGroup // passes under way
}

// startReaper returns the Store's reaper and, when interval > 0, starts its
// goroutine; the caller stops it with reaper.close.
func startReaper(s *Store, interval time.Duration, cfg reapSettings) *reaper {
	ctx, cancel := context.WithCancel(context.Background())
	r := &reaper{
		store:    s,
		interval: interval,
		cfg:      cfg,
		owner:    newOwnerID(),
		ctx:      ctx,
		cancel:   cancel,
		sem:      make(chan struct{}, 1),
	}
	if interval > 0 {
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
		tick := r.cfg.tick
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
	st, err := r.pass(ctx)
	<-r.sem
	if err != nil {
		err = r.closedOr(err)
	}
	if !st.SkippedByLease && (err == nil || st.Pages > 0) {
		r.store.counters.reapPasses.Add(1)
		r.store.counters.reapDeleted.Add(int64(st.Deleted))
	}
	if r.cfg.hook != nil {
		r.cfg.hook(st, err)
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

func (r *reaper) pass(ctx context.Context) (ReapStats, error) {
	if pr, ok := r.store.backend.(passRunner); ok {
		return pr.runPass(ctx, &passParams{cfg: &r.cfg, now: r.store.now, owner: r.owner, interval: r.interval, log: r.store.log})
	}
	start := time.Now()
	st, err := r.store.backend.DeleteExpired(ctx, r.cfg.cutoff(r.store.now()))
	if st.Duration == 0 {
		st.Duration = time.Since(start)
	}
	return st, err
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
