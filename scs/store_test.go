package dynamoscs_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/internal/dbtest"
	"github.com/dynamostore/dynamostore/internal/tableschema"
	dynamoscs "github.com/dynamostore/dynamostore/scs"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

// noReaper is the reaper configuration of tests that do not test it.
var noReaper = dynamoscs.Options{Reaper: dynamostore.ReaperOptions{Interval: -1}}

// env is an scs SessionManager on a Store on a fresh table, served through
// LoadAndSave by an httptest server, with a Backend of its own on the same
// table to look at and write rows directly.
type env struct {
	t       *testing.T
	client  *dynamodb.Client
	table   string
	store   *dynamoscs.Store
	backend dynamostore.Backend
	sm      *scs.SessionManager
	srv     *httptest.Server
}

func newEnv(t *testing.T, opts dynamoscs.Options, configure func(*scs.SessionManager)) *env {
	t.Helper()
	e := &env{t: t, client: dbtest.Client(t)}
	e.table = dbtest.NewTable(t, e.client)
	var err error
	if e.store, err = dynamoscs.NewWithOptions(e.client, e.table, opts); err != nil {
		t.Fatalf("NewWithOptions: %v", err)
	}
	t.Cleanup(e.store.StopCleanup)
	if e.backend, err = dynamostore.NewDynamoDBBackend(e.client, e.table, dynamostore.DynamoDBOptions{}); err != nil {
		t.Fatalf("NewDynamoDBBackend: %v", err)
	}
	e.sm = scs.New()
	e.sm.Store = e.store
	e.sm.ErrorFunc = func(w http.ResponseWriter, r *http.Request, err error) {
		t.Errorf("scs ErrorFunc: %s %s: %v", r.Method, r.URL, err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
	if configure != nil {
		configure(e.sm)
	}
	sm := e.sm
	mux := http.NewServeMux()
	mux.HandleFunc("POST /put", func(w http.ResponseWriter, r *http.Request) {
		for k, v := range r.URL.Query() {
			sm.Put(r.Context(), k, v[0])
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("GET /get", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, sm.GetString(r.Context(), r.URL.Query().Get("k")))
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		if err := sm.RenewToken(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		sm.Put(r.Context(), "user", r.URL.Query().Get("user"))
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		if err := sm.Destroy(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("GET /deadline", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, sm.Deadline(r.Context()).Format(time.RFC3339Nano))
	})
	e.srv = httptest.NewServer(sm.LoadAndSave(mux))
	t.Cleanup(e.srv.Close)
	return e
}

// cookie says what a response did to the session cookie.
type cookie int

const (
	anyCookie  cookie = iota // not checked
	noCookie                 // no Set-Cookie
	newCookie                // a token other than the one sent
	sameCookie               // the token sent, again
	cleared                  // the cookie deleted
)

// do sends "METHOD /path?query" with token as the session cookie ("" for
// none) and returns the body and the token of the Set-Cookie ("" when
// cleared), whether it set one.
func (e *env) do(req, token string) (body, setToken string, set bool) {
	e.t.Helper()
	method, target, _ := strings.Cut(req, " ")
	r, err := http.NewRequestWithContext(e.t.Context(), method, e.srv.URL+target, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		r.AddCookie(&http.Cookie{Name: e.sm.Cookie.Name, Value: token})
	}
	resp, err := e.srv.Client().Do(r)
	if err != nil {
		e.t.Fatalf("%s: %v", req, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("%s: status %d: %s", req, resp.StatusCode, b)
	}
	for _, c := range resp.Cookies() {
		if c.Name == e.sm.Cookie.Name {
			return string(b), c.Value, true
		}
	}
	return string(b), "", false
}

// login signs user in on a new session and returns its token.
func (e *env) login(user string) string {
	e.t.Helper()
	_, token, _ := e.do("POST /login?user="+url.QueryEscape(user), "")
	if token == "" {
		e.t.Fatal("login set no session cookie")
	}
	return token
}

// rawItem returns the table's item under the storage key of token, nil when
// there is none, read strongly consistent.
func (e *env) rawItem(key string) map[string]types.AttributeValue {
	e.t.Helper()
	out, err := e.client.GetItem(e.t.Context(), &dynamodb.GetItemInput{
		TableName:      aws.String(e.table),
		Key:            map[string]types.AttributeValue{tableschema.KeyAttr: &types.AttributeValueMemberS{Value: key}},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		e.t.Fatalf("GetItem: %v", err)
	}
	return out.Item
}

// expire makes the live row of key expired, as time would: one update
// through the backend that moves its expiry a second into the past.
func (e *env) expire(key string) {
	e.t.Helper()
	now := time.Now()
	rec, err := e.backend.Get(e.t.Context(), key, now)
	if err != nil {
		e.t.Fatalf("Get before expiring: %v", err)
	}
	rec.Expires, rec.Modified = now.Add(-time.Second), now
	if err := e.backend.Update(e.t.Context(), rec); err != nil {
		e.t.Fatalf("expiring row: %v", err)
	}
}

// putExpired writes, through the backend, an expired session row that
// scs can decode, with the given values, and returns its token.
func (e *env) putExpired(values map[string]any) string {
	e.t.Helper()
	token := newToken()
	b, err := e.sm.Codec.Encode(time.Now().Add(-time.Minute), values)
	if err != nil {
		e.t.Fatal(err)
	}
	now := time.Now()
	if err := e.backend.Create(e.t.Context(), dynamostore.Record{
		Key: tableschema.StorageKey(token), Data: b, Expires: now.Add(-2 * time.Second), Modified: now.Add(-time.Hour),
	}); err != nil {
		e.t.Fatalf("creating expired row: %v", err)
	}
	return token
}

// newToken returns a token as scs makes them: 32 random bytes in unpadded
// URL-safe base64.
func newToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// step is one request of a scenario: its tokens are named, so a later step
// can send the token an earlier one received.
type step struct {
	req    string // "METHOD /path?query"
	send   string // name of the token sent as cookie; "key:NAME" sends its iteration token
	save   string // name under which to keep the token received
	want   string // body
	cookie cookie
	live   []string // names of tokens whose row must be live after the step
	gone   []string // names of tokens that must have no row after the step
}

func TestRequests(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		configure func(*scs.SessionManager)
		steps     []step
	}{{
		name: "put and get across requests",
		steps: []step{
			{req: "GET /get?k=color", want: "", cookie: noCookie},
			{req: "POST /put?color=blue", save: "A", want: "ok", cookie: newCookie, live: []string{"A"}},
			{req: "GET /get?k=color", send: "A", want: "blue", cookie: noCookie},
			{req: "POST /put?color=red", send: "A", want: "ok", cookie: sameCookie},
			{req: "GET /get?k=color", send: "A", want: "red", cookie: noCookie, live: []string{"A"}},
			{req: "GET /get?k=color", want: "", cookie: noCookie},
		},
	}, {
		name: "RenewToken at sign-in kills the old token",
		steps: []step{
			{req: "POST /put?color=blue", save: "A", want: "ok", cookie: newCookie},
			{req: "POST /login?user=ann", send: "A", save: "B", want: "ok", cookie: newCookie, live: []string{"B"}, gone: []string{"A"}},
			{req: "GET /get?k=user", send: "B", want: "ann"},
			{req: "GET /get?k=color", send: "B", want: "blue"},
			{req: "GET /get?k=color", send: "A", want: "", cookie: noCookie},
			{req: "GET /get?k=user", send: "A", want: ""},
		},
	}, {
		name: "Destroy deletes the row and the cookie",
		steps: []step{
			{req: "POST /login?user=bob", save: "A", want: "ok", cookie: newCookie, live: []string{"A"}},
			{req: "POST /logout", send: "A", want: "ok", cookie: cleared, gone: []string{"A"}},
			{req: "GET /get?k=user", send: "A", want: "", cookie: noCookie},
			{req: "POST /logout", send: "A", want: "ok", cookie: cleared},
		},
	}, {
		name: "the iteration token is refused as a cookie",
		steps: []step{
			{req: "POST /login?user=cat", save: "A", want: "ok", live: []string{"A"}},
			{req: "GET /get?k=user", send: "key:A", want: "", cookie: noCookie},
			{req: "POST /put?color=green", send: "key:A", save: "B", want: "ok", cookie: newCookie, live: []string{"A", "B"}},
			{req: "GET /get?k=user", send: "B", want: ""},
			{req: "GET /get?k=user", send: "A", want: "cat"},
			{req: "POST /logout", send: "key:A", want: "ok", cookie: cleared, live: []string{"A"}},
			{req: "GET /get?k=user", send: "A", want: "cat"},
		},
	}, {
		name:      "HashTokenInStore",
		configure: func(sm *scs.SessionManager) { sm.HashTokenInStore = true },
		steps: []step{
			{req: "POST /login?user=dan", save: "A", want: "ok", cookie: newCookie},
			{req: "GET /get?k=user", send: "A", want: "dan"},
			{req: "POST /login?user=eve", send: "A", save: "B", want: "ok", cookie: newCookie},
			{req: "GET /get?k=user", send: "A", want: ""},
			{req: "GET /get?k=user", send: "B", want: "eve"},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, noReaper, tt.configure)
			tokens := map[string]string{}
			keyOf := func(name string) string {
				tok, ok := tokens[name]
				if !ok {
					t.Fatalf("no token %s yet", name)
				}
				if e.sm.HashTokenInStore {
					t.Fatal("rows are not checked with HashTokenInStore")
				}
				return tableschema.StorageKey(tok)
			}
			for i, s := range tt.steps {
				var sent string
				switch name, byKey := strings.CutPrefix(s.send, "key:"); {
				case s.send == "":
				case byKey:
					sent = dynamoscs.KeyPrefix + keyOf(name)
				default:
					sent = tokens[name]
				}
				body, got, set := e.do(s.req, sent)
				if body != s.want {
					t.Errorf("step %d (%s): body %q, want %q", i, s.req, body, s.want)
				}
				switch {
				case s.cookie == noCookie && set:
					t.Errorf("step %d (%s): set cookie %q, want none", i, s.req, got)
				case s.cookie == newCookie && (!set || got == "" || got == sent):
					t.Errorf("step %d (%s): cookie %q (set %v), want a new token", i, s.req, got, set)
				case s.cookie == sameCookie && (!set || got != sent):
					t.Errorf("step %d (%s): cookie %q (set %v), want the token sent", i, s.req, got, set)
				case s.cookie == cleared && (!set || got != ""):
					t.Errorf("step %d (%s): cookie %q (set %v), want it cleared", i, s.req, got, set)
				}
				if s.save != "" {
					tokens[s.save] = got
				}
				for _, name := range s.live {
					if _, err := e.backend.Get(t.Context(), keyOf(name), time.Now()); err != nil {
						t.Errorf("step %d (%s): row of %s: %v, want live", i, s.req, name, err)
					}
				}
				for _, name := range s.gone {
					if item := e.rawItem(keyOf(name)); item != nil {
						t.Errorf("step %d (%s): row of %s still there: %v", i, s.req, name, item)
					}
				}
			}
		})
	}
}

// TestLayout checks that a session is stored in dynamostore's layout, under
// the storage key of its token and never the token.
func TestLayout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, noReaper, nil)
	before := time.Now()
	token := e.login("ann")
	if e.rawItem(token) != nil {
		t.Fatal("a row is keyed by the token itself")
	}
	item := e.rawItem(tableschema.StorageKey(token))
	if item == nil {
		t.Fatal("no row under the token's storage key")
	}
	for name, want := range map[string]string{
		tableschema.KeyAttr: "S", tableschema.ValuesAttr: "B", tableschema.ExpiresAttr: "N", tableschema.ModifiedAttr: "N",
	} {
		var got string
		switch item[name].(type) {
		case *types.AttributeValueMemberS:
			got = "S"
		case *types.AttributeValueMemberB:
			got = "B"
		case *types.AttributeValueMemberN:
			got = "N"
		}
		if got != want {
			t.Errorf("attribute %q: type %q, want %q", name, got, want)
		}
	}
	if len(item) != 4 {
		t.Errorf("item has %d attributes, want 4: %v", len(item), item)
	}
	rec, err := e.backend.Get(t.Context(), tableschema.StorageKey(token), time.Now())
	if err != nil {
		t.Fatalf("backend Get: %v", err)
	}
	deadline, values, err := e.sm.Codec.Decode(rec.Data)
	if err != nil || values["user"] != "ann" {
		t.Fatalf("row data decodes to %v, %v", values, err)
	}
	// The row expires at the session's deadline, rounded down to a second.
	if want := time.Unix(deadline.Unix(), 0); !rec.Expires.Equal(want) {
		t.Errorf("row expires %v, want %v (deadline %v)", rec.Expires, want, deadline)
	}
	if d := rec.Expires.Sub(before); d < e.sm.Lifetime-time.Second || d > e.sm.Lifetime+time.Second {
		t.Errorf("row expires %v after the request, want the Lifetime %v", d, e.sm.Lifetime)
	}
}

func TestExpiry(t *testing.T) {
	t.Parallel()

	t.Run("row expired in the table", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, noReaper, nil)
		token := e.login("ann")
		key := tableschema.StorageKey(token)
		e.expire(key)
		if body, _, set := e.do("GET /get?k=user", token); body != "" || set {
			t.Errorf("expired session served: body %q, cookie set %v", body, set)
		}
		if _, found, err := e.store.Find(token); found || err != nil {
			t.Errorf("Find of an expired row: found %v, err %v", found, err)
		}
		// Changing the expired session makes a new one: the old row stays dead.
		_, newToken, _ := e.do("POST /put?color=blue", token)
		if newToken == "" || newToken == token {
			t.Errorf("put on an expired session set token %q, want a new one", newToken)
		}
		if _, err := e.backend.Get(t.Context(), key, time.Now()); !errors.Is(err, dynamostore.ErrNotFound) {
			t.Errorf("expired row after the put: %v, want ErrNotFound", err)
		}
	})

	t.Run("Commit never revives an expired row", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, noReaper, nil)
		token := e.putExpired(map[string]any{"user": "old"})
		b, _ := e.sm.Codec.Encode(time.Now().Add(time.Hour), map[string]any{"user": "new"})
		err := e.store.Commit(token, b, time.Now().Add(time.Hour))
		if !errors.Is(err, dynamostore.ErrSessionGone) {
			t.Errorf("Commit over an expired row: %v, want ErrSessionGone", err)
		}
		if _, found, err := e.store.Find(token); found || err != nil {
			t.Errorf("Find after Commit over an expired row: found %v, err %v", found, err)
		}
	})

	t.Run("Commit with an expiry that has passed deletes", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, noReaper, nil)
		token := e.login("ann")
		b, _ := e.sm.Codec.Encode(time.Now(), nil)
		for _, expiry := range []time.Time{time.Now().Add(-time.Minute), time.Now()} {
			if err := e.store.Commit(token, b, expiry); err != nil {
				t.Fatalf("Commit with expiry %v: %v", expiry, err)
			}
			if item := e.rawItem(tableschema.StorageKey(token)); item != nil {
				t.Errorf("row left after Commit with expiry %v: %v", expiry, item)
			}
		}
		if err := e.store.Commit("never-seen", b, time.Now().Add(-time.Minute)); err != nil {
			t.Errorf("Commit of a new token already expired: %v", err)
		}
		if item := e.rawItem(tableschema.StorageKey("never-seen")); item != nil {
			t.Errorf("Commit of a new token already expired wrote %v", item)
		}
	})

	t.Run("short Lifetime", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, noReaper, func(sm *scs.SessionManager) { sm.Lifetime = 2 * time.Second })
		token := e.login("ann")
		if body, _, _ := e.do("GET /get?k=user", token); body != "ann" {
			t.Fatalf("fresh session: body %q", body)
		}
		body, _, _ := e.do("GET /deadline", token)
		deadline, err := time.Parse(time.RFC3339Nano, body)
		if err != nil {
			t.Fatalf("deadline %q: %v", body, err)
		}
		// The row expires at the deadline rounded down to a second: wait
		// until then, and not longer.
		time.Sleep(time.Until(time.Unix(deadline.Unix(), 0)))
		if body, _, set := e.do("GET /get?k=user", token); body != "" || set {
			t.Errorf("session past its Lifetime: body %q, cookie set %v", body, set)
		}
	})

	t.Run("IdleTimeout extends the row", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, noReaper, func(sm *scs.SessionManager) { sm.IdleTimeout = time.Hour })
		token := e.login("ann")
		key := tableschema.StorageKey(token)
		first, err := e.backend.Get(t.Context(), key, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Until(first.Expires); d > time.Hour || d < time.Hour-2*time.Second {
			t.Errorf("row expires in %v, want the IdleTimeout", d)
		}
		// A read commits again with IdleTimeout: the same token, a later
		// write of the same row.
		if body, got, set := e.do("GET /get?k=user", token); body != "ann" || !set || got != token {
			t.Errorf("read with IdleTimeout: body %q, cookie %q (set %v)", body, got, set)
		}
		again, err := e.backend.Get(t.Context(), key, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if again.Modified.Before(first.Modified) || again.Expires.Before(first.Expires) {
			t.Errorf("row after the read: modified %v, expires %v; before: %v, %v",
				again.Modified, again.Expires, first.Modified, first.Expires)
		}
	})
}

