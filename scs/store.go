package dynamoscs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/internal/tableschema"
)

// KeyPrefix begins the iteration tokens that All returns: KeyPrefix followed
// by a row's storage key. Commit and Delete accept them; Find never does. See
// the package documentation.
const KeyPrefix = "key:"

// storageKeyLen is the length of a storage key: a SHA-256 in unpadded
// URL-safe base64.
const storageKeyLen = 43

// Store is an scs session store on a DynamoDB table in dynamostore's layout.
// It is safe for concurrent use. Create it with New, NewWithCleanupInterval
// or NewWithOptions; StopCleanup stops its reaper goroutine.
type Store struct {
	backend        dynamostore.Backend
	client         *dynamodb.Client
	table          string
	consistentRead bool
	reaper         dynamostore.ReaperOptions
	now            func() time.Time

	cancel   context.CancelFunc // stops the reaper goroutine and its pass
	done     chan struct{}      // closed when the goroutine ends; nil without one
	stopOnce sync.Once
}

var (
	_ scs.Store            = (*Store)(nil)
	_ scs.CtxStore         = (*Store)(nil)
	_ scs.IterableStore    = (*Store)(nil)
	_ scs.IterableCtxStore = (*Store)(nil)
)

// Options configure a Store made by NewWithOptions. The zero value is the
// configuration of New.
type Options struct {
	// EventuallyConsistentReads makes Find and All read eventually
	// consistently, at half the read units, at the risk of missing a
	// write made a moment earlier through another instance. Default
	// false: strongly consistent reads, as dynamostore's Store.
	EventuallyConsistentReads bool

	// Reaper configures the reaper goroutine and every pass, its own and
	// Reap's (see dynamostore.ReaperOptions; the zero value is the
	// default). Reaper.Interval is how often the goroutine runs a pass,
	// jittered to between one and one and a half times it: 0 means every 5
	// minutes, a negative interval no goroutine, and a positive one must
	// be from 1 second to 400 days. Reaper.OnPass, when set, is called
	// after every pass the Store runs, and a pass of the goroutine that
	// fails is logged to Reaper.Logger, or slog.Default() when it is nil.
	// The other fields are checked by the first pass, whose error wraps
	// dynamostore.ErrInvalidOption when one is out of range.
	Reaper dynamostore.ReaperOptions
}

// New returns a Store on the named table, with strongly consistent reads
// and a reaper goroutine that deletes expired rows every 5 minutes (one
// instance of a fleet at a time). The table must exist: create it with
// dynamostore.EnsureTable, which also turns on DynamoDB's TTL. A nil client
// or an invalid table name is an error wrapping dynamostore.ErrInvalidOption.
func New(client *dynamodb.Client, table string) (*Store, error) {
	return NewWithOptions(client, table, Options{})
}

// NewWithCleanupInterval is New with the reaper goroutine running a pass
// every cleanupInterval (jittered, from 1 second to 400 days), or not at all
// when cleanupInterval is 0 or negative, as in scs's own stores: expired rows
// are then left to DynamoDB's TTL and to Reap.
func NewWithCleanupInterval(client *dynamodb.Client, table string, cleanupInterval time.Duration) (*Store, error) {
	if cleanupInterval <= 0 {
		cleanupInterval = -1
	}
	return NewWithOptions(client, table, Options{Reaper: dynamostore.ReaperOptions{Interval: cleanupInterval}})
}

// NewWithOptions returns a Store on the named table configured by opts. A
// nil client, an invalid table name or a reaper interval out of range is an
// error wrapping dynamostore.ErrInvalidOption.
func NewWithOptions(client *dynamodb.Client, table string, opts Options) (*Store, error) {
	const maxInterval = 400 * 24 * time.Hour
	interval := opts.Reaper.Interval
	switch {
	case interval == 0:
		interval = 5 * time.Minute
	case interval > 0 && (interval < time.Second || interval > maxInterval):
		return nil, fmt.Errorf("%w: dynamoscs: reaper interval %v must be from 1s to 400 days (0 or negative for none)",
			dynamostore.ErrInvalidOption, interval)
	}
	b, err := dynamostore.NewDynamoDBBackend(client, table, dynamostore.DynamoDBOptions{EventuallyConsistent: opts.EventuallyConsistentReads})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Store{
		backend:        b,
		client:         client,
		table:          table,
		consistentRead: !opts.EventuallyConsistentReads,
		reaper:         opts.Reaper,
		now:            time.Now,
		cancel:         cancel,
	}
	if interval > 0 {
		s.done = make(chan struct{})
		go s.run(ctx, interval)
	}
	return s, nil
}

// Find implements scs.Store: FindCtx with context.Background().
func (s *Store) Find(token string) ([]byte, bool, error) {
	return s.FindCtx(context.Background(), token)
}

// FindCtx implements scs.CtxStore: it returns the data of the token's live
// row, or found=false with a nil error when there is none or it has
// expired (or cannot be decoded). An iteration token (KeyPrefix) is never
// found, and costs no call.
func (s *Store) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	if token == "" || strings.HasPrefix(token, KeyPrefix) {
		return nil, false, nil
	}
	rec, err := s.backend.Get(ctx, tableschema.StorageKey(token), s.now())
	switch {
	case errors.Is(err, dynamostore.ErrNotFound), errors.Is(err, dynamostore.ErrDecode):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	return rec.Data, true, nil
}

