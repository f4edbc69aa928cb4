package dynamostore

// Benchmarks of the store against a raw aws-sdk-go-v2 call of the same item,
// in the same run. Sub-benchmarks are named op=<operation>/impl=<raw|store…>
// so that `benchstat -col /impl` prints each implementation as a ratio of
// the raw SDK call. Every benchmark also reports DynamoDB calls/op and, on
// DynamoDB Local, the read and write units it consumed (RCU/op, WCU/op).
// scripts/bench runs them; BENCHMARKS.md has the results.

import (
	"compress/gzip"
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynamostore/dynamostore/internal/dbtest"
	"github.com/dynamostore/dynamostore/internal/ddbmeter"
	"github.com/gorilla/sessions"
)

// benchTarget is what a set of benchmarks runs against: a metered client,
// a table on it and a fixed clock (so touchAfter never runs out in the
// middle of a benchmark).
type benchTarget struct {
	client *dynamodb.Client
	meter  *ddbmeter.Meter
	table  string
	clock  *fakeClock
	// capacity says whether the responses carry consumed capacity; canned
	// responses do not.
	capacity bool
	// record, when set, is called with true before the session a row
	// loads is written and with false after.
	record func(on bool)
}

// benchOp is one row of the benchmark table: an operation done the raw
// SDK's way and the store's way.
type benchOp struct {
	op string
	// raw is the aws-sdk-go-v2 baseline of the row.
	raw func(b *testing.B, t *benchTarget, item *benchItem) func(i int)
	// store is the store's way; opts configure its Store.
	store func(b *testing.B, s *Store, item *benchItem) func(i int)
	opts  []Option
}

// benchItem is a session saved through the store, loaded by the raw and
// store benchmarks alike.
type benchItem struct {
	values map[any]any
	key    string       // storage key
	cookie *http.Cookie // its cookie
	data   []byte       // its values serialized with gob, as the raw PutItem writes them
}

// newItem saves a session for a row through s; with canned responses,
// it becomes what GetItem returns.
func (t *benchTarget) newItem(b *testing.B, s *Store, values map[any]any) *benchItem {
	if t.record != nil {
		t.record(true)
		defer t.record(false)
	}
	return newBenchItem(b, s, values)
}

func newBenchItem(b *testing.B, s *Store, values map[any]any) *benchItem {
	b.Helper()
	id, c := create(b, s, values)
	data, err := GobSerializer{}.Serialize(values)
	if err != nil {
		b.Fatal(err)
	}
	return &benchItem{values: values, key: storageKey(id), cookie: c, data: data}
}

// rawGet is a GetItem of the item, as a hand-written store would make it.
func rawGet(consistent bool) func(*testing.B, *benchTarget, *benchItem) func(int) {
	return func(b *testing.B, t *benchTarget, item *benchItem) func(int) {
		ctx := context.Background()
		return func(int) {
			out, err := t.client.GetItem(ctx, &dynamodb.GetItemInput{
				TableName:      aws.String(t.table),
				Key:            map[string]types.AttributeValue{attrID: &types.AttributeValueMemberS{Value: item.key}},
				ConsistentRead: aws.Bool(consistent),
			})
			if err != nil || out.Item == nil {
				b.Fatalf("GetItem: %v (item found: %v)", err, err == nil && out.Item != nil)
			}
		}
	}
}

// rawGetThen is a GetItem of the item followed by write of its values.
func rawGetThen(write func(ctx context.Context, b *testing.B, t *benchTarget, key string, data []byte)) func(*testing.B, *benchTarget, *benchItem) func(int) {
	return func(b *testing.B, t *benchTarget, item *benchItem) func(int) {
		get := rawGet(true)(b, t, item)
		ctx := context.Background()
		return func(i int) {
			get(i)
			write(ctx, b, t, item.key, item.data)
		}
	}
}

