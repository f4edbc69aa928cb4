package dynamostore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynamostore/dynamostore/internal/dbtest"
)

// fakeWait is a waitClock whose Sleep returns at once and moves the clock
// on by the time slept, recording each pause.
type fakeWait struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
}

func newFakeWait() *fakeWait { return &fakeWait{t: time.Unix(1_000_000, 0)} }

func (f *fakeWait) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeWait) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sleeps = append(f.sleeps, d)
	f.t = f.t.Add(d)
	return nil
}

func (f *fakeWait) pauses() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.sleeps...)
}

// pastGrace is how long before now the expired rows of the reaper tests
// expired: longer than the default grace, so that a pass deletes them.
const pastGrace = defaultReaperGrace + time.Second

// randomKey returns a storage key as the Store makes them.
func randomKey() string { return storageKey(rand.Text()) }

// seedRows writes n raw session rows expiring at exp, each with a value of
// valueSize bytes, with parallel BatchWriteItem calls, and returns their
// keys.
func seedRows(t testing.TB, client *dynamodb.Client, table string, n int, exp time.Time, valueSize int) []string {
	t.Helper()
	keys := make([]string, n)
	for i := range keys {
		keys[i] = randomKey()
	}
	value := make([]byte, valueSize)
	const workers = 4
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	chunks := make(chan []string)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for chunk := range chunks {
				reqs := make([]types.WriteRequest, len(chunk))
				for i, k := range chunk {
					item := map[string]types.AttributeValue{
						attrID:       &types.AttributeValueMemberS{Value: k},
						attrExpires:  epochSeconds(exp),
						attrModified: epochMillis(exp.Add(-time.Hour)),
					}
					if valueSize > 0 {
						item[attrValues] = &types.AttributeValueMemberB{Value: value}
					}
					reqs[i] = types.WriteRequest{PutRequest: &types.PutRequest{Item: item}}
				}
				if err := batchWriteAll(context.Background(), client, table, reqs); err != nil {
					errMu.Lock()
					first = errors.Join(first, err)
					errMu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n; i += batchSize {
		chunks <- keys[i:min(i+batchSize, n)]
	}
	close(chunks)
	wg.Wait()
	if first != nil {
		t.Fatalf("seeding rows: %v", first)
	}
	return keys
}

// batchWriteAll sends reqs with BatchWriteItem until none is unprocessed.
func batchWriteAll(ctx context.Context, client dynamoAPI, table string, reqs []types.WriteRequest) error {
	for len(reqs) > 0 {
		out, err := client.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{
			RequestItems: map[string][]types.WriteRequest{table: reqs},
		})
		if err != nil {
			return err
		}
		reqs = out.UnprocessedItems[table]
	}
	return nil
}

// tableCounts scans the table and counts session rows expired at now and
// live at now, and whether the lease item is there.
type tableCounts struct {
	expired, live int
	lease         bool
	bytes         int
}

func countRows(t testing.TB, client *dynamodb.Client, table string, now time.Time) tableCounts {
	t.Helper()
	var c tableCounts
	p := dynamodb.NewScanPaginator(client, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("scan: %v", err)
		}
		for _, item := range page.Items {
			if item[attrID].(*types.AttributeValueMemberS).Value == leaseKey {
				c.lease = true
				if _, ok := item[attrExpires]; ok {
					t.Errorf("lease item has an %q attribute", attrExpires)
				}
				continue
			}
			rec, err := decodeItem("", item)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			c.bytes += itemSize(Record{Key: item[attrID].(*types.AttributeValueMemberS).Value, Data: rec.Data, Expires: rec.Expires, Modified: rec.Modified})
			if rec.Expires.Before(now) {
				c.expired++
			} else {
				c.live++
			}
		}
	}
	return c
}