// TestFindRefusesIterationTokens checks the iteration token's security:
// whoever knows a storage key (it is in the table and its backups) cannot
// load the session with it.
func TestFindRefusesIterationTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t, noReaper, nil)
	token := e.login("ann")
	key := tableschema.StorageKey(token)
	all, err := e.store.All()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := all[dynamoscs.KeyPrefix+key]; !ok || len(all) != 1 {
		t.Fatalf("All = %v, want the session under %q", all, dynamoscs.KeyPrefix+key)
	}
	for _, tok := range []string{
		dynamoscs.KeyPrefix + key, // what All returns
		dynamoscs.KeyPrefix,
		dynamoscs.KeyPrefix + token,
		key, // the storage key as a token: hashed again, so another row
		"",
		"not a token",
		strings.Repeat("A", 4096),
	} {
		if b, found, err := e.store.FindCtx(t.Context(), tok); found || err != nil || b != nil {
			t.Errorf("Find(%.50q) = %q, %v, %v; want not found", tok, b, found, err)
		}
	}
	if _, found, err := e.store.Find(token); !found || err != nil {
		t.Errorf("Find of the token itself: found %v, err %v", found, err)
	}
}

// TestIterationTokens checks what Commit and Delete do with the tokens All
// returns, and with tokens of that form that name no live row.
func TestIterationTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t, noReaper, nil)
	data, _ := e.sm.Codec.Encode(time.Now().Add(time.Hour), map[string]any{"user": "changed"})
	expiry := time.Now().Add(time.Hour)
	tests := []struct {
		name    string
		token   func() string // the iteration token
		commit  error         // want from Commit
		after   string        // the user the row holds after Commit: "" for no live row
		deleted bool          // whether Delete leaves no row
	}{
		{"live row", func() string { return dynamoscs.KeyPrefix + tableschema.StorageKey(e.login("ann")) }, nil, "changed", true},
		{"deleted row", func() string {
			tok := e.login("bob")
			if err := e.store.Delete(tok); err != nil {
				t.Fatal(err)
			}
			return dynamoscs.KeyPrefix + tableschema.StorageKey(tok)
		}, dynamostore.ErrSessionGone, "", true},
		{"expired row", func() string {
			return dynamoscs.KeyPrefix + tableschema.StorageKey(e.putExpired(map[string]any{"user": "old"}))
		}, dynamostore.ErrSessionGone, "", false},
		{"no storage key", func() string { return dynamoscs.KeyPrefix + "short" }, dynamostore.ErrSessionGone, "", true},
		{"the lease", func() string { return dynamoscs.KeyPrefix + tableschema.LeaseKey }, dynamostore.ErrSessionGone, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := tt.token()
			key := strings.TrimPrefix(tok, dynamoscs.KeyPrefix)
			if err := e.store.CommitCtx(t.Context(), tok, data, expiry); !errors.Is(err, tt.commit) || (err == nil) != (tt.commit == nil) {
				t.Errorf("Commit: %v, want %v", err, tt.commit)
			}
			rec, err := e.backend.Get(t.Context(), key, time.Now())
			switch {
			case tt.after == "" && err == nil:
				t.Errorf("Commit left a live row: %v", rec)
			case tt.after != "" && err != nil:
				t.Errorf("after Commit: %v", err)
			case tt.after != "":
				if _, v, _ := e.sm.Codec.Decode(rec.Data); v["user"] != tt.after {
					t.Errorf("after Commit the row holds %v, want user %q", v, tt.after)
				}
				if !rec.Expires.Equal(time.Unix(expiry.Unix(), 0)) {
					t.Errorf("after Commit the row expires %v, want %v", rec.Expires, expiry)
				}
			}
			if err := e.store.DeleteCtx(t.Context(), tok); err != nil {
				t.Errorf("Delete: %v", err)
			}
			if got := e.rawItem(key) == nil; got != tt.deleted {
				t.Errorf("after Delete, no row: %v, want %v", got, tt.deleted)
			}
		})
	}
}

