package dynamostore

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynamostore/dynamostore/internal/dbtest"
	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
)

func TestNewStoreValidatesOptions(t *testing.T) {
	client := &dynamodb.Client{}
	keys := WithKeyPairs(testHashKey)
	tests := []struct {
		name  string
		table string
		opts  []Option
	}{
		{"no keys", "sessions", []Option{withAPI(client)}},
		{"empty hash key", "sessions", []Option{withAPI(client), WithKeyPairs([]byte{})}},
		{"short hash key", "sessions", []Option{withAPI(client), WithKeyPairs([]byte("secret"))}},
		{"31-byte hash key", "sessions", []Option{withAPI(client), WithKeyPairs(testHashKey[:31])}},
		{"short retired hash key", "sessions", []Option{withAPI(client), WithKeyPairs(testHashKey, nil, []byte("old"), nil)}},
		{"15-byte block key", "sessions", []Option{withAPI(client), WithKeyPairs(testHashKey, testBlockKey[:15])}},
		{"bad block key", "sessions", []Option{withAPI(client), WithKeyPairs(testHashKey, []byte("short"))}},
		{"empty block key (an unset variable, hex-decoded)", "sessions", []Option{withAPI(client), WithKeyPairs(testHashKey, []byte{})}},
		{"nil codec", "sessions", []Option{withAPI(client), WithCodecs(nil)}},
		{"nil codec after a good one", "sessions", []Option{withAPI(client), WithCodecs(securecookie.New(testHashKey, nil), nil)}},
		{"typed nil codec", "sessions", []Option{withAPI(client), WithCodecs((*securecookie.SecureCookie)(nil))}},
		{"codec without a hash key", "sessions", []Option{withAPI(client), WithCodecs(securecookie.CodecsFromPairs([]byte{})...)}},
		{"codec with an empty block key", "sessions", []Option{withAPI(client), WithCodecs(securecookie.New(testHashKey, []byte{}))}},
		{"short table name", "ab", []Option{withAPI(client), keys}},
		{"bad table name", "my table", []Option{withAPI(client), keys}},
		{"zero ttl", "sessions", []Option{withAPI(client), keys, WithTTL(0)}},
		{"negative touchAfter", "sessions", []Option{withAPI(client), keys, WithTouchAfter(-time.Second)}},
		{"sub-second cleanup", "sessions", []Option{withAPI(client), keys, withCleanupInterval(time.Millisecond)}},
		{"endpoint without scheme", "sessions", []Option{keys, WithEndpoint("localhost:8000")}},
		{"endpoint not a URL", "sessions", []Option{keys, WithEndpoint("http://[::1")}},
		{"short reaper interval", "sessions", []Option{withAPI(client), keys, WithReaper(ReaperOptions{Interval: time.Millisecond})}},
		{"nil client", "sessions", []Option{WithClient(nil), keys}},
		{"nil backend", "sessions", []Option{WithBackend(nil), keys}},
		{"nil logger", "sessions", []Option{withAPI(client), keys, WithLogger(nil)}},
		{"nil serializer", "sessions", []Option{withAPI(client), keys, WithSerializer(nil)}},
		{"negative capacity", "sessions", []Option{withAPI(client), keys, WithAutoCreate(TableOptions{ReadCapacity: -1})}},
		{"autoCreate with backend", "sessions", []Option{WithBackend(newMapBackend()), keys, WithAutoCreate(TableOptions{})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewStore(context.Background(), tt.table, tt.opts...)
			if !errors.Is(err, ErrInvalidOption) {
				t.Fatalf("NewStore = %v, %v; want ErrInvalidOption", s, err)
			}
		})
	}
}

func TestNewStoreNeedsRegion(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	noRegion := func(err error) bool { return err != nil && strings.Contains(err.Error(), "no AWS region") }
	_, err := NewStore(context.Background(), "sessions", WithKeyPairs(testHashKey), withCleanupInterval(0))
	if !errors.Is(err, ErrInvalidOption) || !noRegion(err) {
		t.Fatalf("NewStore without region = %v; want ErrInvalidOption naming the region", err)
	}
	// With a region, the client is built (the table check that follows
	// needs AWS, which a test does not reach).
	t.Setenv("AWS_REGION", "eu-west-1")
	if _, err := buildClient(context.Background(), &settings{}); err != nil {
		t.Fatalf("client with AWS_REGION: %v", err)
	}
	t.Setenv("AWS_REGION", "")
	if _, err := buildClient(context.Background(), &settings{awsConfig: &aws.Config{Region: "eu-west-1"}}); err != nil {
		t.Fatalf("client with the region in WithAWSConfig: %v", err)
	}
}

