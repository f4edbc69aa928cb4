package dynamostore

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/sessions"
)

// Store is a sessions.Store backed by DynamoDB (or another Backend). It is
// safe for concurrent use. Create it with NewStore and Close it when done.
type Store struct {
	// Options is the default configuration of new sessions' cookies:
	// Path "/", HttpOnly, SameSite Lax, MaxAge from the TTL. Change it
	// before the Store is used, or call MaxAge to keep the cookie signing
	// in step.
	Options *sessions.Options

	backend    Backend
	codec      *idCodec
	serializer Serializer
	ttl        time.Duration
	touchAfter time.Duration
	locking    bool
	skew       time.Duration // ReaperOptions.Grace: how far behind another instance's clock may be
	log        *slog.Logger
	now        func() time.Time
	reaper     *reaper
	counters   counters

	mu     sync.Mutex
	closed bool
}

var _ sessions.Store = (*Store)(nil)

// touchWithin returns the touch interval of a session that lives life after
// each write: touchAfter, but at most half of life.
func (s *Store) touchWithin(life time.Duration) time.Duration {
	return min(s.touchAfter, life/2)
}

// MaxAge sets the default MaxAge of new sessions' cookies and keeps the
// cookie signatures in step: a signed cookie older than its session's
// lifetime (its row's, or for a session no longer stored the default: age,
// or the TTL for browser-session cookies) is refused with ErrInvalidCookie.
// A MaxAge over 400 days counts as 400 days. Call it before the Store is
// used.
func (s *Store) MaxAge(age int) {
	s.Options.MaxAge = age
	s.codec.setMaxAge(int(lifetime(age, s.ttl) / time.Second))
}

// Get returns the named session of the request, loading it at most once per
// request through the sessions registry. See New for what it returns.
func (s *Store) Get(r *http.Request, name string) (*sessions.Session, error) {
	return sessions.GetRegistry(r).Get(s, name)
}

// New loads the named session of the request with one GetItem, or returns a
// new session when the request has no cookie or its row is gone or
// expired. A cookie that fails verification (ErrInvalidCookie), a row that
// cannot be decoded (ErrDecode) or a failed read returns a new, empty
// session together with the error; for a failed read, Save then refuses
// that session (ErrLoadFailed), so the user's real session is never
// overwritten. Deleting such a session (Save with MaxAge < 0, or Delete)
// still deletes the row the request's cookie names, so a sign-out is never
// lost.
//
// A cookie signed longer ago than its session's lifetime (the row's expiry
// minus its last write, plus the touch interval) is refused with
// ErrInvalidCookie even while the row lives, so an old copy of a cookie
// stops working as it would have expired in the browser. Every call to
// DynamoDB uses r.Context().
func (s *Store) New(r *http.Request, name string) (*sessions.Session, error) {
	sess, err := s.load(r, name)
	return sess, s.counters.countErr(err)
}

func (s *Store) load(r *http.Request, name string) (*sessions.Session, error) {
	// The request carries the states from its first session on, so that
	// a request derived from it (r.WithContext, as middleware makes one)
	// shares them: a new session saved through either is known to both.
	statesOf(r, true)
	sess := sessions.NewSession(s, name)
	*sess.Options = *s.Options
	sess.IsNew = true
	c, err := r.Cookie(name)
	if err != nil {
		return sess, nil
	}
	id, key, recent, err := s.codec.decode(name, c.Value)
	if err != nil {
		return sess, err
	}
	var cookie string
	if recent {
		cookie = c.Value
	}
	rec, err := s.backend.Get(r.Context(), key, s.now())
	if errors.Is(err, ErrNotFound) {
		if s.signedOutside(c.Value, lifetime(s.Options.MaxAge, s.ttl)) {
			return sess, fmt.Errorf("%w: signed longer ago than the session lifetime", ErrInvalidCookie)
		}
		s.counters.misses.Add(1)
		return sess, nil
	}
	if errors.Is(err, ErrDecode) {
		s.log.WarnContext(r.Context(), "dynamostore: stored session cannot be decoded", "session", name, "error", err)
		setState(r, s, sess, loadState{cookieKey: key})
		return sess, err
	}
	if err != nil {
		s.log.ErrorContext(r.Context(), "dynamostore: loading session failed", "session", name, "error", err)
		setState(r, s, sess, loadState{failed: true, cookieKey: key})
		return sess, err
	}
	// The row's expiry minus its last write is the lifetime it was written
	// with; a row written elsewhere without a last-write time is taken to
	// have the default one.
	life := lifetime(s.Options.MaxAge, s.ttl)
	if !rec.Modified.IsZero() {
		life = rec.Expires.Sub(rec.Modified)
	}
	if s.signedOutside(c.Value, life) {
		return sess, fmt.Errorf("%w: signed longer ago than its session's lifetime", ErrInvalidCookie)
	}
	if err := s.serializer.Deserialize(rec.Data, sess.Values); err != nil {
		clear(sess.Values)
		s.log.WarnContext(r.Context(), "dynamostore: stored session cannot be decoded", "session", name, "error", err)
		setState(r, s, sess, loadState{cookieKey: key})
		return sess, err
	}
	sess.ID = id
	sess.IsNew = false
	s.counters.loads.Add(1)
	setState(r, s, sess, loadState{id: id, key: key, data: rec.Data, life: life, modified: rec.Modified, version: rec.Version, owner: rec.Owner, cookie: cookie})
	return sess, nil
}