func TestReaperOptionsValidate(t *testing.T) {
	bad := []struct {
		name string
		opts ReaperOptions
	}{
		{"short interval", ReaperOptions{Interval: 999 * time.Millisecond}},
		{"huge interval", ReaperOptions{Interval: 401 * 24 * time.Hour}},
		{"longest interval", ReaperOptions{Interval: math.MaxInt64}},
		{"negative segments", ReaperOptions{Segments: -1}},
		{"too many segments", ReaperOptions{Segments: maxReaperSegments + 1}},
		{"negative read rate", ReaperOptions{ReadUnits: -1}},
		{"negative write rate", ReaperOptions{WriteUnits: -1}},
		{"NaN rate", ReaperOptions{ReadUnits: nan()}},
		{"infinite rate", ReaperOptions{WriteUnits: inf()}},
		{"negative page size", ReaperOptions{PageSize: -1}},
		{"huge page size", ReaperOptions{PageSize: 1 << 31}},
		{"short lease", ReaperOptions{LeaseDuration: 999 * time.Millisecond}},
		{"negative lease", ReaperOptions{LeaseDuration: -time.Minute}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewStore(context.Background(), "sessions", WithBackend(newMapBackend()), WithKeyPairs(testHashKey), WithReaper(tc.opts))
			if !errors.Is(err, ErrInvalidOption) {
				_ = s.Close()
				t.Fatalf("NewStore = %v, want ErrInvalidOption", err)
			}
			b, err := newDynamoBackend(fakeAPI{}, "sessions", true)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.Reap(context.Background(), tc.opts); !errors.Is(err, ErrInvalidOption) {
				t.Fatalf("backend Reap = %v, want ErrInvalidOption", err)
			}
		})
	}
	good := []ReaperOptions{
		{},
		{Interval: -1, Grace: -1},
		{Interval: time.Second, Segments: maxReaperSegments, ReadUnits: 10, WriteUnits: 20, PageSize: 1<<31 - 1,
			BatchDelete: true, NoLease: true, LeaseDuration: time.Second, OnPass: func(ReapStats, error) {}},
	}
	for _, o := range good {
		s, err := NewStore(context.Background(), "sessions", WithBackend(newMapBackend()), WithKeyPairs(testHashKey), WithReaper(o))
		if err != nil {
			t.Fatalf("WithReaper(%+v) = %v", o, err)
		}
		_ = s.Close()
	}
	var zero ReaperOptions
	if zero.segmentCount() != defaultReaperSegments || zero.leaseTime() != defaultLeaseDuration || zero.interval() != defaultCleanupInterval {
		t.Fatalf("defaults: segments %d, lease %v, interval %v", zero.segmentCount(), zero.leaseTime(), zero.interval())
	}
	if off := (ReaperOptions{Interval: -time.Second}); off.interval() != 0 {
		t.Fatalf("negative interval runs every %v", off.interval())
	}
}

func nan() float64 { f, _ := strconv.ParseFloat("NaN", 64); return f }
func inf() float64 { f, _ := strconv.ParseFloat("+Inf", 64); return f }

// TestReapLargeTable: one pass over tens of thousands of expired rows and
// thousands of live ones, over more than 1 MB (so many Scan pages), deletes
// every expired row and no live one.
func TestReapLargeTable(t *testing.T) {
	client := dbtest.Client(t)
	table := dbtest.NewTable(t, client)
	clock := newFakeClock()
	now := clock.Now()
	const expiredRows, liveRows = 20_000, 2_000
	start := time.Now()
	seedRows(t, client, table, expiredRows, now.Add(-time.Hour), 150)
	seedRows(t, client, table, liveRows, now.Add(time.Hour), 150)
	before := countRows(t, client, table, now)
	t.Logf("seeded %d rows, %d bytes, in %v", before.expired+before.live, before.bytes, time.Since(start))
	if before.expired != expiredRows || before.live != liveRows || before.bytes < 4<<20 {
		t.Fatalf("seeded %+v", before)
	}

	var hooked []ReapStats
	s := newTestStore(t, table, client, clock, withReaperSegments(2),
		withReapHook(func(st ReapStats, err error) { hooked = append(hooked, st) }))
	st, err := s.Reap(context.Background())
	if err != nil {
		t.Fatalf("Reap: %v", err)
	}
	t.Logf("pass: %+v", st)
	if st.Deleted != expiredRows || st.Skipped != 0 || st.Segments != 2 || st.SkippedByLease {
		t.Errorf("stats %+v", st)
	}
	// The lease item is scanned too.
	if st.Scanned != expiredRows+liveRows+1 {
		t.Errorf("scanned %d, want %d", st.Scanned, expiredRows+liveRows+1)
	}
	if st.Pages < 2*st.Segments {
		t.Errorf("%d pages in %d segments: each segment should have followed LastEvaluatedKey over several", st.Pages, st.Segments)
	}
	if st.ReadCapacity <= 0 || st.WriteCapacity < expiredRows || st.ConsumedCapacity != st.ReadCapacity+st.WriteCapacity {
		t.Errorf("capacity: read %v write %v total %v", st.ReadCapacity, st.WriteCapacity, st.ConsumedCapacity)
	}
	if len(hooked) != 1 || hooked[0].Deleted != st.Deleted {
		t.Errorf("hook saw %+v", hooked)
	}
	after := countRows(t, client, table, now)
	if after.expired != 0 || after.live != liveRows || !after.lease {
		t.Fatalf("after the pass: %+v", after)
	}
}

