package dynamostore

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynamostore/dynamostore/internal/dbtest"
	"github.com/gorilla/sessions"
)

// TestSignOutAfterFailedLoad: a sign-out in a request whose load failed
// deletes the row the cookie names, or fails saying so; it never reports
// success while the row lives.
func TestSignOutAfterFailedLoad(t *testing.T) {
	clean := dbtest.Client(t)
	table := dbtest.NewTable(t, clean)
	signOuts := []struct {
		name string
		do   func(s *Store, r *http.Request, w http.ResponseWriter, sess *sessions.Session) error
	}{
		{"Save with MaxAge -1", func(_ *Store, r *http.Request, w http.ResponseWriter, sess *sessions.Session) error {
			sess.Options.MaxAge = -1
			return sess.Save(r, w)
		}},
		{"Delete", func(s *Store, r *http.Request, w http.ResponseWriter, sess *sessions.Session) error {
			return s.Delete(r, w, sess)
		}},
	}
	loads := []struct {
		name string
		// fail makes the load fail; deleteFails says whether the delete
		// fails too.
		fail        func(fe *faultEnv)
		deleteFails bool
		wantLoadErr error
	}{
		{"throttled read", func(fe *faultEnv) { fe.ft.arm("GetItem", faultThrottling, -1) }, false, nil},
		{"network error", func(fe *faultEnv) { fe.ft.arm("GetItem", faultResetBefore, -1) }, false, nil},
		{"outage", func(fe *faultEnv) { fe.ft.arm("*", faultPTEE, -1) }, true, nil},
		{"undecodable row", nil, false, ErrDecode},
	}
	for _, so := range signOuts {
		for _, ld := range loads {
			t.Run(so.name+"/"+ld.name, func(t *testing.T) {
				fe := newFaultEnv(t, clean, table)
				var c *http.Cookie
				var saved *sessions.Session
				if ld.fail == nil {
					// A row the Store cannot decode: written as JSON, read
					// as gob.
					js, err := NewStore(context.Background(), table, withAPI(clean), WithKeyPairs(testHashKey, testBlockKey),
						withCleanupInterval(0), WithSerializer(JSONSerializer{}))
					if err != nil {
						t.Fatal(err)
					}
					defer js.Close()
					c, saved = saveNew(t, js, "s", map[any]any{"user": "ada"})
				} else {
					c, saved = saveNew(t, fe.ref, "s", map[any]any{"user": "ada"})
					ld.fail(fe)
				}
				id := saved.ID
				defer fe.ft.disarm()
				r := request(c)
				sess, err := fe.faulty.Get(r, "s")
				if err == nil {
					t.Fatal("load did not fail")
				}
				if ld.wantLoadErr != nil && !errors.Is(err, ld.wantLoadErr) {
					t.Fatalf("load = %v; want %v", err, ld.wantLoadErr)
				}
				w := httptest.NewRecorder()
				err = so.do(fe.faulty, r, w, sess)
				fe.ft.disarm()
				item := rawItemByKey(t, clean, table, storageKey(id))
				if ld.deleteFails {
					if !errors.Is(err, ErrLoadFailed) {
						t.Fatalf("sign-out during an outage = %v; want ErrLoadFailed", err)
					}
					if item == nil {
						t.Fatal("the row is gone although every call failed")
					}
					if len(w.Result().Cookies()) != 0 {
						t.Fatal("a failed sign-out set a cookie")
					}
					return
				}
				if err != nil {
					t.Fatalf("sign-out = %v; want nil", err)
				}
				if item != nil {
					t.Fatal("sign-out reported success but the row is still stored")
				}
				if c := cookieOf(w, "s"); c == nil || c.MaxAge >= 0 {
					t.Fatalf("sign-out set cookie %v; want it expired", c)
				}
			})
		}
	}
}

