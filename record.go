package dynamostore

import "time"

// Record is one stored session as a Backend sees it.
type Record struct {
	// Key is the storage key: a SHA-256 of the session ID, never the ID.
	Key string
	// Data is the serialized session Values.
	Data []byte
	// Expires is when the session stops being served. A Backend stores it
	// at one-second precision.
	Expires time.Time
	// Modified is when the record was last written. A Backend stores it at
	// one-millisecond precision.
	Modified time.Time
	// Version counts the writes of the record's data when optimistic
	// locking is on; 0 means unversioned. See Backend.Update.
	Version int64
	// Owner is the user the session belongs to, "" for none. See
	// Backend.DeleteOwner.
	Owner string
	// ClearOwner, with an empty Owner, makes Backend.Update remove the
	// stored owner. Without it, Update leaves the stored owner as it is
	// when Owner is empty.
	ClearOwner bool
}

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
