package dynamostore

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

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
// known only after it (ConsumedCapacity), so each caller reserves, before
// its call, what the last call cost (at first, the least a call costs),
// and the limiter charges the difference once the cost is known: callers
// waiting together (the segments of a pass) start one after another, and
// after any call the units consumed since the first one never exceed rate
// times the elapsed time by more than what the calls in flight cost beyond
// their reservations. Unused time is not saved for a later burst. A nil
// *limiter does not limit.
type limiter struct {
	rate  float64 // units per second, > 0
	clock waitClock

	mu       sync.Mutex
	free     time.Time // when the next call may start
	estimate float64   // units reserved for the next call
}

func newLimiter(rate, least float64, clock waitClock) *limiter {
	if rate <= 0 {
		return nil
	}
	return &limiter{rate: rate, clock: clock, estimate: least}
}

// wait blocks until the next call may start or ctx is done, and returns the
// units it reserved for that call, which charge then settles.
func (l *limiter) wait(ctx context.Context) (reserved float64, err error) {
	if l == nil {
		return 0, ctx.Err()
	}
	l.mu.Lock()
	now := l.clock.Now()
	start := l.free
	if start.Before(now) {
		start = now
	}
	reserved = l.estimate
	l.free = start.Add(l.span(reserved))
	l.mu.Unlock()
	if d := start.Sub(now); d > 0 {
		return reserved, l.clock.Sleep(ctx, d)
	}
	return reserved, ctx.Err()
}

// charge records that a call for which wait reserved reserved units
// consumed units.
func (l *limiter) charge(reserved, units float64) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if units > 0 {
		l.estimate = units
	}
	if now := l.clock.Now(); l.free.Before(now) {
		l.free = now
	}
	l.free = l.free.Add(l.span(units - reserved))
}

// maxSpan bounds the time one charge moves the limiter by, so that a
// tiny rate waits (about forever) instead of overflowing.
const maxSpan = 100 * 365 * 24 * time.Hour

// span returns how long units take at the limiter's rate.
func (l *limiter) span(units float64) time.Duration {
	secs := units / l.rate
	switch {
	case secs >= maxSpan.Seconds():
		return maxSpan
	case secs <= -maxSpan.Seconds():
		return -maxSpan
	}
	return time.Duration(secs * float64(time.Second))
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
