package dynamostore

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http/httptest"
	"testing"

	"github.com/gorilla/sessions"
)

// TestRequestStates runs random sets, gets and drops of the states of a
// few sessions in one request against a plain map.
func TestRequestStates(t *testing.T) {
	for seed := range uint64(50) {
		rng := rand.New(rand.NewPCG(seed, 0))
		r := httptest.NewRequest("GET", "/", nil)
		sess := []*sessions.Session{
			sessions.NewSession(nil, "a"), sessions.NewSession(nil, "b"), sessions.NewSession(nil, "c"),
		}
		want := map[*sessions.Session]loadState{}
		for step := range 200 {
			s := sess[rng.IntN(len(sess))]
			switch rng.IntN(3) {
			case 0:
				st := loadState{version: int64(step)}
				setState(r, nil, s, st)
				want[s] = st
			case 1:
				dropState(r, s)
				delete(want, s)
			}
			for _, s := range sess {
				got, ok := getState(r, nil, s)
				w, wok := want[s]
				if ok != wok || got.version != w.version {
					t.Fatalf("seed %d step %d: session %s has state %v (%v); want %v (%v)", seed, step, s.Name(), got.version, ok, w.version, wok)
				}
			}
		}
	}
}

type derivedKey struct{}

// TestDerivedRequestSharesStates: a session got through a request and
// saved through one derived from it (as middleware and routers derive
// them) is known to a Save through the first: with optimistic locking no
// spurious ErrConflict, and no second write.
func TestDerivedRequestSharesStates(t *testing.T) {
	e := newEnv(t, WithOptimisticLocking(true))
	r := request()
	if _, err := e.store.Get(r, "s"); err != nil {
		t.Fatal(err)
	}
	derived := r.WithContext(context.WithValue(r.Context(), derivedKey{}, 1))
	sess, _ := e.store.Get(derived, "s")
	sess.Values["user"] = "ada"
	w := httptest.NewRecorder()
	if err := sess.Save(derived, w); err != nil {
		t.Fatal(err)
	}
	e.calls.take()
	if err := sessions.Save(r, w); err != nil {
		t.Fatalf("saving the request's sessions again = %v", err)
	}
	if calls := e.calls.take(); len(calls) != 0 {
		t.Errorf("the second Save made calls %v", calls)
	}
}

// TestSaveThroughAnotherStore: a session one Store loaded, saved through
// another Store (its own table), is not taken for that Store's unchanged
// session: the save fails, it never reports a write it did not make.
func TestSaveThroughAnotherStore(t *testing.T) {
	a, b := newEnv(t), newEnv(t)
	r, sess, err := a.load("s", a.save("s", map[any]any{"n": 1}))
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	if err := b.store.Save(r, w, sess); !errors.Is(err, ErrSessionGone) {
		t.Errorf("Save through another Store = %v; want ErrSessionGone (no such row there)", err)
	}
	if c := cookieOf(w, "s"); c != nil {
		t.Errorf("cookie set: %v", c)
	}
}
