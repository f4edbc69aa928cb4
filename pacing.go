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