func TestIterate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, noReaper, nil)
	tokens := map[string]string{}
	for _, u := range []string{"ann", "bob", "cat"} {
		tokens[u] = e.login(u)
	}
	e.putExpired(map[string]any{"user": "old"})
	annBefore, err := e.backend.Get(t.Context(), tableschema.StorageKey(tokens["ann"]), time.Now())
	if err != nil {
		t.Fatal(err)
	}

	var seen []string
	err = e.sm.Iterate(t.Context(), func(ctx context.Context) error {
		user := e.sm.GetString(ctx, "user")
		seen = append(seen, user)
		switch user {
		case "ann":
			e.sm.Put(ctx, "role", "admin")
			_, _, err := e.sm.Commit(ctx)
			return err
		case "bob":
			return e.sm.Destroy(ctx)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Iterate: %v", err)
	}
	slices.Sort(seen)
	if want := []string{"ann", "bob", "cat"}; !slices.Equal(seen, want) {
		t.Errorf("Iterate saw %v, want %v (and not the expired session)", seen, want)
	}

	tests := []struct {
		user, key, want string
	}{
		{"ann", "role", "admin"}, // modified, under the same token
		{"ann", "user", "ann"},
		{"bob", "user", ""}, // destroyed
		{"cat", "user", "cat"},
		{"cat", "role", ""},
	}
	for _, tt := range tests {
		if body, _, _ := e.do("GET /get?k="+tt.key, tokens[tt.user]); body != tt.want {
			t.Errorf("%s's %s after Iterate: %q, want %q", tt.user, tt.key, body, tt.want)
		}
	}
	if item := e.rawItem(tableschema.StorageKey(tokens["bob"])); item != nil {
		t.Errorf("destroyed row still there: %v", item)
	}
	annAfter, err := e.backend.Get(t.Context(), tableschema.StorageKey(tokens["ann"]), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !annAfter.Expires.Equal(annBefore.Expires) {
		t.Errorf("Iterate's Commit moved the expiry from %v to %v", annBefore.Expires, annAfter.Expires)
	}

	// A session signed out during an iteration is not written back.
	err = e.sm.Iterate(t.Context(), func(ctx context.Context) error {
		if e.sm.GetString(ctx, "user") != "cat" {
			return nil
		}
		if err := e.store.Delete(tokens["cat"]); err != nil { // a concurrent sign-out
			return err
		}
		e.sm.Put(ctx, "role", "admin")
		_, _, err := e.sm.Commit(ctx)
		return err
	})
	if !errors.Is(err, dynamostore.ErrSessionGone) {
		t.Errorf("Iterate committing a deleted session: %v, want ErrSessionGone", err)
	}
	if item := e.rawItem(tableschema.StorageKey(tokens["cat"])); item != nil {
		t.Errorf("deleted session written back by Iterate: %v", item)
	}
}

func TestAll(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dynamoscs.Options{Reaper: dynamostore.ReaperOptions{Interval: -1, Grace: -1}}, nil)
	all, err := e.store.AllCtx(t.Context())
	if err != nil || all == nil || len(all) != 0 {
		t.Fatalf("All of an empty table = %v, %v; want an empty map", all, err)
	}
	// A pass with the lease leaves the lease item in the table.
	if _, err := e.store.Reap(t.Context()); err != nil {
		t.Fatalf("Reap: %v", err)
	}
	if e.rawItem(tableschema.LeaseKey) == nil {
		t.Fatal("no lease item after a pass")
	}
	want := map[string]string{}
	for _, u := range []string{"ann", "bob"} {
		want[dynamoscs.KeyPrefix+tableschema.StorageKey(e.login(u))] = u
	}
	e.putExpired(map[string]any{"user": "old"})
	all, err = e.store.All()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(want) {
		t.Errorf("All returned %d sessions, want %d: %v", len(all), len(want), all)
	}
	for tok, user := range want {
		_, v, err := e.sm.Codec.Decode(all[tok])
		if err != nil || v["user"] != user {
			t.Errorf("All[%s] decodes to %v, %v; want user %s", tok, v, err, user)
		}
	}
}

// TestReap checks that the store's passes delete expired rows, and only
// them.
func TestReap(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		reaper dynamostore.ReaperOptions
	}{
		{"conditional deletes", dynamostore.ReaperOptions{Interval: -1, Grace: -1, NoLease: true}},
		{"batch deletes", dynamostore.ReaperOptions{Interval: -1, Grace: -1, NoLease: true, BatchDelete: true}},
		{"with the lease", dynamostore.ReaperOptions{Interval: -1, Grace: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var passes []dynamostore.ReapStats
			tt.reaper.OnPass = func(st dynamostore.ReapStats, _ error) { passes = append(passes, st) }
			e := newEnv(t, dynamoscs.Options{Reaper: tt.reaper}, nil)
			live := e.login("ann")
			expired := []string{e.putExpired(map[string]any{"user": "old"}), e.login("bob")}
			e.expire(tableschema.StorageKey(expired[1]))
			st, err := e.store.Reap(t.Context())
			if err != nil {
				t.Fatalf("Reap: %v", err)
			}
			if st.Deleted != len(expired) {
				t.Errorf("Reap deleted %d rows, want %d (%+v)", st.Deleted, len(expired), st)
			}
			for _, tok := range expired {
				if item := e.rawItem(tableschema.StorageKey(tok)); item != nil {
					t.Errorf("expired row left: %v", item)
				}
			}
			if body, _, _ := e.do("GET /get?k=user", live); body != "ann" {
				t.Errorf("live session after Reap: %q", body)
			}
			if len(passes) != 1 || passes[0].Deleted != st.Deleted {
				t.Errorf("OnPass saw %+v, want the one pass", passes)
			}
		})
	}

	t.Run("with the default grace", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, dynamoscs.Options{Reaper: dynamostore.ReaperOptions{Interval: -1, NoLease: true}}, nil)
		tok := e.putExpired(map[string]any{"user": "old"})
		st, err := e.store.Reap(t.Context())
		if err != nil || st.Deleted != 0 {
			t.Errorf("Reap within the grace: %+v, %v; want nothing deleted", st, err)
		}
		if e.rawItem(tableschema.StorageKey(tok)) == nil {
			t.Error("row expired within the grace was deleted")
		}
	})

	t.Run("invalid options", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, dynamoscs.Options{Reaper: dynamostore.ReaperOptions{Interval: -1, Segments: -1}}, nil)
		if _, err := e.store.Reap(t.Context()); !errors.Is(err, dynamostore.ErrInvalidOption) {
			t.Errorf("Reap with Segments -1: %v, want ErrInvalidOption", err)
		}
	})
}