// Commit implements scs.Store: CommitCtx with context.Background().
func (s *Store) Commit(token string, b []byte, expiry time.Time) error {
	return s.CommitCtx(context.Background(), token, b, expiry)
}

// CommitCtx implements scs.CtxStore: it stores b as the data of the token's
// session until expiry (in whole seconds, rounded down), updating its live
// row or, when it has none, creating one. An expiry that has passed
// deletes the session instead. An iteration token only ever updates a live
// row. When the token's row expired (and is still in the table), or an
// iteration token's row is gone, it writes nothing and returns an error
// wrapping dynamostore.ErrSessionGone. The empty token, which Find never
// finds, is refused with an error wrapping dynamostore.ErrInvalidCookie.
func (s *Store) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	if token == "" {
		return fmt.Errorf("dynamoscs: commit of the empty token: %w", dynamostore.ErrInvalidCookie)
	}
	key, byKey, ok := keyOf(token)
	if !ok {
		return fmt.Errorf("dynamoscs: commit of an iteration token that names no row: %w", dynamostore.ErrSessionGone)
	}
	now := s.now()
	expires := time.Unix(expiry.Unix(), 0)
	if !now.Before(expires) {
		if err := s.backend.Delete(ctx, key, now); err != nil && !errors.Is(err, dynamostore.ErrNotFound) {
			return err
		}
		return nil
	}
	rec := dynamostore.Record{Key: key, Data: b, Expires: expires, Modified: now}
	err := s.backend.Update(ctx, rec)
	if !errors.Is(err, dynamostore.ErrNotFound) {
		return err
	}
	if byKey {
		return fmt.Errorf("dynamoscs: commit during iteration: %w", dynamostore.ErrSessionGone)
	}
	err = s.backend.Create(ctx, rec)
	if !errors.Is(err, dynamostore.ErrExists) {
		return err
	}
	// A row appeared since the update: another commit of the token created
	// it (update that one), or an expired row not yet reaped holds the key
	// (leave it dead).
	err = s.backend.Update(ctx, rec)
	if errors.Is(err, dynamostore.ErrNotFound) {
		return fmt.Errorf("dynamoscs: commit: %w", dynamostore.ErrSessionGone)
	}
	return err
}

// Delete implements scs.Store: DeleteCtx with context.Background().
func (s *Store) Delete(token string) error {
	return s.DeleteCtx(context.Background(), token)
}

// DeleteCtx implements scs.CtxStore: it deletes the token's live row, and is
// a no-op returning nil when there is none. An expired row is left to the
// reaper and TTL. The empty token names no row.
func (s *Store) DeleteCtx(ctx context.Context, token string) error {
	key, _, ok := keyOf(token)
	if !ok || token == "" {
		return nil
	}
	err := s.backend.Delete(ctx, key, s.now())
	if errors.Is(err, dynamostore.ErrNotFound) {
		return nil
	}
	return err
}

// All implements scs.IterableStore: AllCtx with context.Background().
func (s *Store) All() (map[string][]byte, error) {
	return s.AllCtx(context.Background())
}

// AllCtx implements scs.IterableCtxStore: it returns the data of every live
// session in the table, keyed by its iteration token (KeyPrefix and the
// storage key), which Commit and Delete accept and Find refuses. It scans
// the whole table, page by page; with no live session it returns an empty
// map.
func (s *Store) AllCtx(ctx context.Context) (map[string][]byte, error) {
	now := s.now()
	p := dynamodb.NewScanPaginator(s.client, &dynamodb.ScanInput{
		TableName:            aws.String(s.table),
		ConsistentRead:       aws.Bool(s.consistentRead),
		ProjectionExpression: aws.String("#k, #v, #e"),
		FilterExpression:     aws.String("#e > :now"),
		ExpressionAttributeNames: map[string]string{
			"#k": tableschema.KeyAttr,
			"#v": tableschema.ValuesAttr,
			"#e": tableschema.ExpiresAttr,
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":now": &types.AttributeValueMemberN{Value: strconv.FormatInt(now.Unix(), 10)},
		},
	})
	all := make(map[string][]byte)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("dynamoscs: scanning sessions of table %s: %w", s.table, err)
		}
		for _, item := range page.Items {
			key, ok := item[tableschema.KeyAttr].(*types.AttributeValueMemberS)
			if !ok || !isStorageKey(key.Value) {
				continue // the reaper's lease, or not a session
			}
			// A session committed with no data has no data attribute:
			// Find finds it with empty data, and so does All.
			data := []byte{}
			if b, ok := item[tableschema.ValuesAttr].(*types.AttributeValueMemberB); ok {
				data = b.Value
			}
			all[KeyPrefix+key.Value] = data
		}
	}
	return all, nil
}

// keyOf returns the storage key a token names for Commit and Delete: the
// one behind KeyPrefix for an iteration token (byKey), the token's own
// otherwise. ok is false for an iteration token that holds no storage key.
func keyOf(token string) (key string, byKey, ok bool) {
	if k, found := strings.CutPrefix(token, KeyPrefix); found {
		return k, true, isStorageKey(k)
	}
	return tableschema.StorageKey(token), false, true
}

// isStorageKey reports whether k has the form of a storage key: 43
// characters of unpadded URL-safe base64.
func isStorageKey(k string) bool {
	if len(k) != storageKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
