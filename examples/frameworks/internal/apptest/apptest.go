// Package apptest drives the framework examples through the same sign-in
// flow against DynamoDB Local, so that each example's test is a few lines.
// It is for tests only.
package apptest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/internal/dbtest"
)

// Env is a Store on a fresh table of the test database.
type Env struct {
	Store  *dynamostore.Store
	client *dynamodb.Client
	table  string
}

// New returns a Store on a fresh table with the reaper off. The package's
// TestMain must call dbtest.Main.
func New(t *testing.T) *Env {
	t.Helper()
	e := &Env{client: dbtest.Client(t)}
	e.table = dbtest.NewTable(t, e.client)
	s, err := dynamostore.NewStore(context.Background(), e.table,
		dynamostore.WithClient(e.client),
		dynamostore.WithKeyPairs([]byte("0123456789abcdef0123456789abcdef")),
		dynamostore.WithReaper(dynamostore.ReaperOptions{Interval: -1}))
	if err != nil {
		t.Fatalf("NewStore: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	e.Store = s
	return e
}

// rows returns the number of items in the table.
func (e *Env) rows(t *testing.T) int {
	t.Helper()
	out, err := e.client.Scan(context.Background(), &dynamodb.ScanInput{
		TableName:      aws.String(e.table),
		Select:         "COUNT",
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	return int(out.Count)
}

// Flow drives h, an example application serving
//
//	POST /login?user=NAME, GET /whoami, POST /logout
//
// with its session in cookie cookieName, through sign-in, sign-in again,
// sign-out and a forged cookie, and checks every answer and the rows the
// table holds along the way.
func (e *Env) Flow(t *testing.T, h http.Handler, cookieName string) {
	t.Helper()
	c := client{t: t, h: h, name: cookieName}

	c.call(http.MethodGet, "/whoami", nil, http.StatusUnauthorized, "")
	c.call(http.MethodPost, "/login", nil, http.StatusBadRequest, "")

	first := c.cookie(c.call(http.MethodPost, "/login?user=ada", nil, http.StatusNoContent, ""))
	c.call(http.MethodGet, "/whoami", first, http.StatusOK, "ada")
	if n := e.rows(t); n != 1 {
		t.Fatalf("after sign-in the table holds %d rows, want 1", n)
	}

	// Signing in again regenerates the ID: the old cookie is dead.
	second := c.cookie(c.call(http.MethodPost, "/login?user=grace", first, http.StatusNoContent, ""))
	if second.Value == first.Value {
		t.Fatalf("signing in again kept the session cookie")
	}
	c.call(http.MethodGet, "/whoami", second, http.StatusOK, "grace")
	c.call(http.MethodGet, "/whoami", first, http.StatusUnauthorized, "")
	if n := e.rows(t); n != 1 {
		t.Fatalf("after signing in again the table holds %d rows, want 1", n)
	}

	forged := &http.Cookie{Name: cookieName, Value: second.Value[:len(second.Value)-2] + "AA"}
	c.call(http.MethodGet, "/whoami", forged, http.StatusUnauthorized, "")

	out := c.cookie(c.call(http.MethodPost, "/logout", second, http.StatusNoContent, ""))
	if out.MaxAge >= 0 {
		t.Fatalf("sign-out cookie has MaxAge %d, want it expired", out.MaxAge)
	}
	c.call(http.MethodGet, "/whoami", second, http.StatusUnauthorized, "")
	if n := e.rows(t); n != 0 {
		t.Fatalf("after sign-out the table holds %d rows, want 0", n)
	}
}

// client sends requests to an http.Handler in-process.
type client struct {
	t    *testing.T
	h    http.Handler
	name string
}

// call sends one request, carrying cookie unless it is nil, and checks the
// response's status and, unless body is empty, its body.
func (c client) call(method, target string, cookie *http.Cookie, status int, body string) *http.Response {
	c.t.Helper()
	req := httptest.NewRequest(method, target, nil)
	if cookie != nil {
		req.AddCookie(cookie)
	}
	w := httptest.NewRecorder()
	c.h.ServeHTTP(w, req)
	resp := w.Result()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("reading body: %v", err)
	}
	if resp.StatusCode != status || (body != "" && string(b) != body) {
		c.t.Fatalf("%s %s: got %d %q, want %d %q", method, target, resp.StatusCode, b, status, body)
	}
	resp.Request = req
	return resp
}

// cookie returns the session cookie resp set.
func (c client) cookie(resp *http.Response) *http.Cookie {
	c.t.Helper()
	for _, ck := range resp.Cookies() {
		if ck.Name == c.name {
			return ck
		}
	}
	c.t.Fatalf("%s %s set no %s cookie", resp.Request.Method, resp.Request.URL, c.name)
	return nil
}
