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
