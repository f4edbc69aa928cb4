package dynamostore

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dynamostore/dynamostore/internal/dbtest"
	"github.com/gorilla/sessions"
)

// TestSaveAfterAmbiguousRegenerate: regenerate fails with an ambiguous
// delete (applied, answer lost every time); the app then saves the session
// unchanged.
func TestSaveAfterAmbiguousRegenerate(t *testing.T) {
	fe, c := newFaultSession(t)
	r := request(c)
	sess, err := fe.faulty.Get(r, "s")
	if err != nil {
		t.Fatal(err)
	}
	fe.ft.arm("DeleteItem", faultResetAfter, -1)
	err = fe.faulty.Regenerate(r, httptest.NewRecorder(), sess)
	fe.ft.disarm()
	if err == nil {
		t.Fatal("no error")
	}
	w := httptest.NewRecorder()
	serr := sess.Save(r, w)
	if serr == nil && fe.stored(c) == nil {
		t.Errorf("Save after the failed Regenerate returned nil and set a cookie, but no row is stored")
	}
}

// TestFailedSignOutLogged: a failed sign-out after a failed load is not
// logged.
func TestFailedSignOutLogged(t *testing.T) {
	fe, c, logs := newLoggedFaultSession(t)
	fe.ft.arm("*", faultThrottling, -1)
	r := request(c)
	sess, _ := fe.faulty.Get(r, "s")
	logs.Reset()
	err := fe.faulty.Delete(r, httptest.NewRecorder(), sess)
	fe.ft.disarm()
	if !errors.Is(err, ErrLoadFailed) {
		t.Fatalf("Delete = %v", err)
	}
	if !strings.Contains(logs.String(), "DeleteItem") {
		t.Errorf("the failed DeleteItem of a sign-out is not logged; log: %q", logs.String())
	}
}

