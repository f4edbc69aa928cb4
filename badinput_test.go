package dynamostore

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
)

// badCookie is one hostile or stale cookie value.
type badCookie struct {
	kind  string
	name  string
	value string
}

// signID signs raw as a session cookie value with the given keys, the way
// the Store does.
func signID(t *testing.T, name string, raw []byte, hash, block []byte) string {
	t.Helper()
	sc := securecookie.New(hash, block)
	sc.SetSerializer(securecookie.NopEncoder{})
	sc.MaxLength(0)
	v, err := sc.Encode(name, raw)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// badCookies returns the catalogue of cookies the Store must refuse before
// any DynamoDB call. good is a valid cookie of a live session; retired one
// signed with a key pair no longer configured.
func badCookies(t *testing.T, good, retired *http.Cookie) []badCookie {
	id, _ := newID()
	var cs []badCookie
	add := func(kind, name, value string) { cs = append(cs, badCookie{kind, name, value}) }
	sign := func(raw []byte) string { return signID(t, "s", raw, testHashKey, testBlockKey) }

	// Oversized: past the 1 KB bound, whatever they hold.
	for _, n := range []int{maxCookieValue + 1, 2048, 4096, 64 << 10, 1 << 20} {
		add("oversized", fmt.Sprintf("%d bytes", n), strings.Repeat("A", n))
	}
	add("oversized", "valid cookie padded", good.Value+strings.Repeat("A", maxCookieValue+1-len(good.Value)))

	// Unsigned: an ID, or something shaped like the Store's cookies,
	// without a valid signature.
	add("unsigned", "raw ID", id)
	add("unsigned", "base64 ID", base64.URLEncoding.EncodeToString([]byte(id)))
	add("unsigned", "name|date|ID", base64.URLEncoding.EncodeToString([]byte(fmt.Sprintf("s|%d|%s|", time.Now().Unix(), id))))
	add("unsigned", "empty", "")
	add("unsigned", "garbage", "not-a-cookie")
	add("unsigned", "pipes", "||||")

	// Signed with keys the Store does not have.
	add("retired key", "retired pair, no longer configured", retired.Value)
	add("foreign key", "another hash key", signID(t, "s", []byte(id), []byte("another-hash-key-another-hash-ke"), testBlockKey))
	add("foreign key", "another block key", signID(t, "s", []byte(id), testHashKey, []byte("0123456789abcdef")))
	add("foreign key", "signed, not encrypted", signID(t, "s", []byte(id), testHashKey, nil))
	add("foreign key", "other cookie name", signID(t, "other", []byte(id), testHashKey, testBlockKey))

	// Tampered or cut copies of a valid cookie.
	for i := 0; i < len(good.Value); i += 7 {
		b := []byte(good.Value)
		b[i] ^= 0x01
		add("tampered", fmt.Sprintf("bit flipped at %d", i), string(b))
	}
	for _, n := range []int{len(good.Value) - 1, len(good.Value) - 4, len(good.Value) / 2, 8, 1} {
		add("truncated", fmt.Sprintf("first %d bytes", n), good.Value[:n])
	}
	add("tampered", "two cookies joined", good.Value+good.Value)

	// Validly signed, but the ID has the wrong length or alphabet.
	for _, n := range []int{0, 1, 16, 32, idLen - 1, idLen + 1, 64, 86, 200} {
		add("wrong length ID", fmt.Sprintf("%d characters", n), sign([]byte(strings.Repeat("a", n))))
	}
	add("wrong length ID", "raw 32 bytes", sign([]byte(strings.Repeat("\x01", idBytes))))
	add("wrong length ID", "padded base64", sign([]byte(base64.URLEncoding.EncodeToString(make([]byte, idBytes)))))
	for _, c := range []string{"+", "/", "=", " ", ".", "~", "%", "*", "\x00", "\xff", "\n"} {
		add("wrong alphabet ID", fmt.Sprintf("%q in the ID", c), sign([]byte(id[:idLen-1]+c)))
	}
	add("wrong alphabet ID", "standard base64", sign([]byte(base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte{0xfb, 0xff}, idBytes/2)))))
	add("wrong alphabet ID", "multi-byte character", sign([]byte(id[:idLen-2]+"\u00e9")))
	return cs
}

