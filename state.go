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
	store *Store // the Store whose state it is: another Store's is none
	id    string // the session ID the state is about
	key   string // its storage key
	data  []byte // serialized values as stored
	// life is the row's expiry minus its last write: the lifetime it was
	// written with (0 when the row has no last-write time).
	life     time.Duration
	modified time.Time // when the row was last written
	version  int64     // stored version, with optimistic locking
	owner    string    // stored or newly set owner
	// ownerSet marks an owner set since the load, which Save must write.
	ownerSet bool
	// failed marks a session whose load failed: Save refuses it, so a
	// passing read error can never replace the user's real session.
	failed bool
	// cookieKey is the storage key the request's cookie names when its row
	// could not be loaded (failed) or decoded: deleting the session deletes
	// that row, so a sign-out is not lost.
	cookieKey string
	// cookie is a cookie value carrying id, signed with the current key
	// within touchAfter, that Save may send again instead of signing; ""
	// when there is none.
	cookie string
}

// storageKey returns the storage key of session ID id, from the state
// when it is about that ID.
func (st loadState) storageKey(id string) string {
	if st.id == id && st.key != "" {
		return st.key
	}
	return storageKey(id)
}

// requestStates holds the loadStates of the sessions of one request. It
// lives in the request's context, the way gorilla/sessions keeps its
// registry, so it goes away with the request. Most requests have one
// session, which is kept apart from the map.
type requestStates struct {
	mu         sync.Mutex
	first      *sessions.Session
	firstState loadState
	more       map[*sessions.Session]loadState
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
	rs := new(requestStates)
	*r = *r.WithContext(context.WithValue(r.Context(), statesKey{}, rs))
	return rs
}

// setState records st as store's state of session s in request r.
func setState(r *http.Request, store *Store, s *sessions.Session, st loadState) {
	st.store = store
	rs := statesOf(r, true)
	rs.mu.Lock()
	defer rs.mu.Unlock()
	switch {
	case rs.first == nil || rs.first == s:
		rs.first, rs.firstState = s, st
		delete(rs.more, s)
	case rs.more == nil:
		rs.more = map[*sessions.Session]loadState{s: st}
	default:
		rs.more[s] = st
	}
}

// getState returns store's state of session s in request r, and whether
// there is one.
func getState(r *http.Request, store *Store, s *sessions.Session) (loadState, bool) {
	rs := statesOf(r, false)
	if rs == nil {
		return loadState{}, false
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	st, ok := rs.firstState, rs.first == s
	if !ok {
		st, ok = rs.more[s]
	}
	if !ok || st.store != store {
		return loadState{}, false
	}
	return st, true
}

func dropState(r *http.Request, s *sessions.Session) {
	if rs := statesOf(r, false); rs != nil {
		rs.mu.Lock()
		defer rs.mu.Unlock()
		if rs.first == s {
			rs.first, rs.firstState = nil, loadState{}
			return
		}
		delete(rs.more, s)
	}
}
