package dynamostore

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/gorilla/sessions"
)

// secrets collects every session ID and cookie value a run hands out, in
// the forms they could leak in.
type secrets struct {
	mu   sync.Mutex
	ids  map[string]bool
	list [][]byte
}

func (s *secrets) addID(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id == "" || s.ids[id] {
		return
	}
	s.ids[id] = true
	raw, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil {
		panic(err)
	}
	s.list = append(s.list, []byte(id), raw,
		[]byte(base64.StdEncoding.EncodeToString(raw)), []byte(hex.EncodeToString(raw)))
}

func (s *secrets) addCookie(w *httptest.ResponseRecorder) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range w.Result().Cookies() {
		if c.Value != "" {
			s.list = append(s.list, []byte(c.Value))
			if payload, err := base64.URLEncoding.DecodeString(c.Value); err == nil {
				s.list = append(s.list, payload)
			}
		}
	}
}

// find returns the first secret found in b, or nil.
func (s *secrets) find(b []byte) []byte {
	for _, x := range s.list {
		if bytes.Contains(b, x) {
			return x
		}
	}
	return nil
}

// attrBytes returns every byte string an attribute value holds: strings,
// numbers, binaries, and those of sets, lists and maps within it.
func attrBytes(av types.AttributeValue) [][]byte {
	switch v := av.(type) {
	case *types.AttributeValueMemberS:
		return [][]byte{[]byte(v.Value)}
	case *types.AttributeValueMemberN:
		return [][]byte{[]byte(v.Value)}
	case *types.AttributeValueMemberB:
		return [][]byte{v.Value}
	case *types.AttributeValueMemberSS:
		var out [][]byte
		for _, s := range v.Value {
			out = append(out, []byte(s))
		}
		return out
	case *types.AttributeValueMemberNS:
		var out [][]byte
		for _, s := range v.Value {
			out = append(out, []byte(s))
		}
		return out
	case *types.AttributeValueMemberBS:
		return v.Value
	case *types.AttributeValueMemberL:
		var out [][]byte
		for _, e := range v.Value {
			out = append(out, attrBytes(e)...)
		}
		return out
	case *types.AttributeValueMemberM:
		var out [][]byte
		for k, e := range v.Value {
			out = append(out, []byte(k))
			out = append(out, attrBytes(e)...)
		}
		return out
	}
	return nil
}

