// Package dynamostore is a gorilla/sessions Store that keeps sessions in
// Amazon DynamoDB, so that every instance of a web app behind a load
// balancer sees the same sessions, and they survive restarts and deploys.
//
// # The Store contract
//
// A *Store is a sessions.Store: Get and New load a session, Save writes it,
// and a session saved with Options.MaxAge < 0 (or passed to Delete) is
// deleted. On top of that, Regenerate gives a session a new ID at sign-in,
// SetOwner and RevokeOwner end every session of a user, and Reap deletes
// expired rows.
//
//   - The cookie carries only a signed (optionally encrypted) random
//     256-bit session ID; the table is keyed by a SHA-256 of that ID, so the
//     table and its backups hold nothing a cookie could be made from.
//   - A load is one GetItem, strongly consistent by default, whichever
//     instance serves the request. Saving a session whose values did not
//     change makes no DynamoDB call within the touch interval (10 seconds
//     by default) and only extends its expiry after it; equal values encode
//     to the same bytes in every process, so that holds whichever instance
//     wrote the row.
//   - An expired session is never served, refreshed or brought back, and a
//     deleted session never comes back: every write is conditional on the
//     row being live.
//   - A session whose load failed (throttling, network, 5xx) is never saved
//     over the user's real one: Save returns ErrLoadFailed.
//   - Errors wrap a sentinel of this package or the AWS SDK's error, for
//     errors.Is and errors.As. One rule tells them apart, and Unavailable
//     encodes it: when it is true, DynamoDB did not answer (answer 503 and
//     let the client retry); otherwise carry on. A cookie that does not
//     verify (ErrInvalidCookie) or a row that cannot be decoded (ErrDecode)
//     comes with a fresh session the request may use.
//   - Every DynamoDB call of a request uses the request's context; give it
//     a deadline to bound how long a request waits for DynamoDB.
//
// A reaper goroutine deletes expired rows every few minutes, one instance of
// a fleet at a time (see ReaperOptions); DynamoDB's own TTL, which
// EnsureTable and WithAutoCreate turn on, deletes them too, within days.
// Close stops the reaper.
//
// Sessions live in a Backend: DynamoDB by default (NewDynamoDBBackend), or
// another given with WithBackend. The Values are encoded by a Serializer:
// encoding/gob by default (GobSerializer), as gorilla's own stores do.
package dynamostore
