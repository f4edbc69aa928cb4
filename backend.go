package dynamostore

import (
	"context"
	"time"
)

// Record is one stored session as a Backend sees it.
type Record struct {
	// Key is the storage key: StorageKey of the session ID, never the ID.
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
	// locking is on; 0 means unversioned. See PutExisting.
	Version int64
	// Owner is the user the session belongs to, "" for none. See
	// OwnerBackend.
	Owner string
	// ClearOwner, with PutExisting and an empty Owner, removes the stored
	// owner. Without it, PutExisting leaves the stored owner as it is when
	// Owner is empty.
	ClearOwner bool
}

// PutMode says under which condition Backend.Put writes a record.
type PutMode int

const (
	// PutNew writes only when no record has the key; otherwise Put returns
	// ErrExists.
	PutNew PutMode = iota
	// PutExisting writes only when a live record (one that expires after
	// the new record's Modified time) has the key; otherwise Put returns
	// ErrNotFound. It replaces Data, Expires and Modified, sets Owner when
	// it is not empty (removes it with ClearOwner), and leaves any other
	// attribute as it is. When
	// rec.Version > 0 it also requires the stored version to be
	// rec.Version-1 (or absent), and returns ErrConflict otherwise.
	PutExisting
)

// Backend is the storage the Store talks to. The default is DynamoDB (see
// NewDynamoDBBackend); WithBackend plugs in another. Implementations must be
// safe for concurrent use, and every method must honour its context.
type Backend interface {
	// Get returns the record with key, or an error wrapping ErrNotFound when
	// there is none or it expired at or before now.
	Get(ctx context.Context, key string, now time.Time) (Record, error)
	// Put writes rec under the condition mode sets.
	Put(ctx context.Context, rec Record, mode PutMode) error
	// SetExpires updates only the expiry and last-written time of a live
	// record, never its data, and never creates one: when no record with
	// key expires after modified, it returns ErrNotFound.
	SetExpires(ctx context.Context, key string, expires, modified time.Time) error
	// Delete removes the live record with key. When there is none (no
	// record, or one that expired at or before now) it returns an error
	// wrapping ErrNotFound; an expired record may be left for expiry to
	// remove. The check and the removal are one atomic step, so of several
	// concurrent Deletes of a record exactly one succeeds.
	Delete(ctx context.Context, key string, now time.Time) error
	// DeleteExpired removes records that expired before now and reports
	// what it did. The Store's reaper passes its clock's time less the
	// reaper grace (WithReaperGrace), so that clock skew between the
	// Store's instances is already allowed for.
	DeleteExpired(ctx context.Context, now time.Time) (ReapStats, error)
}

// OwnerBackend is implemented by Backends that can find every session of an
// owner, which Store.RevokeOwner needs. DynamoDBBackend implements it with
// a global secondary index (see TableOptions.OwnerIndex).
type OwnerBackend interface {
	// DeleteOwner deletes every record whose Owner is owner and returns how
	// many it deleted.
	DeleteOwner(ctx context.Context, owner string) (int, error)
}