// TestBadCookieCatalogue presents every cookie of the catalogue to Get:
// each is refused with ErrInvalidCookie before any DynamoDB call, the
// session given is a fresh one, and saving it gets a new ID rather than
// anything the cookie carried.
func TestBadCookieCatalogue(t *testing.T) {
	e := newEnv(t)
	good := e.save("s", map[any]any{"user": "ada"})
	_, live, _ := e.load("s", good)

	// A cookie of a live session signed with a pair since retired.
	retiredHash := []byte("retired-hash-key-retired-hash-ke")
	old, err := NewStore(context.Background(), e.table, withAPI(e.client),
		WithKeyPairs(retiredHash, nil), withCleanupInterval(0), withClock(e.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	retired, _ := saveNew(t, old, "s", map[any]any{"user": "bob"})

	cases := badCookies(t, good, retired)
	kinds := map[string]int{}
	for _, c := range cases {
		kinds[c.kind]++
		t.Run(c.kind+"/"+c.name, func(t *testing.T) {
			e.calls.take()
			r, sess, err := e.load("s", &http.Cookie{Name: "s", Value: c.value})
			if !errors.Is(err, ErrInvalidCookie) {
				t.Fatalf("Get = %v; want ErrInvalidCookie", err)
			}
			if n := e.calls.take(); total(n) != 0 {
				t.Fatalf("DynamoDB calls %v for a bad cookie; want none", n)
			}
			if !sess.IsNew || sess.ID != "" || len(sess.Values) != 0 {
				t.Fatalf("session IsNew %v, ID set %v, values %v; want a fresh one", sess.IsNew, sess.ID != "", sess.Values)
			}
			// The fresh session is saved under a new ID, never one taken
			// from the cookie.
			w := httptest.NewRecorder()
			if err := sess.Save(r, w); err != nil {
				t.Fatal(err)
			}
			if sess.ID == live.ID || strings.Contains(c.value, sess.ID) {
				t.Fatal("fresh session took its ID from the bad cookie")
			}
			if n := e.calls.take(); n["PutItem"] != 1 || total(n) != 1 {
				t.Fatalf("saving the fresh session made %v; want one PutItem", n)
			}
		})
	}
	t.Logf("%d bad cookies tried: %v", len(cases), kinds)
	// The real sessions were never touched.
	if _, s, _ := e.load("s", good); s.Values["user"] != "ada" {
		t.Fatal("live session damaged")
	}
}

// TestReplayedCookies presents cookies that were valid once: after logout
// and after Regenerate. Their signature holds, so the Store makes its one
// GetItem, finds no row, and gives a fresh session with no error; saving
// it gets a new ID, so replaying never revives the old one.
func TestReplayedCookies(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name string
		end  func(r *http.Request, w http.ResponseWriter, sess *sessions.Session) error
	}{
		{"after logout", e.store.Delete},
		{"after MaxAge -1", func(r *http.Request, w http.ResponseWriter, s *sessions.Session) error {
			s.Options.MaxAge = -1
			return s.Save(r, w)
		}},
		{"after Regenerate", e.store.Regenerate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.save("s", map[any]any{"user": "ada"})
			r, sess, _ := e.load("s", c)
			oldID := sess.ID
			if err := tt.end(r, httptest.NewRecorder(), sess); err != nil {
				t.Fatal(err)
			}
			for replay := 0; replay < 3; replay++ {
				e.calls.take()
				r, s, err := e.load("s", c)
				if err != nil || !s.IsNew || s.ID != "" || len(s.Values) != 0 {
					t.Fatalf("replay %d: %v, IsNew %v, values %v; want a fresh session", replay, err, s.IsNew, s.Values)
				}
				if n := e.calls.take(); n["GetItem"] != 1 || total(n) != 1 {
					t.Fatalf("replay %d made %v; want one GetItem", replay, n)
				}
				s.Values["n"] = replay
				if err := s.Save(r, httptest.NewRecorder()); err != nil {
					t.Fatal(err)
				}
				if s.ID == oldID {
					t.Fatal("replayed cookie's ID was reused")
				}
			}
			if e.rawItem(oldID) != nil {
				t.Fatal("replaying brought the old row back")
			}
		})
	}
}

