package dynamostore

import (
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/dynamostore/dynamostore/internal/dbtest"
	"github.com/dynamostore/dynamostore/internal/ddbmeter"
)

// rig is a Store on a fresh table whose DynamoDB client is metered, with a
// fake clock and the reaper off. The calls test and the benchmarks use it.
type rig struct {
	tb     testing.TB
	client *dynamodb.Client
	meter  *ddbmeter.Meter
	clock  *fakeClock
	table  string
	store  *Store
}

func newRig(tb testing.TB, opts ...Option) *rig {
	tb.Helper()
	x := &rig{tb: tb, meter: &ddbmeter.Meter{}, clock: newFakeClock()}
	x.client = dbtest.Client(tb, x.meter.Option)
	x.table = dbtest.NewTable(tb, x.client)
	x.store = x.newStore(opts...)
	x.meter.Take()
	return x
}

// newStore returns another Store on the rig's table, client and clock.
func (x *rig) newStore(opts ...Option) *Store {
	x.tb.Helper()
	return newTestStore(x.tb, x.table, x.client, x.clock, opts...)
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
