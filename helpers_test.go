package dynamostore

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/middleware"
	"github.com/dynamostore/dynamostore/internal/dbtest"
	"github.com/gorilla/sessions"
)

func TestMain(m *testing.M) {
	os.Exit(dbtest.Main(m))
}

var (
	testHashKey  = []byte("0123456789abcdef0123456789abcdef")
	testBlockKey = []byte("fedcba9876543210fedcba9876543210")
)

// callCounter counts DynamoDB operations by name, from inside the SDK's
// middleware stack, so tests can assert how many calls a store operation
// made against the real client.
type callCounter struct {
	mu    sync.Mutex
	calls map[string]int
}

func (c *callCounter) option(o *dynamodb.Options) {
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("callCounter",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				c.mu.Lock()
				if c.calls == nil {
					c.calls = map[string]int{}
				}
				c.calls[middleware.GetOperationName(ctx)]++
				c.mu.Unlock()
				return next.HandleInitialize(ctx, in)
			}), middleware.Before)
	})
}

// take returns the counts since the last take and resets them.
func (c *callCounter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.calls
	c.calls = nil
	if m == nil {
		m = map[string]int{}
	}
	return m
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// fakeClock is a settable clock for expiry and touchAfter tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now().Truncate(time.Second)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is one test's store on a fresh table, with its call counter and clock.
type env struct {
	t      *testing.T
	store  *Store
	client *dynamodb.Client
	calls  *callCounter
	clock  *fakeClock
	table  string
}

// newEnv makes a table and a Store on it. The reaper is off unless opts turn
// it on; the clock is a fakeClock.
func newEnv(t *testing.T, opts ...Option) *env {
	t.Helper()
	e := &env{t: t, calls: &callCounter{}, clock: newFakeClock()}
	e.client = dbtest.Client(t, e.calls.option)
	e.table = dbtest.NewTable(t, e.client)
	e.store = newTestStore(t, e.table, e.client, e.clock, opts...)
	e.calls.take()
	return e
}

// newTestStore makes a Store on client with the test keys, the reaper off
// and the given clock, closed when the test ends.
func newTestStore(tb testing.TB, table string, client dynamoAPI, clock *fakeClock, opts ...Option) *Store {
	tb.Helper()
	base := []Option{withAPI(client), WithKeyPairs(testHashKey, testBlockKey), withCleanupInterval(0), withClock(clock.Now)}
	s, err := NewStore(context.Background(), table, append(base, opts...)...)
	if err != nil {
		tb.Fatalf("NewStore: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// request returns a GET request carrying the given cookies.
func request(cookies ...*http.Cookie) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	for _, c := range cookies {
		r.AddCookie(c)
	}
	return r
}

// cookieOf returns the named cookie a response set, or nil.
func cookieOf(w *httptest.ResponseRecorder, name string) *http.Cookie {
	for _, c := range w.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// saveNew saves a new session named name with values through s and returns the cookie it set and the session.
func saveNew(tb testing.TB, s *Store, name string, values map[any]any) (*http.Cookie, *sessions.Session) {
	tb.Helper()
	r := request()
	sess, _ := s.New(r, name)
	for k, v := range values {
		sess.Values[k] = v
	}
	w := httptest.NewRecorder()
	if err := sess.Save(r, w); err != nil {
		tb.Fatal(err)
	}
	return cookieOf(w, name), sess
}

// saveMaxAge saves a new session with values and the given MaxAge through the env's store: its cookie, the session and Save's error.
func (e *env) saveMaxAge(maxAge int, values map[any]any) (*http.Cookie, *sessions.Session, error) {
	r := request()
	sess, _ := e.store.New(r, "s")
	sess.Options.MaxAge = maxAge
	for k, v := range values {
		sess.Values[k] = v
	}
	w := httptest.NewRecorder()
	err := sess.Save(r, w)
	return cookieOf(w, "s"), sess, err
}

// save creates a session with values through the store and returns its
// cookie.
func (e *env) save(name string, values map[any]any) *http.Cookie {
	e.t.Helper()
	r := request()
	sess, err := e.store.Get(r, name)
	if err != nil {
		e.t.Fatalf("Get: %v", err)
	}
	for k, v := range values {
		sess.Values[k] = v
	}
	w := httptest.NewRecorder()
	if err := sess.Save(r, w); err != nil {
		e.t.Fatalf("Save: %v", err)
	}
	c := cookieOf(w, name)
	if c == nil {
		e.t.Fatalf("Save set no %q cookie", name)
	}
	return c
}

// load gets the named session in a new request carrying cookie.
func (e *env) load(name string, cookie *http.Cookie) (*http.Request, *sessions.Session, error) {
	r := request(cookie)
	s, err := e.store.Get(r, name)
	return r, s, err
}

// Reaper options one field at a time, for tests that combine several.

func withCleanupInterval(d time.Duration) Option {
	return func(s *settings) error {
		if d == 0 {
			d = -1
		}
		s.reap.Interval = d
		return s.reap.validate()
	}
}

func withReaperSegments(n int) Option {
	return func(s *settings) error { s.reap.Segments = n; return s.reap.validate() }
}

func withReaperRate(read, write float64) Option {
	return func(s *settings) error { s.reap.ReadUnits, s.reap.WriteUnits = read, write; return s.reap.validate() }
}

func withReaperPageSize(n int) Option {
	return func(s *settings) error { s.reap.PageSize = n; return s.reap.validate() }
}

func withReaperBatchDelete(on bool) Option {
	return func(s *settings) error { s.reap.BatchDelete = on; return nil }
}

func withReaperLease(on bool) Option {
	return func(s *settings) error { s.reap.NoLease = !on; return nil }
}

func withReaperLeaseDuration(d time.Duration) Option {
	return func(s *settings) error { s.reap.LeaseDuration = d; return s.reap.validate() }
}

// withReaperGrace sets the grace; 0 is none.
func withReaperGrace(d time.Duration) Option {
	return func(s *settings) error {
		if d == 0 {
			d = -1
		}
		s.reap.Grace = d
		return nil
	}
}

func withReapHook(f func(ReapStats, error)) Option {
	return func(s *settings) error { s.reap.OnPass = f; return nil }
}

// withReapSeam sets the reaper's test seams.
func withReapSeam(f func(*reapSeams)) Option {
	return func(s *settings) error {
		if s.reap.seams == nil {
			s.reap.seams = &reapSeams{}
		}
		f(s.reap.seams)
		return nil
	}
}

// newCompressed is NewCompressedSerializer at the default level.
func newCompressed(inner Serializer, threshold int) *compressedSerializer {
	c, err := newCompressedSerializer(inner, threshold, 0)
	if err != nil {
		panic(err)
	}
	return c
}

// fakeAPI is a DynamoDB client that must not be called.
type fakeAPI struct{ dynamoAPI }

// packageGoroutines returns the stacks of the goroutines that are running
// code of this package outside its tests (a reaper pass, say): after
// Close, there must be none.
func packageGoroutines() []string {
	buf := make([]byte, 64<<10)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var found []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		lines := strings.Split(g, "\n")
		for i := 1; i+1 < len(lines); i += 2 {
			fn, file := lines[i], strings.TrimSpace(lines[i+1])
			if strings.HasPrefix(fn, "github.com/dynamostore/dynamostore.") && !strings.Contains(file, "_test.go:") {
				found = append(found, g)
				break
			}
		}
	}
	return found
}