// reaperGoroutines returns the number of goroutines running a Store's
// reaper loop once it is want, or after 5 seconds: a goroutine just started
// may not have entered the loop yet, and one that StopCleanup waited for is
// still returning from it.
func reaperGoroutines(want int) int {
	deadline := time.Now().Add(5 * time.Second)
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n == len(buf) {
			buf = make([]byte, 2*len(buf))
			continue
		}
		got := strings.Count(string(buf[:n]), "dynamostore/scs.(*Store).run(")
		if got == want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCleanupGoroutine checks the reaper goroutine: it deletes expired rows
// by itself, and StopCleanup ends it. It does not run in parallel, so that
// it counts only its own Stores' goroutines.
func TestCleanupGoroutine(t *testing.T) {
	if n := reaperGoroutines(0); n != 0 {
		t.Fatalf("%d reaper goroutines before the test", n)
	}
	c := dbtest.Client(t)

	t.Run("reaps until stopped", func(t *testing.T) {
		table := dbtest.NewTable(t, c)
		passes := make(chan dynamostore.ReapStats, 16)
		store, err := dynamoscs.NewWithOptions(c, table, dynamoscs.Options{Reaper: dynamostore.ReaperOptions{
			Interval: time.Second, Grace: -1, NoLease: true,
			OnPass: func(st dynamostore.ReapStats, err error) {
				if err != nil {
					t.Errorf("pass: %v", err)
				}
				passes <- st
			},
		}})
		if err != nil {
			t.Fatal(err)
		}
		defer store.StopCleanup()
		b, err := dynamostore.NewDynamoDBBackend(c, table, dynamostore.DynamoDBOptions{})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		if err := b.Create(t.Context(), dynamostore.Record{Key: tableschema.StorageKey("expired"), Data: []byte("x"), Expires: now.Add(-time.Second), Modified: now}); err != nil {
			t.Fatal(err)
		}
		if n := reaperGoroutines(1); n != 1 {
			t.Errorf("%d reaper goroutines, want 1", n)
		}
		select {
		case st := <-passes:
			if st.Deleted != 1 {
				t.Errorf("first pass: %+v, want 1 row deleted", st)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no pass within 10s of an interval of 1s")
		}
		if _, found, err := store.Find("expired"); found || err != nil {
			t.Errorf("Find after the pass: %v, %v", found, err)
		}
		store.StopCleanup()
		if n := reaperGoroutines(0); n != 0 {
			t.Errorf("%d reaper goroutines after StopCleanup, want 0", n)
		}
		store.StopCleanup() // again: a no-op
		// The Store still serves, and still reaps on demand.
		if err := store.Commit("tok", []byte("data"), time.Now().Add(time.Hour)); err != nil {
			t.Errorf("Commit after StopCleanup: %v", err)
		}
		if _, err := store.Reap(t.Context()); err != nil {
			t.Errorf("Reap after StopCleanup: %v", err)
		}
	})

	t.Run("constructors", func(t *testing.T) {
		table := dbtest.NewTable(t, c)
		tests := []struct {
			name       string
			new        func() (*dynamoscs.Store, error)
			goroutines int
			err        error
		}{
			{"New", func() (*dynamoscs.Store, error) { return dynamoscs.New(c, table) }, 1, nil},
			{"NewWithCleanupInterval 0", func() (*dynamoscs.Store, error) { return dynamoscs.NewWithCleanupInterval(c, table, 0) }, 0, nil},
			{"NewWithCleanupInterval -1s", func() (*dynamoscs.Store, error) { return dynamoscs.NewWithCleanupInterval(c, table, -time.Second) }, 0, nil},
			{"NewWithCleanupInterval 1m", func() (*dynamoscs.Store, error) { return dynamoscs.NewWithCleanupInterval(c, table, time.Minute) }, 1, nil},
			{"NewWithCleanupInterval 1ms", func() (*dynamoscs.Store, error) {
				return dynamoscs.NewWithCleanupInterval(c, table, time.Millisecond)
			}, 0, dynamostore.ErrInvalidOption},
			{"NewWithOptions 401 days", func() (*dynamoscs.Store, error) {
				return dynamoscs.NewWithOptions(c, table, dynamoscs.Options{Reaper: dynamostore.ReaperOptions{Interval: 401 * 24 * time.Hour}})
			}, 0, dynamostore.ErrInvalidOption},
			{"NewWithOptions eventually consistent", func() (*dynamoscs.Store, error) {
				return dynamoscs.NewWithOptions(c, table, dynamoscs.Options{EventuallyConsistentReads: true, Reaper: dynamostore.ReaperOptions{Interval: -1}})
			}, 0, nil},
			{"nil client", func() (*dynamoscs.Store, error) { return dynamoscs.New(nil, table) }, 0, dynamostore.ErrInvalidOption},
			{"bad table name", func() (*dynamoscs.Store, error) { return dynamoscs.New(c, "a b") }, 0, dynamostore.ErrInvalidOption},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s, err := tt.new()
				if !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
					t.Fatalf("error %v, want %v", err, tt.err)
				}
				if n := reaperGoroutines(tt.goroutines); n != tt.goroutines {
					t.Errorf("%d reaper goroutines, want %d", n, tt.goroutines)
				}
				if s == nil {
					return
				}
				// Stopped from several goroutines at once.
				var wg sync.WaitGroup
				for range 3 {
					wg.Go(s.StopCleanup)
				}
				wg.Wait()
				if n := reaperGoroutines(0); n != 0 {
					t.Errorf("%d reaper goroutines after StopCleanup", n)
				}
				if err := s.Commit("tok", []byte("data"), time.Now().Add(time.Hour)); err != nil {
					t.Errorf("Commit: %v", err)
				}
				if b, found, err := s.Find("tok"); !found || err != nil || string(b) != "data" {
					t.Errorf("Find = %q, %v, %v", b, found, err)
				}
			})
		}
	})
}