// TestReapRefreshedAfterScan drives the race between the scan and the
// delete: a row the scan saw expired is refreshed (by an instance whose
// clock lags, say) before its delete. A conditional delete keeps it; batch
// mode, as documented, deletes it.
func TestReapRefreshedAfterScan(t *testing.T) {
	for _, batch := range []bool{false, true} {
		t.Run(fmt.Sprintf("batch=%v", batch), func(t *testing.T) {
			var refreshed string
			var refresh func(ctx context.Context, key string)
			e := newEnv(t, withReaperBatchDelete(batch), withReapSeam(func(r *reapSeams) {
				r.afterScan = func(ctx context.Context, keys []string) {
					for _, k := range keys {
						if k == refreshed {
							refresh(ctx, k)
						}
					}
				}
			}))
			refresh = func(ctx context.Context, key string) {
				_, err := e.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
					TableName:                 aws.String(e.table),
					Key:                       keyOf(key),
					UpdateExpression:          aws.String("SET #e = :e"),
					ExpressionAttributeNames:  map[string]string{"#e": attrExpires},
					ExpressionAttributeValues: map[string]types.AttributeValue{":e": epochSeconds(e.clock.Now().Add(time.Hour))},
				})
				if err != nil {
					t.Errorf("refreshing: %v", err)
				}
			}
			keep := e.save("s", map[any]any{"user": "ada"})
			gone := e.save("s", map[any]any{"user": "bob"})
			e.clock.Advance(defaultTTL + pastGrace)
			_, sess, err := e.load("s", keep)
			if err != nil || !sess.IsNew {
				t.Fatalf("expired session served: %v %v", sess.Values, err)
			}
			id, _, _, err := e.store.codec.decode("s", keep.Value)
			if err != nil {
				t.Fatal(err)
			}
			refreshed = storageKey(id)

			st, err := e.store.Reap(context.Background())
			if err != nil {
				t.Fatalf("Reap: %v", err)
			}
			_, sess, err = e.load("s", keep)
			if err != nil {
				t.Fatal(err)
			}
			if batch {
				if st.Deleted != 2 || st.Skipped != 0 || !sess.IsNew {
					t.Fatalf("batch mode: stats %+v, refreshed session kept %v", st, !sess.IsNew)
				}
				return
			}
			if st.Deleted != 1 || st.Skipped != 1 || sess.IsNew || sess.Values["user"] != "ada" {
				t.Fatalf("stats %+v; refreshed session %v (new %v)", st, sess.Values, sess.IsNew)
			}
			if _, sess, _ := e.load("s", gone); !sess.IsNew {
				t.Fatal("the other expired session survived")
			}
		})
	}
}

// passCounter collects the hook's reports of several Stores.
type passCounter struct {
	mu    sync.Mutex
	stats []ReapStats
	errs  []error
	seen  chan struct{}
}

func newPassCounter() *passCounter { return &passCounter{seen: make(chan struct{}, 100)} }

func (p *passCounter) hook(st ReapStats, err error) {
	p.mu.Lock()
	p.stats = append(p.stats, st)
	p.errs = append(p.errs, err)
	p.mu.Unlock()
	p.seen <- struct{}{}
}

// wait waits for n reports and returns them, resetting the counter.
func (p *passCounter) wait(t *testing.T, n int) ([]ReapStats, []error) {
	t.Helper()
	for range n {
		select {
		case <-p.seen:
		case <-time.After(time.Minute):
			t.Fatal("no reaper pass reported within a minute")
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	st, errs := p.stats, p.errs
	p.stats, p.errs = nil, nil
	return st, errs
}

// TestReapFleetOnePassPerInterval runs 2 and 3 Stores with reapers on one
// table and fires all their timers at the same instant, several intervals
// in a row: each interval exactly one pass runs and deletes everything.
func TestReapFleetOnePassPerInterval(t *testing.T) {
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d stores", n), func(t *testing.T) {
			client := dbtest.Client(t)
			table := dbtest.NewTable(t, client)
			clock := newFakeClock()
			passes := newPassCounter()
			const interval = 5 * time.Minute
			ticks := make([]chan time.Time, n)
			for i := range ticks {
				ticks[i] = make(chan time.Time)
				tick := ticks[i]
				newTestStore(t, table, client, clock, withCleanupInterval(interval), withReapHook(passes.hook),
					withReapSeam(func(r *reapSeams) { r.tick = tick }))
			}
			fire := func() {
				for _, c := range ticks {
					go func() { c <- clock.Now() }()
				}
			}
			for round := range 3 {
				seedRows(t, client, table, 100, clock.Now().Add(-pastGrace), 0)
				fire()
				stats, errs := passes.wait(t, n)
				ran := 0
				for i, st := range stats {
					if errs[i] != nil {
						t.Fatalf("round %d: pass failed: %v", round, errs[i])
					}
					if !st.SkippedByLease {
						ran++
						if st.Deleted != 100 {
							t.Errorf("round %d: the pass deleted %d rows, want 100", round, st.Deleted)
						}
					}
				}
				if ran != 1 {
					t.Fatalf("round %d: %d passes ran, want exactly 1: %+v", round, ran, stats)
				}
				// Within the same interval, no Store reaps again.
				fire()
				stats, _ = passes.wait(t, n)
				for _, st := range stats {
					if !st.SkippedByLease {
						t.Fatalf("round %d: a second pass ran within the interval: %+v", round, st)
					}
				}
				clock.Advance(interval)
			}
		})
	}
}

// killSwitch is a dynamoAPI that fails every call once killed, as if its
// process had died or been cut off.
type killSwitch struct {
	dynamoAPI
	dead atomic.Bool
}

var errKilled = errors.New("connection reset: process killed")

func (k *killSwitch) check() error {
	if k.dead.Load() {
		return errKilled
	}
	return nil
}

func (k *killSwitch) Scan(ctx context.Context, in *dynamodb.ScanInput, o ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	if err := k.check(); err != nil {
		return nil, err
	}
	return k.dynamoAPI.Scan(ctx, in, o...)
}

func (k *killSwitch) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	if err := k.check(); err != nil {
		return nil, err
	}
	return k.dynamoAPI.DeleteItem(ctx, in, o...)
}

