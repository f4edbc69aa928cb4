package dynamostore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynamostore/dynamostore/internal/tableschema"
)

// leaseKey is the attrID of the reaper lease item, kept in the session
// table itself so that coordinating a fleet of reapers needs no other
// infrastructure (see tableschema.LeaseKey).
//
// The lease item has no attrExpires attribute: DynamoDB's TTL never deletes
// it, the reaper's Scan filter never matches it, and the Store never reads
// it. Its attributes are lease_owner (String, the holder's ID),
// lease_until (Number, epoch milliseconds; 0 when released) and next_pass
// (Number, epoch milliseconds: no pass starts before it).
const leaseKey = tableschema.LeaseKey

// Attribute names of the lease item.
const (
	attrLeaseOwner = "lease_owner"
	attrLeaseUntil = "lease_until"
	attrNextPass   = "next_pass"
)

// releaseTimeout bounds releasing the lease after a pass, which runs even
// when the pass's context was cancelled (by Close, say), so that the fleet
// need not wait for the lease to run out.
const releaseTimeout = 5 * time.Second

// newOwnerID returns a lease owner ID unique to one backend: the host name and
// process ID, for operators reading the lease item, and random bytes.
func newOwnerID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	return host + "/" + strconv.Itoa(os.Getpid()) + "/" + rand.Text()
}

// lease is one pass's hold on the reaper lease of a table.
type lease struct {
	b      *dynamoBackend
	owner  string
	dur    time.Duration
	now    func() time.Time
	log    *slog.Logger
	key    map[string]types.AttributeValue
	owned  *types.AttributeValueMemberS
	expr   struct{ acquire, renew, release, finish compiledExpr }
	mu     sync.Mutex
	expiry time.Time // when the lease runs out unless renewed
}

// newLease compiles the lease expressions. Passes are rare, so they are
// built per pass rather than kept on the backend.
func newLease(b *dynamoBackend, o *ReaperOptions) (*lease, error) {
	l := &lease{
		b:     b,
		owner: b.owner,
		dur:   o.leaseTime(),
		now:   o.now,
		log:   o.logger(),
		key:   keyOf(b.prefix + leaseKey),
		owned: &types.AttributeValueMemberS{Value: b.owner},
	}
	owner, until, next := expression.Name(attrLeaseOwner), expression.Name(attrLeaseUntil), expression.Name(attrNextPass)
	mine := owner.Equal(param("owner"))
	// Each param appears once per expression: a compiledExpr maps a param
	// name to a single placeholder.
	free := expression.AttributeNotExists(until).Or(until.LessThan(param("now"))).Or(owner.Equal(param("owner2")))
	due := expression.AttributeNotExists(next).Or(next.LessThanEqual(param("now2")))
	for _, c := range []struct {
		dst *compiledExpr
		b   expression.Builder
	}{
		{&l.expr.acquire, expression.NewBuilder().WithCondition(free.And(due)).
			WithUpdate(expression.Set(owner, param("owner")).Set(until, param("until")))},
		{&l.expr.renew, expression.NewBuilder().WithCondition(mine).
			WithUpdate(expression.Set(until, param("until")))},
		{&l.expr.release, expression.NewBuilder().WithCondition(mine).
			WithUpdate(expression.Set(until, param("until")))},
		{&l.expr.finish, expression.NewBuilder().WithCondition(mine).
			WithUpdate(expression.Set(until, param("until")).Set(next, param("next")))},
	} {
		var err error
		if *c.dst, err = compile(c.b); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// update runs one UpdateItem on the lease item with e and the given param
// values.
func (l *lease) update(ctx context.Context, e *compiledExpr, vals map[string]types.AttributeValue) error {
	av := make(map[string]types.AttributeValue, len(vals))
	for name, v := range vals {
		av[e.ph(name)] = v
	}
	_, err := l.b.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 l.b.table,
		Key:                       l.key,
		ConditionExpression:       e.condition,
		UpdateExpression:          e.update,
		ExpressionAttributeNames:  e.names,
		ExpressionAttributeValues: av,
	})
	return err
}