// TestHugeMaxAge: a MaxAge beyond what a time.Duration holds is treated as
// 400 days, the longest cookie lifetime browsers keep, so the row written
// still loads; as a Store default it is refused.
func TestHugeMaxAge(t *testing.T) {
	for _, age := range []int{maxCookieAge + 1, 1 << 34, 1 << 40, 1<<62 - 1} {
		e := newEnv(t)
		c, _, err := e.saveMaxAge(age, map[any]any{"n": 1})
		if err != nil {
			t.Fatalf("MaxAge %d: Save = %v", age, err)
		}
		if c.MaxAge != maxCookieAge {
			t.Errorf("MaxAge %d: cookie Max-Age %d; want %d", age, c.MaxAge, maxCookieAge)
		}
		if !c.Expires.After(time.Now()) {
			t.Errorf("MaxAge %d: cookie expires %v, in the past", age, c.Expires)
		}
		_, loaded, err := e.load("s", c)
		if err != nil || loaded.IsNew || loaded.Values["n"] != 1 {
			t.Fatalf("MaxAge %d: the saved session does not load (%v)", age, err)
		}
		e.clock.Advance(399 * 24 * time.Hour)
		if _, loaded, err := e.load("s", c); err != nil || loaded.IsNew {
			t.Fatalf("MaxAge %d: session gone after 399 days (%v)", age, err)
		}
		e.clock.Advance(2 * 24 * time.Hour)
		if _, loaded, _ := e.load("s", c); !loaded.IsNew {
			t.Fatalf("MaxAge %d: session still served after 401 days", age)
		}
	}
	client := dbtest.Client(t)
	for _, opt := range []Option{
		WithTTL(401 * 24 * time.Hour),
		WithTTL(1 << 62),
		WithCookieOptions(sessions.Options{Path: "/", MaxAge: 1 << 40}),
	} {
		if _, err := NewStore(context.Background(), "sessions", withAPI(client), WithKeyPairs(testHashKey), opt); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("NewStore with a lifetime over 400 days = %v; want ErrInvalidOption", err)
		}
	}
	e := newEnv(t)
	e.store.MaxAge(1 << 40)
	c := e.save("s", map[any]any{"n": 1})
	if _, loaded, err := e.load("s", c); err != nil || loaded.IsNew {
		t.Fatalf("after MaxAge(1<<40) a saved session does not load (%v)", err)
	}
}

// TestPerSessionMaxAge: a session's own MaxAge, longer or shorter than the
// Store's, decides how long its cookie signature is accepted.
func TestPerSessionMaxAge(t *testing.T) {
	const hour = 3600
	tests := []struct {
		name      string
		maxAge    int // the session's; the Store's is an hour
		signedAgo time.Duration
		loads     bool
	}{
		{"remember me, signed 2 hours ago", 30 * 24 * hour, 2 * time.Hour, true},
		{"remember me, signed 29 days ago", 30 * 24 * hour, 29 * 24 * time.Hour, true},
		{"remember me, signed 31 days ago", 30 * 24 * hour, 31 * 24 * time.Hour, false},
		{"store's age, signed 50 minutes ago", 0, 50 * time.Minute, true},
		{"store's age, signed 2 hours ago", 0, 2 * time.Hour, false},
		{"short session, signed 10 minutes ago", 60, 10 * time.Minute, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, WithTTL(time.Hour))
			r := request()
			sess, _ := e.store.Get(r, "s")
			if tt.maxAge != 0 {
				sess.Options.MaxAge = tt.maxAge
			}
			sess.Values["user"] = "ada"
			w := httptest.NewRecorder()
			if err := sess.Save(r, w); err != nil {
				t.Fatal(err)
			}
			old := &http.Cookie{Name: "s", Value: signedAt(t, testHashKey, testBlockKey, "s", sess.ID, time.Now().Add(-tt.signedAgo))}
			_, loaded, err := e.load("s", old)
			if tt.loads {
				if err != nil || loaded.IsNew || loaded.Values["user"] != "ada" {
					t.Fatalf("cookie signed %v ago: %v, new %t; want the session", tt.signedAgo, err, loaded.IsNew)
				}
				return
			}
			if !errors.Is(err, ErrInvalidCookie) || !loaded.IsNew {
				t.Fatalf("cookie signed %v ago: %v, new %t; want ErrInvalidCookie and a fresh session", tt.signedAgo, err, loaded.IsNew)
			}
		})
	}
}

// TestSetOwnerEmpty: an empty owner removes the stored one.
func TestSetOwnerEmpty(t *testing.T) {
	e := ownerEnv(t)
	c := e.signIn("ada")
	r, sess, err := e.load("s", c)
	if err != nil {
		t.Fatal(err)
	}
	e.store.SetOwner(r, sess, "")
	if err := sess.Save(r, httptest.NewRecorder()); err != nil {
		t.Fatal(err)
	}
	if owner := e.storedOwner(sess.ID); owner != nil {
		t.Fatalf("owner attribute still stored: %v", owner)
	}
	if n, err := e.store.RevokeOwner(context.Background(), "ada"); err != nil || n != 0 {
		t.Fatalf("RevokeOwner = %d, %v; want 0 sessions", n, err)
	}
	if _, sess, err := e.load("s", c); err != nil || sess.IsNew {
		t.Fatalf("session without an owner was revoked (%v)", err)
	}
	// Unchanged values keep the owner as it is.
	c = e.signIn("bob")
	r, sess, _ = e.load("s", c)
	sess.Values["n"] = 1
	if err := sess.Save(r, httptest.NewRecorder()); err != nil {
		t.Fatal(err)
	}
	if n, err := e.store.RevokeOwner(context.Background(), "bob"); err != nil || n != 1 {
		t.Fatalf("RevokeOwner(bob) = %d, %v; want 1", n, err)
	}
}