func (k *killSwitch) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if err := k.check(); err != nil {
		return nil, err
	}
	return k.dynamoAPI.UpdateItem(ctx, in, o...)
}

// TestReapLeaseHolderDies kills the lease holder in the middle of its pass:
// the others keep off until the lease runs out, then one takes over and
// finishes the work.
func TestReapLeaseHolderDies(t *testing.T) {
	client := dbtest.Client(t)
	table := dbtest.NewTable(t, client)
	clock := newFakeClock()
	const rows, lease = 500, 30 * time.Second
	seedRows(t, client, table, rows, clock.Now().Add(-pastGrace), 0)

	victim := &killSwitch{dynamoAPI: client}
	a := newTestStore(t, table, victim, clock, withReaperPageSize(100), withReaperLeaseDuration(lease),
		withReapSeam(func(r *reapSeams) {
			pages := 0
			r.afterScan = func(context.Context, []string) {
				if pages++; pages == 2 {
					victim.dead.Store(true)
				}
			}
		}))
	// The others run reaper goroutines whose timers never fire: the test
	// drives their passes with Reap.
	never := withReapSeam(func(r *reapSeams) { r.tick = make(chan time.Time) })
	others := []*Store{
		newTestStore(t, table, client, clock, withReaperLeaseDuration(lease), withCleanupInterval(time.Hour), never),
		newTestStore(t, table, client, clock, withReaperLeaseDuration(lease), withCleanupInterval(time.Hour), never),
	}

	st, err := a.Reap(context.Background())
	if !errors.Is(err, errKilled) {
		t.Fatalf("the killed holder's pass: %+v, %v", st, err)
	}
	if st.Deleted == 0 || st.Deleted >= rows {
		t.Fatalf("the holder should die mid-pass, deleted %d of %d", st.Deleted, rows)
	}
	firstDeleted := st.Deleted

	clock.Advance(lease - time.Second)
	for i, s := range others {
		if st, err := s.Reap(context.Background()); err != nil || !st.SkippedByLease {
			t.Fatalf("store %d reaped while the dead holder's lease ran: %+v, %v", i, st, err)
		}
	}
	clock.Advance(2 * time.Second)
	st, err = others[0].Reap(context.Background())
	if err != nil || st.SkippedByLease || st.Deleted != rows-firstDeleted {
		t.Fatalf("takeover pass: %+v, %v; want %d deleted", st, err, rows-firstDeleted)
	}
	if c := countRows(t, client, table, clock.Now()); c.expired != 0 {
		t.Fatalf("%d expired rows left", c.expired)
	}
	// Store.Stats counts the passes that ran, failed or not, and their
	// deletes; skipped passes are not counted.
	for i, want := range []Stats{
		{ReapPasses: 1, ReapDeleted: int64(firstDeleted)},
		{ReapPasses: 1, ReapDeleted: int64(rows - firstDeleted)},
		{},
	} {
		got := append([]*Store{a}, others...)[i].Stats()
		if got.ReapPasses != want.ReapPasses || got.ReapDeleted != want.ReapDeleted {
			t.Errorf("store %d: %d passes deleted %d rows, want %d and %d", i, got.ReapPasses, got.ReapDeleted, want.ReapPasses, want.ReapDeleted)
		}
	}
	// The takeover completed a pass: nobody reaps again this interval,
	// the revived holder included.
	victim.dead.Store(false)
	for i, s := range append(others, a) {
		if st, err := s.Reap(context.Background()); err != nil || !st.SkippedByLease {
			t.Fatalf("store %d reaped again within the interval: %+v, %v", i, st, err)
		}
	}
}

// TestReapLeaseRenewal holds a pass open across more than a lease duration:
// with renewals nobody takes over; without them, another Store does and the
// first one stops with ErrLeaseLost.
func TestReapLeaseRenewal(t *testing.T) {
	for _, renew := range []bool{true, false} {
		t.Run(fmt.Sprintf("renew=%v", renew), func(t *testing.T) {
			client := dbtest.Client(t)
			table := dbtest.NewTable(t, client)
			clock := newFakeClock()
			const lease = 30 * time.Second
			seedRows(t, client, table, 50, clock.Now().Add(-pastGrace), 0)

			renewTick := make(chan time.Time)
			inScan, release := make(chan struct{}), make(chan struct{})
			a := newTestStore(t, table, client, clock, withReaperLeaseDuration(lease),
				withReapSeam(func(r *reapSeams) {
					r.renewTick = renewTick
					r.afterScan = func(ctx context.Context, _ []string) {
						close(inScan)
						select {
						case <-release:
						case <-ctx.Done():
						}
					}
				}))
			b := newTestStore(t, table, client, clock, withReaperLeaseDuration(lease))

			type result struct {
				st  ReapStats
				err error
			}
			done := make(chan result, 1)
			go func() {
				st, err := a.Reap(context.Background())
				done <- result{st, err}
			}()
			<-inScan
			for range 3 {
				clock.Advance(lease / 2)
				if renew {
					// The second send is taken only once the renewal of
					// the first is done.
					renewTick <- clock.Now()
					renewTick <- clock.Now()
				}
			}
			st, err := b.Reap(context.Background())
			if err != nil {
				t.Fatalf("second store: %v", err)
			}
			if renew {
				if !st.SkippedByLease {
					t.Fatalf("second store reaped while the lease was renewed: %+v", st)
				}
				close(release)
				res := <-done
				if res.err != nil || res.st.Deleted != 50 {
					t.Fatalf("holder's pass: %+v, %v", res.st, res.err)
				}
				return
			}
			if st.SkippedByLease || st.Deleted != 50 {
				t.Fatalf("second store should take over the lapsed lease: %+v", st)
			}
			// The holder notices at its next renewal and stops.
			renewTick <- clock.Now()
			res := <-done
			if !errors.Is(res.err, ErrLeaseLost) || res.st.Deleted != 0 {
				t.Fatalf("holder's pass: %+v, %v; want ErrLeaseLost", res.st, res.err)
			}
		})
	}
}

