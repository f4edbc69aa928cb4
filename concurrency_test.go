package dynamostore

import (
	"context"
	"errors"
	"fmt"
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

// loaded is one request that loaded a session.
type loaded struct {
	r    *http.Request
	sess *sessions.Session
}

// loadAll loads the session of cookie in n requests, concurrently.
func (e *env) loadAll(c *http.Cookie, n int) []loaded {
	e.t.Helper()
	out := make([]loaded, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, s, err := e.load("s", c)
			out[i], errs[i] = loaded{r, s}, err
			if err == nil && s.IsNew {
				errs[i] = errors.New("session not found")
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			e.t.Fatalf("concurrent load: %v", err)
		}
	}
	return out
}

// liveCookie returns the cookie called name that the response leaves the
// browser with: the last one set, unless it expires the cookie.
func liveCookie(w *httptest.ResponseRecorder, name string) *http.Cookie {
	var last *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == name {
			last = c
		}
	}
	if last == nil || last.MaxAge < 0 || last.Value == "" {
		return nil
	}
	return last
}

// saveKinds are the writes a request can make to a session it loaded.
var saveKinds = []struct {
	name  string
	write func(e *env, l loaded, i int) (*httptest.ResponseRecorder, error)
}{
	{"changed values", func(e *env, l loaded, i int) (*httptest.ResponseRecorder, error) {
		l.sess.Values[fmt.Sprint("w", i)] = i
		w := httptest.NewRecorder()
		return w, l.sess.Save(l.r, w)
	}},
	{"unchanged, past touchAfter", func(e *env, l loaded, i int) (*httptest.ResponseRecorder, error) {
		w := httptest.NewRecorder()
		return w, l.sess.Save(l.r, w)
	}},
	{"new MaxAge", func(e *env, l loaded, i int) (*httptest.ResponseRecorder, error) {
		l.sess.Options.MaxAge = 3600 + i
		w := httptest.NewRecorder()
		return w, l.sess.Save(l.r, w)
	}},
	{"Regenerate", func(e *env, l loaded, i int) (*httptest.ResponseRecorder, error) {
		w := httptest.NewRecorder()
		return w, e.store.Regenerate(l.r, w, l.sess)
	}},
	{"SetOwner", func(e *env, l loaded, i int) (*httptest.ResponseRecorder, error) {
		e.store.SetOwner(l.r, l.sess, fmt.Sprint("user", i))
		w := httptest.NewRecorder()
		return w, l.sess.Save(l.r, w)
	}},
}

// TestLogoutNeverUndone has many requests load a session, one of them log
// it out, and the others then save it every way a request can: each Save
// fails with ErrSessionGone, sets no cookie, and the session stays gone.
// A second round lets the saves race with the logout: every Save either
// lands before it (nil) or fails with ErrSessionGone, and afterwards the
// session is gone all the same.
func TestLogoutNeverUndone(t *testing.T) {
	const writers = 8
	for _, locking := range []bool{false, true} {
		e := newEnv(t, WithTouchAfter(time.Second), WithOptimisticLocking(locking))
		for _, kind := range saveKinds {
			t.Run(fmt.Sprintf("locking %v/%s/after logout", locking, kind.name), func(t *testing.T) {
				c := e.save("s", map[any]any{"user": "ada"})
				reqs := e.loadAll(c, writers+1)
				e.clock.Advance(2 * time.Second)
				if err := e.store.Delete(reqs[0].r, httptest.NewRecorder(), reqs[0].sess); err != nil {
					t.Fatal(err)
				}
				errs := make([]error, writers)
				recs := make([]*httptest.ResponseRecorder, writers)
				var wg sync.WaitGroup
				for i := 1; i <= writers; i++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						recs[i-1], errs[i-1] = kind.write(e, reqs[i], i)
					}()
				}
				wg.Wait()
				for i, err := range errs {
					if !errors.Is(err, ErrSessionGone) {
						t.Errorf("Save %d after logout = %v; want ErrSessionGone", i, err)
					}
					if c := liveCookie(recs[i], "s"); c != nil {
						t.Errorf("Save %d after logout set a session cookie", i)
					}
				}
				if _, s, _ := e.load("s", c); !s.IsNew {
					t.Fatal("logged-out session loads again")
				}
				if n := itemCount(t, e); n != 0 {
					t.Fatalf("%d rows after logout", n)
				}
			})
			t.Run(fmt.Sprintf("locking %v/%s/racing logout", locking, kind.name), func(t *testing.T) {
				c := e.save("s", map[any]any{"user": "ada"})
				reqs := e.loadAll(c, writers+1)
				e.clock.Advance(2 * time.Second)
				start := make(chan struct{})
				errs := make([]error, writers+1)
				var wg sync.WaitGroup
				for i := 0; i <= writers; i++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						if i == 0 {
							errs[0] = e.store.Delete(reqs[0].r, httptest.NewRecorder(), reqs[0].sess)
							return
						}
						_, errs[i] = kind.write(e, reqs[i], i)
					}()
				}
				close(start)
				wg.Wait()
				if errs[0] != nil {
					t.Fatalf("logout: %v", errs[0])
				}
				succeeded := 0
				for i, err := range errs[1:] {
					if err == nil {
						succeeded++
					} else if !errors.Is(err, ErrSessionGone) && !errors.Is(err, ErrConflict) {
						t.Errorf("Save %d racing logout = %v; want nil, ErrSessionGone or ErrConflict", i, err)
					}
				}
				if _, s, _ := e.load("s", c); !s.IsNew {
					t.Fatal("logged-out session loads again")
				}
				// A Regenerate that won the race moved the session to a new
				// ID before the logout, which names the old one: that
				// session, and only that one, remains.
				want := 0
				if kind.name == "Regenerate" {
					want = succeeded
					if succeeded > 1 {
						t.Fatalf("%d concurrent Regenerates of one session succeeded; want at most 1", succeeded)
					}
				}
				if n := itemCount(t, e); n != want {
					t.Fatalf("%d rows after logout; want %d", n, want)
				}
				clearTable(t, e)
			})
		}
	}
}

