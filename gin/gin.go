// Package dynamogin plugs a dynamostore.Store into gin through
// github.com/gin-contrib/sessions, whose Store interface adds an Options
// method to gorilla's sessions.Store.
//
// It lives in its own module, github.com/dynamostore/dynamostore/gin, so
// that the core module never depends on gin:
//
//	import dynamogin "github.com/dynamostore/dynamostore/gin"
//
//	awsCfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("eu-west-1"))
//	if err != nil { ... }
//	store, err := dynamogin.NewStore(ctx, "sessions",
//		dynamostore.WithAWSConfig(awsCfg),
//		dynamostore.WithKeyPairs(hashKey, blockKey))
//	if err != nil { ... }
//	defer store.Close()
//	router.Use(sessions.Sessions("session", store))
//
// # Errors
//
// gin-contrib/sessions loads a session on its first use and, when the load
// fails, only logs the error (with slog.Error) and hands out an empty
// session. Load returns that error, so that a request is not served as signed out while
// DynamoDB is unavailable. The rule is dynamostore.Unavailable: when it is
// true, answer 503 and let the client retry; otherwise (nil, or a bad
// cookie, ErrInvalidCookie, or a row that cannot be decoded, ErrDecode,
// which come with a fresh session) carry on. A middleware after
// sessions.Sessions does it for every route:
//
//	router.Use(sessions.Sessions("session", store), func(c *gin.Context) {
//		if err := dynamogin.Load(c, sessions.Default(c)); dynamostore.Unavailable(err) {
//			c.AbortWithStatus(http.StatusServiceUnavailable)
//		}
//	})
//
// The Session's Save returns the Store's error as it is, and Regenerate and
// Delete return theirs: the same rule applies. A session whose load failed
// is never saved over the user's real one (its Save returns
// dynamostore.ErrLoadFailed, for which Unavailable is true).
//
// # Sign-in and sign-out
//
// Regenerate gives the session a new ID at sign-in, so that an ID planted
// before it (session fixation) is worth nothing after it; Delete signs out,
// deleting the session's row and expiring its cookie. Both take the
// *gin.Context and the gin-contrib Session, as sessions.Default (or
// sessions.DefaultMany) returns it, and work through the dynamostore.Store
// the session was loaded from.
package dynamogin

import (
	"context"
	"fmt"

	"github.com/dynamostore/dynamostore"
	"github.com/gin-contrib/sessions"
	"github.com/gin-gonic/gin"
	gsessions "github.com/gorilla/sessions"
)

// Store is a gin-contrib/sessions Store backed by a *dynamostore.Store. It
// embeds the Store, so Reap, Regenerate, Close and the rest are available on
// it too; everything it does is the Store's.
type Store struct {
	*dynamostore.Store
}

var _ sessions.Store = (*Store)(nil)

// New returns a gin-contrib/sessions Store that uses s. The two share
// everything: closing the returned Store closes s.
func New(s *dynamostore.Store) *Store {
	return &Store{Store: s}
}

// NewStore creates a dynamostore.Store on the named table with the given
// options (see dynamostore.NewStore for them and their defaults) and
// returns it as a gin-contrib/sessions Store. Close it when done.
func NewStore(ctx context.Context, table string, opts ...dynamostore.Option) (*Store, error) {
	s, err := dynamostore.NewStore(ctx, table, opts...)
	if err != nil {
		return nil, err
	}
	return New(s), nil
}

// Options sets the default cookie options of new sessions, replacing the
// Store's Options, and keeps the cookie signatures' maximum age in step
// with o.MaxAge (see dynamostore.Store.MaxAge). Call it before the Store is
// used.
func (s *Store) Options(o sessions.Options) {
	*s.Store.Options = *o.ToGorillaOptions()
	s.Store.MaxAge(o.MaxAge)
}

// Load loads s, the request's session as sessions.Default(c) or
// sessions.DefaultMany(c, name) returns it, if the request has not loaded
// it yet, and returns the error of its load: nil, or an error of
// dynamostore.Store.Get. A session is loaded at most once per request, so
// Load makes no DynamoDB call for a session already used, and the session
// used after it is the one it loaded. See the package documentation for
// what to do with the error: 503 when dynamostore.Unavailable(err), carry
// on otherwise.
//
// s must be a session of sessions.Sessions or sessions.SessionsMany on a
// Store of this package (or another that is a *dynamostore.Store), and
// c.Request the request it was loaded with (a request derived from it with
// WithContext after the load will do). Otherwise Load returns an error
// wrapping dynamostore.ErrUnsupported, for which Unavailable is false.
func Load(c *gin.Context, s sessions.Session) error {
	_, _, loadErr, err := unwrap(c, s)
	if err != nil {
		return err
	}
	return loadErr
}