// acquire takes the lease when it is free (never taken, released, run out,
// or already this Store's) and a pass is due. It reports false when another
// Store holds it or the last pass started less than an interval ago.
func (l *lease) acquire(ctx context.Context) (bool, error) {
	now := l.now()
	expiry := now.Add(l.dur)
	err := l.update(ctx, &l.expr.acquire, map[string]types.AttributeValue{
		"now":    epochMillis(now),
		"now2":   epochMillis(now),
		"owner":  l.owned,
		"owner2": l.owned,
		"until":  epochMillis(expiry),
	})
	if isConditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("dynamostore: taking the reaper lease: %w", err)
	}
	l.setExpiry(expiry)
	return true, nil
}

// renew extends the lease by its duration from now. It returns
// ErrLeaseLost when another Store holds it.
func (l *lease) renew(ctx context.Context) error {
	expiry := l.now().Add(l.dur)
	err := l.update(ctx, &l.expr.renew, map[string]types.AttributeValue{"owner": l.owned, "until": epochMillis(expiry)})
	if isConditionFailed(err) {
		return fmt.Errorf("%w: another reaper holds it", ErrLeaseLost)
	}
	if err != nil {
		return fmt.Errorf("dynamostore: renewing the reaper lease: %w", err)
	}
	l.setExpiry(expiry)
	return nil
}

// release gives the lease up so that the next Store need not wait for it
// to run out. When next is not zero (the pass completed), no pass starts
// before next. It runs even when ctx is cancelled, for at most
// releaseTimeout. A lease that is no longer this Store's is left alone.
func (l *lease) release(ctx context.Context, next time.Time) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	e := &l.expr.release
	vals := map[string]types.AttributeValue{"owner": l.owned, "until": epochMillis(time.UnixMilli(0))}
	if !next.IsZero() {
		e = &l.expr.finish
		vals["next"] = epochMillis(next)
	}
	err := l.update(ctx, e, vals)
	if err != nil && !isConditionFailed(err) {
		return fmt.Errorf("dynamostore: releasing the reaper lease: %w", err)
	}
	return nil
}

func (l *lease) setExpiry(t time.Time) {
	l.mu.Lock()
	l.expiry = t
	l.mu.Unlock()
}

// remaining returns how long the lease has before it runs out.
func (l *lease) remaining() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.expiry.Sub(l.now())
}

func (l *lease) expired() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.now().Before(l.expiry)
}

// keep renews the lease every third of its duration (or on every value of
// tick, when not nil) until stop is called or ctx is done. When the lease
// is lost, or cannot be renewed before it runs out (a renewal waits for an
// answer no longer than that), it cancels the pass through lost with a
// cause wrapping ErrLeaseLost.
func (l *lease) keep(ctx context.Context, lost context.CancelCauseFunc, tick <-chan time.Time) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	var ticker *time.Ticker
	if tick == nil {
		ticker = time.NewTicker(l.dur / 3)
		tick = ticker.C
	}
	go func() {
		defer close(done)
		if ticker != nil {
			defer ticker.Stop()
		}
		for {
			select {
			case <-quit:
				return
			case <-ctx.Done():
				return
			case <-tick:
			}
			// A renewal that gets no answer is given up when the lease
			// runs out: the pass must not go on past it.
			rctx, cancel := context.WithTimeout(ctx, l.remaining())
			err := l.renew(rctx)
			ranOut := rctx.Err() != nil && ctx.Err() == nil
			cancel()
			switch {
			case err == nil:
			case errors.Is(err, ErrLeaseLost):
				lost(err)
				return
			case ctx.Err() != nil:
				return
			case ranOut || l.expired():
				lost(fmt.Errorf("%w: it ran out before it could be renewed: %w", ErrLeaseLost, err))
				return
			default:
				l.log.WarnContext(ctx, "dynamostore: renewing the reaper lease failed; retrying", "error", err)
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}
