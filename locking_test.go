package dynamostore

import (
	"errors"
	"net/http/httptest"
	"testing"
)

func TestOptimisticLocking(t *testing.T) {
	tests := []struct {
		locking bool
		wantErr error
		final   any
	}{
		{false, nil, "second"},       // last writer wins
		{true, ErrConflict, "first"}, // the stale write is refused
	}
	for _, tt := range tests {
		e := newEnv(t, WithOptimisticLocking(tt.locking))
		c := e.save("s", map[any]any{"n": "zero"})
		r1, s1, _ := e.load("s", c)
		r2, s2, _ := e.load("s", c)
		s1.Values["n"] = "first"
		if err := s1.Save(r1, httptest.NewRecorder()); err != nil {
			t.Fatal(err)
		}
		s2.Values["n"] = "second"
		err := s2.Save(r2, httptest.NewRecorder())
		if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
			t.Fatalf("locking %v: stale Save = %v; want %v", tt.locking, err, tt.wantErr)
		}
		if _, s3, _ := e.load("s", c); s3.Values["n"] != tt.final {
			t.Fatalf("locking %v: stored %v; want %v", tt.locking, s3.Values["n"], tt.final)
		}
		// A fresh load then save goes through, and a deleted session is
		// reported gone rather than conflicting.
		r4, s4, _ := e.load("s", c)
		s4.Values["n"] = "third"
		if err := s4.Save(r4, httptest.NewRecorder()); err != nil {
			t.Fatalf("locking %v: Save after reload: %v", tt.locking, err)
		}
		r5, s5, _ := e.load("s", c)
		if err := e.store.Delete(request(c), httptest.NewRecorder(), s4); err != nil {
			t.Fatal(err)
		}
		s5.Values["n"] = "late"
		if err := s5.Save(r5, httptest.NewRecorder()); !errors.Is(err, ErrSessionGone) {
			t.Fatalf("locking %v: Save after delete = %v; want ErrSessionGone", tt.locking, err)
		}
	}
}

// TestRegenerateKeepsAConcurrentUpdate: with optimistic locking, a
// Regenerate of a session another request changed since the load fails
// with ErrConflict and keeps that change, as Save would; the old cookie
// still loads it, and no cookie names the new row.
func TestRegenerateKeepsAConcurrentUpdate(t *testing.T) {
	e := newEnv(t, WithOptimisticLocking(true))
	c := e.save("s", map[any]any{"cart": 1})
	rA, sA, _ := e.load("s", c)
	rB, sB, _ := e.load("s", c)
	sB.Values["cart"] = 2
	if err := sB.Save(rB, httptest.NewRecorder()); err != nil {
		t.Fatal(err)
	}
	sA.Values["user"] = "alice"
	w := httptest.NewRecorder()
	if err := e.store.Regenerate(rA, w, sA); !errors.Is(err, ErrConflict) {
		t.Fatalf("Regenerate after a concurrent update = %v; want ErrConflict", err)
	}
	if got := cookieOf(w, "s"); got != nil {
		t.Errorf("cookie set: %v", got)
	}
	_, after, err := e.load("s", c)
	if err != nil || after.IsNew || after.Values["cart"] != 2 {
		t.Errorf("after the refused Regenerate the old cookie loads %v (new %v, %v); want cart 2", after.Values, after.IsNew, err)
	}
	if n := itemCount(t, e); n != 1 {
		t.Errorf("%d rows; want the old one alone", n)
	}
	// Loaded again, it regenerates.
	r, sess, _ := e.load("s", c)
	if err := e.store.Regenerate(r, httptest.NewRecorder(), sess); err != nil {
		t.Fatalf("Regenerate of the session loaded again = %v", err)
	}
}
