package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/gorilla/sessions"
)

// Delete removes the session's row, empties its values and expires its
// cookie: the same as saving it with MaxAge -1.
func (s *Store) Delete(r *http.Request, w http.ResponseWriter, sess *sessions.Session) error {
	if sess.Options == nil {
		opts := *s.Options
		sess.Options = &opts
	}
	sess.Options.MaxAge = -1
	if err := s.Save(r, w, sess); err != nil {
		return err
	}
	clear(sess.Values)
	sess.ID = ""
	return nil
}

// Regenerate gives the session a new ID, keeping its values, and sets the
// new cookie; call it at sign-in so an ID planted before sign-in (session
// fixation) is worth nothing after it. The new row is written first (only
// if no row has its key), then the old row is deleted, so the old cookie
// never loads the session again. When a concurrent request logged the session out or
// regenerated it first, the new row is deleted again, the cookie is
// expired, and Regenerate returns ErrSessionGone: a logout is never undone.
// A session not yet saved is simply saved.
//
// With optimistic locking and the DynamoDB backend, the old row is deleted
// only if it holds the version loaded: when another request changed the
// session since, Regenerate fails with ErrConflict, as Save would.
//
// When Regenerate fails otherwise, it leaves the session as it found it:
// the old ID and row, no new cookie, and what Save needs to know of the
// load, so the request may save the session as it is or try again.
func (s *Store) Regenerate(r *http.Request, w http.ResponseWriter, sess *sessions.Session) error {
	oldID := sess.ID
	if oldID == "" {
		return s.Save(r, w, sess)
	}
	st, _ := getState(r, s, sess)
	if st.failed {
		return ErrLoadFailed
	}
	setCookies := slices.Clone(w.Header()["Set-Cookie"])
	restoreCookies := func() {
		if setCookies == nil {
			w.Header().Del("Set-Cookie")
		} else {
			w.Header()["Set-Cookie"] = setCookies
		}
	}
	undo := func() {
		sess.ID = oldID
		setState(r, s, sess, st)
		restoreCookies()
	}
	sess.ID = ""
	setState(r, s, sess, loadState{owner: st.owner})
	if err := s.Save(r, w, sess); err != nil {
		undo()
		return err
	}
	var err error
	if vd, ok := s.backend.(versionedDeleter); ok && s.locking {
		// The old row goes only as it was loaded: a change written
		// since is not dropped for the stale values the new row holds.
		err = vd.deleteVersioned(r.Context(), storageKey(oldID), st.version, s.deleteNow())
	} else {
		err = s.backend.Delete(r.Context(), storageKey(oldID), s.deleteNow())
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		// The old row may still be live: take the new one back, so that
		// the request holds one session, as before the call.
		newID := sess.ID
		// The delete may have landed: the next Save must not skip its
		// write on the strength of a load that may no longer hold.
		st.modified = time.Time{}
		undo()
		if derr := s.backend.Delete(r.Context(), storageKey(newID), s.now()); derr != nil && !errors.Is(derr, ErrNotFound) {
			s.log.WarnContext(r.Context(), "dynamostore: a regenerated session could not be taken back; no cookie names it, and it expires", "session", sess.Name(), "error", derr)
		}
		err = fmt.Errorf("dynamostore: deleting the old session after regenerating its ID: %w", err)
		if backendFailure(err) {
			s.log.ErrorContext(r.Context(), "dynamostore: regenerating session failed", "session", sess.Name(), "error", err)
		}
		return s.counters.countErr(err)
	}
	if errors.Is(err, ErrNotFound) {
		// A concurrent sign-out (or regeneration) won: the session is over
		// whatever happens next, so no cookie may name the new row.
		newID := sess.ID
		restoreCookies()
		dropState(r, sess)
		clear(sess.Values)
		sess.ID = ""
		expired := *sess.Options // the attributes a browser needs to drop it (Secure, Partitioned)
		expired.MaxAge = -1
		http.SetCookie(w, sessions.NewCookie(sess.Name(), "", &expired))
		if derr := s.backend.Delete(r.Context(), storageKey(newID), s.now()); derr != nil && !errors.Is(derr, ErrNotFound) {
			s.log.WarnContext(r.Context(), "dynamostore: the new row of a session ended meanwhile could not be deleted; no cookie names it, and it expires", "session", sess.Name(), "error", derr)
		}
		return s.counters.countErr(fmt.Errorf("%w: regenerating its ID", ErrSessionGone))
	}
	s.counters.deletes.Add(1)
	return nil
}

// SetOwner records that the session belongs to owner (a user ID, say), so
// that RevokeOwner can later end every session of that user. Call it at
// sign-in, before Save, with the request the session was loaded with; the
// next Save writes it. An empty owner removes the stored one, so that
// RevokeOwner no longer ends the session. The owner is stored in clear in
// the attribute "own", and needs the owner index (TableOptions.OwnerIndex) for
// RevokeOwner. An owner is at most 2048 bytes (DynamoDB's limit for an
// index key), or Save fails with ErrEncode. Each byte that is not part of
// UTF-8 is stored as U+FFFD, as the SDK sends it: such owners that differ
// only there are one owner to RevokeOwner.
func (s *Store) SetOwner(r *http.Request, sess *sessions.Session, owner string) {
	st, _ := getState(r, s, sess)
	// What DynamoDB will hold, so that a create retried after a lost
	// answer recognises its own row.
	st.owner = sentAsUTF8(owner)
	st.ownerSet = true
	setState(r, s, sess, st)
}

// maxOwnerSize is the longest owner SetOwner takes: DynamoDB's limit for
// the partition key of an index (the owner index).
const maxOwnerSize = 2048

// sentAsUTF8 returns s as the SDK sends it to DynamoDB: each byte that is
// not part of UTF-8 replaced by U+FFFD (converting to runes does just
// that).
func sentAsUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return string([]rune(s))
}

// RevokeOwner deletes every session of owner, as set by SetOwner, and
// returns how many it deleted: after it, none of that user's cookies loads
// a session. With DynamoDB it queries the owner index, which is eventually
// consistent, so a session saved in the last moment may survive: call it
// again a second later where that matters. It returns ErrUnsupported when
// the Backend cannot look sessions up by owner.
func (s *Store) RevokeOwner(ctx context.Context, owner string) (int, error) {
	n, err := s.backend.DeleteOwner(ctx, owner)
	s.counters.deletes.Add(int64(n))
	if err != nil {
		s.log.ErrorContext(ctx, "dynamostore: revoking the sessions of an owner failed", "deleted", n, "error", err)
	}
	return n, s.counters.countErr(err)
}
