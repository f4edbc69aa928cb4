package dynamostore

import (
	"context"
	"time"
)

// Backend is the storage the Store talks to, one method per thing the
// Store needs done. The default keeps sessions in DynamoDB (see
// NewDynamoDBBackend); WithBackend plugs in another. Implementations must be
// safe for concurrent use, and every method must honour its context.
//
// A record is live from its write until its Expires; the Store never
// serves, refreshes or revives a record that is not.
type Backend interface {
	// Get returns the live record with key, or an error wrapping
	// ErrNotFound when there is none or it expired at or before now.
	Get(ctx context.Context, key string, now time.Time) (Record, error)

	// Create writes rec as a new record, or returns an error wrapping
	// ErrExists when a record (live or not) has its key. A record stored
	// exactly as rec (the same call, retried after its answer was lost)
	// may count as written: the Store creates every record under a fresh
	// random key.
	Create(ctx context.Context, rec Record) error

	// Update replaces the Data, Expires and Modified of the live record
	// (one that expires after rec.Modified) with rec.Key, sets its Owner
	// when rec.Owner is not empty (removes it when rec.ClearOwner is set),
	// and leaves anything else stored as it is. When there is no live
	// record it returns an error wrapping ErrNotFound. When rec.Version is
	// positive it also requires the stored version to be rec.Version-1 (or
	// absent), returning an error wrapping ErrConflict otherwise, and
	// stores rec.Version as the new version.
	Update(ctx context.Context, rec Record) error

	// Touch sets only the expiry and last-written time of the live record
	// (one that expires after modified) with key, never its data, and
	// never creates one: when there is none it returns an error wrapping
	// ErrNotFound.
	Touch(ctx context.Context, key string, expires, modified time.Time) error

	// Delete removes the live record with key. When there is none (no
	// record, or one that expired at or before now) it returns an error
	// wrapping ErrNotFound; an expired record may be left for expiry to
	// remove. The check and the removal are one atomic step, so of several
	// concurrent Deletes of a record exactly one succeeds.
	Delete(ctx context.Context, key string, now time.Time) error

	// DeleteOwner deletes every record whose Owner is owner and returns
	// how many it deleted; Store.RevokeOwner calls it. A Backend that
	// cannot find records by owner returns an error wrapping
	// ErrUnsupported.
	DeleteOwner(ctx context.Context, owner string) (int, error)

	// Reap runs one reaper pass with opts: it deletes records that expired
	// before the current time less opts' grace (ReaperOptions.Grace: 0
	// means 5 minutes, a negative grace none) and reports what it did. The
	// Store's reaper goroutine and Store.Reap call it, one pass at a time,
	// with options NewStore validated; so can a job that has no Store,
	// which then gets an error wrapping ErrInvalidOption for options out of
	// range. A Backend may ignore the options that do not apply to it (the
	// lease, segments, rates).
	Reap(ctx context.Context, opts ReaperOptions) (ReapStats, error)
}
