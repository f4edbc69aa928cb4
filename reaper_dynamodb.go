package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"
)

// The reaper's own pauses, on top of the SDK's retries.
const (
	// throttleAttempts is how many times the reaper sends a call that
	// DynamoDB keeps throttling (each after the SDK's own retries) before
	// the pass fails.
	throttleAttempts = 6
	throttleBase     = time.Second
	throttleMax      = 20 * time.Second

	// unprocessedAttempts is how many times a BatchWriteItem is sent while
	// DynamoDB returns some of its deletes unprocessed.
	unprocessedAttempts = 10
	unprocessedBase     = 100 * time.Millisecond
	unprocessedMax      = 10 * time.Second

	// batchSize is BatchWriteItem's limit of requests per call.
	batchSize = 25

	// The least a call costs, charged to the rate limiter when DynamoDB
	// reports no capacity (a failed conditional delete, for instance).
	minReadUnits  = 0.5
	minWriteUnits = 1
)

// Reap implements Backend. With the lease on (the default), it takes the
// lease (or reports SkippedByLease), keeps it renewed during the sweep and
// releases it afterwards. The sweep is a Scan projecting only the key and
// expiry, filtered to rows that expired before now less the grace, then a
// conditional DeleteItem per row (or BatchWriteItem, with BatchDelete), so
// that a session refreshed in between is kept. Passes of one backend run
// one at a time.
func (b *dynamoBackend) Reap(ctx context.Context, opts ReaperOptions) (st ReapStats, err error) {
	if err := opts.validate(); err != nil {
		return ReapStats{}, err
	}
	select {
	case b.reaping <- struct{}{}:
		defer func() { <-b.reaping }()
	case <-ctx.Done():
		return ReapStats{}, ctx.Err()
	}
	start := time.Now()
	defer func() { st.Duration = time.Since(start) }()
	if opts.NoLease {
		return b.sweep(ctx, opts.cutoff(opts.now()), &opts)
	}
	l, err := newLease(b, &opts)
	if err != nil {
		return st, err
	}
	ok, err := l.acquire(ctx)
	if err != nil || !ok {
		return ReapStats{SkippedByLease: err == nil}, err
	}
	passStart := opts.now()
	passCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := l.keep(passCtx, cancel, opts.seam().renewTick)
	st, err = b.sweep(passCtx, opts.cutoff(passStart), &opts)
	stop()
	if cause := context.Cause(passCtx); err != nil && errors.Is(cause, ErrLeaseLost) {
		err = fmt.Errorf("dynamostore: reaper pass stopped: %w", cause)
	}
	var next time.Time
	if interval := opts.interval(); err == nil && interval > 0 {
		next = passStart.Add(interval)
	}
	if rerr := l.release(ctx, next); rerr != nil && err == nil {
		err = rerr
	}
	return st, err
}

// sweeper is the state one sweep shares between its segments.
type sweeper struct {
	b       *dynamoBackend
	cfg     *ReaperOptions
	clock   waitClock
	reads   *limiter
	writes  *limiter
	scanNow map[string]types.AttributeValue // filter values; read-only
	delNow  map[string]types.AttributeValue // delete condition values; read-only
}

// sweep scans the whole table, in parallel segments when configured, and
// deletes every row that expired before cutoff (now less the grace).
func (b *dynamoBackend) sweep(ctx context.Context, cutoff time.Time, cfg *ReaperOptions) (ReapStats, error) {
	clock := cfg.clock()
	cutoffAV := epochSeconds(cutoff)
	w := &sweeper{
		b:       b,
		cfg:     cfg,
		clock:   clock,
		reads:   newLimiter(cfg.ReadUnits, minReadUnits, clock),
		writes:  newLimiter(cfg.WriteUnits, minWriteUnits, clock),
		scanNow: b.scanValues(cutoffAV),
		delNow:  map[string]types.AttributeValue{b.reapDelete.ph("now"): cutoffAV},
	}
	n := cfg.segmentCount()
	if n == 1 {
		st, err := w.segment(ctx, 0, 1)
		st.Segments = 1
		return st, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		total = ReapStats{Segments: n}
		first error
		wg    sync.WaitGroup
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := w.segment(ctx, i, n)
			mu.Lock()
			defer mu.Unlock()
			total.add(st)
			if err != nil && first == nil {
				first = err
				cancel()
			}
		}()
	}
	wg.Wait()
	return total, first
}

