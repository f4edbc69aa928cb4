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
package dynamogin

import (
	"context"

	"github.com/dynamostore/dynamostore"
	"github.com/gin-contrib/sessions"
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