// rawPut is a PutItem of a whole session item under key.
func rawPut(ctx context.Context, b *testing.B, t *benchTarget, key string, data []byte) {
	rawPutItem(ctx, b, t, key, data, false)
}

// rawPutItem is a PutItem of a whole session item under key, only if no
// item has the key when ifNew is set.
func rawPutItem(ctx context.Context, b *testing.B, t *benchTarget, key string, data []byte, ifNew bool) {
	now := t.clock.Now()
	in := &dynamodb.PutItemInput{
		TableName: aws.String(t.table),
		Item:      rawItem(key, data, now),
	}
	if ifNew {
		in.ConditionExpression = aws.String("attribute_not_exists(#i)")
		in.ExpressionAttributeNames = map[string]string{"#i": attrID}
	}
	if _, err := t.client.PutItem(ctx, in); err != nil {
		b.Fatalf("PutItem: %v", err)
	}
}

// rawItem is a whole session item as the raw writes store it.
func rawItem(key string, data []byte, now time.Time) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		attrID:       &types.AttributeValueMemberS{Value: key},
		attrValues:   &types.AttributeValueMemberB{Value: data},
		attrExpires:  &types.AttributeValueMemberN{Value: strconv.FormatInt(now.Add(defaultTTL).Unix(), 10)},
		attrModified: &types.AttributeValueMemberN{Value: strconv.FormatInt(now.UnixMilli(), 10)},
	}
}

// rawNew writes a new session item under a fresh key per iteration.
func rawNew(ifNew bool) func(*testing.B, *benchTarget, *benchItem) func(int) {
	return func(b *testing.B, t *benchTarget, item *benchItem) func(int) {
		ctx := context.Background()
		prefix, err := newID() // keys of earlier runs must not collide
		if err != nil {
			b.Fatal(err)
		}
		return func(i int) {
			rawPutItem(ctx, b, t, prefix+strconv.Itoa(i), item.data, ifNew)
		}
	}
}

// storeNew creates a session with the item's values and saves it.
func storeNew(b *testing.B, s *Store, item *benchItem) func(int) {
	next := storeRequest(nil)
	w := &discardWriter{h: http.Header{}}
	return func(int) {
		r := next()
		w.reset()
		sess, err := s.Get(r, benchCookie)
		if err != nil {
			b.Fatal(err)
		}
		maps.Copy(sess.Values, item.values)
		if err := s.Save(r, w, sess); err != nil {
			b.Fatalf("Save: %v", err)
		}
	}
}

// storeRequest returns a function that makes a fresh request carrying c
// (none when c is nil) for each iteration: gorilla's registry and the
// store's load state attach to the request, as in a server.
func storeRequest(c *http.Cookie) func() *http.Request {
	tmpl := httptest.NewRequest(http.MethodGet, "/", nil)
	if c != nil {
		tmpl.AddCookie(c)
	}
	return func() *http.Request {
		r := new(http.Request)
		*r = *tmpl
		return r
	}
}

// storeLoad loads the item's session, then calls then (if not nil) on it.
func storeLoad(then func(b *testing.B, s *Store, r *http.Request, w *discardWriter, i int, sess *sessions.Session)) func(*testing.B, *Store, *benchItem) func(int) {
	return func(b *testing.B, s *Store, item *benchItem) func(int) {
		next := storeRequest(item.cookie)
		w := &discardWriter{h: http.Header{}}
		return func(i int) {
			r := next()
			sess, err := s.Get(r, benchCookie)
			if err != nil || sess.IsNew {
				b.Fatalf("Get: %v (new: %v)", err, sess.IsNew)
			}
			if then != nil {
				w.reset()
				then(b, s, r, w, i, sess)
			}
		}
	}
}

// saveLoaded saves the session loaded in r.
func saveLoaded(b *testing.B, s *Store, r *http.Request, w *discardWriter, _ int, sess *sessions.Session) {
	if err := s.Save(r, w, sess); err != nil {
		b.Fatalf("Save: %v", err)
	}
}