// TestRegenerateReplacesUndecodableRow: undecodable row, then sign-in
// (Regenerate): the pre-sign-in cookie still loads in a process that can
// decode the row.
func TestRegenerateReplacesUndecodableRow(t *testing.T) {
	clean := dbtest.Client(t)
	table := dbtest.NewTable(t, clean)
	js, err := NewStore(context.Background(), table, withAPI(clean), WithKeyPairs(testHashKey, testBlockKey), withCleanupInterval(0), WithSerializer(JSONSerializer{}))
	if err != nil {
		t.Fatal(err)
	}
	defer js.Close()
	gs, err := NewStore(context.Background(), table, withAPI(clean), WithKeyPairs(testHashKey, testBlockKey), withCleanupInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	defer gs.Close()
	pre, _ := saveNew(t, js, "s", map[any]any{"cart": "x"})
	r := request(pre)
	sess, err := gs.Get(r, "s")
	if !errors.Is(err, ErrDecode) {
		t.Fatalf("load = %v", err)
	}
	sess.Values["user"] = "ada"
	if err := gs.Regenerate(r, httptest.NewRecorder(), sess); err != nil {
		t.Fatal(err)
	}
	if got, err := js.New(request(pre), "s"); err == nil && !got.IsNew {
		t.Errorf("after Regenerate the pre-sign-in cookie still loads %v (in a process that can decode it)", got.Values)
	}
}

// TestSignOutThroughAnotherRequest: sign-out after a failed load, given a
// request other than the one the session was loaded with (e.g. a
// middleware's r.WithContext copy made before the load).
func TestSignOutThroughAnotherRequest(t *testing.T) {
	fe, c := newFaultSession(t)
	outer := request(c)
	type middlewareKey struct{}
	inner := outer.WithContext(context.WithValue(outer.Context(), middlewareKey{}, 1))
	fe.ft.arm("GetItem", faultThrottling, -1)
	sess, err := fe.faulty.Get(inner, "s")
	fe.ft.disarm()
	if err == nil {
		t.Fatal("load did not fail")
	}
	err = fe.faulty.Delete(outer, httptest.NewRecorder(), sess)
	if err == nil && fe.stored(c) != nil {
		t.Errorf("Delete with the outer request returned nil; the row still loads")
	}
}

// TestSetOwnerEdges: setOwner edge cases.
func TestSetOwnerEdges(t *testing.T) {
	e := ownerEnv(t)
	// SetOwner twice: last wins.
	c := e.save("s", map[any]any{"n": 1})
	r, sess, _ := e.load("s", c)
	e.store.SetOwner(r, sess, "ada")
	e.store.SetOwner(r, sess, "")
	w := httptest.NewRecorder()
	if err := sess.Save(r, w); err != nil {
		t.Fatal(err)
	}
	if owner := e.storedOwner(sess.ID); owner != nil {
		t.Errorf("SetOwner(ada), SetOwner(\"\"): owner %v", owner)
	}
	// SetOwner("") on a new session.
	r = request()
	sess, _ = e.store.Get(r, "s")
	e.store.SetOwner(r, sess, "")
	w = httptest.NewRecorder()
	if err := sess.Save(r, w); err != nil {
		t.Fatalf("SetOwner(\"\") on a new session: %v", err)
	}
	// Owned session, SetOwner(""), Regenerate: new row without owner.
	c = e.signIn("bob")
	r, sess, _ = e.load("s", c)
	e.store.SetOwner(r, sess, "")
	w = httptest.NewRecorder()
	if err := e.store.Regenerate(r, w, sess); err != nil {
		t.Fatal(err)
	}
	if owner := e.storedOwner(sess.ID); owner != nil {
		t.Errorf("SetOwner(\"\") then Regenerate: owner %v", owner)
	}
	// Then an unchanged Save in the same request.
	if err := sess.Save(r, httptest.NewRecorder()); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.store.RevokeOwner(context.Background(), "bob"); n != 0 {
		t.Errorf("RevokeOwner(bob) after SetOwner(\"\")+Regenerate revoked %d", n)
	}
	// SetOwner("carol") then Regenerate then SetOwner("") then Save.
	c = e.signIn("carol")
	r, sess, _ = e.load("s", c)
	e.store.SetOwner(r, sess, "dave")
	if err := e.store.Regenerate(r, httptest.NewRecorder(), sess); err != nil {
		t.Fatal(err)
	}
	e.store.SetOwner(r, sess, "")
	if err := sess.Save(r, httptest.NewRecorder()); err != nil {
		t.Fatal(err)
	}
	if owner := e.storedOwner(sess.ID); owner != nil {
		t.Errorf("Regenerate then SetOwner(\"\"): owner %v", owner)
	}
}

// TestFailedRegenerateRestoresSetCookie: a failed Regenerate restores the
// app's other Set-Cookie headers, and a Set-Cookie from an earlier Save in
// the request.
func TestFailedRegenerateRestoresSetCookie(t *testing.T) {
	clean := dbtest.Client(t)
	table := dbtest.NewTable(t, clean)
	for _, op := range []string{"PutItem", "DeleteItem"} {
		fe := newFaultEnv(t, clean, table)
		c := fe.create(map[any]any{"n": 1})
		r := request(c)
		sess, _ := fe.faulty.Get(r, "s")
		w := httptest.NewRecorder()
		http.SetCookie(w, &http.Cookie{Name: "csrf", Value: "abc"})
		sess.Values["n"] = 2
		if err := sess.Save(r, w); err != nil {
			t.Fatal(err)
		}
		before := append([]string(nil), w.Header()["Set-Cookie"]...)
		fe.ft.arm(op, faultThrottling, -1)
		err := fe.faulty.Regenerate(r, w, sess)
		fe.ft.disarm()
		if err == nil {
			t.Fatal("no error")
		}
		after := w.Header()["Set-Cookie"]
		if strings.Join(before, "\n") != strings.Join(after, "\n") {
			t.Errorf("%s: Set-Cookie %q; want %q", op, after, before)
		}
		if !strings.Contains(err.Error(), op) || !strings.Contains(err.Error(), "throttled") {
			t.Errorf("%s: error %q does not name the operation / throttling", op, err)
		}
	}
}

// TestFailedSignOutCounted: a sign-out after a failed load whose DeleteItem
// fails with a network error: counted nowhere in Stats, logged nowhere.
func TestFailedSignOutCounted(t *testing.T) {
	fe, c, logs := newLoggedFaultSession(t)
	fe.ft.arm("*", faultResetBefore, -1)
	r := request(c)
	sess, _ := fe.faulty.Get(r, "s")
	before := fe.faulty.Stats()
	logs.Reset()
	err := fe.faulty.Delete(r, httptest.NewRecorder(), sess)
	fe.ft.disarm()
	after := fe.faulty.Stats()
	if !errors.Is(err, ErrLoadFailed) {
		t.Fatalf("Delete = %v; want ErrLoadFailed", err)
	}
	if after.BackendErrors != before.BackendErrors+1 {
		t.Errorf("a failed sign-out (row still live) changed no Stats counter")
	}
	if logs.Len() == 0 {
		t.Errorf("a failed sign-out (row still live) logged nothing")
	}
}

// TestSignOutTwoFailedSessions: two sessions of one request, both loads
// failed, signed out through the registry.
func TestSignOutTwoFailedSessions(t *testing.T) {
	fe, ca := newFaultSession(t)
	cb, _ := saveNew(t, fe.ref, "b", map[any]any{"x": 1})
	fe.ft.arm("GetItem", faultThrottling, -1)
	r := request(ca, cb)
	a, errA := fe.faulty.Get(r, "s")
	b, errB := fe.faulty.Get(r, "b")
	// cached
	a2, errA2 := fe.faulty.Get(r, "s")
	fe.ft.disarm()
	if errA == nil || errB == nil || a2 != a || errA2 == nil {
		t.Fatalf("loads: %v %v %v", errA, errB, errA2)
	}
	a.Options.MaxAge = -1
	b.Options.MaxAge = -1
	if err := sessions.Save(r, httptest.NewRecorder()); err != nil {
		t.Fatal(err)
	}
	if fe.stored(ca) != nil {
		t.Error("session s still stored")
	}
	if got, _ := fe.ref.New(request(cb), "b"); !got.IsNew {
		t.Error("session b still stored")
	}
}

// TestRegenerateThrottleLogged: throttled DeleteItem inside Regenerate:
// logged?
func TestRegenerateThrottleLogged(t *testing.T) {
	fe, c, logs := newLoggedFaultSession(t)
	r := request(c)
	sess, _ := fe.faulty.Get(r, "s")
	fe.ft.arm("DeleteItem", faultPTEE, 4) // the old row's delete only; the take-back succeeds
	err := fe.faulty.Regenerate(r, httptest.NewRecorder(), sess)
	fe.ft.disarm()
	if err == nil {
		t.Fatal("Regenerate under a throttled delete succeeded")
	}
	if !strings.Contains(logs.String(), "DeleteItem") {
		t.Errorf("throttled DeleteItem of Regenerate not logged")
	}
}

// TestFailedLoadSequence: get fails, Regenerate (refused), Delete fails,
// Delete again succeeds; then a Save with a positive MaxAge makes a new
// session.
func TestFailedLoadSequence(t *testing.T) {
	fe, c := newFaultSession(t, WithOptimisticLocking(true))
	fe.ft.arm("*", faultThrottling, -1)
	r := request(c)
	sess, _ := fe.faulty.Get(r, "s")
	if err := fe.faulty.Regenerate(r, httptest.NewRecorder(), sess); !errors.Is(err, ErrLoadFailed) {
		t.Fatalf("Regenerate = %v", err)
	}
	w := httptest.NewRecorder()
	if err := fe.faulty.Delete(r, w, sess); !errors.Is(err, ErrLoadFailed) || len(w.Result().Cookies()) != 0 {
		t.Fatalf("Delete = %v, cookies %v", err, w.Result().Cookies())
	}
	fe.ft.disarm()
	sess.Options.MaxAge = 3600
	if err := sess.Save(r, httptest.NewRecorder()); !errors.Is(err, ErrLoadFailed) {
		t.Fatalf("Save after failed sign-out = %v; want ErrLoadFailed", err)
	}
	w = httptest.NewRecorder()
	if err := fe.faulty.Delete(r, w, sess); err != nil {
		t.Fatal(err)
	}
	if fe.stored(c) != nil {
		t.Fatal("row still stored")
	}
	sess.Options.MaxAge = 3600
	sess.Values["x"] = 1
	w = httptest.NewRecorder()
	if err := sess.Save(r, w); err != nil {
		t.Fatal(err)
	}
	if nc := liveCookie(w, "s"); nc == nil || fe.stored(nc)["x"] != 1 {
		t.Fatal("new session not stored")
	}
}

// flakyDeletes is a Backend whose Deletes fail once armed.
type flakyDeletes struct {
	Backend
	fail atomic.Bool
}

func (f *flakyDeletes) Delete(ctx context.Context, key string, now time.Time) error {
	if f.fail.Load() {
		return errors.New("network down")
	}
	return f.Backend.Delete(ctx, key, now)
}

// TestRegenerateAfterSignOutSetsNoLiveCookie: a Regenerate that finds its
// session signed out meanwhile ends it even when deleting its new row
// fails: ErrSessionGone, and the only cookie the response sets expires.
func TestRegenerateAfterSignOutSetsNoLiveCookie(t *testing.T) {
	b := &flakyDeletes{Backend: newMapBackend()}
	s := newTestStore(t, "sessions", nil, newFakeClock(), WithBackend(b))
	r := request()
	sess, _ := s.New(r, "s")
	sess.Values["user"] = "alice"
	c := cookieOf(saveThrough(t, r, sess), "s")

	a := request(c)
	loaded, _ := s.Get(a, "s")
	loaded.Options.Secure, loaded.Options.Partitioned = true, true
	other := request(c)
	gone, _ := s.Get(other, "s")
	before := s.Stats().Deletes
	if err := s.Delete(other, httptest.NewRecorder(), gone); err != nil {
		t.Fatal(err)
	}
	// A second sign-out of the same session deletes nothing, and counts
	// nothing.
	again, _ := s.Get(request(c), "s")
	again.IsNew, again.ID = false, gone.ID
	if err := s.Delete(request(c), httptest.NewRecorder(), again); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().Deletes - before; got != 1 {
		t.Errorf("Stats.Deletes grew by %d for one row deleted", got)
	}
	// Regenerate's delete of the old row finds it gone; its delete of the
	// new row then fails.
	b.Backend = &deleteThenFail{Backend: b.Backend, armed: &b.fail}
	w := httptest.NewRecorder()
	err := s.Regenerate(a, w, loaded)
	if !errors.Is(err, ErrSessionGone) {
		t.Fatalf("Regenerate after a sign-out = %v; want ErrSessionGone", err)
	}
	for _, sc := range w.Result().Cookies() {
		if sc.Name == "s" && sc.MaxAge >= 0 {
			t.Errorf("response sets a live cookie %v", sc)
		}
		if sc.Name == "s" && (!sc.Secure || !sc.Partitioned) {
			t.Errorf("the expiring cookie %v lacks the session's attributes, without which a browser keeps the live one", sc)
		}
		if got, _ := s.New(request(sc), "s"); !got.IsNew {
			t.Errorf("cookie %v loads a session", sc)
		}
	}
}

// deleteThenFail passes one Delete on, then arms the failure of the next.
type deleteThenFail struct {
	Backend
	armed *atomic.Bool
}

func (d *deleteThenFail) Delete(ctx context.Context, key string, now time.Time) error {
	err := d.Backend.Delete(ctx, key, now)
	d.armed.Store(true)
	return err
}
