package dynamostore

import (
	"net/http/httptest"
	"testing"
)

func TestFlashes(t *testing.T) {
	e := newEnv(t)
	r := request()
	sess, _ := e.store.Get(r, "s")
	sess.AddFlash("signed in")
	sess.AddFlash("welcome", "notice")
	w := httptest.NewRecorder()
	if err := sess.Save(r, w); err != nil {
		t.Fatalf("Save with flashes: %v", err)
	}
	r2, s2, err := e.load("s", cookieOf(w, "s"))
	if err != nil {
		t.Fatal(err)
	}
	if f := s2.Flashes(); len(f) != 1 || f[0] != "signed in" {
		t.Fatalf("Flashes = %v", f)
	}
	if f := s2.Flashes("notice"); len(f) != 1 || f[0] != "welcome" {
		t.Fatalf("Flashes(notice) = %v", f)
	}
	w2 := httptest.NewRecorder()
	if err := s2.Save(r2, w2); err != nil {
		t.Fatal(err)
	}
	if _, s3, _ := e.load("s", cookieOf(w, "s")); len(s3.Flashes()) != 0 {
		t.Fatal("flash shown twice")
	}
}