// TestNoSessionIDAtRest runs a realistic mix of requests (sign-ins with an
// owner and a new ID, updates, touches, logouts, a revocation, bad and
// replayed cookies, with both serializers) and then reads the whole table
// and the Store's debug log: no session ID, in any encoding, and no cookie
// value appears in any attribute of any row, raw bytes of the values
// included, nor in the log. Every row's key is the hash of an ID handed
// out.
func TestNoSessionIDAtRest(t *testing.T) {
	var logBuf syncBuffer
	logger := slog.New(slog.NewJSONHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := ownerEnv(t, WithLogger(logger), WithTouchAfter(time.Second), WithOptimisticLocking(true))
	jsonStore, err := NewStore(context.Background(), e.table, withAPI(e.client), WithKeyPairs(testHashKey),
		withCleanupInterval(0), withClock(e.clock.Now), WithSerializer(JSONSerializer{}), WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	defer jsonStore.Close()
	sec := &secrets{ids: map[string]bool{}}

	const users, perUser = 8, 3
	var wg sync.WaitGroup
	errc := make(chan error, users)
	for u := 0; u < users; u++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := userJourney(e, jsonStore, sec, u, perUser); err != nil {
				errc <- fmt.Errorf("user %d: %w", u, err)
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if n, err := e.store.RevokeOwner(context.Background(), "user-0"); err != nil || n == 0 {
		t.Fatalf("RevokeOwner = %d, %v", n, err)
	}
	// Error paths log: a load whose read fails, and a row that does not
	// decode.
	c := e.save("s", map[any]any{"n": 1})
	_, sess, _ := e.load("s", c)
	sec.addID(sess.ID)
	sec.list = append(sec.list, []byte(c.Value))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.store.Get(request(c).WithContext(ctx), "s"); err == nil {
		t.Fatal("load with a cancelled context succeeded")
	}
	item := e.rawItem(sess.ID)
	item[attrValues] = &types.AttributeValueMemberB{Value: []byte("not gob")}
	if _, err := e.client.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(e.table), Item: item}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.load("s", c); err == nil {
		t.Fatal("corrupt row loaded")
	}

	keys := map[string]bool{}
	for id := range sec.ids {
		keys[storageKey(id)] = true
	}
	rows := 0
	p := dynamodb.NewScanPaginator(e.client, &dynamodb.ScanInput{TableName: aws.String(e.table), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, item := range page.Items {
			rows++
			if k, ok := item[attrID].(*types.AttributeValueMemberS); !ok || !keys[k.Value] {
				t.Errorf("row key %v is not the hash of any session ID handed out", item[attrID])
			}
			for name, av := range item {
				for _, b := range attrBytes(av) {
					if x := sec.find(b); x != nil {
						t.Fatalf("attribute %q of a row holds a session secret (%d bytes)", name, len(x))
					}
				}
			}
		}
	}
	if logBuf.Len() == 0 {
		t.Fatal("the Store logged nothing; the log check is empty")
	}
	if x := sec.find(logBuf.Bytes()); x != nil {
		t.Fatalf("the Store's log holds a session secret (%d bytes)", len(x))
	}
	t.Logf("%d rows and %d bytes of log checked against %d session IDs and %d secrets in all",
		rows, logBuf.Len(), len(sec.ids), len(sec.list))
	if rows == 0 || len(sec.ids) < users*perUser {
		t.Fatalf("the run left %d rows from %d IDs; too little to check", rows, len(sec.ids))
	}
}

// userJourney is one user's requests: anonymous sessions, sign-in with
// an owner and a new ID, updates, touches, a forged and a replayed cookie,
// and a logout of one session.
func userJourney(e *env, jsonStore *Store, sec *secrets, u, sessionsPerUser int) error {
	user := fmt.Sprintf("user-%d", u)
	do := func(s *Store, c *http.Cookie, f func(r *http.Request, w *httptest.ResponseRecorder, sess *sessions.Session) error) (*http.Cookie, error) {
		r := request()
		if c != nil {
			r = request(c)
		}
		sess, err := s.Get(r, "s")
		if err != nil {
			return nil, err
		}
		w := httptest.NewRecorder()
		if err := f(r, w, sess); err != nil {
			return nil, err
		}
		sec.addID(sess.ID)
		sec.addCookie(w)
		if got := cookieOf(w, "s"); got != nil {
			return got, nil
		}
		return c, nil
	}
	for i := 0; i < sessionsPerUser; i++ {
		s := e.store
		if i == sessionsPerUser-1 {
			s = jsonStore
		}
		// Anonymous visit.
		c, err := do(s, nil, func(r *http.Request, w *httptest.ResponseRecorder, sess *sessions.Session) error {
			sess.Values["cart"] = fmt.Sprintf("items-%d-%d", u, i)
			return sess.Save(r, w)
		})
		if err != nil {
			return err
		}
		// Sign-in: owner and a new ID.
		c, err = do(s, c, func(r *http.Request, w *httptest.ResponseRecorder, sess *sessions.Session) error {
			sec.addID(sess.ID)
			sess.Values["user"] = user
			s.SetOwner(r, sess, user)
			return s.Regenerate(r, w, sess)
		})
		if err != nil {
			return err
		}
		// Updates and a touch.
		for n := 0; n < 3; n++ {
			if c, err = do(s, c, func(r *http.Request, w *httptest.ResponseRecorder, sess *sessions.Session) error {
				sess.Values["views"] = float64(n)
				return sess.Save(r, w)
			}); err != nil {
				return err
			}
		}
		e.clock.Advance(2 * time.Second)
		if c, err = do(s, c, func(r *http.Request, w *httptest.ResponseRecorder, sess *sessions.Session) error {
			return sess.Save(r, w)
		}); err != nil {
			return err
		}
		// A forged cookie and a tampered copy: refused, and logged.
		if _, err := s.Get(request(&http.Cookie{Name: "s", Value: c.Value + "x"}), "s"); err == nil {
			return fmt.Errorf("tampered cookie accepted")
		}
		// The last session of each user is logged out, then replayed.
		if i == 0 {
			if _, err := do(s, c, func(r *http.Request, w *httptest.ResponseRecorder, sess *sessions.Session) error {
				return s.Delete(r, w, sess)
			}); err != nil {
				return err
			}
			if _, sess, _ := e.load("s", c); !sess.IsNew {
				return fmt.Errorf("replayed cookie loads")
			}
		}
	}
	return nil
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

func (b *syncBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}