// TestConcurrentCommits has many requests commit, read and delete sessions
// at once, under -race: two Commits of one new token both succeed, the row
// holding one of them.
func TestConcurrentCommits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, noReaper, nil)
	expiry := time.Now().Add(time.Hour)
	var wg sync.WaitGroup
	for i := range 8 {
		tok := "token-" + string(rune('a'+i))
		for _, v := range []string{"one", "two"} {
			wg.Go(func() {
				if err := e.store.Commit(tok, []byte(v), expiry); err != nil {
					t.Errorf("Commit(%s, %s): %v", tok, v, err)
				}
			})
		}
	}
	wg.Wait()
	for i := range 8 {
		tok := "token-" + string(rune('a'+i))
		b, found, err := e.store.Find(tok)
		if !found || err != nil || (string(b) != "one" && string(b) != "two") {
			t.Errorf("Find(%s) = %q, %v, %v", tok, b, found, err)
		}
		wg.Go(func() {
			if err := e.store.Delete(tok); err != nil {
				t.Errorf("Delete(%s): %v", tok, err)
			}
		})
		wg.Go(func() {
			if err := e.store.Delete(tok); err != nil {
				t.Errorf("Delete(%s) again: %v", tok, err)
			}
		})
	}
	wg.Wait()
	all, err := e.store.All()
	if err != nil || len(all) != 0 {
		t.Errorf("All after deleting everything: %v, %v", all, err)
	}
}