// TestReapCloseDuringPass closes a Store while its reaper goroutine is in
// the middle of a pass and an on-demand Reap waits for it: Close cancels
// both, returns promptly, and no goroutine is left behind.
func TestReapCloseDuringPass(t *testing.T) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	client := dbtest.Client(t, func(o *dynamodb.Options) { o.HTTPClient = &http.Client{Transport: tr} })
	table := dbtest.NewTable(t, client)
	clock := newFakeClock()
	seedRows(t, client, table, 200, clock.Now().Add(-pastGrace), 0)

	tick := make(chan time.Time)
	inScan := make(chan struct{})
	var once sync.Once
	passes := newPassCounter()
	s, err := NewStore(context.Background(), table, withAPI(client), WithKeyPairs(testHashKey),
		withClock(clock.Now), withCleanupInterval(time.Minute), withReaperPageSize(50), withReapHook(passes.hook),
		withReapSeam(func(r *reapSeams) {
			r.tick = tick
			r.afterScan = func(ctx context.Context, _ []string) {
				once.Do(func() { close(inScan) })
				<-ctx.Done()
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	tick <- clock.Now()
	<-inScan
	if len(packageGoroutines()) == 0 {
		t.Fatal("packageGoroutines sees no reaper goroutine during a pass")
	}
	onDemand := make(chan error, 1)
	go func() {
		_, err := s.Reap(context.Background())
		onDemand <- err
	}()

	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return within 10s of cancelling the pass")
	}
	stats, errs := passes.wait(t, 1)
	if !errors.Is(errs[0], ErrClosed) || !errors.Is(errs[0], context.Canceled) {
		t.Errorf("cancelled pass: %+v, %v; want ErrClosed", stats[0], errs[0])
	}
	if err := <-onDemand; !errors.Is(err, ErrClosed) {
		t.Errorf("on-demand Reap during Close: %v, want ErrClosed", err)
	}
	if _, err := s.Reap(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Reap after Close: %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// The cancelled pass released its lease: another Store reaps at once.
	other := newTestStore(t, table, client, clock)
	if st, err := other.Reap(context.Background()); err != nil || st.SkippedByLease || st.Deleted == 0 {
		t.Errorf("after Close, another store: %+v, %v", st, err)
	}
	_ = other.Close()
	if left := packageGoroutines(); len(left) > 0 {
		t.Errorf("%d goroutines still run the store's code after Close:\n%s", len(left), strings.Join(left, "\n\n"))
	}
}

// TestReapRateCap checks that a pass consumes capacity at no more than the
// cap, within 10%, measured from the capacity the pass reports against the
// rate limiter's own clock.
func TestReapRateCap(t *testing.T) {
	cases := []struct {
		name              string
		batch             bool
		expired, live     int
		valueSize         int
		pageSize          int
		readCap, writeCap float64
		bindsReads        bool
		segments          int
	}{
		{"conditional deletes", false, 1500, 0, 0, 100, 2, 100, false, 1},
		{"batch deletes", true, 1500, 0, 0, 100, 2, 100, false, 1},
		{"scan only", false, 0, 2000, 200, 50, 1, 100, true, 1},
		{"conditional deletes in 8 segments", false, 1500, 0, 0, 100, 2, 100, false, 8},
		{"scan only in 8 segments", false, 0, 2000, 200, 50, 1, 100, true, 8},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client := dbtest.Client(t)
			table := dbtest.NewTable(t, client)
			clock := newFakeClock()
			seedRows(t, client, table, tc.expired, clock.Now().Add(-pastGrace), tc.valueSize)
			seedRows(t, client, table, tc.live, clock.Now().Add(time.Hour), tc.valueSize)
			wait := newFakeWait()
			s := newTestStore(t, table, client, clock, withReaperBatchDelete(tc.batch), withReaperPageSize(tc.pageSize),
				withReaperRate(tc.readCap, tc.writeCap), withReaperSegments(tc.segments), withReapSeam(func(r *reapSeams) { r.wait = wait }))
			start := wait.Now()
			st, err := s.Reap(context.Background())
			if err != nil || st.Deleted != tc.expired {
				t.Fatalf("Reap: %+v, %v", st, err)
			}
			elapsed := wait.Now().Sub(start).Seconds()
			readRate, writeRate := st.ReadCapacity/elapsed, st.WriteCapacity/elapsed
			t.Logf("%d pages, %.1f RCU, %.1f WCU in %.1fs of limiter time: %.2f RCU/s (cap %v), %.2f WCU/s (cap %v)",
				st.Pages, st.ReadCapacity, st.WriteCapacity, elapsed, readRate, tc.readCap, writeRate, tc.writeCap)
			if readRate > 1.1*tc.readCap || writeRate > 1.1*tc.writeCap {
				t.Errorf("rate above the cap by more than 10%%")
			}
			binding, limit := writeRate, tc.writeCap
			if tc.bindsReads {
				binding, limit = readRate, tc.readCap
			}
			// With segments, concurrent pauses add up on the fake clock,
			// which then runs ahead of the real one: only the cap is
			// checked.
			if tc.segments == 1 && binding < 0.9*limit {
				t.Errorf("binding rate %.2f is more than 10%% under the cap %v: the limiter holds back too much", binding, limit)
			}
		})
	}
}

// flaky wraps a dynamoAPI and makes chosen calls fail as if DynamoDB
// still throttled them after the SDK's retries, or return unprocessed
// items.
type flaky struct {
	dynamoAPI
	mu           sync.Mutex
	throttle     map[string]int // operation: how many more calls to throttle
	holdBack     int            // how many more BatchWriteItem calls process only the first keep requests
	keep         int
	batchesCalls int
}

func (f *flaky) throttled(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.throttle[op] > 0 {
		f.throttle[op]--
		return &types.ProvisionedThroughputExceededException{Message: aws.String("rate of requests exceeds the allowed throughput")}
	}
	return nil
}

func (f *flaky) Scan(ctx context.Context, in *dynamodb.ScanInput, o ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	if err := f.throttled("Scan"); err != nil {
		return nil, err
	}
	return f.dynamoAPI.Scan(ctx, in, o...)
}

func (f *flaky) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	if err := f.throttled("DeleteItem"); err != nil {
		return nil, err
	}
	return f.dynamoAPI.DeleteItem(ctx, in, o...)
}