// TestUnencodableValuesCatalogue extends TestUnencodableValues: values and
// keys neither serializer can encode, on new and on existing sessions. Save
// fails with ErrEncode naming the key, makes no DynamoDB call, sets no
// cookie, and leaves the stored session as it was.
func TestUnencodableValuesCatalogue(t *testing.T) {
	type unregistered struct{ A int }
	type withFunc struct{ F func() }
	ch := make(chan int)
	// valueCase is one value (or key) that a serializer cannot encode.
	type valueCase struct {
		name     string
		key, val any
	}
	gobCases := []valueCase{
		{"func", "culprit", func() {}},
		{"channel", "culprit", make(chan int)},
		{"unregistered struct", "culprit", unregistered{1}},
		{"pointer to unregistered struct", "culprit", &unregistered{1}},
		{"struct with a func field", "culprit", withFunc{}},
		{"func in a map", "culprit", map[string]any{"f": func() {}}},
		{"channel in a slice", "culprit", []any{make(chan int)}},
		{"unregistered in a slice", "culprit", []any{unregistered{2}}},
		{"channel key", ch, 1},
		{"unregistered key", unregistered{3}, 1},
	}
	jsonCases := []valueCase{
		{"func", "culprit", func() {}},
		{"channel", "culprit", make(chan int)},
		{"NaN", "culprit", math.NaN()},
		{"infinity", "culprit", math.Inf(1)},
		{"complex", "culprit", complex(1, 2)},
		{"func in a map", "culprit", map[string]any{"f": func() {}}},
		{"int key", 42, "x"},
		{"struct key", unregistered{4}, "x"},
	}
	n := 0
	run := func(serializer string, sz Serializer, name string, key, val any) {
		for _, existing := range []bool{false, true} {
			n++
			kind := "new"
			if existing {
				kind = "existing"
			}
			t.Run(serializer+"/"+name+"/"+kind, func(t *testing.T) {
				e := newEnv(t, WithSerializer(sz))
				var r *http.Request
				var c *http.Cookie
				var sess *sessions.Session
				if existing {
					c = e.save("s", map[any]any{"ok": "kept"})
					r, sess, _ = e.load("s", c)
				} else {
					r = request()
					sess, _ = e.store.New(r, "s")
				}
				sess.Values["ok"] = "changed"
				sess.Values[key] = val
				e.calls.take()
				w := httptest.NewRecorder()
				err := sess.Save(r, w)
				if !errors.Is(err, ErrEncode) || !strings.Contains(err.Error(), fmt.Sprint(key)) {
					t.Fatalf("Save = %v; want ErrEncode naming the key %v", err, key)
				}
				if calls := e.calls.take(); total(calls) != 0 {
					t.Fatalf("DynamoDB calls %v for unencodable values; want none", calls)
				}
				if len(w.Result().Cookies()) != 0 {
					t.Fatal("failed Save set a cookie")
				}
				if existing {
					if _, again, _ := e.load("s", c); again.Values["ok"] != "kept" || len(again.Values) != 1 {
						t.Fatalf("stored %v; want the old values intact", again.Values)
					}
				} else if sess.ID != "" {
					t.Fatal("failed Save gave the session an ID")
				}
			})
		}
	}
	for _, c := range gobCases {
		run("gob", GobSerializer{}, c.name, c.key, c.val)
	}
	for _, c := range jsonCases {
		run("json", JSONSerializer{}, c.name, c.key, c.val)
	}
	t.Logf("%d unencodable-value cases tried", n)
}