// scanValues returns the values of the reaper Scan's filter: rows that
// expired before cutoff, of the backend's prefix.
func (b *dynamoBackend) scanValues(cutoff types.AttributeValue) map[string]types.AttributeValue {
	e := &b.reapScan
	vals := map[string]types.AttributeValue{e.ph("now"): cutoff}
	if b.prefix == "" {
		vals[e.ph("hash")] = &types.AttributeValueMemberS{Value: "#"}
	} else {
		vals[e.ph("prefix")] = &types.AttributeValueMemberS{Value: b.prefix}
		vals[e.ph("len")] = &types.AttributeValueMemberN{Value: strconv.Itoa(len(b.prefix) + storageKeyLen)}
	}
	return vals
}

// segment scans one segment of total to its end, deleting the expired rows
// of each page before reading the next.
func (w *sweeper) segment(ctx context.Context, seg, total int) (ReapStats, error) {
	var st ReapStats
	scan := &w.b.reapScan
	in := &dynamodb.ScanInput{
		TableName:                 w.b.table,
		ProjectionExpression:      scan.projection,
		FilterExpression:          scan.filter,
		ExpressionAttributeNames:  scan.names,
		ExpressionAttributeValues: w.scanNow,
		ReturnConsumedCapacity:    types.ReturnConsumedCapacityTotal,
	}
	if total > 1 {
		in.Segment, in.TotalSegments = aws.Int32(int32(seg)), aws.Int32(int32(total))
	}
	if w.cfg.PageSize > 0 {
		in.Limit = aws.Int32(int32(w.cfg.PageSize))
	}
	// A page the reaper sends again after throttling is the same page: the
	// paginator moves on only after a page it returned.
	pages := dynamodb.NewScanPaginator(w.b.client, in)
	for pages.HasMorePages() {
		reserved, err := w.reads.wait(ctx)
		if err != nil {
			return st, err
		}
		var page *dynamodb.ScanOutput
		err = w.call(ctx, &st, func() (err error) {
			page, err = pages.NextPage(ctx)
			return err
		})
		if err != nil {
			return st, callError("Scan", "reaper scan", err)
		}
		st.Pages++
		st.Scanned += int(page.ScannedCount)
		c := capacityOf(page.ConsumedCapacity)
		st.ReadCapacity += c
		st.ConsumedCapacity += c
		w.reads.charge(reserved, max(c, minReadUnits)*attemptsOf(page.ResultMetadata))

		keys := make([]string, 0, len(page.Items))
		for _, item := range page.Items {
			// The filter never matches a lease item (it has no expiry) or
			// another store's row; the check keeps it that way whatever
			// the items hold.
			if id, ok := item[attrID].(*types.AttributeValueMemberS); ok && w.b.ownsID(id.Value) {
				keys = append(keys, id.Value)
			}
		}
		if len(keys) > 0 {
			if f := w.cfg.seam().afterScan; f != nil {
				f(ctx, keys)
			}
			if w.cfg.BatchDelete {
				err = w.deleteBatches(ctx, &st, keys)
			} else {
				err = w.deleteEach(ctx, &st, keys)
			}
			if err != nil {
				return st, err
			}
		}
	}
	return st, nil
}

// deleteEach deletes the rows one DeleteItem at a time, each conditioned on
// the row still having expired: a row refreshed since the scan is kept and
// counted as skipped.
func (w *sweeper) deleteEach(ctx context.Context, st *ReapStats, keys []string) error {
	del := &w.b.reapDelete
	for _, k := range keys {
		reserved, err := w.writes.wait(ctx)
		if err != nil {
			return err
		}
		var out *dynamodb.DeleteItemOutput
		err = w.call(ctx, st, func() (err error) {
			out, err = w.b.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
				TableName:                 w.b.table,
				Key:                       keyOf(k),
				ConditionExpression:       del.condition,
				ExpressionAttributeNames:  del.names,
				ExpressionAttributeValues: w.delNow,
				ReturnConsumedCapacity:    types.ReturnConsumedCapacityTotal,
			})
			return err
		})
		switch {
		case isConditionFailed(err):
			st.Skipped++
			w.writes.charge(reserved, minWriteUnits)
		case err != nil:
			return callError("DeleteItem", "reaper delete", err)
		default:
			st.Deleted++
			c := capacityOf(out.ConsumedCapacity)
			st.WriteCapacity += c
			st.ConsumedCapacity += c
			w.writes.charge(reserved, max(c, minWriteUnits)*attemptsOf(out.ResultMetadata))
		}
	}
	return nil
}