func TestDefaultCookieOptions(t *testing.T) {
	e := newEnv(t)
	want := sessions.Options{Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: int(defaultTTL / time.Second)}
	if *e.store.Options != want {
		t.Fatalf("Options = %+v; want %+v", *e.store.Options, want)
	}
	c := e.save("s", map[any]any{"a": 1})
	if c.Path != "/" || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.MaxAge != want.MaxAge {
		t.Fatalf("cookie = %+v", c)
	}
}

func TestRoundTrip(t *testing.T) {
	type point struct{ X, Y int }
	tests := []struct {
		name       string
		serializer Serializer
		values     map[any]any
	}{
		{"gob scalars", GobSerializer{}, map[any]any{"user": "ada", "n": 42, 3: true}},
		{"gob bytes", GobSerializer{}, map[any]any{"blob": bytes.Repeat([]byte{7}, 1024)}},
		{"gob empty", GobSerializer{}, map[any]any{}},
		{"json", JSONSerializer{}, map[any]any{"user": "ada", "n": float64(42)}},
	}
	_ = point{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, WithSerializer(tt.serializer))
			c := e.save("s", tt.values)
			if e.calls.take()["PutItem"] != 1 {
				t.Fatal("new session was not written with one PutItem")
			}
			_, sess, err := e.load("s", c)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if sess.IsNew || sess.ID == "" {
				t.Fatalf("loaded session IsNew=%v ID=%q", sess.IsNew, sess.ID)
			}
			if fmt.Sprint(sess.Values) != fmt.Sprint(tt.values) {
				t.Fatalf("Values = %v; want %v", sess.Values, tt.values)
			}
			if got := e.calls.take(); total(got) != 1 || got["GetItem"] != 1 {
				t.Fatalf("load made calls %v; want one GetItem", got)
			}
		})
	}
}

func TestGetLoadsOncePerRequest(t *testing.T) {
	e := newEnv(t)
	c := e.save("s", map[any]any{"a": "b"})
	e.calls.take()
	r := request(c)
	s1, err1 := e.store.Get(r, "s")
	s2, err2 := e.store.Get(r, "s")
	if err1 != nil || err2 != nil || s1 != s2 {
		t.Fatalf("Get twice: %p %v, %p %v", s1, err1, s2, err2)
	}
	if n := e.calls.take()["GetItem"]; n != 1 {
		t.Fatalf("GetItem calls = %d; want 1", n)
	}
}

// rawItem reads the stored item of a session directly.
func (e *env) rawItem(id string) map[string]types.AttributeValue {
	e.t.Helper()
	out, err := e.client.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: aws.String(e.table), Key: keyOf(storageKey(id)), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		e.t.Fatalf("GetItem: %v", err)
	}
	return out.Item
}