// clearTable deletes every row of the env's table.
func clearTable(t *testing.T, e *env) {
	t.Helper()
	out, err := e.client.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(e.table), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	for _, item := range out.Items {
		if _, err := e.client.DeleteItem(context.Background(), &dynamodb.DeleteItemInput{
			TableName: aws.String(e.table), Key: map[string]types.AttributeValue{attrID: item[attrID]},
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestConcurrentRegenerate has many requests regenerate one session at
// once: exactly one succeeds, the others get ErrSessionGone and leave no
// row and no session cookie behind, and the old cookie loads nothing.
func TestConcurrentRegenerate(t *testing.T) {
	const requests = 8
	e := newEnv(t)
	for round := 0; round < 3; round++ {
		c := e.save("s", map[any]any{"cart": round})
		reqs := e.loadAll(c, requests)
		errs := make([]error, requests)
		recs := make([]*httptest.ResponseRecorder, requests)
		var wg sync.WaitGroup
		for i := range reqs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				recs[i] = httptest.NewRecorder()
				errs[i] = e.store.Regenerate(reqs[i].r, recs[i], reqs[i].sess)
			}()
		}
		wg.Wait()
		var winner *http.Cookie
		for i, err := range errs {
			switch {
			case err == nil:
				if winner != nil {
					t.Fatalf("round %d: two Regenerates succeeded", round)
				}
				winner = liveCookie(recs[i], "s")
			case errors.Is(err, ErrSessionGone):
				if liveCookie(recs[i], "s") != nil {
					t.Fatalf("round %d: losing Regenerate left a session cookie", round)
				}
			default:
				t.Fatalf("round %d: Regenerate = %v", round, err)
			}
		}
		if winner == nil {
			t.Fatalf("round %d: no Regenerate succeeded", round)
		}
		if _, s, _ := e.load("s", winner); s.IsNew || s.Values["cart"] != round {
			t.Fatalf("round %d: the new cookie loads %v", round, s.Values)
		}
		if _, s, _ := e.load("s", c); !s.IsNew {
			t.Fatalf("round %d: the old cookie still loads", round)
		}
		if n := itemCount(t, e); n != 1 {
			t.Fatalf("round %d: %d rows; want 1", round, n)
		}
		clearTable(t, e)
	}
}

// TestLastWriterWinsByDefault documents the default: without optimistic
// locking, requests that loaded the same session and change it each save
// successfully, and the stored session is the whole of one of them, the
// last to write: no merge, no mixture.
func TestLastWriterWinsByDefault(t *testing.T) {
	const writers = 8
	e := newEnv(t)
	c := e.save("s", map[any]any{"base": 0})
	for round := 0; round < 5; round++ {
		reqs := e.loadAll(c, writers)
		errs := make([]error, writers)
		var wg sync.WaitGroup
		for i := range reqs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				clear(reqs[i].sess.Values)
				reqs[i].sess.Values["base"] = round
				reqs[i].sess.Values["writer"] = i
				reqs[i].sess.Values[fmt.Sprint("only", i)] = true
				errs[i] = reqs[i].sess.Save(reqs[i].r, httptest.NewRecorder())
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: Save %d = %v; want nil (last writer wins)", round, i, err)
			}
		}
		_, s, _ := e.load("s", c)
		w, ok := s.Values["writer"].(int)
		want := map[any]any{"base": round, "writer": w, fmt.Sprint("only", w): true}
		if !ok || !sameValues(s.Values, want) {
			t.Fatalf("round %d: stored %v; want one writer's values whole", round, s.Values)
		}
	}
}