// TestTouchAfterAgainstLifetime: a touch interval longer than half the
// session lifetime is refused at construction, and capped for a session
// whose own MaxAge is shorter.
func TestTouchAfterAgainstLifetime(t *testing.T) {
	client := dbtest.Client(t)
	table := dbtest.NewTable(t, client)
	tests := []struct {
		name string
		opts []Option
		ok   bool
	}{
		{"hour against 10-minute MaxAge", []Option{WithTouchAfter(time.Hour), WithCookieOptions(sessions.Options{MaxAge: 600})}, false},
		{"hour against 10-minute TTL", []Option{WithTouchAfter(time.Hour), WithTTL(10 * time.Minute)}, false},
		{"hour against browser-session cookie, TTL 10 minutes", []Option{WithTouchAfter(time.Hour), WithTTL(10 * time.Minute), WithCookieOptions(sessions.Options{})}, false},
		{"6 minutes against 10-minute MaxAge", []Option{WithTouchAfter(6 * time.Minute), WithCookieOptions(sessions.Options{MaxAge: 600})}, false},
		{"5 minutes against 10-minute MaxAge", []Option{WithTouchAfter(5 * time.Minute), WithCookieOptions(sessions.Options{MaxAge: 600})}, true},
		{"default against 1-minute TTL", []Option{WithTTL(time.Minute)}, true},
		{"zero against 1-second TTL", []Option{WithTouchAfter(0), WithTTL(time.Second)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewStore(context.Background(), table, append([]Option{withAPI(client), WithKeyPairs(testHashKey), withCleanupInterval(0)}, tt.opts...)...)
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				s.Close()
				return
			}
			if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "touchAfter") {
				t.Fatalf("NewStore = %v; want ErrInvalidOption naming touchAfter", err)
			}
		})
	}

	// A 4-second session on a Store touching every 10 seconds is touched
	// after 2 seconds, so it outlives an active user's pauses.
	e := newEnv(t, WithTouchAfter(10*time.Second))
	c, _, err := e.saveMaxAge(4, map[any]any{"n": 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		e.clock.Advance(3 * time.Second)
		r, sess, err := e.load("s", c)
		if err != nil || sess.IsNew {
			t.Fatalf("request %d, 3 s after the last: session gone (%v)", i, err)
		}
		sess.Options.MaxAge = 4
		e.calls.take()
		w := httptest.NewRecorder()
		if err := sess.Save(r, w); err != nil {
			t.Fatal(err)
		}
		if got := e.calls.take(); got["UpdateItem"] != 1 {
			t.Fatalf("request %d: Save made %v; want the expiry extended", i, got)
		}
		c = cookieOf(w, "s")
	}
}

// TestFailedRegenerateKeepsSession: after a Regenerate that failed, the
// session saves as it would have before, with optimistic locking too.
func TestFailedRegenerateKeepsSession(t *testing.T) {
	clean := dbtest.Client(t)
	table := dbtest.NewTable(t, clean)
	for _, locking := range []bool{false, true} {
		for _, op := range []string{"PutItem", "DeleteItem"} {
			t.Run(op+map[bool]string{true: "/locking", false: ""}[locking], func(t *testing.T) {
				fe := newFaultEnv(t, clean, table, WithOptimisticLocking(locking))
				c := fe.create(map[any]any{"n": 1})
				r := request(c)
				sess, err := fe.faulty.Get(r, "s")
				if err != nil {
					t.Fatal(err)
				}
				oldID := sess.ID
				sess.Values["user"] = "ada"
				fe.ft.arm(op, faultThrottling, -1)
				w := httptest.NewRecorder()
				if err := fe.faulty.Regenerate(r, w, sess); err == nil {
					t.Fatal("Regenerate under a persistent fault succeeded")
				}
				fe.ft.disarm()
				if sess.ID != oldID {
					t.Fatal("a failed Regenerate changed the session ID")
				}
				if len(w.Result().Cookies()) != 0 {
					t.Fatalf("a failed Regenerate set %v", w.Result().Cookies())
				}
				sess.Values["n"] = 2
				w = httptest.NewRecorder()
				if err := sess.Save(r, w); err != nil {
					t.Fatalf("Save after a failed Regenerate = %v; want nil", err)
				}
				if got := fe.stored(c); got["n"] != 2 || got["user"] != "ada" {
					t.Fatalf("stored %v; want n=2 user=ada under the old cookie", got)
				}
				// And the next Regenerate works.
				if err := fe.faulty.Regenerate(r, w, sess); err != nil {
					t.Fatal(err)
				}
				if fe.stored(c) != nil {
					t.Fatal("old cookie still loads after Regenerate")
				}
			})
		}
	}
}

