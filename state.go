package dynamostore

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/sessions"
)

// loadState is what the Store remembers about a session between New and
// Save within one request: what was stored, so that Save can skip or shrink
// its write when nothing changed.
type loadState struct {
	data     []byte    // serialized values as stored
	maxAge   int       // the session's MaxAge when stored
	modified time.Time // when the row was last written
	version  int64     // stored version, with optimistic locking
	owner    string    // stored or newly set owner
	// ownerSet marks an owner set since the load, which Save must write.
	ownerSet bool
	// failed marks a session whose load failed: Save refuses it, so a
	// passing read error can never replace the user's real session.
	failed bool
	// cookie is a cookie value for the session, signed with the current
	// key within touchAfter, that Save may send again instead of signing.
	cookie signedCookie
}

// signedCookie is a signed cookie value and the session ID it carries.
type signedCookie struct {
	id    string
	value string
}

// requestStates holds the loadStates of the sessions of one request. It
// lives in the request's context, the way gorilla/sessions keeps its
// registry, so it goes away with the request.
type requestStates struct {
	mu sync.Mutex
	m  map[*sessions.Session]loadState
}

type statesKey struct{}

// statesOf returns the request's states, attaching a new set to r when it
// has none and create is true.
func statesOf(r *http.Request, create bool) *requestStates {
	if rs, ok := r.Context().Value(statesKey{}).(*requestStates); ok {
		return rs
	}
	if !create {
		return nil
	}
	rs := &requestStates{m: make(map[*sessions.Session]loadState, 1)}
	*r = *r.WithContext(context.WithValue(r.Context(), statesKey{}, rs))
	return rs
}

func setState(r *http.Request, s *sessions.Session, st loadState) {
	rs := statesOf(r, true)
	rs.mu.Lock()
	rs.m[s] = st
	rs.mu.Unlock()
}

func getState(r *http.Request, s *sessions.Session) (loadState, bool) {
	rs := statesOf(r, false)
	if rs == nil {
		return loadState{}, false
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	st, ok := rs.m[s]
	return st, ok
}

func dropState(r *http.Request, s *sessions.Session) {
	if rs := statesOf(r, false); rs != nil {
		rs.mu.Lock()
		delete(rs.m, s)
		rs.mu.Unlock()
	}
}