func numberAttr(t *testing.T, item map[string]types.AttributeValue, name string) int64 {
	t.Helper()
	n, ok := item[name].(*types.AttributeValueMemberN)
	if !ok {
		t.Fatalf("attribute %q = %#v; want a Number", name, item[name])
	}
	v, err := strconv.ParseInt(n.Value, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestItemLayout(t *testing.T) {
	e := newEnv(t)
	r := request()
	sess, _ := e.store.New(r, "s")
	sess.Values["user"] = "ada"
	w := httptest.NewRecorder()
	if err := e.store.Save(r, w, sess); err != nil {
		t.Fatal(err)
	}
	item := e.rawItem(sess.ID)
	if item == nil {
		t.Fatal("no item stored under the hash of the ID")
	}
	if id := item[attrID].(*types.AttributeValueMemberS).Value; id != storageKey(sess.ID) || strings.Contains(id, sess.ID) {
		t.Fatalf("key = %q; want SHA-256 of the ID", id)
	}
	v, ok := item[attrValues].(*types.AttributeValueMemberB)
	if !ok {
		t.Fatalf("values attribute = %#v; want Binary", item[attrValues])
	}
	got := map[any]any{}
	if err := (GobSerializer{}).Deserialize(v.Value, got); err != nil || got["user"] != "ada" {
		t.Fatalf("stored values = %v, %v", got, err)
	}
	now := e.clock.Now()
	if exp := numberAttr(t, item, attrExpires); exp != now.Add(defaultTTL).Unix() {
		t.Fatalf("expires = %d; want %d", exp, now.Add(defaultTTL).Unix())
	}
	if mod := numberAttr(t, item, attrModified); mod != now.UnixMilli() {
		t.Fatalf("modified = %d; want %d", mod, now.UnixMilli())
	}
	if len(item) != 4 {
		t.Fatalf("item has attributes %v; want exactly id, v, exp, mod", item)
	}
	// The cookie carries neither the ID in clear nor the key.
	c := cookieOf(w, "s")
	if strings.Contains(c.Value, sess.ID) || strings.Contains(c.Value, storageKey(sess.ID)) {
		t.Fatal("cookie carries the session ID or key in clear")
	}
	if raw, _ := base64.RawURLEncoding.DecodeString(sess.ID); len(raw) != 32 {
		t.Fatalf("session ID %q is not 256 bits", sess.ID)
	}
}

func TestBadCookiesMakeNoCall(t *testing.T) {
	e := newEnv(t)
	good := e.save("s", map[any]any{"a": 1})
	sign := func(hash, block []byte, id []byte) string {
		sc := securecookie.New(hash, block)
		sc.SetSerializer(securecookie.NopEncoder{})
		v, err := sc.Encode("s", id)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	validID, _ := newID()
	tampered := []byte(good.Value)
	tampered[len(tampered)/2] ^= 1
	otherKey := []byte("another-hash-key-another-hash-ke")
	tests := []struct {
		name  string
		value string
	}{
		{"garbage", "not-a-cookie"},
		{"tampered", string(tampered)},
		{"unsigned ID", validID},
		{"other key", sign(otherKey, testBlockKey, []byte(validID))},
		{"oversized", strings.Repeat("A", 5000)},
		{"short ID", sign(testHashKey, testBlockKey, []byte("abc"))},
		{"bad alphabet", sign(testHashKey, testBlockKey, []byte(strings.Repeat("*", idLen)))},
		{"empty ID", sign(testHashKey, testBlockKey, []byte{})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.calls.take()
			_, sess, err := e.load("s", &http.Cookie{Name: "s", Value: tt.value})
			if err == nil || !errors.Is(err, ErrInvalidCookie) {
				t.Fatalf("err = %v; want ErrInvalidCookie", err)
			}
			if sess == nil || !sess.IsNew || sess.ID != "" || len(sess.Values) != 0 {
				t.Fatalf("session = %+v; want a fresh one", sess)
			}
			if n := total(e.calls.take()); n != 0 {
				t.Fatalf("%d DynamoDB calls for a bad cookie", n)
			}
		})
	}
}

func TestExpiredRowIsNotServed(t *testing.T) {
	e := newEnv(t, WithTTL(time.Hour))
	c := e.save("s", map[any]any{"a": 1})
	for _, tt := range []struct {
		advance time.Duration
		live    bool
	}{
		{59 * time.Minute, true},
		{time.Minute - time.Second, true},
		{time.Second, false}, // now == expires: expired
	} {
		e.clock.Advance(tt.advance)
		_, sess, err := e.load("s", c)
		if err != nil {
			t.Fatal(err)
		}
		if sess.IsNew == tt.live {
			t.Fatalf("at +%v IsNew = %v; want live=%v", e.clock.Now().Sub(e.clock.t), sess.IsNew, tt.live)
		}
	}
	r, sess, _ := e.load("s", c)
	if len(sess.Values) != 0 || sess.ID != "" {
		t.Fatal("expired session served its values or ID")
	}
	// Saving the fresh session writes a new row under a new ID.
	sess.Values["b"] = 2
	if err := sess.Save(r, httptest.NewRecorder()); err != nil {
		t.Fatal(err)
	}
}

func TestMaxAgeNegativeDeletes(t *testing.T) {
	e := newEnv(t)
	c := e.save("s", map[any]any{"a": 1})
	r, sess, err := e.load("s", c)
	if err != nil {
		t.Fatal(err)
	}
	id := sess.ID
	sess.Options.MaxAge = -1
	w := httptest.NewRecorder()
	if err := sess.Save(r, w); err != nil {
		t.Fatal(err)
	}
	if e.rawItem(id) != nil {
		t.Fatal("row still there after MaxAge -1")
	}
	if got := cookieOf(w, "s"); got == nil || got.MaxAge >= 0 {
		t.Fatalf("cookie = %+v; want an expired one", got)
	}
	if _, sess, _ := e.load("s", c); !sess.IsNew {
		t.Fatal("deleted session still loads")
	}
}

func TestDelete(t *testing.T) {
	e := newEnv(t)
	c := e.save("s", map[any]any{"a": 1})
	r, sess, _ := e.load("s", c)
	id := sess.ID
	w := httptest.NewRecorder()
	if err := e.store.Delete(r, w, sess); err != nil {
		t.Fatal(err)
	}
	if e.rawItem(id) != nil || len(sess.Values) != 0 || cookieOf(w, "s").MaxAge >= 0 {
		t.Fatal("Delete left the row, the values or the cookie")
	}
}

func TestMaxAgeZeroIsBrowserSessionWithExpiringRow(t *testing.T) {
	e := newEnv(t, WithTTL(2*time.Hour))
	c, sess, err := e.saveMaxAge(0, map[any]any{"a": 1})
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxAge != 0 || !c.Expires.IsZero() {
		t.Fatalf("cookie MaxAge=%d Expires=%v; want a browser-session cookie", c.MaxAge, c.Expires)
	}
	if exp := numberAttr(t, e.rawItem(sess.ID), attrExpires); exp != e.clock.Now().Add(2*time.Hour).Unix() {
		t.Fatalf("row expires %d; want now+ttl", exp)
	}
	if _, sess, _ := e.load("s", c); sess.IsNew {
		t.Fatal("browser-session cookie does not load")
	}
}

func TestCookieMaxAgeSetsRowExpiry(t *testing.T) {
	e := newEnv(t)
	r := request()
	sess, _ := e.store.New(r, "s")
	sess.Options.MaxAge = 600
	if err := sess.Save(r, httptest.NewRecorder()); err != nil {
		t.Fatal(err)
	}
	if exp := numberAttr(t, e.rawItem(sess.ID), attrExpires); exp != e.clock.Now().Unix()+600 {
		t.Fatalf("row expires %d; want now+600", exp)
	}
}

func TestNewSessionIsCreatedConditionally(t *testing.T) {
	e := newEnv(t)
	c := e.save("s", map[any]any{"a": 1})
	_, sess, _ := e.load("s", c)
	err := e.store.backend.Create(context.Background(), Record{Key: storageKey(sess.ID), Expires: e.clock.Now().Add(time.Hour), Modified: e.clock.Now()})
	if !errors.Is(err, ErrExists) {
		t.Fatalf("PutNew over an existing row = %v; want ErrExists", err)
	}
	if _, again, _ := e.load("s", c); again.Values["a"] != 1 {
		t.Fatal("existing row was overwritten")
	}
}

func TestDeletedSessionNeverComesBack(t *testing.T) {
	tests := []struct {
		name   string
		change func(*sessions.Session)
	}{
		{"changed values", func(s *sessions.Session) { s.Values["late"] = true }},
		{"unchanged, touch due", func(*sessions.Session) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, WithTouchAfter(time.Second))
			c := e.save("s", map[any]any{"user": "ada"})
			slowReq, slow, err := e.load("s", c)
			if err != nil {
				t.Fatal(err)
			}
			// A faster request logs the user out.
			fastReq, fast, _ := e.load("s", c)
			if err := e.store.Delete(fastReq, httptest.NewRecorder(), fast); err != nil {
				t.Fatal(err)
			}
			e.clock.Advance(2 * time.Second)
			tt.change(slow)
			w := httptest.NewRecorder()
			if err := slow.Save(slowReq, w); !errors.Is(err, ErrSessionGone) {
				t.Fatalf("slow Save = %v; want ErrSessionGone", err)
			}
			if e.rawItem(slow.ID) != nil {
				t.Fatal("logged-out session came back")
			}
			if cookieOf(w, "s") != nil {
				t.Fatal("failed Save set a cookie")
			}
		})
	}
}