func (f *flaky) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	if err := f.throttled("BatchWriteItem"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.batchesCalls++
	hold := f.holdBack > 0
	if hold {
		f.holdBack--
	}
	f.mu.Unlock()
	if !hold {
		return f.dynamoAPI.BatchWriteItem(ctx, in, o...)
	}
	var table string
	var reqs []types.WriteRequest
	for table, reqs = range in.RequestItems {
	}
	n := min(f.keep, len(reqs))
	out := &dynamodb.BatchWriteItemOutput{}
	if n > 0 {
		var err error
		sub := *in
		sub.RequestItems = map[string][]types.WriteRequest{table: reqs[:n]}
		if out, err = f.dynamoAPI.BatchWriteItem(ctx, &sub, o...); err != nil {
			return nil, err
		}
	}
	out.UnprocessedItems = map[string][]types.WriteRequest{table: reqs[n:]}
	return out, nil
}

// checkBackoff checks that pauses grow exponentially from base, capped at
// ceiling, each jittered within the upper half of its step.
func checkBackoff(t *testing.T, pauses []time.Duration, base, ceiling time.Duration) {
	t.Helper()
	for i, p := range pauses {
		step := min(base<<i, ceiling)
		if p < step/2 || p > step {
			t.Errorf("pause %d is %v, want within [%v, %v]", i, p, step/2, step)
		}
	}
}

func TestReapThrottled(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name      string
		batch     bool
		throttle  map[string]int
		wantErr   bool
		throttled int
		pauses    [][]int // runs of consecutive retries: backoff restarts per call
	}{
		{"conditional", false, map[string]int{"Scan": 2, "DeleteItem": 3}, false, 5, [][]int{{0, 1}, {0, 1, 2}}},
		{"batch", true, map[string]int{"BatchWriteItem": 2}, false, 2, [][]int{{0, 1}}},
		{"persistent", false, map[string]int{"Scan": 100}, true, throttleAttempts - 1, [][]int{{0, 1, 2, 3, 4}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.wantErr {
				seedRows(t, e.client, e.table, 30, e.clock.Now().Add(-pastGrace), 0)
			}
			api := &flaky{dynamoAPI: e.client, throttle: tc.throttle}
			wait := newFakeWait()
			s := newTestStore(t, e.table, api, e.clock, withReaperLease(false), withReaperBatchDelete(tc.batch),
				withReapSeam(func(r *reapSeams) { r.wait = wait }))
			st, err := s.Reap(context.Background())
			var pte *types.ProvisionedThroughputExceededException
			if tc.wantErr != (err != nil) || (tc.wantErr && !errors.As(err, &pte)) {
				t.Fatalf("Reap: %+v, %v", st, err)
			}
			if tc.wantErr {
				// Said as the request path says it, and counted as its
				// failures are.
				if !strings.Contains(err.Error(), "reaper scan (Scan) throttled") {
					t.Errorf("error %q does not say which call was throttled", err)
				}
				if got := s.Stats(); got.Throttled != 1 || got.BackendErrors != 1 {
					t.Errorf("Stats: Throttled %d, BackendErrors %d after one throttled pass; want 1 and 1", got.Throttled, got.BackendErrors)
				}
			}
			if !tc.wantErr && st.Deleted != 30 {
				t.Errorf("deleted %d, want 30", st.Deleted)
			}
			if st.Throttled != tc.throttled {
				t.Errorf("throttled %d, want %d", st.Throttled, tc.throttled)
			}
			pauses := wait.pauses()
			for _, run := range tc.pauses {
				if len(pauses) < len(run) {
					t.Fatalf("pauses %v, want runs %v", wait.pauses(), tc.pauses)
				}
				checkBackoff(t, pauses[:len(run)], throttleBase, throttleMax)
				pauses = pauses[len(run):]
			}
			if len(pauses) != 0 {
				t.Errorf("extra pauses %v", pauses)
			}
		})
	}
}