// TestThrottlingVisible: a throttled call's error and log line name the
// operation and DynamoDB's reason, and Stats counts it.
func TestThrottlingVisible(t *testing.T) {
	fe, c, logs := newLoggedFaultSession(t)
	fe.ft.arm("GetItem", faultPTEE, -1)
	_, err := fe.faulty.Get(request(c), "s")
	fe.ft.disarm()
	var ptee *types.ProvisionedThroughputExceededException
	if !errors.As(err, &ptee) {
		t.Fatalf("Get = %v; want a ProvisionedThroughputExceededException", err)
	}
	for _, want := range []string{"GetItem", "throttled", "TableReadProvisionedThroughputExceeded", "table/sessions"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log %q does not say %q", logs.String(), want)
		}
	}
	if n := fe.faulty.Stats().Throttled; n != 1 {
		t.Errorf("Stats().Throttled = %d; want 1", n)
	}

	r := request(c)
	sess, err := fe.faulty.Get(r, "s")
	if err != nil {
		t.Fatal(err)
	}
	sess.Values["n"] = 2
	fe.ft.arm("UpdateItem", faultPTEE, -1)
	err = sess.Save(r, httptest.NewRecorder())
	fe.ft.disarm()
	for _, want := range []string{"UpdateItem", "throttled", "TableWriteProvisionedThroughputExceeded"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Save error %v does not say %q", err, want)
		}
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log %q does not say %q", logs.String(), want)
		}
	}
	if n := fe.faulty.Stats().Throttled; n != 2 {
		t.Errorf("Stats().Throttled = %d; want 2", n)
	}
}

// TestClientPool: the client the Store builds keeps enough idle
// connections for concurrent requests; a client sized by its user is kept.
func TestClientPool(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   aws.HTTPClient
		want int
	}{
		{"none", nil, maxIdleConns},
		{"SDK default", awshttp.NewBuildableClient(), maxIdleConns},
		{"sized by the user", awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) { tr.MaxIdleConnsPerHost = 7 }), 7},
	} {
		got, ok := sizePool(tt.in).(*awshttp.BuildableClient)
		if !ok || got.GetTransport().MaxIdleConnsPerHost != tt.want {
			t.Errorf("%s: MaxIdleConnsPerHost %d; want %d", tt.name, got.GetTransport().MaxIdleConnsPerHost, tt.want)
		}
	}
	custom := &http.Client{}
	if sizePool(custom) != custom {
		t.Error("a client of the user's own type was replaced")
	}
}

// TestKeyPrefixCountsTowardsTheItemSize: a session that fits without a key
// prefix but not with one is ErrTooLarge before any call, not DynamoDB's
// ValidationException.
func TestKeyPrefixCountsTowardsTheItemSize(t *testing.T) {
	e := newEnv(t)
	b, err := NewDynamoDBBackend(dbtest.Client(t), e.table, DynamoDBOptions{KeyPrefix: strings.Repeat("p", 254) + "#"})
	if err != nil {
		t.Fatal(err)
	}
	s := newTestStore(t, e.table, nil, newFakeClock(), WithBackend(b))
	r := request()
	sess, _ := s.New(r, "s")
	sess.Values["b"] = make([]byte, 409482) // the most that fits without the prefix
	if err := sess.Save(r, httptest.NewRecorder()); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Save = %v; want ErrTooLarge", err)
	}
}

// TestLongOwnerRefused: an owner longer than an index key may be fails
// Save with ErrEncode before any call (DynamoDB would refuse the write
// with a ValidationException on every retry).
func TestLongOwnerRefused(t *testing.T) {
	e := ownerEnv(t)
	r := request()
	sess, _ := e.store.New(r, "s")
	sess.Values["a"] = 1
	e.store.SetOwner(r, sess, strings.Repeat("u", maxOwnerSize+1))
	e.calls.take()
	err := sess.Save(r, httptest.NewRecorder())
	if !errors.Is(err, ErrEncode) || Unavailable(err) {
		t.Fatalf("Save with a long owner = %v; want ErrEncode", err)
	}
	if calls := e.calls.take(); len(calls) != 0 {
		t.Errorf("calls %v", calls)
	}
	e.store.SetOwner(r, sess, strings.Repeat("u", maxOwnerSize))
	if err := sess.Save(r, httptest.NewRecorder()); err != nil {
		t.Fatalf("Save with an owner of %d bytes = %v", maxOwnerSize, err)
	}
}