// signedOutside reports whether the verified cookie value was signed longer
// ago than a session living life after each write can have been sent: life
// plus its touch interval, within which a signature is sent again. It is
// false when the value's signing time cannot be read.
func (s *Store) signedOutside(value string, life time.Duration) bool {
	signed, ok := s.codec.signedAt(value)
	// In whole seconds, as securecookie signs and checks: the timestamp
	// is the signing time rounded down.
	limit := (life + s.touchWithin(life) + time.Second - 1) / time.Second
	return ok && time.Now().Unix()-signed > int64(limit)
}

// Save writes the session and sets its cookie.
//
//   - MaxAge < 0 deletes the row and expires the cookie. When the request's
//     load failed (ErrLoadFailed, ErrDecode), the row the request's cookie
//     names is deleted; if that fails too, the error wraps ErrLoadFailed
//     and the cookie is left as it is.
//   - A MaxAge over 400 days counts as 400 days, the longest cookie lifetime
//     browsers keep.
//   - A new session gets a fresh ID and is written only if no row has its
//     key (attribute_not_exists).
//   - A loaded session whose values and lifetime did not change makes no
//     DynamoDB call within touchAfter of its last write, and only extends its
//     expiry after that (or when its MaxAge gives it another lifetime than
//     its row was written with). The lifetime compared is the row's, so a
//     "remember me" MaxAge set again on every request costs no write.
//   - Otherwise the row is updated only while it exists and has not
//     expired: a session deleted by a concurrent request (a logout) is not
//     brought back, and Save returns ErrSessionGone.
//   - The Set-Cookie carries the request's own cookie value again when that
//     value holds the session's ID and was signed with the first key pair
//     within touchAfter (and the codecs were made from key pairs);
//     otherwise a new signature.
//
// Errors wrap ErrEncode (also for a session name that cannot name a
// cookie, before any call), ErrTooLarge, ErrSessionGone, ErrLoadFailed or
// the SDK's error; on error no cookie is set.
func (s *Store) Save(r *http.Request, w http.ResponseWriter, sess *sessions.Session) error {
	err := s.save(r, w, sess)
	if backendFailure(err) {
		s.log.ErrorContext(r.Context(), "dynamostore: saving session failed", "session", sess.Name(), "error", err)
	}
	return s.counters.countErr(err)
}