// changeAndSave counts one more visit than stored (always a change, for
// gob and JSON) and saves the session.
func changeAndSave(b *testing.B, s *Store, r *http.Request, w *discardWriter, i int, sess *sessions.Session) {
	switch v := sess.Values["visits"].(type) {
	case int:
		sess.Values["visits"] = v + 1
	case float64:
		sess.Values["visits"] = v + 1
	}
	saveLoaded(b, s, r, w, i, sess)
}

// rawUpdate is the conditional UpdateItem a store makes to change a live
// session: set values, expiry and last-written time if the item exists and
// has not expired.
func rawUpdate(ctx context.Context, b *testing.B, t *benchTarget, key string, data []byte) {
	now := t.clock.Now()
	_, err := t.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(t.table),
		Key:                      map[string]types.AttributeValue{attrID: &types.AttributeValueMemberS{Value: key}},
		UpdateExpression:         aws.String("SET #v = :v, #e = :e, #m = :m"),
		ConditionExpression:      aws.String("attribute_exists(#i) AND #e > :now"),
		ExpressionAttributeNames: map[string]string{"#i": attrID, "#v": attrValues, "#e": attrExpires, "#m": attrModified},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":v":   &types.AttributeValueMemberB{Value: data},
			":e":   &types.AttributeValueMemberN{Value: strconv.FormatInt(now.Add(defaultTTL).Unix(), 10)},
			":m":   &types.AttributeValueMemberN{Value: strconv.FormatInt(now.UnixMilli(), 10)},
			":now": &types.AttributeValueMemberN{Value: strconv.FormatInt(now.Unix(), 10)},
		},
	})
	if err != nil {
		b.Fatalf("UpdateItem: %v", err)
	}
}

// benchOps are the rows of the target table, plus eventually
// consistent reads.
var benchOps = []benchOp{
	{
		op:    "load",
		raw:   rawGet(true),
		store: storeLoad(nil),
	},
	{
		op:    "load-eventual",
		raw:   rawGet(false),
		store: storeLoad(nil),
		opts:  []Option{WithConsistentRead(false)},
	},
	{
		op:    "load+unchanged",
		raw:   rawGet(true),
		store: storeLoad(saveLoaded),
	},
	{
		op:    "load+changed",
		raw:   rawGetThen(rawPut),
		store: storeLoad(changeAndSave),
	},
	{
		// The store's changed save is a conditional UpdateItem (it must
		// neither bring back a deleted session nor drop other attributes);
		// this row's raw side makes the same UpdateItem, to separate the
		// store's own cost from DynamoDB's price for an update.
		op:    "load+changed-vs-update",
		raw:   rawGetThen(rawUpdate),
		store: storeLoad(changeAndSave),
	},
	{
		op:    "new",
		raw:   rawNew(false),
		store: storeNew,
	},
	{
		// The store creates a session with a PutItem conditioned on
		// attribute_not_exists, so that a new ID can never overwrite a
		// session; this row's raw side makes the same conditional PutItem.
		op:    "new-vs-conditional",
		raw:   rawNew(true),
		store: storeNew,
	},
}

// storeImpl is a store configuration benchmarked next to the raw SDK.
type storeImpl struct {
	name string
	opts []Option
}

// runBenchOps runs every row of ops against t: the raw baseline, then each
// store configuration, on the item values.
func runBenchOps(b *testing.B, t *benchTarget, ops []benchOp, impls []storeImpl, values map[any]any) {
	for _, op := range ops {
		b.Run("op="+op.op, func(b *testing.B) {
			for _, impl := range append([]storeImpl{{name: "raw"}}, impls...) {
				s := newTestStore(b, t.table, t.client, t.clock, append(slices.Clone(impl.opts), op.opts...)...)
				item := t.newItem(b, s, values)
				b.Run("impl="+impl.name, func(b *testing.B) {
					var run func(int)
					if impl.name == "raw" {
						run = op.raw(b, t, item)
					} else {
						run = op.store(b, s, item)
					}
					measure(b, t, run)
				})
			}
		})
	}
}