// failingGets makes GetItem fail, as throttling or a network fault would.
type failingGets struct {
	dynamoAPI
	err error
}

func (f failingGets) GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return nil, f.err
}

func TestFailedReadNeverBecomesEmptySession(t *testing.T) {
	e := newEnv(t)
	c := e.save("s", map[any]any{"user": "ada"})
	_, real, _ := e.load("s", c)
	throttled := &types.ProvisionedThroughputExceededException{Message: aws.String("slow down")}
	faulty, err := NewStore(context.Background(), e.table, withAPI(failingGets{e.client, throttled}),
		WithKeyPairs(testHashKey, testBlockKey), withCleanupInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	defer faulty.Close()
	r := request(c)
	sess, err := faulty.Get(r, "s")
	if !errors.As(err, &throttled) {
		t.Fatalf("Get = %v; want the throttling error", err)
	}
	sess.Values["user"] = "mallory"
	e.calls.take()
	w := httptest.NewRecorder()
	if err := sess.Save(r, w); !errors.Is(err, ErrLoadFailed) {
		t.Fatalf("Save after failed load = %v; want ErrLoadFailed", err)
	}
	if n := total(e.calls.take()); n != 0 || cookieOf(w, "s") != nil {
		t.Fatalf("Save after failed load made %d calls / set a cookie", n)
	}
	if _, again, _ := e.load("s", c); again.Values["user"] != "ada" || again.ID != real.ID {
		t.Fatal("real session was damaged")
	}
}

func TestTouchAfter(t *testing.T) {
	type step struct {
		advance time.Duration
		change  bool
		want    map[string]int // DynamoDB calls made by Save
	}
	tests := []struct {
		name       string
		touchAfter time.Duration
		steps      []step
	}{
		{"within touchAfter no call", 10 * time.Second, []step{
			{0, false, map[string]int{}},
			{9 * time.Second, false, map[string]int{}},
		}},
		{"after touchAfter expiry only", 10 * time.Second, []step{
			{10 * time.Second, false, map[string]int{"UpdateItem": 1}},
		}},
		{"changed always written", 10 * time.Second, []step{
			{time.Second, true, map[string]int{"UpdateItem": 1}},
		}},
		{"zero always touches", 0, []step{
			{0, false, map[string]int{"UpdateItem": 1}},
			{time.Second, false, map[string]int{"UpdateItem": 1}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, WithTouchAfter(tt.touchAfter), WithTTL(time.Hour))
			c := e.save("s", map[any]any{"n": 0})
			for i, st := range tt.steps {
				e.clock.Advance(st.advance)
				r, sess, err := e.load("s", c)
				if err != nil {
					t.Fatal(err)
				}
				if st.change {
					sess.Values["n"] = i + 1
				}
				e.calls.take()
				if err := sess.Save(r, httptest.NewRecorder()); err != nil {
					t.Fatalf("step %d: Save: %v", i, err)
				}
				if got := e.calls.take(); fmt.Sprint(got) != fmt.Sprint(st.want) {
					t.Fatalf("step %d: calls %v; want %v", i, got, st.want)
				}
				item := e.rawItem(sess.ID)
				if st.want["UpdateItem"] == 1 {
					if exp := numberAttr(t, item, attrExpires); exp != e.clock.Now().Add(time.Hour).Unix() {
						t.Fatalf("step %d: expiry not extended", i)
					}
					if mod := numberAttr(t, item, attrModified); mod != e.clock.Now().UnixMilli() {
						t.Fatalf("step %d: last-written not updated", i)
					}
				}
			}
		})
	}
}

func TestTouchNeverRewritesValues(t *testing.T) {
	e := newEnv(t, WithTouchAfter(time.Second))
	c := e.save("s", map[any]any{"n": 1})
	r, sess, _ := e.load("s", c)
	// Another instance writes new values after this request loaded.
	other := request(c)
	o, _ := e.store.Get(other, "s")
	o.Values["n"] = 2
	e.clock.Advance(time.Millisecond)
	if err := o.Save(other, httptest.NewRecorder()); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Second)
	if err := sess.Save(r, httptest.NewRecorder()); err != nil {
		t.Fatal(err)
	}
	if _, again, _ := e.load("s", c); again.Values["n"] != 2 {
		t.Fatalf("touch reverted a concurrent write: n = %v", again.Values["n"])
	}
}