// TestTooLargeCatalogue extends TestTooLargeIsRefusedBeforeWriting: a new
// session over the limit writes nothing, an existing one keeps its row, and
// the limit is DynamoDB's own to the byte: an item itemSize puts at exactly
// maxItemSize is accepted by DynamoDB, one byte more is refused by
// DynamoDB too.
func TestTooLargeCatalogue(t *testing.T) {
	t.Run("new session", func(t *testing.T) {
		for _, sz := range []Serializer{GobSerializer{}, JSONSerializer{}} {
			e := newEnv(t, WithSerializer(sz))
			r := request()
			sess, _ := e.store.New(r, "s")
			sess.Values["blob"] = strings.Repeat("x", maxItemSize)
			w := httptest.NewRecorder()
			if err := sess.Save(r, w); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("%T: Save = %v; want ErrTooLarge", sz, err)
			}
			if calls := e.calls.take(); total(calls) != 0 || len(w.Result().Cookies()) != 0 || sess.ID != "" {
				t.Fatalf("%T: too-large new session made %v calls / set a cookie / got an ID", sz, calls)
			}
			if n := itemCount(t, e); n != 0 {
				t.Fatalf("%T: %d rows after a refused create", sz, n)
			}
		}
	})
	t.Run("existing session", func(t *testing.T) {
		e := newEnv(t, WithOptimisticLocking(true))
		c := e.save("s", map[any]any{"n": 1})
		r, sess, _ := e.load("s", c)
		e.store.SetOwner(r, sess, "ada")
		sess.Values["blob"] = strings.Repeat("x", maxItemSize)
		e.calls.take()
		w := httptest.NewRecorder()
		if err := sess.Save(r, w); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Save = %v; want ErrTooLarge", err)
		}
		if calls := e.calls.take(); total(calls) != 0 || len(w.Result().Cookies()) != 0 {
			t.Fatalf("too-large update made %v calls / set a cookie", calls)
		}
		_, again, _ := e.load("s", c)
		if len(again.Values) != 1 || again.Values["n"] != 1 {
			t.Fatalf("stored %v; want the old row intact", again.Values)
		}
		if e.storedOwner(again.ID) != nil {
			t.Fatal("owner written by a refused Save")
		}
	})
	t.Run("boundary", func(t *testing.T) {
		e := newEnv(t)
		// DynamoDB sizes a Number by its significant digits; itemSize
		// counts trailing zeros too, so it may over-count by a byte. These
		// times have none, so the two agree to the byte.
		now := time.UnixMilli(1795612345123)
		exp := time.Unix(1795615947, 0)
		for _, rec := range []Record{
			{Key: storageKey("at-the-limit"), Expires: exp, Modified: now},
			{Key: storageKey("at-the-limit-owned"), Expires: exp, Modified: now, Owner: "ada", Version: 12345},
		} {
			rec.Data = make([]byte, maxItemSize-itemSize(rec)-len(attrValues))
			if itemSize(rec) != maxItemSize {
				t.Fatalf("itemSize = %d; want %d", itemSize(rec), maxItemSize)
			}
			if err := e.store.backend.Create(context.Background(), rec); err != nil {
				t.Fatalf("item of exactly maxItemSize: %v", err)
			}
			rec.Data = append(rec.Data, 0)
			e.calls.take()
			if err := e.store.backend.Update(context.Background(), rec); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("item of maxItemSize+1 = %v; want ErrTooLarge", err)
			}
			if calls := e.calls.take(); total(calls) != 0 {
				t.Fatalf("DynamoDB calls %v for a too-large item", calls)
			}
			// DynamoDB agrees: the stored item with one byte more is
			// refused when written directly.
			item := rawItemByKey(t, e.client, e.table, rec.Key)
			item[attrValues] = &types.AttributeValueMemberB{Value: rec.Data}
			_, err := e.client.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(e.table), Item: item})
			if err == nil || !strings.Contains(err.Error(), "size") {
				t.Fatalf("DynamoDB accepted an item itemSize puts over the limit: %v", err)
			}
		}
	})
}

// itemCount counts the rows of the env's table.
func itemCount(t *testing.T, e *env) int {
	t.Helper()
	out, err := e.client.Scan(context.Background(), &dynamodb.ScanInput{
		TableName: aws.String(e.table), Select: types.SelectCount, ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	return int(out.Count)
}
