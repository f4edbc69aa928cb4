package dynamostore

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"time"
)

// ReaperOptions configure the reaper, which deletes expired rows so that
// they stop costing storage before DynamoDB's TTL (which takes up to days)
// removes them. They apply to the Store's reaper goroutine, to Store.Reap,
// and to a Backend's Reap called directly (a cron job, a Lambda, the
// command line). The zero value is the default configuration; each field
// says its default.
type ReaperOptions struct {
	// Interval is how often the Store's reaper goroutine runs a pass,
	// jittered to between one and one and a half times it so that a fleet
	// started together does not scan together. With the lease on, a pass
	// that completes also makes Interval the least time before the next
	// pass anywhere in the fleet. From 1 second to 400 days. Negative: no
	// goroutine (rely on DynamoDB's TTL, or call Reap yourself), and a
	// pass that sets no least time before the next one; it still waits for
	// a least time another instance's pass set. Default (0): 5 minutes.
	Interval time.Duration

	// Grace makes a pass delete only rows that expired at least Grace
	// before its own clock's now, so that an instance whose clock runs
	// ahead of the others' does not delete sessions they still serve. A
	// session is never served after it expired, whatever the grace: the
	// grace only delays the deletion of expired rows. Negative: none, for
	// a single process or tests. Default (0): 5 minutes, far more than
	// clocks kept by NTP drift apart and little next to DynamoDB's TTL.
	// A sign-out (and Regenerate) deletes a row that expired within the
	// grace too, which an instance whose clock runs behind still serves.
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
	// instance holds it, or less than the Interval of the last completed
	// pass (its own, if positive) has passed since that pass started. The holder renews the lease while its pass
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

	// Logger receives a pass's warnings, such as a lease renewal that
	// failed and is being retried. Default: the Store's logger (see
	// WithLogger) for the passes a Store runs; none for a Backend's Reap
	// called directly.
	Logger *slog.Logger

	seams *reapSeams // for tests; nil in production
}

// Reaper defaults and limits.
const (
	defaultCleanupInterval = 5 * time.Minute
	defaultReaperGrace     = 5 * time.Minute
	defaultReaperSegments  = 1
	maxReaperSegments      = 1000
	defaultLeaseDuration   = time.Minute
	maxReaperInterval      = 400 * 24 * time.Hour
)

// reapSeams are the reaper's seams for tests.
type reapSeams struct {
	// wait is the clock of the rate limiters and of every pause (throttling
	// and unprocessed-item backoff).
	wait waitClock
	// now is the clock of the expiry cutoff and of lease times; the Store
	// sets it to its own.
	now func() time.Time
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
	case o.Interval > 0 && (o.Interval < time.Second || o.Interval > maxReaperInterval):
		return fmt.Errorf("%w: reaper interval %v must be from 1s to 400 days (negative for no reaper goroutine)", ErrInvalidOption, o.Interval)
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
	return now.Add(-o.grace())
}

// grace returns the grace in effect: Grace, its default for 0, none for a
// negative one.
func (o *ReaperOptions) grace() time.Duration {
	switch {
	case o.Grace < 0:
		return 0
	case o.Grace == 0:
		return defaultReaperGrace
	}
	return o.Grace
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
	if o.Logger != nil {
		return o.Logger
	}
	return slog.New(slog.DiscardHandler)
}