// deleteBatches deletes the rows with unconditional BatchWriteItem calls of
// up to 25 deletes.
func (w *sweeper) deleteBatches(ctx context.Context, st *ReapStats, keys []string) error {
	for len(keys) > 0 {
		n := min(batchSize, len(keys))
		reqs := make([]types.WriteRequest, n)
		for i, k := range keys[:n] {
			reqs[i] = types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: keyOf(k)}}
		}
		keys = keys[n:]
		if err := w.batch(ctx, st, reqs); err != nil {
			return err
		}
	}
	return nil
}

// batch sends one batch of deletes, sending the unprocessed ones again with
// exponential backoff and jitter until none is left.
func (w *sweeper) batch(ctx context.Context, st *ReapStats, reqs []types.WriteRequest) error {
	table := *w.b.table
	for attempt := 0; ; attempt++ {
		reserved, err := w.writes.wait(ctx)
		if err != nil {
			return err
		}
		var out *dynamodb.BatchWriteItemOutput
		err = w.call(ctx, st, func() (err error) {
			out, err = w.b.client.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{
				RequestItems:           map[string][]types.WriteRequest{table: reqs},
				ReturnConsumedCapacity: types.ReturnConsumedCapacityTotal,
			})
			return err
		})
		if err != nil {
			return callError("BatchWriteItem", "reaper batch delete", err)
		}
		left := out.UnprocessedItems[table]
		done := len(reqs) - len(left)
		st.Deleted += done
		var c float64
		for i := range out.ConsumedCapacity {
			c += capacityOf(&out.ConsumedCapacity[i])
		}
		st.WriteCapacity += c
		st.ConsumedCapacity += c
		w.writes.charge(reserved, max(c, float64(done)*minWriteUnits)*attemptsOf(out.ResultMetadata))
		if len(left) == 0 {
			return nil
		}
		if attempt+1 >= unprocessedAttempts {
			return fmt.Errorf("dynamostore: reaper batch delete: %d deletes still unprocessed after %d attempts", len(left), attempt+1)
		}
		st.Unprocessed += len(left)
		if err := w.clock.Sleep(ctx, backoff(attempt, unprocessedBase, unprocessedMax)); err != nil {
			return err
		}
		reqs = left
	}
}

// call runs f, and while it fails with a throttling error (the SDK having
// given up retrying), pauses with exponential backoff and jitter and runs it
// again, up to throttleAttempts times in all.
func (w *sweeper) call(ctx context.Context, st *ReapStats, f func() error) error {
	for attempt := 0; ; attempt++ {
		err := f()
		if err == nil || attempt+1 >= throttleAttempts || !isThrottle(err) || ctx.Err() != nil {
			return err
		}
		st.Throttled++
		if err := w.clock.Sleep(ctx, backoff(attempt, throttleBase, throttleMax)); err != nil {
			return err
		}
	}
}

// isThrottle reports whether err is DynamoDB refusing a call for its rate
// (also when the SDK stopped retrying because its retry quota ran out):
// ProvisionedThroughputExceededException, ThrottlingException,
// RequestLimitExceeded and the like.
func isThrottle(err error) bool {
	return retry.ThrottleErrorCode{Codes: retry.DefaultThrottleErrorCodes}.IsErrorThrottle(err) == aws.TrueTernary
}

// attemptsOf returns how many attempts the SDK made of the call whose
// output metadata md is. Each attempt DynamoDB answered consumed capacity,
// though only the last one's is reported: an answer lost on the way back
// (a connection reset) costs as much as one received, so a pace that
// charged the last alone would exceed its cap.
func attemptsOf(md middleware.Metadata) float64 {
	if r, ok := retry.GetAttemptResults(md); ok && len(r.Results) > 1 {
		return float64(len(r.Results))
	}
	return 1
}

func capacityOf(c *types.ConsumedCapacity) float64 {
	if c == nil {
		return 0
	}
	return aws.ToFloat64(c.CapacityUnits)
}