// measure runs b.N iterations of run and reports DynamoDB calls and
// capacity units per iteration.
func measure(b *testing.B, t *benchTarget, run func(int)) {
	b.ReportAllocs()
	t.meter.Take()
	b.ResetTimer()
	for i := range b.N {
		run(i)
	}
	b.StopTimer()
	u := t.meter.Take()
	n := float64(b.N)
	b.ReportMetric(float64(u.Total())/n, "calls/op")
	if t.capacity {
		b.ReportMetric(u.RCU/n, "RCU/op")
		b.ReportMetric(u.WCU/n, "WCU/op")
	}
}

// dynamoTarget makes a table on the DynamoDB that TestMain set up.
func dynamoTarget(b *testing.B) *benchTarget {
	t := &benchTarget{meter: &ddbmeter.Meter{}, clock: newFakeClock(), capacity: true}
	t.client = dbtest.Client(b, t.meter.Option)
	t.table = dbtest.NewTable(b, t.client)
	return t
}

// BenchmarkDynamoDB compares the store with raw SDK calls against DynamoDB
// (Local) on the reference session: a user string, an int and 1 KB of
// bytes. impl=store is the default configuration (gob); impl=store-json
// uses JSONSerializer.
func BenchmarkDynamoDB(b *testing.B) {
	runBenchOps(b, dynamoTarget(b), benchOps, serializerImpls, referenceValues())
}

// serializerImpls are the store with each Serializer of the package.
var serializerImpls = []storeImpl{
	{name: "store"},
	{name: "store-json", opts: []Option{WithSerializer(JSONSerializer{})}},
}

// selectOps returns the rows of benchOps with the given names.
func selectOps(names ...string) []benchOp {
	var ops []benchOp
	for _, op := range benchOps {
		if slices.Contains(names, op.op) {
			ops = append(ops, op)
		}
	}
	return ops
}

// BenchmarkDynamoDBLarge compares writes of large sessions (10 KB and
// 100 KB of gob) with and without compression, at gzip's fastest level
// (store-gzip, NewCompressedSerializer) and its default one: the write units
// are the point.
func BenchmarkDynamoDBLarge(b *testing.B) {
	t := dynamoTarget(b)
	ops := selectOps("new", "new-vs-conditional", "load+changed", "load+changed-vs-update")
	best, err := newCompressedSerializer(nil, 4096, gzip.DefaultCompression)
	if err != nil {
		b.Fatal(err)
	}
	for _, size := range []int{10 << 10, 100 << 10} {
		b.Run(fmt.Sprintf("size=%dKB", size>>10), func(b *testing.B) {
			runBenchOps(b, t, ops, []storeImpl{
				{name: "store"},
				{name: "store-gzip", opts: []Option{WithSerializer(newCompressed(nil, 4096))}},
				{name: "store-gzip-default", opts: []Option{WithSerializer(best)}},
			}, largeSession(size))
		})
	}
}

// BenchmarkPairedDynamoDB times the raw SDK call and the store's operation
// alternately, call by call, and reports the median of each and their
// ratio. On a shared, noisy machine this is the fairer comparison: both
// sides see the same moments of load, where the plain rows of
// BenchmarkDynamoDB run one after the other.
func BenchmarkPairedDynamoDB(b *testing.B) {
	runPaired(b, dynamoTarget(b), benchOps, serializerImpls, referenceValues())
}

