package dynamostore

import "errors"

// Sentinel errors. Every error the Store returns wraps one of these or an
// error from the AWS SDK, so callers can match them with errors.Is.
var (
	// ErrInvalidOption is returned at construction only: by NewStore when
	// an option is missing or out of range, by NewDynamoDBBackend for a nil
	// client or an invalid table name, by NewCompressedSerializer for an
	// invalid level, by a Backend's Reap for invalid ReaperOptions, and by
	// EnsureTable (so by NewStore with WithAutoCreate) when an existing
	// table cannot serve the store: a wrong key schema, owner index or TTL
	// attribute.
	ErrInvalidOption = errors.New("dynamostore: invalid option")

	// ErrInvalidCookie is returned by Get and New when the session cookie is
	// tampered with, signed with an unknown key, oversized or malformed
	// (then no DynamoDB call is made), or signed longer ago than its
	// session's lifetime (known from its row). The session returned with it
	// is a fresh one.
	ErrInvalidCookie = errors.New("dynamostore: invalid session cookie")

	// ErrNotFound is returned by a Backend when no live record has the key.
	// The Store turns it into a fresh session; users see it only when they
	// call a Backend themselves.
	ErrNotFound = errors.New("dynamostore: session not found")

	// ErrExists is returned by a Backend when a record to be created
	// already exists.
	ErrExists = errors.New("dynamostore: session already exists")

	// ErrSessionGone is returned by Save and Regenerate when the session
	// was deleted or expired after it was loaded (a logout in a concurrent
	// request, for instance). Nothing is left written: a deleted session
	// never comes back.
	ErrSessionGone = errors.New("dynamostore: session was deleted or expired since it was loaded")

	// ErrLoadFailed is returned by Save for a session whose load failed
	// (throttling, network, 5xx): saving it would replace the user's real
	// session, so nothing is written and no cookie is set.
	ErrLoadFailed = errors.New("dynamostore: session was not loaded")

	// ErrTooLarge is returned by Save when the encoded session is larger
	// than DynamoDB's 400 KB item limit. Nothing is written.
	ErrTooLarge = errors.New("dynamostore: session too large")

	// ErrEncode is returned by Save when the session's Values cannot be
	// serialized (the message names the offending key), or its cookie or
	// owner cannot be stored: a session name that cannot name a cookie, a
	// codec that refuses to sign, an owner over 2048 bytes. Nothing is
	// written.
	ErrEncode = errors.New("dynamostore: cannot encode session values")

	// ErrDecode is returned by Get and New when a stored session cannot be
	// deserialized. The session returned with it is a fresh one.
	ErrDecode = errors.New("dynamostore: cannot decode stored session")

	// ErrConflict is returned by Save (and Regenerate), with optimistic
	// locking on, when another request changed the session since it was
	// loaded. Nothing is written; load the session again and reapply the
	// change.
	ErrConflict = errors.New("dynamostore: session changed since it was loaded")

	// ErrUnsupported is returned by a Backend that cannot do what it was
	// asked, such as DeleteOwner (so Store.RevokeOwner) of one that cannot
	// find records by owner.
	ErrUnsupported = errors.New("dynamostore: not supported by this backend")

	// ErrClosed is returned by Reap after Close.
	ErrClosed = errors.New("dynamostore: store closed")

	// ErrLeaseLost is returned by Reap when a pass stopped because it lost
	// the reaper lease: another instance took it over, or it could not be
	// renewed before it ran out. The rows deleted so far stay deleted; the
	// new holder deletes the rest.
	ErrLeaseLost = errors.New("dynamostore: reaper lease lost")
)

// Unavailable reports whether err, returned by Get, New, Save, Delete or
// Regenerate, means the session store could not be reached or did not
// answer in time (DynamoDB throttling after the SDK's retries, a network
// error or timeout, a 5xx, the request's context ending): answer 503
// Service Unavailable and let the client retry, for the session was not
// loaded or not saved. It is false for nil and for every error that is not
// about availability: ErrInvalidCookie and ErrDecode come with a fresh
// session to carry on with, ErrSessionGone means the session ended
// meanwhile (treat the user as signed out), ErrConflict a concurrent change
// (load again and reapply), and ErrEncode and ErrTooLarge are about the
// application's values.
func Unavailable(err error) bool {
	if errors.Is(err, ErrLoadFailed) {
		return true
	}
	for _, other := range []error{ErrUnsupported, ErrClosed, ErrExists, ErrNotFound} {
		if errors.Is(err, other) {
			return false
		}
	}
	return backendFailure(err)
}
