// Command echo is a small Echo v4 application whose sessions live in
// DynamoDB through dynamostore and echo-contrib/session, which takes any
// gorilla sessions.Store as it is.
//
//	POST /login?user=NAME   signs in: stores the name and gives the session a new ID
//	GET  /whoami            prints the signed-in name, or 401
//	POST /logout            deletes the session
//
// Configuration comes from the environment: SESSION_HASH_KEY (required,
// hex), DYNAMOSTORE_TABLE, DYNAMODB_ENDPOINT, ADDR and the usual AWS
// variables. Against DynamoDB Local:
//
//	AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local \
//	DYNAMODB_ENDPOINT=http://127.0.0.1:8000 SESSION_HASH_KEY=$(openssl rand -hex 32) \
//	go run ./echo
package main

import (
	"context"
	"log"
	"net/http"

	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/examples/frameworks/internal/setup"
	"github.com/gorilla/sessions"
	"github.com/labstack/echo-contrib/session"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
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
	return newServer(store).Start(setup.Addr())
}

// errUnavailable is the answer when DynamoDB cannot be read or written.
var errUnavailable = echo.NewHTTPError(http.StatusServiceUnavailable, "session unavailable")

// newServer returns the application, with sessions in store.
func newServer(store *dynamostore.Store) *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.Use(middleware.Recover(), session.Middleware(store))

	e.POST("/login", func(c echo.Context) error {
		user := c.QueryParam("user")
		if user == "" {
			return echo.NewHTTPError(http.StatusBadRequest, "user is required")
		}
		sess, err := load(c)
		if err != nil {
			return err
		}
		sess.Values["user"] = user
		// A new ID at sign-in: an ID planted before it is worth nothing.
		// Regenerate is dynamostore's, so it is called on the Store.
		if err := store.Regenerate(c.Request(), c.Response(), sess); err != nil {
			return errUnavailable
		}
		return c.NoContent(http.StatusNoContent)
	})

	e.GET("/whoami", func(c echo.Context) error {
		sess, err := load(c)
		if err != nil {
			return err
		}
		user, ok := sess.Values["user"].(string)
		if !ok {
			return echo.NewHTTPError(http.StatusUnauthorized, "not signed in")
		}
		return c.String(http.StatusOK, user)
	})

	e.POST("/logout", func(c echo.Context) error {
		sess, err := load(c)
		if err != nil {
			return err
		}
		sess.Options.MaxAge = -1 // Save then deletes the row and the cookie.
		if err := sess.Save(c.Request(), c.Response()); err != nil {
			return errUnavailable
		}
		return c.NoContent(http.StatusNoContent)
	})
	return e
}

// load returns the request's session through echo-contrib/session. A bad
// cookie is not an error: the session is then a fresh one. A failed read
// is a 503.
func load(c echo.Context) (*sessions.Session, error) {
	sess, err := session.Get(sessionName, c)
	if dynamostore.Unavailable(err) {
		return nil, errUnavailable
	}
	return sess, nil
}