func TestChangedMaxAgeIsWritten(t *testing.T) {
	e := newEnv(t)
	c := e.save("s", map[any]any{"n": 1})
	r, sess, _ := e.load("s", c)
	sess.Options.MaxAge = 30 * 24 * 3600
	e.calls.take()
	if err := sess.Save(r, httptest.NewRecorder()); err != nil {
		t.Fatal(err)
	}
	if e.calls.take()["UpdateItem"] != 1 {
		t.Fatal("a new MaxAge was not written")
	}
	if exp := numberAttr(t, e.rawItem(sess.ID), attrExpires); exp != e.clock.Now().Unix()+30*24*3600 {
		t.Fatal("row expiry does not follow the new MaxAge")
	}
}

func TestTooLargeIsRefusedBeforeWriting(t *testing.T) {
	e := newEnv(t)
	c := e.save("s", map[any]any{"n": 1})
	r, sess, _ := e.load("s", c)
	sess.Values["blob"] = make([]byte, maxItemSize)
	e.calls.take()
	w := httptest.NewRecorder()
	if err := sess.Save(r, w); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Save = %v; want ErrTooLarge", err)
	}
	if n := total(e.calls.take()); n != 0 {
		t.Fatalf("%d calls for a too-large session", n)
	}
	if _, again, _ := e.load("s", c); again.Values["n"] != 1 || again.Values["blob"] != nil {
		t.Fatal("old row not intact")
	}
	// Just under the limit is written.
	r, sess, _ = e.load("s", c)
	sess.Values["blob"] = make([]byte, maxItemSize-200)
	if err := sess.Save(r, httptest.NewRecorder()); err != nil {
		t.Fatalf("Save near the limit: %v", err)
	}
}

func TestUnencodableValues(t *testing.T) {
	type unregistered struct{ A int }
	tests := []struct {
		name  string
		value any
	}{
		{"func", func() {}},
		{"channel", make(chan int)},
		{"unregistered type", unregistered{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			r := request()
			sess, _ := e.store.New(r, "s")
			sess.Values["ok"] = 1
			sess.Values["culprit"] = tt.value
			err := sess.Save(r, httptest.NewRecorder())
			if !errors.Is(err, ErrEncode) || !strings.Contains(err.Error(), "culprit") {
				t.Fatalf("Save = %v; want ErrEncode naming the key", err)
			}
			if n := total(e.calls.take()); n != 0 {
				t.Fatalf("%d calls for unencodable values", n)
			}
		})
	}
}

