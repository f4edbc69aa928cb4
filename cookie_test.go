package dynamostore

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
)

// signedAt makes the cookie value securecookie would have made for id at
// the given time with the hash and block key, so that tests can present a
// signature of any age without waiting: securecookie reads the wall clock.
func signedAt(t testing.TB, hashKey, blockKey []byte, name, id string, at time.Time) string {
	t.Helper()
	value := []byte(id)
	if blockKey != nil {
		block, err := aes.NewCipher(blockKey)
		if err != nil {
			t.Fatal(err)
		}
		iv := make([]byte, block.BlockSize())
		if _, err := rand.Read(iv); err != nil {
			t.Fatal(err)
		}
		cipher.NewCTR(block, iv).XORKeyStream(value, value)
		value = append(iv, value...)
	}
	payload := strconv.FormatInt(at.Unix(), 10) + "|" + base64.URLEncoding.EncodeToString(value)
	mac := hmac.New(sha256.New, hashKey)
	mac.Write([]byte(name + "|" + payload))
	signed := append([]byte(payload+"|"), mac.Sum(nil)...)
	out := base64.URLEncoding.EncodeToString(signed)
	// The value must be one securecookie itself accepts.
	codec := securecookie.New(hashKey, blockKey).SetSerializer(securecookie.NopEncoder{}).MaxAge(0)
	var raw []byte
	if err := codec.Decode(name, out, &raw); err != nil || string(raw) != id {
		t.Fatalf("signedAt made a value securecookie refuses: %v", err)
	}
	return out
}

// TestSaveReusesRecentCookie checks when Save sends the request's cookie
// value back instead of signing the session ID again: only when the value
// carries the session's ID and was signed with the current key within
// touchAfter. Otherwise the Set-Cookie is a new signature, made with the
// current key, and either way it loads the session.
func TestSaveReusesRecentCookie(t *testing.T) {
	retiredHash := []byte("retired-hash-key-retired-hash-ke")
	tests := []struct {
		name   string
		opts   []Option
		age    time.Duration           // age of the request's signature
		hash   []byte                  // key that signed it; default testHashKey
		change func(*sessions.Session) // nil: Save it unchanged
		regen  bool                    // Regenerate instead of Save
		reused bool
	}{
		{name: "unchanged, fresh signature", reused: true},
		{name: "unchanged, signed just inside touchAfter", age: defaultTouchAfter - 2*time.Second, reused: true},
		{name: "changed, fresh signature", change: func(s *sessions.Session) { s.Values["n"] = 2 }, reused: true},
		{name: "signed before touchAfter", age: defaultTouchAfter + 2*time.Second},
		{name: "signed a day ago", age: 24 * time.Hour},
		{name: "signed with a retired key", hash: retiredHash},
		{name: "regenerated", regen: true},
		{name: "touchAfter 0", opts: []Option{WithTouchAfter(0)}},
		{name: "touchAfter under a second", opts: []Option{WithTouchAfter(500 * time.Millisecond)}},
		{name: "given codecs", opts: []Option{WithCodecs(securecookie.New(testHashKey, testBlockKey).SetSerializer(securecookie.NopEncoder{}))}},
		{name: "touchAfter an hour, signed a minute ago", opts: []Option{WithTouchAfter(time.Hour)}, age: time.Minute, reused: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := append([]Option{WithKeyPairs(testHashKey, testBlockKey, retiredHash, testBlockKey)}, tt.opts...)
			e := newEnv(t, opts...)
			id := e.create("s", map[any]any{"n": 1})
			hash := tt.hash
			if hash == nil {
				hash = testHashKey
			}
			in := &http.Cookie{Name: "s", Value: signedAt(t, hash, testBlockKey, "s", id, time.Now().Add(-tt.age))}
			r, sess, err := e.load("s", in)
			if err != nil || sess.ID != id {
				t.Fatalf("load: %v (ID loaded: %v)", err, sess.ID == id)
			}
			if tt.change != nil {
				tt.change(sess)
			}
			w := httptest.NewRecorder()
			if tt.regen {
				err = e.store.Regenerate(r, w, sess)
			} else {
				err = sess.Save(r, w)
			}
			if err != nil {
				t.Fatal(err)
			}
			out := cookieOf(w, "s")
			if out == nil {
				t.Fatal("Save set no cookie")
			}
			if reused := out.Value == in.Value; reused != tt.reused {
				t.Fatalf("cookie value reused: %v; want %v", reused, tt.reused)
			}
			if out.MaxAge != e.store.Options.MaxAge || out.Path != "/" || !out.HttpOnly {
				t.Fatalf("Set-Cookie attributes %+v", out)
			}
			current, _ := newIDCodec([][]byte{testHashKey, testBlockKey}, nil, 0)
			got, _, _, err := current.decode("s", out.Value)
			if err != nil || got != sess.ID {
				t.Fatalf("Set-Cookie does not verify with the current key alone, or carries another ID: %v", err)
			}
			_, again, err := e.load("s", out)
			if err != nil || again.ID != sess.ID || again.IsNew {
				t.Fatalf("Set-Cookie does not load the session: %v", err)
			}
		})
	}
}

