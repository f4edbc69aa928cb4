package dynamostore

import (
	"context"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"
	"github.com/dynamostore/dynamostore/internal/dbtest"
)

// meter counts DynamoDB operations and the capacity units they consumed,
// from inside the SDK's middleware stack of a real client. It asks every
// request for ReturnConsumedCapacity TOTAL (DynamoDB Local honours it) and
// adds up what the responses report, so a test or benchmark sees the cost
// of the store's requests without the store doing anything for it.
type meter struct {
	mu    sync.Mutex
	usage usage
}

// usage is what a meter counted: operations by name, and read and write
// capacity units.
type usage struct {
	Calls map[string]int `json:"calls"`
	RCU   float64        `json:"rcu"`
	WCU   float64        `json:"wcu"`
}

// total returns the number of calls of every kind.
func (u usage) total() int {
	n := 0
	for _, c := range u.Calls {
		n += c
	}
	return n
}

// option installs the meter on a DynamoDB client.
func (m *meter) option(o *dynamodb.Options) {
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("meter", m.handle), middleware.Before)
	})
}

func (m *meter) handle(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	askCapacity(in.Parameters)
	out, md, err := next.HandleInitialize(ctx, in)
	rcu, wcu := consumed(out.Result)
	m.mu.Lock()
	if m.usage.Calls == nil {
		m.usage.Calls = map[string]int{}
	}
	m.usage.Calls[middleware.GetOperationName(ctx)]++
	m.usage.RCU += rcu
	m.usage.WCU += wcu
	m.mu.Unlock()
	return out, md, err
}

// take returns what was counted since the last take and starts again.
func (m *meter) take() usage {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.usage
	u.Calls = maps.Clone(u.Calls)
	if u.Calls == nil {
		u.Calls = map[string]int{}
	}
	m.usage = usage{Calls: m.usage.Calls}
	clear(m.usage.Calls)
	return u
}

// askCapacity sets ReturnConsumedCapacity TOTAL on the inputs of the
// operations the store makes.
func askCapacity(params any) {
	const total = types.ReturnConsumedCapacityTotal
	switch in := params.(type) {
	case *dynamodb.GetItemInput:
		in.ReturnConsumedCapacity = total
	case *dynamodb.PutItemInput:
		in.ReturnConsumedCapacity = total
	case *dynamodb.UpdateItemInput:
		in.ReturnConsumedCapacity = total
	case *dynamodb.DeleteItemInput:
		in.ReturnConsumedCapacity = total
	case *dynamodb.ScanInput:
		in.ReturnConsumedCapacity = total
	case *dynamodb.BatchWriteItemInput:
		in.ReturnConsumedCapacity = total
	}
}

// consumed returns the read and write units a response reports.
func consumed(result any) (rcu, wcu float64) {
	units := func(c *types.ConsumedCapacity) float64 {
		if c == nil || c.CapacityUnits == nil {
			return 0
		}
		return *c.CapacityUnits
	}
	switch out := result.(type) {
	case *dynamodb.GetItemOutput:
		return units(out.ConsumedCapacity), 0
	case *dynamodb.ScanOutput:
		return units(out.ConsumedCapacity), 0
	case *dynamodb.PutItemOutput:
		return 0, units(out.ConsumedCapacity)
	case *dynamodb.UpdateItemOutput:
		return 0, units(out.ConsumedCapacity)
	case *dynamodb.DeleteItemOutput:
		return 0, units(out.ConsumedCapacity)
	case *dynamodb.BatchWriteItemOutput:
		for i := range out.ConsumedCapacity {
			wcu += units(&out.ConsumedCapacity[i])
		}
		return 0, wcu
	}
	return 0, 0
}

// rig is a Store on a fresh table whose DynamoDB client is metered, with a
// fake clock and the reaper off. The calls test and the benchmarks use it.
type rig struct {
	tb     testing.TB
	client *dynamodb.Client
	meter  *meter
	clock  *fakeClock
	table  string
	store  *Store
}

func newRig(tb testing.TB, opts ...Option) *rig {
	tb.Helper()
	x := &rig{tb: tb, meter: &meter{}, clock: newFakeClock()}
	x.client = dbtest.Client(tb, x.meter.option)
	x.table = dbtest.NewTable(tb, x.client)
	x.store = x.newStore(opts...)
	x.meter.take()
	return x
}

// newStore returns another Store on the rig's table, client and clock.
func (x *rig) newStore(opts ...Option) *Store {
	x.tb.Helper()
	return newTestStore(x.tb, x.table, x.client, x.clock, opts...)
}

// newTestStore makes a Store on client with the test keys, the reaper off
// and the given clock, closed when the test ends.
func newTestStore(tb testing.TB, table string, client DynamoDBAPI, clock *fakeClock, opts ...Option) *Store {
	tb.Helper()
	base := []Option{WithClient(client), WithKeyPairs(testHashKey, testBlockKey), WithCleanupInterval(0), WithClock(clock.Now)}
	s, err := NewStore(context.Background(), table, append(base, opts...)...)
	if err != nil {
		tb.Fatalf("NewStore: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// create saves a new session with values through s and returns its ID and
// cookie.
func create(tb testing.TB, s *Store, values map[any]any) (string, *http.Cookie) {
	tb.Helper()
	r := request()
	sess, err := s.New(r, benchCookie)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	maps.Copy(sess.Values, values)
	w := httptest.NewRecorder()
	if err := s.Save(r, w, sess); err != nil {
		tb.Fatalf("Save: %v", err)
	}
	c := cookieOf(w, benchCookie)
	if c == nil {
		tb.Fatal("Save set no cookie")
	}
	return sess.ID, c
}

// benchCookie is the session name the calls test and benchmarks use.
const benchCookie = "s"

// referenceValues returns the reference session of the performance
// targets: a user string, an int and 1 KB of incompressible bytes (the
// same bytes every time, so item sizes and capacity are reproducible).
func referenceValues() map[any]any {
	return map[any]any{"user": "ada@example.com", "visits": 42, "blob": noise(1024)}
}

// noise returns n pseudo-random, incompressible bytes, the same for the same n.
func noise(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{}).Read(b)
	return b
}

// discardWriter is a ResponseWriter that keeps only headers, so the
// benchmarks measure the store rather than a response recorder.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

// reset forgets the headers written so far.
func (w *discardWriter) reset() { clear(w.h) }
