package dynamostore

import (
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
				setState(r, s, st)
				want[s] = st
			case 1:
				dropState(r, s)
				delete(want, s)
			}
			for _, s := range sess {
				got, ok := getState(r, s)
				w, wok := want[s]
				if ok != wok || got.version != w.version {
					t.Fatalf("seed %d step %d: session %s has state %v (%v); want %v (%v)", seed, step, s.Name(), got.version, ok, w.version, wok)
				}
			}
		}
	}
}