func TestCorruptRowGivesFreshSession(t *testing.T) {
	tests := []struct {
		name string
		item map[string]types.AttributeValue
	}{
		{"garbage gob", map[string]types.AttributeValue{attrValues: &types.AttributeValueMemberB{Value: []byte{0xff, 0x01, 0x02}}}},
		{"values not binary", map[string]types.AttributeValue{attrValues: &types.AttributeValueMemberS{Value: "x"}}},
		{"no expiry", map[string]types.AttributeValue{attrExpires: nil}},
		{"expiry not a number", map[string]types.AttributeValue{attrExpires: &types.AttributeValueMemberS{Value: "soon"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			c := e.save("s", map[any]any{"n": 1})
			_, sess, _ := e.load("s", c)
			item := e.rawItem(sess.ID)
			for k, v := range tt.item {
				if v == nil {
					delete(item, k)
				} else {
					item[k] = v
				}
			}
			if _, err := e.client.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(e.table), Item: item}); err != nil {
				t.Fatal(err)
			}
			r, fresh, err := e.load("s", c)
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("Get = %v; want ErrDecode", err)
			}
			if !fresh.IsNew || fresh.ID != "" || len(fresh.Values) != 0 {
				t.Fatal("corrupt row did not give a fresh session")
			}
			fresh.Values["n"] = 2
			if err := fresh.Save(r, httptest.NewRecorder()); err != nil {
				t.Fatalf("saving over a corrupt row: %v", err)
			}
		})
	}
}

func TestKeyRotation(t *testing.T) {
	e := newEnv(t)
	c := e.save("s", map[any]any{"user": "ada"})
	newHash := []byte("new-hash-key-new-hash-key-new-ha")
	rotated, err := NewStore(context.Background(), e.table, withAPI(e.client),
		WithKeyPairs(newHash, nil, testHashKey, testBlockKey), withCleanupInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	defer rotated.Close()
	r := request(c)
	sess, err := rotated.Get(r, "s")
	if err != nil || sess.Values["user"] != "ada" {
		t.Fatalf("cookie signed with the old key: %v, %v", sess.Values, err)
	}
	sess.Values["n"] = 1
	w := httptest.NewRecorder()
	if err := sess.Save(r, w); err != nil {
		t.Fatal(err)
	}
	fresh := cookieOf(w, "s")
	newOnly, _ := newIDCodec([][]byte{newHash}, nil, 0)
	if id, _, _, err := newOnly.decode("s", fresh.Value); err != nil || id != sess.ID {
		t.Fatalf("re-signed cookie does not verify with the new key alone: %v", err)
	}
}

func TestSignatureAgeFollowsMaxAge(t *testing.T) {
	e := newEnv(t)
	e.store.MaxAge(1)
	c := e.save("s", nil)
	_, sess, err := e.load("s", c)
	if err != nil {
		t.Fatal(err)
	}
	// securecookie checks timestamps against the wall clock: present a
	// value signed 3 s ago rather than wait.
	c.Value = signedAt(t, testHashKey, testBlockKey, "s", sess.ID, time.Now().Add(-3*time.Second))
	if _, _, err := e.load("s", c); !errors.Is(err, ErrInvalidCookie) {
		t.Fatalf("cookie older than MaxAge: %v; want ErrInvalidCookie", err)
	}
}

func TestConsistentRead(t *testing.T) {
	for _, consistent := range []bool{true, false} {
		t.Run(strconv.FormatBool(consistent), func(t *testing.T) {
			rec := &recordingClient{}
			e := newEnv(t, WithConsistentRead(consistent))
			rec.dynamoAPI = e.client
			s, err := NewStore(context.Background(), e.table, withAPI(rec), WithKeyPairs(testHashKey, testBlockKey), withCleanupInterval(0), WithConsistentRead(consistent))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			c := e.save("s", map[any]any{"a": 1})
			if _, err := s.Get(request(c), "s"); err != nil {
				t.Fatal(err)
			}
			if rec.lastGet == nil || aws.ToBool(rec.lastGet.ConsistentRead) != consistent {
				t.Fatalf("ConsistentRead = %v; want %v", rec.lastGet.ConsistentRead, consistent)
			}
		})
	}
}

type recordingClient struct {
	dynamoAPI
	lastGet *dynamodb.GetItemInput
}

func (c *recordingClient) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.lastGet = in
	return c.dynamoAPI.GetItem(ctx, in, o...)
}

