package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// expiresAt returns when a session saved at now stops being served: after
// maxAge seconds when the cookie has a MaxAge, otherwise after ttl (so a
// browser-session cookie, MaxAge 0, still has a row that expires). It is
// rounded up to a whole second, the precision of the stored expiry, so a
// session never lives shorter than asked.
func expiresAt(now time.Time, maxAge int, ttl time.Duration) time.Time {
	d := ttl
	if maxAge > 0 {
		d = time.Duration(maxAge) * time.Second
	}
	t := now.Add(d)
	if whole := t.Truncate(time.Second); !whole.Equal(t) {
		return whole.Add(time.Second)
	}
	return t
}

// expired reports whether a row that expires at expires is dead at now.
// Expiry is stored in whole seconds, and a row is dead from that second on:
// now >= expires.
func expired(now, expires time.Time) bool {
	return !now.Before(expires)
}

// validateCleanupInterval checks the reaper interval: 0 disables the reaper;
// otherwise it must be at least a second.
func validateCleanupInterval(d time.Duration) error {
	if d != 0 && d < time.Second {
		return fmt.Errorf("%w: cleanup interval %v must be 0 (off) or at least 1s", ErrInvalidOption, d)
	}
	return nil
}

// ReapStats describes one reaper pass.
type ReapStats struct {
	// Pages is the number of Scan pages read.
	Pages int
	// Scanned is the number of items the Scan examined.
	Scanned int
	// Deleted is the number of expired items removed.
	Deleted int
	// Skipped is the number of items that were expired when scanned but
	// refreshed before their delete, and so kept.
	Skipped int
	// ConsumedCapacity is the read and write capacity the pass consumed,
	// as DynamoDB reported it.
	ConsumedCapacity float64
	// Duration is how long the pass took.
	Duration time.Duration
}

// DeleteExpired implements Backend: a paginated Scan projecting only the key
// and expiry, filtered to rows that expired before now, then one DeleteItem
// per row, conditioned on the row still being expired so that a session
// refreshed in between is kept.
func (b *DynamoDBBackend) DeleteExpired(ctx context.Context, now time.Time) (ReapStats, error) {
	start := time.Now()
	var st ReapStats
	nowAV := epochSeconds(now)
	scan := &b.reapScan
	p := dynamodb.NewScanPaginator(b.client, &dynamodb.ScanInput{
		TableName:                 b.table,
		ProjectionExpression:      scan.projection,
		FilterExpression:          scan.filter,
		ExpressionAttributeNames:  scan.names,
		ExpressionAttributeValues: map[string]types.AttributeValue{scan.ph("now"): nowAV},
		ReturnConsumedCapacity:    types.ReturnConsumedCapacityTotal,
	})
	del := &b.reapDelete
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			st.Duration = time.Since(start)
			return st, fmt.Errorf("dynamostore: reaper scan: %w", err)
		}
		st.Pages++
		st.Scanned += int(page.ScannedCount)
		st.ConsumedCapacity += capacityOf(page.ConsumedCapacity)
		for _, item := range page.Items {
			out, err := b.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
				TableName:                 b.table,
				Key:                       map[string]types.AttributeValue{AttrID: item[AttrID]},
				ConditionExpression:       del.condition,
				ExpressionAttributeNames:  del.names,
				ExpressionAttributeValues: map[string]types.AttributeValue{del.ph("now"): nowAV},
				ReturnConsumedCapacity:    types.ReturnConsumedCapacityTotal,
			})
			switch {
			case isConditionFailed(err):
				st.Skipped++
			case err != nil:
				st.Duration = time.Since(start)
				return st, fmt.Errorf("dynamostore: reaper delete: %w", err)
			default:
				st.Deleted++
				st.ConsumedCapacity += capacityOf(out.ConsumedCapacity)
			}
		}
	}
	st.Duration = time.Since(start)
	return st, nil
}

func capacityOf(c *types.ConsumedCapacity) float64 {
	if c == nil {
		return 0
	}
	return aws.ToFloat64(c.CapacityUnits)
}

// reapSettings holds the reaper's tuning options.
type reapSettings struct{}

// Reap runs one pass of the reaper now, deleting rows that have expired, and
// returns its statistics. It is for cron jobs and Lambdas as much as for the
// Store's own reaper goroutine.
func (s *Store) Reap(ctx context.Context) (ReapStats, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ReapStats{}, ErrClosed
	}
	st, err := s.backend.DeleteExpired(ctx, s.now())
	if err != nil {
		return st, err
	}
	s.log.InfoContext(ctx, "dynamostore: reaper pass", "pages", st.Pages, "scanned", st.Scanned,
		"deleted", st.Deleted, "skipped", st.Skipped, "capacity", st.ConsumedCapacity, "duration", st.Duration)
	return st, nil
}

// reaper runs Backend.DeleteExpired every interval, jittered, until stopped.
type reaper struct {
	store    *Store
	interval time.Duration
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
}

// startReaper starts the reaper goroutine; the caller stops it with
// reaper.close.
func startReaper(s *Store, interval time.Duration, _ reapSettings) *reaper {
	r := &reaper{store: s, interval: interval, stop: make(chan struct{}), done: make(chan struct{})}
	go r.run()
	return r
}

// jitter returns d spread uniformly over [d/2, 3d/2), so a fleet started
// together does not scan together.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d)
}

func (r *reaper) run() {
	defer close(r.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-r.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	t := time.NewTimer(jitter(r.interval))
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		if _, err := r.store.Reap(ctx); err != nil && !errors.Is(err, context.Canceled) {
			r.store.log.Error("dynamostore: reaper pass failed", "error", err)
		}
		t.Reset(jitter(r.interval))
	}
}

// close stops the reaper, cancelling a pass under way, and waits for it. It
// is safe to call more than once.
func (r *reaper) close() {
	r.once.Do(func() { close(r.stop) })
	<-r.done
}