func TestReapBatchUnprocessed(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name        string
		holdBack    int
		keep        int
		rows        int
		wantErr     bool
		unprocessed int
		calls       int
	}{
		{"retried", 2, 10, 25, false, 15 + 5, 3},
		{"never processed", 1000, 0, 25, true, 25 * (unprocessedAttempts - 1), unprocessedAttempts},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			seedRows(t, e.client, e.table, tc.rows, e.clock.Now().Add(-pastGrace), 0)
			api := &flaky{dynamoAPI: e.client, holdBack: tc.holdBack, keep: tc.keep}
			wait := newFakeWait()
			s := newTestStore(t, e.table, api, e.clock, withReaperLease(false), withReaperBatchDelete(true),
				withReapSeam(func(r *reapSeams) { r.wait = wait }))
			st, err := s.Reap(context.Background())
			if tc.wantErr != (err != nil) || (!tc.wantErr && st.Deleted != tc.rows) {
				t.Fatalf("Reap: %+v, %v", st, err)
			}
			if st.Unprocessed != tc.unprocessed || api.batchesCalls != tc.calls {
				t.Errorf("unprocessed %d in %d calls, want %d in %d", st.Unprocessed, api.batchesCalls, tc.unprocessed, tc.calls)
			}
			pauses := wait.pauses()
			if len(pauses) != tc.calls-1 {
				t.Errorf("%d pauses, want %d", len(pauses), tc.calls-1)
			}
			checkBackoff(t, pauses, unprocessedBase, unprocessedMax)
			if tc.wantErr {
				// Leave the table clean for the next case.
				if _, err := e.store.Reap(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestBackoffAndJitter(t *testing.T) {
	for n := range 40 {
		for range 20 {
			checkBackoffOne(t, n, backoff(n, 100*time.Millisecond, 10*time.Second), 100*time.Millisecond, 10*time.Second)
		}
	}
	for range 1000 {
		if d := jitter(time.Minute); d < time.Minute || d > 90*time.Second {
			t.Fatalf("jitter(1m) = %v, want within [1m, 90s]", d)
		}
	}
}

func checkBackoffOne(t *testing.T, n int, d, base, ceiling time.Duration) {
	t.Helper()
	step := ceiling
	if n < 32 && base<<n < ceiling {
		step = base << n
	}
	if d < step/2 || d > step {
		t.Fatalf("backoff(%d) = %v, want within [%v, %v]", n, d, step/2, step)
	}
}

func TestLimiter(t *testing.T) {
	if l := newLimiter(0, 1, realClock{}); l != nil {
		t.Fatal("rate 0 should not limit")
	}
	ctx := context.Background()
	// call waits for the limiter, reporting the pause, and charges cost.
	call := func(t *testing.T, l *limiter, wait *fakeWait, cost float64) time.Duration {
		t.Helper()
		before := len(wait.pauses())
		reserved, err := l.wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var paused time.Duration
		if p := wait.pauses(); len(p) > before {
			paused = p[len(p)-1]
		}
		if cost >= 0 {
			l.charge(reserved, cost)
		}
		return paused
	}

	t.Run("one caller", func(t *testing.T) {
		wait := newFakeWait()
		l := newLimiter(10, 0, wait)
		steps := []struct {
			idle  time.Duration
			want  time.Duration // pause before the call
			spent float64       // what the call cost
		}{
			{0, 0, 5},
			{0, 500 * time.Millisecond, 1},
			{0, 100 * time.Millisecond, 1},
			// Idle time pays the debt but is not saved up for a burst.
			{10 * time.Second, 0, 1},
			{0, 100 * time.Millisecond, 2},
			{50 * time.Millisecond, 150 * time.Millisecond, 1},
		}
		for i, s := range steps {
			wait.t = wait.t.Add(s.idle)
			if got := call(t, l, wait, s.spent); got != s.want {
				t.Errorf("step %d: paused %v, want %v", i, got, s.want)
			}
		}
	})

	t.Run("callers waiting together", func(t *testing.T) {
		// Segments that all wait before any call returns start one after
		// another, each reserving what a call costs.
		wait := newFakeWait()
		l := newLimiter(10, 1, wait)
		for i, want := range []time.Duration{0, 100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond} {
			if got := call(t, l, wait, -1); got != want {
				t.Errorf("waiter %d: paused %v, want %v", i, got, want)
			}
		}
	})

	t.Run("tiny rate", func(t *testing.T) {
		wait := newFakeWait()
		l := newLimiter(1e-12, 0.5, wait)
		call(t, l, wait, 128)
		if got := call(t, l, wait, 128); got < maxSpan {
			t.Errorf("paused %v after a call at 1e-12 units a second, want at least %v", got, maxSpan)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		l := newLimiter(10, 1, newFakeWait())
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		l.charge(0, 1)
		if _, err := l.wait(cancelled); !errors.Is(err, context.Canceled) {
			t.Errorf("wait on a cancelled context: %v", err)
		}
	})
}

// hangLeaseRenewals makes the first UpdateItem of the lease item once
// armed wait until its request is cancelled: a renewal that gets no
// answer.
type hangLeaseRenewals struct{ armed atomic.Bool }

func (h *hangLeaseRenewals) RoundTrip(r *http.Request) (*http.Response, error) {
	if operationOf(r) == "UpdateItem" && h.armed.CompareAndSwap(true, false) {
		<-r.Context().Done()
		return nil, r.Context().Err()
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestReapStopsWhenARenewalGetsNoAnswer: a lease renewal that hangs is
// given up when the lease runs out, and the pass stops there with
// ErrLeaseLost, instead of deleting on past its lease, or never returning.
func TestReapStopsWhenARenewalGetsNoAnswer(t *testing.T) {
	clean := dbtest.Client(t)
	table := dbtest.NewTable(t, clean)
	clock := newFakeClock()
	seedRows(t, clean, table, 20, clock.Now().Add(-pastGrace), 0)
	hang := &hangLeaseRenewals{}
	client := dbtest.Client(t, func(o *dynamodb.Options) { o.HTTPClient = &http.Client{Transport: hang} })
	renew := make(chan time.Time)
	inScan := make(chan struct{})
	var once sync.Once
	const lease = 2 * time.Second
	s := newTestStore(t, table, client, clock, withReaperLeaseDuration(lease), withReaperPageSize(5),
		withReapSeam(func(r *reapSeams) {
			r.renewTick = renew
			r.afterScan = func(ctx context.Context, _ []string) {
				once.Do(func() { close(inScan) })
				<-ctx.Done() // the pass goes on until it is stopped
			}
		}))
	done := make(chan error, 1)
	go func() { _, err := s.Reap(context.Background()); done <- err }()
	<-inScan
	hang.armed.Store(true)
	renew <- clock.Now()
	select {
	case err := <-done:
		if !errors.Is(err, ErrLeaseLost) {
			t.Errorf("Reap = %v; want ErrLeaseLost", err)
		}
	case <-time.After(10 * lease):
		t.Fatal("Reap has not returned long after its lease ran out")
	}
}

// loseFirstScanAnswers passes every Scan to DynamoDB, adds up the capacity
// its answers report, and resets the connection instead of the first
// answer to each page: the SDK sends the page again, and DynamoDB charges
// both.
type loseFirstScanAnswers struct {
	mu       sync.Mutex
	seen     map[string]bool
	consumed float64
}

func (l *loseFirstScanAnswers) RoundTrip(r *http.Request) (*http.Response, error) {
	if operationOf(r) != "Scan" {
		return http.DefaultTransport.RoundTrip(r)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	var out struct {
		ConsumedCapacity struct{ CapacityUnits float64 }
	}
	_ = json.Unmarshal(answer, &out)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.consumed += out.ConsumedCapacity.CapacityUnits
	if !l.seen[string(body)] {
		l.seen[string(body)] = true
		return nil, connectionReset()
	}
	resp.Body = io.NopCloser(bytes.NewReader(answer))
	return resp, nil
}

// TestReapRateCapCountsLostAnswers: pages whose first answer was lost
// cost DynamoDB twice, and the pass's pace counts both: the read units
// consumed stay within ReadUnits.
func TestReapRateCapCountsLostAnswers(t *testing.T) {
	clean := dbtest.Client(t)
	table := dbtest.NewTable(t, clean)
	clock := newFakeClock()
	seedRows(t, clean, table, 800, clock.Now().Add(time.Hour), 200)
	lose := &loseFirstScanAnswers{seen: map[string]bool{}}
	client := dbtest.Client(t, func(o *dynamodb.Options) {
		o.HTTPClient = &http.Client{Transport: lose}
		o.Retryer = retry.AddWithMaxBackoffDelay(retry.NewStandard(), time.Millisecond)
	})
	wait := newFakeWait()
	const readUnits = 1
	s := newTestStore(t, table, client, clock, withReaperLease(false), withReaperPageSize(50),
		withReaperRate(readUnits, 100), withReapSeam(func(r *reapSeams) { r.wait = wait }))
	start := wait.Now()
	if _, err := s.Reap(context.Background()); err != nil {
		t.Fatal(err)
	}
	elapsed := wait.Now().Sub(start).Seconds()
	lose.mu.Lock()
	consumed := lose.consumed
	lose.mu.Unlock()
	if elapsed == 0 || consumed/elapsed > 1.1*readUnits {
		t.Errorf("DynamoDB charged %.1f RCU in %.1f s of the pass's clock: %.2f RCU/s against a cap of %v", consumed, elapsed, consumed/elapsed, readUnits)
	}
}