// runPaired runs each row of ops as raw and store calls in turn (raw first
// on even iterations, the store first on odd ones) and reports raw-µs and
// store-µs, the median duration of each side, and ratio, store over raw.
func runPaired(b *testing.B, t *benchTarget, ops []benchOp, impls []storeImpl, values map[any]any) {
	for _, op := range ops {
		for _, impl := range impls {
			b.Run("op="+op.op+"/impl="+impl.name, func(b *testing.B) {
				// Each side has its own session: the raw rows write gob.
				rawItem := newBenchItem(b, newTestStore(b, t.table, t.client, t.clock, op.opts...), values)
				s := newTestStore(b, t.table, t.client, t.clock, append(slices.Clone(impl.opts), op.opts...)...)
				item := t.newItem(b, s, values)
				raw, store := op.raw(b, t, rawItem), op.store(b, s, item)
				rawTimes := make([]time.Duration, 0, b.N)
				storeTimes := make([]time.Duration, 0, b.N)
				timed := func(run func(int), i int, into *[]time.Duration) {
					began := time.Now()
					run(i)
					*into = append(*into, time.Since(began))
				}
				b.ResetTimer()
				for i := range b.N {
					if i%2 == 0 {
						timed(raw, i, &rawTimes)
						timed(store, i, &storeTimes)
					} else {
						timed(store, i, &storeTimes)
						timed(raw, i, &rawTimes)
					}
				}
				b.StopTimer()
				r, st := median(rawTimes), median(storeTimes)
				b.ReportMetric(float64(r)/1e3, "raw-µs")
				b.ReportMetric(float64(st)/1e3, "store-µs")
				b.ReportMetric(float64(st)/float64(r), "ratio")
			})
		}
	}
}

// median returns the median of ds, which it sorts.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// rawLivePut is a PutItem of the whole item that, like the store's
// update, writes only while the item exists, has not expired and has no
// owner attribute that the put would drop.
func rawLivePut(ctx context.Context, b *testing.B, t *benchTarget, key string, data []byte) {
	now := t.clock.Now()
	_, err := t.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                aws.String(t.table),
		Item:                     rawItem(key, data, now),
		ConditionExpression:      aws.String("attribute_exists(#i) AND #e > :now AND attribute_not_exists(#o)"),
		ExpressionAttributeNames: map[string]string{"#i": attrID, "#e": attrExpires, "#o": attrOwner},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":now": &types.AttributeValueMemberN{Value: strconv.FormatInt(now.Unix(), 10)},
		},
	})
	if err != nil {
		b.Fatalf("PutItem: %v", err)
	}
}

// BenchmarkPairedWrites prices, with raw SDK calls only, the conditions a
// store must put on a write to a live session: a plain PutItem (which
// would bring back a session deleted meanwhile), the same PutItem
// conditioned on the item being live, and the conditional UpdateItem the
// store makes. Each pair alternates call by call, in turn first; ratio is
// the second's median over the first's.
func BenchmarkPairedWrites(b *testing.B) {
	t := dynamoTarget(b)
	item := newBenchItem(b, newTestStore(b, t.table, t.client, t.clock), referenceValues())
	type write func(context.Context, *testing.B, *benchTarget, string, []byte)
	writes := map[string]write{"put": rawPut, "live-put": rawLivePut, "update": rawUpdate}
	for _, pair := range [][2]string{{"put", "live-put"}, {"put", "update"}, {"live-put", "update"}} {
		b.Run(pair[0]+"/vs="+pair[1], func(b *testing.B) {
			ctx := context.Background()
			first := make([]time.Duration, 0, b.N)
			second := make([]time.Duration, 0, b.N)
			timed := func(w write, into *[]time.Duration) {
				began := time.Now()
				w(ctx, b, t, item.key, item.data)
				*into = append(*into, time.Since(began))
			}
			for i := range b.N {
				if i%2 == 0 {
					timed(writes[pair[0]], &first)
					timed(writes[pair[1]], &second)
				} else {
					timed(writes[pair[1]], &second)
					timed(writes[pair[0]], &first)
				}
			}
			b.ReportMetric(float64(median(second))/float64(median(first)), "ratio")
		})
	}
}