func (s *Store) save(r *http.Request, w http.ResponseWriter, sess *sessions.Session) error {
	if sess.Options == nil {
		opts := *s.Options
		sess.Options = &opts
	}
	ctx := r.Context()
	name := sess.Name()
	if !validCookieName(name) {
		// net/http would drop the Set-Cookie, leaving a row no cookie names.
		return fmt.Errorf("%w: session name %q cannot name a cookie (letters, digits and !#$%%&'*+-.^_`|~ only)", ErrEncode, name)
	}
	st, loaded := getState(r, s, sess)
	if sess.Options.MaxAge < 0 {
		key := st.cookieKey
		if sess.ID != "" {
			key = st.storageKey(sess.ID)
		} else if !loaded {
			// Loaded through another request, or not at all: the cookie
			// still names the row to delete.
			key = s.cookieKey(r, name)
		}
		if key != "" {
			err := s.backend.Delete(ctx, key, s.deleteNow())
			switch {
			case err == nil:
				s.counters.deletes.Add(1)
			case errors.Is(err, ErrNotFound):
				// Gone already (expired, or signed out elsewhere).
			case st.failed:
				s.counters.backendErrors.Add(1)
				s.log.ErrorContext(ctx, "dynamostore: signing out failed; the session is still stored", "session", name, "error", err)
				return fmt.Errorf("%w: deleting the session: %w", ErrLoadFailed, err)
			default:
				return err
			}
		}
		dropState(r, sess)
		http.SetCookie(w, sessions.NewCookie(name, "", sess.Options))
		return nil
	}
	if loaded && st.failed {
		return ErrLoadFailed
	}
	if st.ownerSet && len(st.owner) > maxOwnerSize {
		return fmt.Errorf("%w: the owner set with SetOwner is %d bytes; an owner is at most %d, DynamoDB's limit for an index key", ErrEncode, len(st.owner), maxOwnerSize)
	}
	var data []byte
	var err error
	if rs, ok := s.serializer.(reusingSerializer); ok && loaded {
		data, err = rs.serializeReusing(sess.Values, st.data)
	} else {
		data, err = s.serializer.Serialize(sess.Values)
	}
	if err != nil {
		return err
	}
	now := s.now()
	life := lifetime(sess.Options.MaxAge, s.ttl)
	touchAfter := s.touchWithin(life)
	rec := Record{Data: data, Expires: expiresAt(now, sess.Options.MaxAge, s.ttl), Modified: now, Owner: st.owner, ClearOwner: st.ownerSet && st.owner == ""}
	if s.locking {
		rec.Version = st.version + 1
	}
	if sess.ID != "" {
		rec.Key = st.storageKey(sess.ID)
	}
	// The ID and the cookie value are settled before any write, so that a
	// cookie that cannot be signed leaves nothing written.
	id := sess.ID
	if id == "" {
		if id, err = newID(); err != nil {
			return err
		}
		rec.Key = storageKey(id)
	}
	cookie := st.cookie
	if cookie == "" || st.id != id || touchAfter < s.touchAfter && !signedWithin(cookie, int(touchAfter/time.Second), time.Now()) {
		// A value signed within touchAfter goes back as it came: its
		// signature outlives the row's last write by at least the time the
		// row's expiry may lag behind, as a fresh one would.
		if cookie, err = s.codec.encode(name, id); err != nil {
			return err
		}
	}
	switch {
	case sess.ID == "":
		if err := s.backend.Create(ctx, rec); err != nil {
			return err
		}
		s.counters.creates.Add(1)
		sess.ID = id
		if st.cookieKey != "" {
			// The request's cookie named a row that could not be decoded:
			// the new session replaces it, so an older cookie never loads
			// it again, wherever it could be decoded.
			if err := s.backend.Delete(ctx, st.cookieKey, now); err != nil && !errors.Is(err, ErrNotFound) {
				s.log.WarnContext(ctx, "dynamostore: deleting the undecodable session a new one replaced failed; it expires", "session", name, "error", err)
			}
		}
	case loaded && !st.ownerSet && s.unchanged(data, st.data):
		rec.Version = st.version
		// The row keeps its expiry when it was written with this lifetime
		// (whatever the MaxAge the request began with) within touchAfter.
		if touchAfter > 0 && now.Sub(st.modified) < touchAfter && st.life >= life && st.life < life+2*time.Second {
			rec.Modified, rec.Expires = st.modified, st.modified.Add(st.life)
			s.counters.skippedWrites.Add(1)
			break
		}
		if err := s.backend.Touch(ctx, rec.Key, rec.Expires, now); err != nil {
			return gone(err)
		}
		s.counters.touches.Add(1)
	default:
		if err := s.backend.Update(ctx, rec); err != nil {
			return gone(err)
		}
		s.counters.updates.Add(1)
	}
	setState(r, s, sess, loadState{id: sess.ID, key: rec.Key, data: data, life: rec.Expires.Sub(rec.Modified), modified: rec.Modified, version: rec.Version, owner: rec.Owner, cookie: cookie})
	http.SetCookie(w, sessions.NewCookie(name, cookie, cookieOptions(sess.Options)))
	return nil
}

// deleteNow is the time a sign-out deletes a row live at: now less the
// clock skew the reaper allows (ReaperOptions.Grace), so that a row an
// instance whose clock runs behind still serves is deleted, not left as
// already expired.
func (s *Store) deleteNow() time.Time { return s.now().Add(-s.skew) }

// validCookieName reports whether name can name a cookie: net/http sets
// no cookie of another name.
func validCookieName(name string) bool {
	return (&http.Cookie{Name: name, Value: "v"}).Valid() == nil
}

// cookieKey returns the storage key the request's cookie of that name
// names, or "" when it has none or it does not verify.
func (s *Store) cookieKey(r *http.Request, name string) string {
	c, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	_, key, _, err := s.codec.decode(name, c.Value)
	if err != nil {
		return ""
	}
	return key
}

// cookieOptions returns o, or a copy of it with MaxAge cut to 400 days when
// it is longer, so that the cookie's expiry never overflows.
func cookieOptions(o *sessions.Options) *sessions.Options {
	if o.MaxAge <= maxCookieAge {
		return o
	}
	c := *o
	c.MaxAge = maxCookieAge
	return &c
}

// unchanged reports whether data, the serialized values of a request, is
// what was loaded as stored: the same bytes, or, when the Serializer can
// tell (GobSerializer can), an encoding of the same values that another
// process, release or program wrote. It never decodes and compares values,
// which would miss changes that compare equal (0.0 to -0.0).
func (s *Store) unchanged(data, stored []byte) bool {
	if bytes.Equal(data, stored) {
		return true
	}
	c, ok := s.serializer.(canonicalSerializer)
	return ok && c.sameValues(data, stored)
}

// gone turns a backend's ErrNotFound on an update into ErrSessionGone.
func gone(err error) error {
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: %w", ErrSessionGone, err)
	}
	return err
}

// Close stops the reaper, cancelling a pass under way, and waits for it to
// end. It is safe to call more than once and always returns nil; the Store
// still serves Get, New and Save after Close.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	if s.reaper != nil {
		s.reaper.close()
	}
	return nil
}