func TestRequestContextReachesDynamoDB(t *testing.T) {
	e := newEnv(t)
	c := e.save("s", map[any]any{"a": 1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := request(c).WithContext(ctx)
	if _, err := e.store.Get(r, "s"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with a cancelled context = %v; want context.Canceled", err)
	}
}

func TestSaveTwiceInOneRequest(t *testing.T) {
	e := newEnv(t)
	r := request()
	sess, _ := e.store.Get(r, "s")
	sess.Values["a"] = 1
	if err := sess.Save(r, httptest.NewRecorder()); err != nil {
		t.Fatal(err)
	}
	id := sess.ID
	sess.Values["a"] = 2
	w := httptest.NewRecorder()
	if err := sess.Save(r, w); err != nil {
		t.Fatal(err)
	}
	if sess.ID != id {
		t.Fatal("second Save changed the ID")
	}
	if _, again, _ := e.load("s", cookieOf(w, "s")); again.Values["a"] != 2 {
		t.Fatal("second Save lost")
	}
}

func TestSaveFromAnotherRequestStillSafe(t *testing.T) {
	e := newEnv(t)
	c := e.save("s", map[any]any{"a": 1})
	_, sess, _ := e.load("s", c)
	sess.Values["a"] = 2
	// Saved with a request that never loaded it: a full, conditional update.
	if err := e.store.Save(request(), httptest.NewRecorder(), sess); err != nil {
		t.Fatal(err)
	}
	if _, again, _ := e.load("s", c); again.Values["a"] != 2 {
		t.Fatal("update lost")
	}
}

func TestRegenerate(t *testing.T) {
	e := newEnv(t)
	old := e.save("s", map[any]any{"cart": 3})
	r, sess, _ := e.load("s", old)
	oldID := sess.ID
	sess.Values["user"] = "ada"
	w := httptest.NewRecorder()
	if err := e.store.Regenerate(r, w, sess); err != nil {
		t.Fatal(err)
	}
	if sess.ID == oldID || sess.ID == "" {
		t.Fatal("ID not changed")
	}
	if e.rawItem(oldID) != nil {
		t.Fatal("old row still there")
	}
	if _, s2, _ := e.load("s", old); !s2.IsNew {
		t.Fatal("old cookie still loads the session")
	}
	_, s3, err := e.load("s", cookieOf(w, "s"))
	if err != nil || s3.Values["cart"] != 3 || s3.Values["user"] != "ada" || s3.ID != sess.ID {
		t.Fatalf("new cookie loads %v, %v", s3.Values, err)
	}
}

func TestShortMaxAgeIsNeverCutShort(t *testing.T) {
	e := newEnv(t)
	e.clock.Advance(999 * time.Millisecond) // just before a whole second
	r := request()
	sess, _ := e.store.New(r, "s")
	sess.Options.MaxAge = 1
	w := httptest.NewRecorder()
	if err := sess.Save(r, w); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(999 * time.Millisecond)
	if _, s2, _ := e.load("s", cookieOf(w, "s")); s2.IsNew {
		t.Fatal("session with MaxAge 1 expired before a second had passed")
	}
	e.clock.Advance(time.Second)
	if _, s3, _ := e.load("s", cookieOf(w, "s")); !s3.IsNew {
		t.Fatal("session with MaxAge 1 still served two seconds later")
	}
}

func TestStats(t *testing.T) {
	e := newEnv(t, WithTouchAfter(10*time.Second))
	c := e.save("s", map[any]any{"n": 1})    // create
	r, sess, _ := e.load("s", c)             // load
	_ = sess.Save(r, httptest.NewRecorder()) // skipped
	e.clock.Advance(11 * time.Second)
	r, sess, _ = e.load("s", c)              // load
	_ = sess.Save(r, httptest.NewRecorder()) // touch
	r, sess, _ = e.load("s", c)              // load
	sess.Values["n"] = 2
	_ = sess.Save(r, httptest.NewRecorder())                        // update
	_, _, _ = e.load("s", &http.Cookie{Name: "s", Value: "forged"}) // invalid cookie
	r, sess, _ = e.load("s", c)                                     // load
	_ = e.store.Delete(r, httptest.NewRecorder(), sess)             // delete
	_, _, _ = e.load("s", c)                                        // miss
	want := Stats{Loads: 4, Misses: 1, Creates: 1, Updates: 1, Touches: 1, SkippedWrites: 1, Deletes: 1, InvalidCookies: 1}
	if got := e.store.Stats(); got != want {
		t.Fatalf("Stats = %+v\nwant    %+v", got, want)
	}
}

func TestLoopbackEndpointNeedsNoCredentials(t *testing.T) {
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	client := dbtest.Client(t)
	table := dbtest.NewTable(t, client)
	s, err := NewStore(context.Background(), table, WithEndpoint(dbtest.Endpoint(t)),
		WithKeyPairs(testHashKey), withCleanupInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e := &env{t: t, store: s, client: client, calls: &callCounter{}, clock: newFakeClock(), table: table}
	c := e.save("s", map[any]any{"a": 1})
	if _, sess, err := e.load("s", c); err != nil || sess.Values["a"] != 1 {
		t.Fatalf("round trip through a store built from an endpoint: %v", err)
	}
	for _, tt := range []struct {
		endpoint string
		want     bool
	}{
		{"http://127.0.0.1:8000", true}, {"http://localhost:8000", true}, {"http://[::1]:8000", true},
		{"https://dynamodb.eu-west-1.amazonaws.com", false}, {"", false}, {"::bad", false},
	} {
		if got := loopback(tt.endpoint); got != tt.want {
			t.Errorf("loopback(%q) = %v", tt.endpoint, got)
		}
	}
}

// TestUnavailable checks each class of error the request path returns
// against the rule: only what says the store did not answer is Unavailable.
func TestUnavailable(t *testing.T) {
	throttled := &types.ProvisionedThroughputExceededException{Message: aws.String("slow down")}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"invalid cookie", fmt.Errorf("%w: bad signature", ErrInvalidCookie), false},
		{"undecodable row", fmt.Errorf("%w: gob: corrupt", ErrDecode), false},
		{"session gone", fmt.Errorf("%w: %w", ErrSessionGone, ErrNotFound), false},
		{"conflict", ErrConflict, false},
		{"values not encodable", ErrEncode, false},
		{"too large", ErrTooLarge, false},
		{"invalid option", ErrInvalidOption, false},
		{"unsupported", ErrUnsupported, false},
		{"closed", ErrClosed, false},
		{"load failed", ErrLoadFailed, true},
		{"sign-out after a failed load", fmt.Errorf("%w: deleting the session: %w", ErrLoadFailed, throttled), true},
		{"throttled", callError("GetItem", "loading session", throttled), true},
		{"timeout", callError("GetItem", "loading session", context.DeadlineExceeded), true},
		{"request gone", context.Canceled, true},
		{"network", callError("UpdateItem", "writing session", &net.OpError{Op: "dial", Err: errors.New("connection refused")}), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Unavailable(tt.err); got != tt.want {
				t.Errorf("Unavailable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestFrozenEndpointHonoursTheDeadline: a DynamoDB that accepts
// connections and never answers holds a request only until the request's
// deadline; the error is Unavailable, and Save then refuses the session.
func TestFrozenEndpointHonoursTheDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held sync.WaitGroup
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop); _ = ln.Close(); held.Wait() })
	held.Add(1)
	go func() {
		defer held.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held.Add(1)
			go func() { defer held.Done(); <-stop; _ = c.Close() }()
		}
	}()
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	// The table check at construction cannot be made either: the Store
	// starts unchecked, with a warning, once the check's deadline passes.
	var logs bytes.Buffer
	shortCheck := func(s *settings) error { s.checkTimeout = 200 * time.Millisecond; return nil }
	s, err := NewStore(context.Background(), "sessions", WithEndpoint("http://"+ln.Addr().String()),
		WithKeyPairs(testHashKey), withCleanupInterval(0), WithLogger(slog.New(slog.NewTextHandler(&logs, nil))), shortCheck)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !strings.Contains(logs.String(), "starting unchecked") {
		t.Errorf("no warning that the table was not checked; logs:\n%s", logs.String())
	}
	cookie := func() *http.Cookie {
		v, err := s.codec.encode("s", mustID(t))
		if err != nil {
			t.Fatal(err)
		}
		return &http.Cookie{Name: "s", Value: v}
	}()

	const deadline = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	r := request(cookie).WithContext(ctx)
	start := time.Now()
	sess, err := s.Get(r, "s")
	took := time.Since(start)
	if !Unavailable(err) {
		t.Fatalf("Get against a frozen endpoint = %v; want an Unavailable error", err)
	}
	if took > 20*deadline {
		t.Errorf("Get took %v with a %v deadline", took, deadline)
	}
	if err := sess.Save(r, httptest.NewRecorder()); !errors.Is(err, ErrLoadFailed) {
		t.Errorf("Save of the session whose load failed = %v; want ErrLoadFailed", err)
	}
}

// mustID returns a fresh session ID.
func mustID(t *testing.T) string {
	t.Helper()
	id, err := newID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestLoopbackClientSkipsChecksums: the client the Store builds for a
// loopback endpoint does not validate response checksums (DynamoDB Local's
// make the SDK log a warning per call); for AWS's endpoint it does.
func TestLoopbackClientSkipsChecksums(t *testing.T) {
	t.Setenv("AWS_REGION", "eu-west-1")
	for _, tc := range []struct {
		endpoint string
		skip     bool
	}{
		{dbtest.Endpoint(t), true},
		{"http://localhost:8000", true},
		{"", false},
		{"https://dynamodb.eu-west-1.amazonaws.com", false},
	} {
		var cfg settings
		if err := WithEndpoint(tc.endpoint)(&cfg); err != nil {
			t.Fatal(err)
		}
		client, err := buildClient(context.Background(), &cfg)
		if err != nil {
			t.Fatal(err)
		}
		if o := client.(*dynamodb.Client).Options(); o.DisableValidateResponseChecksum != tc.skip {
			t.Errorf("endpoint %q: DisableValidateResponseChecksum %v, want %v", tc.endpoint, o.DisableValidateResponseChecksum, tc.skip)
		}
	}
}
