// Package dynamoscs is a session store for github.com/alexedwards/scs/v2
// that keeps sessions in DynamoDB, in the table layout of
// github.com/dynamostore/dynamostore, through that package's Backend
// (dynamostore.NewDynamoDBBackend).
//
// It lives in its own module, github.com/dynamostore/dynamostore/scs, so
// that the core module never depends on scs:
//
//	import dynamoscs "github.com/dynamostore/dynamostore/scs"
//
//	// Once, at deploy time or start-up: the table, with DynamoDB's TTL on.
//	err := dynamostore.EnsureTable(ctx, client, "sessions", dynamostore.TableOptions{})
//	if err != nil { ... }
//	store, err := dynamoscs.New(client, "sessions")
//	if err != nil { ... }
//	defer store.StopCleanup()
//	sessionManager := scs.New()
//	sessionManager.Store = store
//	http.ListenAndServe(":4000", sessionManager.LoadAndSave(mux))
//
// # The store contract
//
// *Store implements scs.Store, scs.CtxStore, scs.IterableStore and
// scs.IterableCtxStore. The methods without a context call the Ctx ones with
// context.Background(); the SessionManager calls the Ctx ones with the
// request's context.
//
//   - The table is keyed by a SHA-256 of the session token (the storage key),
//     never the token itself, so the table and its backups hold nothing a
//     cookie could be made from. A row holds the data scs encoded and its
//     expiry, in the attribute DynamoDB's TTL and the reaper use.
//   - Find returns the data of a live row, and found=false, with a nil error,
//     when there is none or it has expired; an error means DynamoDB could not
//     answer. It makes one GetItem.
//   - Commit is scs's upsert: it updates the live row of the token (one
//     conditional UpdateItem), or creates one when the token has no row (a
//     conditional PutItem more). The expiry is stored in whole seconds, rounded
//     down, so a session is never served after the expiry scs gave. An expiry
//     that has passed deletes the session. Commit never brings back an
//     expired row that is still in the table (expired during the request, and
//     not yet reaped): it returns an error wrapping dynamostore.ErrSessionGone
//     and writes nothing. scs's LoadAndSave hands that error to the
//     SessionManager's ErrorFunc, which may treat it as "signed out" rather
//     than as a failure.
//   - Delete removes the live row of the token; it is a no-op, returning nil,
//     when there is none.
//   - All returns the data of every live row, keyed by its iteration token
//     (see below).
//
// Every write is conditional on the state of the row, so an expired session is
// never refreshed. scs's Store contract is an upsert, though, and the table
// keeps no trace of a deleted row, so a Commit of a token whose row was
// deleted (a request that loaded the session before a concurrent request
// signed it out, and that changes it afterwards) writes the session again, as
// it would with any scs store. Call RenewToken at every change of privilege,
// as scs recommends, so that such a late write lands under a token nobody
// uses anymore.
//
// # Iteration tokens
//
// The table holds only storage keys, so All cannot return the tokens
// themselves. It returns each live session under its iteration token: the
// storage key behind KeyPrefix ("key:"), a form no scs token takes (scs tokens
// are 43 characters of unpadded URL-safe base64, which has no ':'). Commit and
// Delete accept an iteration token as naming that row, so that
// SessionManager.Iterate works: a session it changes and commits keeps its
// row, token and cookie; one it destroys is deleted. Commit of an iteration
// token only ever updates a live row: when the session was deleted or expired
// after All (a sign-out during the iteration), it returns an error wrapping
// dynamostore.ErrSessionGone and writes nothing, and an Iterate callback may
// skip it with errors.Is.
//
// Find never accepts an iteration token: the tokens Find sees come from
// clients' cookies, and accepting one would let anyone who read the table's
// keys (a backup, an export, read access to the table) load and use every
// session. Find of an iteration token returns found=false without calling
// DynamoDB, so SessionManager.Load and MergeSession treat it as an unknown
// token.
//
// Leave SessionManager.HashTokenInStore off: the store hashes tokens itself,
// and scs hashes the tokens All returns too, so with it on Iterate cannot
// reach the sessions it is given (scs's own stores have the same problem).
//
// All scans the whole table (one paged Scan, strongly consistent unless
// Options.EventuallyConsistentReads), so give scs sessions a table of their
// own: a table shared with a dynamostore.Store would make All return that
// Store's sessions too, which scs cannot decode.
//
// # Expired rows
//
// Expired rows are never served, and deleted in two ways, as with the root
// package's Store: DynamoDB's TTL on the expiry attribute (which
// dynamostore.EnsureTable turns on) within days, and a reaper goroutine that
// runs the backend's Reap every few minutes (every 5 by default), one instance
// of a fleet at a time thanks to the backend's lease (see
// dynamostore.ReaperOptions). As with scs's own stores, New starts the
// goroutine, NewWithCleanupInterval sets its interval (0 for none) and
// StopCleanup stops it; Reap runs one pass on demand, for a cron job say. The
// rows are in the root package's layout, so its reaper, a job calling a
// dynamostore Backend's Reap, or `dynamostore reap` on the table delete them
// as well.
package dynamoscs