// TestEmptyTokenAndData: the empty token, which Find never finds, is
// never committed and deletes nothing; a session committed with no data
// is found with empty data by Find and by All alike.
func TestEmptyTokenAndData(t *testing.T) {
	t.Parallel()
	e := newEnv(t, noReaper, nil)
	expiry := time.Now().Add(time.Hour)
	if err := e.store.Commit("", []byte("x"), expiry); !errors.Is(err, dynamostore.ErrInvalidCookie) {
		t.Errorf("Commit of the empty token = %v; want ErrInvalidCookie", err)
	}
	if e.rawItem(tableschema.StorageKey("")) != nil {
		t.Error("Commit of the empty token wrote a row")
	}
	if err := e.store.Delete(""); err != nil {
		t.Errorf("Delete of the empty token = %v", err)
	}
	const token = "empty-data-token"
	if err := e.store.Commit(token, nil, expiry); err != nil {
		t.Fatal(err)
	}
	b, found, err := e.store.Find(token)
	if !found || err != nil || len(b) != 0 {
		t.Errorf("Find = %q, %v, %v; want empty data, found", b, found, err)
	}
	all, err := e.store.All()
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := all[dynamoscs.KeyPrefix+tableschema.StorageKey(token)]; !ok || got == nil || len(got) != 0 {
		t.Errorf("All = %v; want the session with empty data", all)
	}
}
