// Command chi is a small chi application whose sessions live in DynamoDB
// through dynamostore. The Store is a plain gorilla sessions.Store, so chi
// needs no adapter: handlers call Get and Save as with any other store.
//
//	POST /login?user=NAME   signs in: stores the name and gives the session a new ID
//	GET  /whoami            prints the signed-in name, or 401
//	POST /logout            deletes the session
//	GET  /debug/sessions    the Store's counters (Store.Stats) as JSON, in expvar's format
//
// Configuration comes from the environment: SESSION_HASH_KEY (required,
// hex), DYNAMOSTORE_TABLE, DYNAMODB_ENDPOINT, ADDR and the usual AWS
// variables. Against DynamoDB Local:
//
//	AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local \
//	DYNAMODB_ENDPOINT=http://127.0.0.1:8000 SESSION_HASH_KEY=$(openssl rand -hex 32) \
//	go run ./chi
package main

import (
	"context"
	"expvar"
	"fmt"
	"log"
	"net/http"

	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/examples/frameworks/internal/setup"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// sessionName is the name of the session cookie.
const sessionName = "session"

func main() {
	if err := run(context.Background()); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context) error {
	store, err := setup.Store(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	return http.ListenAndServe(setup.Addr(), newRouter(store))
}

// newRouter returns the application's routes, with sessions in store.
func newRouter(store *dynamostore.Store) http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.Recoverer, loadSession(store))

	r.Post("/login", func(w http.ResponseWriter, r *http.Request) {
		user := r.URL.Query().Get("user")
		if user == "" {
			http.Error(w, "user is required", http.StatusBadRequest)
			return
		}
		sess, _ := store.Get(r, sessionName) // loaded and checked by loadSession
		sess.Values["user"] = user
		// A new ID at sign-in: an ID planted before it is worth nothing.
		if err := store.Regenerate(r, w, sess); err != nil {
			http.Error(w, "session unavailable", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})

	r.Get("/whoami", func(w http.ResponseWriter, r *http.Request) {
		sess, _ := store.Get(r, sessionName) // loaded and checked by loadSession
		user, ok := sess.Values["user"].(string)
		if !ok {
			http.Error(w, "not signed in", http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, user)
	})

	r.Post("/logout", func(w http.ResponseWriter, r *http.Request) {
		sess, _ := store.Get(r, sessionName) // loaded and checked by loadSession
		if err := store.Delete(r, w, sess); err != nil {
			http.Error(w, "session unavailable", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	// The Store's counters for a metrics scraper. Serve them on an internal
	// listener in production; expvar.Publish would add them to
	// /debug/vars instead.
	stats := expvar.Func(func() any { return store.Stats() })
	r.Get("/debug/sessions", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, stats.String())
	})
	return r
}

// loadSession loads the session before the handler runs and answers 503
// when DynamoDB cannot be read. A bad cookie is not an error here: the
// session is then a fresh one. Handlers get the session with store.Get,
// which returns the one loaded here without reading it again.
func loadSession(store *dynamostore.Store) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, err := store.Get(r, sessionName); dynamostore.Unavailable(err) {
				http.Error(w, "session unavailable", http.StatusServiceUnavailable)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
