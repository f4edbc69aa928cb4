package dynamostore

import (
	"errors"
	"sync/atomic"
)

// Stats is a snapshot of a Store's counters since it was created. Export it
// as metrics (expvar, Prometheus) by polling Store.Stats.
type Stats struct {
	// Loads counts sessions loaded from a row; Misses counts cookies whose
	// row was missing or expired.
	Loads, Misses int64
	// Creates counts new sessions written; Updates, saves that rewrote a
	// session's values; Touches, saves that only extended the expiry;
	// SkippedWrites, saves that made no call because the session was
	// unchanged within touchAfter.
	Creates, Updates, Touches, SkippedWrites int64
	// Deletes counts sessions deleted (MaxAge < 0, Delete, Regenerate).
	Deletes int64
	// Conflicts counts saves and regenerations refused because the
	// session was deleted or expired (ErrSessionGone) or, with optimistic
	// locking, changed (ErrConflict) since it was loaded.
	Conflicts int64
	// InvalidCookies, DecodeErrors, EncodeErrors and TooLarge count those
	// errors; BackendErrors counts failed calls to DynamoDB or the Backend.
	InvalidCookies, DecodeErrors, EncodeErrors, TooLarge, BackendErrors int64
	// Throttled counts operations that failed because DynamoDB throttled
	// them after the SDK's retries (they count in BackendErrors too).
	Throttled int64
	// ReapPasses counts reaper passes that ran, and ReapDeleted the rows
	// they deleted.
	ReapPasses, ReapDeleted int64
}

// counters are the live counterparts of Stats.
type counters struct {
	loads, misses                            atomic.Int64
	creates, updates, touches, skippedWrites atomic.Int64
	deletes, conflicts                       atomic.Int64
	invalidCookies, decodeErrors, encodeErrs atomic.Int64
	tooLarge, backendErrors, throttled       atomic.Int64
	reapPasses, reapDeleted                  atomic.Int64
}

// Stats returns a snapshot of the Store's counters.
func (s *Store) Stats() Stats {
	c := &s.counters
	return Stats{
		Loads: c.loads.Load(), Misses: c.misses.Load(),
		Creates: c.creates.Load(), Updates: c.updates.Load(), Touches: c.touches.Load(), SkippedWrites: c.skippedWrites.Load(),
		Deletes: c.deletes.Load(), Conflicts: c.conflicts.Load(),
		InvalidCookies: c.invalidCookies.Load(), DecodeErrors: c.decodeErrors.Load(), EncodeErrors: c.encodeErrs.Load(),
		TooLarge: c.tooLarge.Load(), BackendErrors: c.backendErrors.Load(), Throttled: c.throttled.Load(),
		ReapPasses: c.reapPasses.Load(), ReapDeleted: c.reapDeleted.Load(),
	}
}

// backendFailure reports whether err is a failure of DynamoDB or the
// Backend rather than one of the Store's own refusals.
func backendFailure(err error) bool {
	if err == nil {
		return false
	}
	for _, own := range []error{ErrInvalidCookie, ErrDecode, ErrEncode, ErrTooLarge, ErrSessionGone, ErrConflict, ErrLoadFailed, ErrInvalidOption} {
		if errors.Is(err, own) {
			return false
		}
	}
	return true
}

// countErr counts err by kind and returns it unchanged.
func (c *counters) countErr(err error) error {
	if err != nil && isThrottle(err) {
		c.throttled.Add(1)
	}
	switch {
	case err == nil:
	case errors.Is(err, ErrInvalidCookie):
		c.invalidCookies.Add(1)
	case errors.Is(err, ErrDecode):
		c.decodeErrors.Add(1)
	case errors.Is(err, ErrEncode):
		c.encodeErrs.Add(1)
	case errors.Is(err, ErrTooLarge):
		c.tooLarge.Add(1)
	case errors.Is(err, ErrSessionGone), errors.Is(err, ErrConflict):
		c.conflicts.Add(1)
	case errors.Is(err, ErrLoadFailed):
	default:
		c.backendErrors.Add(1)
	}
	return err
}