// TestSecondSaveReusesItsOwnSignature checks that a second Save in one
// request sends the cookie value the first one signed.
func TestSecondSaveReusesItsOwnSignature(t *testing.T) {
	e := newEnv(t)
	r := request()
	sess, err := e.store.Get(r, "s")
	if err != nil {
		t.Fatal(err)
	}
	var values []string
	for i := range 2 {
		sess.Values["n"] = i
		w := httptest.NewRecorder()
		if err := sess.Save(r, w); err != nil {
			t.Fatal(err)
		}
		values = append(values, cookieOf(w, "s").Value)
	}
	if values[0] != values[1] {
		t.Fatal("the second Save signed the ID again")
	}
}

// create saves a new session with values and returns its ID.
func (e *env) create(name string, values map[any]any) string {
	e.t.Helper()
	c := e.save(name, values)
	id, _, _, err := e.store.codec.decode(name, c.Value)
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// TestSignedWithin checks the timestamp hint on values securecookie made
// and on values it did not.
func TestSignedWithin(t *testing.T) {
	now := time.Now()
	b64 := base64.URLEncoding.EncodeToString
	tests := []struct {
		name  string
		value string
		want  bool
	}{
		{"signed now", signedAt(t, testHashKey, testBlockKey, "s", "id", now), true},
		{"signed 9 s ago", signedAt(t, testHashKey, nil, "s", "id", now.Add(-9*time.Second)), true},
		{"signed 11 s ago", signedAt(t, testHashKey, testBlockKey, "s", "id", now.Add(-11*time.Second)), false},
		{"signed a year ago", signedAt(t, testHashKey, nil, "s", "id", now.AddDate(-1, 0, 0)), false},
		{"empty", "", false},
		{"short", "MTc2NDYwMDAwMHw", false},
		{"not base64", "!!!!!!!!!!!!!!!!!!!!!!!!", false},
		{"no separator", b64([]byte("123456789012345678")), false},
		{"separator first", b64([]byte("|1764600000|abcdefgh")), false},
		{"letters", b64([]byte("17646000a0|abcdefgh")), false},
		{"future", b64([]byte(strconv.FormatInt(now.Add(time.Hour).Unix(), 10) + "|abcdefgh")), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := signedWithin(tt.value, 10, now); got != tt.want {
				t.Fatalf("signedWithin = %v; want %v", got, tt.want)
			}
		})
	}
}

// TestUnsignableCookieWritesNothing: a codec that refuses to sign the
// cookie (one whose MaxLength the value exceeds) fails Save with ErrEncode
// before any write, so no row is left that no cookie names.
func TestUnsignableCookieWritesNothing(t *testing.T) {
	e := newEnv(t, WithCodecs(securecookie.New(testHashKey, nil).MaxLength(20)))
	r := request()
	sess, _ := e.store.New(r, "s")
	sess.Values["user"] = "ada"
	w := httptest.NewRecorder()
	err := sess.Save(r, w)
	if !errors.Is(err, ErrEncode) {
		t.Fatalf("Save with an unsignable cookie = %v; want ErrEncode", err)
	}
	if n := itemCount(t, e); n != 0 {
		t.Errorf("%d rows written", n)
	}
	if c := cookieOf(w, "s"); c != nil {
		t.Errorf("cookie set: %v", c)
	}
	if got := e.store.Stats(); got.BackendErrors != 0 || got.EncodeErrors != 1 {
		t.Errorf("Stats = %+v; want one encode error and no backend error", got)
	}
}

// TestInvalidSessionNameWritesNothing: a session name that cannot name a
// cookie (net/http drops such a Set-Cookie) fails Save with ErrEncode
// before any DynamoDB call, so no row is left that no cookie names.
func TestInvalidSessionNameWritesNothing(t *testing.T) {
	s := newTestStore(t, "sessions", fakeAPI{}, newFakeClock()) // any call panics
	for _, tt := range []struct {
		name   string
		maxAge int
	}{{"my session", 0}, {"a;b", 0}, {"", 0}, {"sé", 0}, {"a=b", -1}} {
		t.Run(tt.name, func(t *testing.T) {
			r := request()
			sess, err := s.New(r, tt.name)
			if err != nil {
				t.Fatalf("New = %v", err)
			}
			sess.Values["user"] = "ada"
			sess.Options.MaxAge = tt.maxAge
			w := httptest.NewRecorder()
			if err := s.Save(r, w, sess); !errors.Is(err, ErrEncode) {
				t.Fatalf("Save = %v; want ErrEncode", err)
			}
			if h := w.Header().Values("Set-Cookie"); len(h) != 0 {
				t.Errorf("Set-Cookie: %q", h)
			}
		})
	}
}