// Regenerate gives s a new session ID, keeping its values, writes it and
// sets its new cookie, through dynamostore.Store.Regenerate: call it at
// sign-in, after setting the values that mark the user signed in. The old
// ID's row is deleted, so the cookie the request came with no longer loads
// the session. No Save is needed after it; a Save after it writes the
// changes made since under the new ID (after a Set before Regenerate, it
// also sends the same cookie again, with no DynamoDB call when nothing
// changed).
//
// It returns the Store's error: ErrSessionGone when a concurrent request
// signed the session out first (treat the user as signed out),
// ErrLoadFailed when the session could not be loaded (answer 503, as for
// any error for which dynamostore.Unavailable is true). When it fails
// otherwise, the session keeps its old ID and row. It works on s as Load
// does, and returns Load's errors about s or c.Request.
func Regenerate(c *gin.Context, s sessions.Session) error {
	gs, store, _, err := unwrap(c, s)
	if err != nil {
		return err
	}
	return store.Regenerate(c.Request, c.Writer, gs)
}

// Delete signs s out: it deletes its row, expires its cookie (with the
// session's own Path and Domain) and empties its values, the same as
// dynamostore.Store.Delete, through the Session's Save, so a Save after it
// has nothing left to do. It deletes the row the request's cookie names
// even when the session could not be loaded; when that fails too, the
// error wraps dynamostore.ErrLoadFailed (answer 503: the user is still
// signed in). It works on s as Load does, and returns Load's errors about s
// or c.Request.
func Delete(c *gin.Context, s sessions.Session) error {
	gs, store, _, err := unwrap(c, s)
	if err != nil {
		return err
	}
	opts := *store.Options
	if gs.Options != nil {
		opts = *gs.Options
	}
	opts.MaxAge = -1
	// Options marks the session as changed, so that Save writes it; the
	// options are then set whole, for gin-contrib's Options has fewer
	// fields than gorilla's (Partitioned).
	s.Options(sessions.Options{MaxAge: -1})
	gs.Options = &opts
	if err := s.Save(); err != nil {
		return err
	}
	clear(gs.Values)
	gs.ID = ""
	return nil
}

// gorillaSession is the method gin-contrib/sessions' Session
// implementation has beside the Session interface: it returns the gorilla
// session it wraps, loading it on the first call.
type gorillaSession interface {
	Session() *gsessions.Session
}

// unwrap returns the gorilla session behind s, loading it if need be, the
// dynamostore.Store it was loaded from and the error its load returned;
// err is about s or c.Request not being what the functions need.
func unwrap(c *gin.Context, s sessions.Session) (gs *gsessions.Session, store *dynamostore.Store, loadErr, err error) {
	g, ok := s.(gorillaSession)
	if !ok {
		return nil, nil, nil, fmt.Errorf("%w: dynamogin: %T is not a session of gin-contrib/sessions", dynamostore.ErrUnsupported, s)
	}
	if gs = g.Session(); gs == nil {
		// gin-contrib logged the Store's error, which is about the name.
		return nil, nil, nil, fmt.Errorf("%w: dynamogin: the session could not be loaded (is its name a valid cookie name?)", dynamostore.ErrUnsupported)
	}
	if store, ok = gs.Store().(*dynamostore.Store); !ok {
		return nil, nil, nil, fmt.Errorf("%w: dynamogin: the session %q is kept in a %T, not in a dynamostore.Store", dynamostore.ErrUnsupported, gs.Name(), gs.Store())
	}
	// The sessions registry of the request keeps the session with the
	// error of its load: Get returns both without loading it again.
	again, loadErr := store.Get(c.Request, gs.Name())
	if again != gs {
		return nil, nil, nil, fmt.Errorf("%w: dynamogin: the session %q was loaded through another *http.Request than c.Request; replace c.Request only after the session is loaded, with one derived from it", dynamostore.ErrUnsupported, gs.Name())
	}
	return gs, store, loadErr, nil
}