// TestOptimisticLockingLosesNoUpdate increments a counter in a session
// from many goroutines, each load-increment-save retried on ErrConflict:
// with optimistic locking the final count is exactly the number of
// increments that Save acknowledged.
func TestOptimisticLockingLosesNoUpdate(t *testing.T) {
	const workers, increments = 6, 8
	e := newEnv(t, WithOptimisticLocking(true))
	c := e.save("s", map[any]any{"n": 0})
	var mu sync.Mutex
	acked, conflicts := 0, 0
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done := 0; done < increments; {
				r, s, err := e.load("s", c)
				if err != nil || s.IsNew {
					errc <- fmt.Errorf("load: %v (new %v)", err, s.IsNew)
					return
				}
				s.Values["n"] = s.Values["n"].(int) + 1
				err = s.Save(r, httptest.NewRecorder())
				mu.Lock()
				switch {
				case err == nil:
					acked++
					done++
				case errors.Is(err, ErrConflict):
					conflicts++
				default:
					mu.Unlock()
					errc <- err
					return
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	_, s, _ := e.load("s", c)
	if s.Values["n"] != acked || acked != workers*increments {
		t.Fatalf("counter %v after %d acknowledged increments (%d conflicts); want %d", s.Values["n"], acked, conflicts, workers*increments)
	}
	t.Logf("%d increments from %d goroutines, %d conflicts retried", acked, workers, conflicts)
}

// TestRevokeOwnerRacingSaves revokes a user's sessions while requests keep
// saving them (changed values and touches) and saving another user's:
// once RevokeOwner has returned, none of the revoked sessions loads, no
// Save brings one back, and the other user's sessions are untouched.
func TestRevokeOwnerRacingSaves(t *testing.T) {
	const sessionsPerUser, rounds = 6, 4
	e := ownerEnv(t, WithTouchAfter(time.Second))
	var ada, bob []*http.Cookie
	for range sessionsPerUser {
		ada = append(ada, e.signIn("ada"))
		bob = append(bob, e.signIn("bob"))
	}
	stop := make(chan struct{})
	revoked := make(chan struct{})
	var wg sync.WaitGroup
	errc := make(chan error, 2*sessionsPerUser)
	saver := func(c *http.Cookie, owner string) {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			after := false
			select {
			case <-revoked:
				after = true
			default:
			}
			r, s, err := e.load("s", c)
			if err != nil {
				errc <- err
				return
			}
			if s.IsNew {
				if owner == "bob" {
					errc <- errors.New("bob's session vanished")
					return
				}
				continue // one of ada's, revoked
			}
			if owner == "ada" && after {
				errc <- errors.New("ada's session loads after RevokeOwner returned")
				return
			}
			if i%2 == 0 {
				s.Values["i"] = i
			} else {
				e.clock.Advance(2 * time.Second)
			}
			if err := s.Save(r, httptest.NewRecorder()); err != nil && !(owner == "ada" && errors.Is(err, ErrSessionGone)) {
				errc <- fmt.Errorf("%s: Save: %w", owner, err)
				return
			}
		}
	}
	for i := range sessionsPerUser {
		wg.Add(2)
		go saver(ada[i], "ada")
		go saver(bob[i], "bob")
	}
	n, err := e.store.RevokeOwner(context.Background(), "ada")
	close(revoked)
	if err != nil || n != sessionsPerUser {
		t.Errorf("RevokeOwner = %d, %v; want %d", n, err, sessionsPerUser)
	}
	// Let the savers run a few more rounds against the revoked sessions.
	for range rounds {
		for _, c := range ada {
			if _, s, _ := e.load("s", c); !s.IsNew {
				t.Error("revoked session loads")
			}
		}
	}
	close(stop)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	for _, c := range bob {
		if _, s, _ := e.load("s", c); s.IsNew || s.Values["user"] != "bob" {
			t.Fatal("another owner's session was revoked")
		}
	}
}
