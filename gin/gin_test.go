package dynamogin_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynamostore/dynamostore"
	dynamogin "github.com/dynamostore/dynamostore/gin"
	"github.com/dynamostore/dynamostore/internal/dbtest"
	"github.com/dynamostore/dynamostore/internal/tableschema"
	"github.com/gin-contrib/sessions"
	"github.com/gin-contrib/sessions/cookie"
	"github.com/gin-gonic/gin"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	gin.DefaultWriter = io.Discard // gin.Default's request log, in the tester's cases
	os.Exit(dbtest.Main(m))
}

var hashKey = []byte("0123456789abcdef0123456789abcdef")

// app is a gin engine with a session "s" in a Store on a table. Its
// routes load the session with the documented middleware (503 when
// dynamostore.Unavailable), but those under /unchecked/, which rely on the
// errors of Save, Regenerate and Delete alone.
type app struct {
	t      *testing.T
	engine *gin.Engine
	store  *dynamogin.Store
	client *dynamodb.Client
	table  string

	// Set by the handlers; requests are served one at a time.
	loadErr error  // what Load returned for the last checked request
	lastID  string // the session ID a handler saw last
}

// newApp returns an app on a fresh table of DynamoDB Local.
func newApp(t *testing.T, configure func(*dynamogin.Store)) *app {
	t.Helper()
	client := dbtest.Client(t)
	return newAppOn(t, client, dbtest.NewTable(t, client), configure)
}

// testStore returns a Store on table signing with hashKey, with no reaper
// goroutine, closed when the test ends.
func testStore(t *testing.T, client *dynamodb.Client, table string) *dynamogin.Store {
	t.Helper()
	store, err := dynamogin.NewStore(t.Context(), table,
		dynamostore.WithClient(client),
		dynamostore.WithKeyPairs(hashKey),
		dynamostore.WithReaper(dynamostore.ReaperOptions{Interval: -1}))
	if err != nil {
		t.Fatalf("NewStore: %v", err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return store
}

// newAppOn returns an app whose Store uses client and table.
func newAppOn(t *testing.T, client *dynamodb.Client, table string, configure func(*dynamogin.Store)) *app {
	t.Helper()
	a := &app{t: t, client: client, table: table}
	store := testStore(t, client, table)
	if configure != nil {
		configure(store)
	}
	a.store = store

	r := gin.New()
	r.Use(sessions.Sessions("s", store))
	a.routes(r.Group("/unchecked"))
	checked := r.Group("/", func(c *gin.Context) {
		// The package documentation's middleware.
		err := dynamogin.Load(c, sessions.Default(c))
		a.loadErr = err
		if dynamostore.Unavailable(err) {
			c.AbortWithStatus(http.StatusServiceUnavailable)
		}
	})
	a.routes(checked)
	a.engine = r
	return a
}

// fail answers a request whose session could not be loaded or saved.
func fail(c *gin.Context, what string, err error) {
	if dynamostore.Unavailable(err) {
		c.String(http.StatusServiceUnavailable, "%s: session unavailable", what)
		return
	}
	c.String(http.StatusInternalServerError, "%s: %v", what, err)
}

func (a *app) routes(g *gin.RouterGroup) {
	g.GET("/visit", func(c *gin.Context) {
		s := sessions.Default(c)
		n, _ := s.Get("visits").(int)
		s.Set("visits", n+1)
		if err := s.Save(); err != nil {
			fail(c, "save", err)
			return
		}
		a.lastID = s.ID()
		c.String(http.StatusOK, "%d", n+1)
	})
	g.POST("/login", func(c *gin.Context) {
		s := sessions.Default(c)
		s.Set("user", c.Query("user"))
		if err := dynamogin.Regenerate(c, s); err != nil {
			fail(c, "regenerate", err)
			return
		}
		a.lastID = s.ID()
		c.Status(http.StatusNoContent)
	})
	g.GET("/whoami", func(c *gin.Context) {
		user, _ := sessions.Default(c).Get("user").(string)
		c.String(http.StatusOK, "%s", user)
	})
	g.POST("/logout", func(c *gin.Context) {
		s := sessions.Default(c)
		a.lastID = s.ID()
		if err := dynamogin.Delete(c, s); err != nil {
			fail(c, "delete", err)
			return
		}
		// As an app that saves its sessions after every handler would:
		// after Delete, this has nothing to do.
		if err := s.Save(); err != nil {
			fail(c, "save after delete", err)
			return
		}
		c.Status(http.StatusNoContent)
	})
}

// do serves one request carrying cookies and returns the response.
func (a *app) do(method, target string, cookies ...*http.Cookie) *http.Response {
	a.t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	w := httptest.NewRecorder()
	a.engine.ServeHTTP(w, req)
	return w.Result()
}

// want serves a request and fails the test unless it answers status.
func (a *app) want(status int, method, target string, cookies ...*http.Cookie) *http.Response {
	a.t.Helper()
	resp := a.do(method, target, cookies...)
	if resp.StatusCode != status {
		a.t.Fatalf("%s %s: status %d, want %d: %s", method, target, resp.StatusCode, status, body(a.t, resp))
	}
	return resp
}

// rowExists reports whether the table holds the row of session id.
func (a *app) rowExists(id string) bool {
	a.t.Helper()
	out, err := a.client.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName:      aws.String(a.table),
		Key:            rowKey(id),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		a.t.Fatalf("GetItem: %v", err)
	}
	return out.Item != nil
}

func rowKey(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{tableschema.KeyAttr: &types.AttributeValueMemberS{Value: tableschema.StorageKey(id)}}
}

// sessionCookies returns the Set-Cookies of the session "s".
func sessionCookies(resp *http.Response) []*http.Cookie {
	var cs []*http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "s" {
			cs = append(cs, c)
		}
	}
	return cs
}

// sessionCookie returns the one Set-Cookie of the session "s".
func sessionCookie(t *testing.T, resp *http.Response) *http.Cookie {
	t.Helper()
	cs := sessionCookies(resp)
	if len(cs) != 1 {
		t.Fatalf("response set %d session cookies, want 1; headers %v", len(cs), resp.Header)
	}
	return cs[0]
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return string(b)
}

// login signs ada in and returns her cookie and session ID.
func (a *app) login(cookies ...*http.Cookie) (*http.Cookie, string) {
	a.t.Helper()
	resp := a.want(http.StatusNoContent, http.MethodPost, "/login?user=ada", cookies...)
	c := sessionCookie(a.t, resp)
	if a.lastID == "" || !a.rowExists(a.lastID) {
		a.t.Fatalf("after login, no row for the session")
	}
	if strings.Contains(c.Value, a.lastID) {
		a.t.Fatalf("cookie carries the raw session ID")
	}
	return c, a.lastID
}

// TestSignIn: Regenerate at sign-in gives the session a new ID and keeps
// its values; the cookie from before sign-in no longer loads it, and its
// row is gone.
func TestSignIn(t *testing.T) {
	a := newApp(t, nil)

	resp := a.want(http.StatusOK, http.MethodGet, "/visit")
	before := sessionCookie(t, resp)
	oldID := a.lastID
	if !a.rowExists(oldID) {
		t.Fatal("no row for the session before sign-in")
	}

	after, newID := a.login(before)
	if newID == oldID || after.Value == before.Value {
		t.Fatalf("sign-in kept the session ID")
	}
	if a.rowExists(oldID) {
		t.Fatal("the row of the ID from before sign-in still exists")
	}
	if got := body(t, a.want(http.StatusOK, http.MethodGet, "/whoami", after)); got != "ada" {
		t.Fatalf("whoami = %q, want ada", got)
	}
	if got := body(t, a.want(http.StatusOK, http.MethodGet, "/visit", after)); got != "2" {
		t.Fatalf("visit after sign-in = %q, want 2: the values from before it are kept", got)
	}
	if got := body(t, a.want(http.StatusOK, http.MethodGet, "/whoami", before)); got != "" || a.loadErr != nil {
		t.Fatalf("whoami with the cookie from before sign-in = %q (load error %v), want a fresh session", got, a.loadErr)
	}

	// Without a session yet, Regenerate simply saves it.
	c, _ := a.login()
	if got := body(t, a.want(http.StatusOK, http.MethodGet, "/whoami", c)); got != "ada" {
		t.Fatalf("whoami = %q, want ada", got)
	}
}

// TestSignOut: Delete deletes the row and expires the cookie, with the
// Store's Path and Domain; a Save after it makes no DynamoDB call and sets
// no cookie.
func TestSignOut(t *testing.T) {
	a := newApp(t, func(s *dynamogin.Store) {
		s.Options(sessions.Options{Path: "/", Domain: "example.com", MaxAge: 3600, HttpOnly: true})
	})
	c, id := a.login()

	deletes := a.store.Stats().Deletes
	resp := a.want(http.StatusNoContent, http.MethodPost, "/logout", c)
	if a.lastID != id {
		t.Fatal("logout saw another session than login")
	}
	expired := sessionCookie(t, resp)
	if expired.MaxAge >= 0 || expired.Value != "" || expired.Path != "/" || expired.Domain != "example.com" {
		t.Fatalf("logout cookie = %+v, want it expired, with Path / and Domain example.com", expired)
	}
	if n := a.store.Stats().Deletes - deletes; n != 1 {
		t.Fatalf("logout deleted %d rows, want 1", n)
	}
	if a.rowExists(id) {
		t.Fatal("row still exists after logout")
	}
	if got := body(t, a.want(http.StatusOK, http.MethodGet, "/whoami", c)); got != "" {
		t.Fatalf("whoami with the cookie after logout = %q, want empty", got)
	}

	// Signing out without a session expires the cookie all the same.
	if c := sessionCookie(t, a.want(http.StatusNoContent, http.MethodPost, "/logout")); c.MaxAge >= 0 {
		t.Fatalf("logout cookie MaxAge = %d, want it expired", c.MaxAge)
	}
}

// downClient returns a DynamoDB client, trying each call once, whose
// endpoint passes calls on to DynamoDB Local until down is called, and
// refuses connections after that.
func downClient(t *testing.T) (client *dynamodb.Client, down func()) {
	t.Helper()
	target, err := url.Parse(dbtest.Endpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewServer(httputil.NewSingleHostReverseProxy(target))
	t.Cleanup(proxy.Close)
	transport := http.DefaultTransport.(*http.Transport).Clone()
	client = dbtest.Client(t, func(o *dynamodb.Options) {
		o.BaseEndpoint = aws.String(proxy.URL)
		o.HTTPClient = &http.Client{Transport: transport}
		o.RetryMaxAttempts = 1
	})
	return client, func() {
		proxy.Close()
		// Every later call dials, and is refused.
		transport.CloseIdleConnections()
	}
}

// TestUnavailable: with DynamoDB unavailable, Load's error makes the
// middleware answer 503, and so do Save, Regenerate and Delete when the
// handler relies on them alone; none of them sets a cookie or replaces
// the user's session.
func TestUnavailable(t *testing.T) {
	live := newApp(t, nil)
	c, id := live.login()
	client, stop := downClient(t)
	down := newAppOn(t, client, live.table, nil) // NewStore may check the table
	stop()

	for _, req := range []struct{ method, target, body string }{
		{http.MethodGet, "/whoami", ""},
		{http.MethodGet, "/visit", ""},
		{http.MethodPost, "/login?user=eve", ""},
		{http.MethodPost, "/logout", ""},
		// Without the middleware, the handlers' own errors.
		{http.MethodGet, "/unchecked/visit", "save: session unavailable"},
		{http.MethodPost, "/unchecked/login?user=eve", "regenerate: session unavailable"},
		{http.MethodPost, "/unchecked/logout", "delete: session unavailable"},
	} {
		t.Run(strings.TrimPrefix(req.target, "/"), func(t *testing.T) {
			down.loadErr = nil
			resp := down.want(http.StatusServiceUnavailable, req.method, req.target, c)
			if cs := sessionCookies(resp); len(cs) != 0 {
				t.Errorf("the 503 set the session cookie %v", cs)
			}
			if got := body(t, resp); got != req.body {
				t.Errorf("body %q, want %q", got, req.body)
			}
			if req.body == "" {
				if !dynamostore.Unavailable(down.loadErr) {
					t.Errorf("Load returned %v, want an error for which Unavailable is true", down.loadErr)
				}
				var opErr *net.OpError
				if !errors.As(down.loadErr, &opErr) {
					t.Errorf("Load returned %v, want the refused connection in it", down.loadErr)
				}
			}
		})
	}
	if !live.rowExists(id) {
		t.Fatal("the session's row is gone")
	}
	if got := body(t, live.want(http.StatusOK, http.MethodGet, "/whoami", c)); got != "ada" {
		t.Fatalf("whoami once DynamoDB is back = %q, want ada", got)
	}
}

// TestCarryOn: a cookie that does not verify (ErrInvalidCookie) and a row
// that cannot be decoded (ErrDecode) come with a fresh session: the
// middleware carries on with it.
func TestCarryOn(t *testing.T) {
	a := newApp(t, nil)
	c, id := a.login()

	tampered := *c
	v := []byte(c.Value)
	if i := len(v) / 2; v[i] == 'A' {
		v[i] = 'B'
	} else {
		v[i] = 'A'
	}
	tampered.Value = string(v)

	// A row that gob cannot decode.
	_, err := a.client.UpdateItem(t.Context(), &dynamodb.UpdateItemInput{
		TableName:                 aws.String(a.table),
		Key:                       rowKey(id),
		UpdateExpression:          aws.String("SET #v = :v"),
		ExpressionAttributeNames:  map[string]string{"#v": tableschema.ValuesAttr},
		ExpressionAttributeValues: map[string]types.AttributeValue{":v": &types.AttributeValueMemberB{Value: []byte{0xff, 0x00, 0x13}}},
	})
	if err != nil {
		t.Fatalf("UpdateItem: %v", err)
	}

	for _, tt := range []struct {
		name   string
		cookie *http.Cookie
		want   error
	}{
		{"invalid cookie", &tampered, dynamostore.ErrInvalidCookie},
		{"undecodable row", c, dynamostore.ErrDecode},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := body(t, a.want(http.StatusOK, http.MethodGet, "/whoami", tt.cookie)); got != "" {
				t.Errorf("whoami = %q, want a fresh session", got)
			}
			if !errors.Is(a.loadErr, tt.want) || dynamostore.Unavailable(a.loadErr) {
				t.Errorf("Load returned %v, want %v", a.loadErr, tt.want)
			}
			resp := a.want(http.StatusOK, http.MethodGet, "/visit", tt.cookie)
			if got := body(t, resp); got != "1" {
				t.Errorf("visit = %q, want 1 in a fresh session", got)
			}
			if got := body(t, a.want(http.StatusOK, http.MethodGet, "/visit", sessionCookie(t, resp))); got != "2" {
				t.Errorf("second visit = %q, want 2", got)
			}
		})
	}
}

// TestMany: the functions work on each session of sessions.SessionsMany.
func TestMany(t *testing.T) {
	client := dbtest.Client(t)
	store := testStore(t, client, dbtest.NewTable(t, client))
	r := gin.New()
	r.Use(sessions.SessionsMany([]string{"a", "b"}, store))
	r.GET("/", func(c *gin.Context) {
		for _, name := range []string{"a", "b"} {
			s := sessions.DefaultMany(c, name)
			if err := dynamogin.Load(c, s); err != nil {
				c.String(http.StatusInternalServerError, "load %s: %v", name, err)
				return
			}
			n, _ := s.Get("n").(int)
			s.Set("n", n+1)
			var err error
			switch c.Query(name) {
			case "regenerate":
				err = dynamogin.Regenerate(c, s)
			case "delete":
				err = dynamogin.Delete(c, s)
			default:
				err = s.Save()
			}
			if err != nil {
				c.String(http.StatusInternalServerError, "%s: %v", name, err)
				return
			}
			c.Header("X-"+name, strconv.Itoa(n+1)+" "+s.ID())
		}
	})
	serve := func(target string, cookies map[string]*http.Cookie) (map[string]string, map[string]*http.Cookie) {
		t.Helper()
		req := httptest.NewRequest(http.MethodGet, target, nil)
		for _, c := range cookies {
			req.AddCookie(c)
		}
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		resp := w.Result()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d: %s", target, resp.StatusCode, body(t, resp))
		}
		set := map[string]*http.Cookie{}
		for _, c := range resp.Cookies() {
			set[c.Name] = c
		}
		return map[string]string{"a": resp.Header.Get("X-a"), "b": resp.Header.Get("X-b")}, set
	}

	seen, cookies := serve("/", nil)
	first := seen
	seen, set := serve("/?a=regenerate", cookies)
	if !strings.HasPrefix(seen["a"], "2 ") || seen["a"] == "2"+first["a"][1:] {
		t.Errorf("a after Regenerate = %q, want visit 2 under a new ID (was %q)", seen["a"], first["a"])
	}
	if seen["b"] != "2"+first["b"][1:] {
		t.Errorf("b = %q, want visit 2 under its ID %q", seen["b"], first["b"])
	}
	cookies["a"], cookies["b"] = set["a"], set["b"]
	seen, set = serve("/?b=delete", cookies)
	if !strings.HasPrefix(seen["a"], "3 ") || seen["b"] != "3 " || set["b"] == nil || set["b"].MaxAge >= 0 {
		t.Errorf("after deleting b: a = %q, b = %q, b's cookie %v; want a at 3, b deleted", seen["a"], seen["b"], set["b"])
	}
}

// ctxKey is the key of a value the tests add to a request's context.
type ctxKey struct{}

// TestMisuse: a session that is not a dynamostore one, or one loaded
// through another request than c.Request, is an error wrapping
// ErrUnsupported, for which Unavailable is false.
func TestMisuse(t *testing.T) {
	tests := []struct {
		name  string
		store sessions.Store
		// before runs before the handler, after sessions.Sessions.
		before gin.HandlerFunc
	}{
		{"cookie store", cookie.NewStore(hashKey), nil},
		{"request replaced before the load", newApp(t, nil).store, func(c *gin.Context) {
			c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), ctxKey{}, 1))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := gin.New()
			r.Use(sessions.Sessions("s", tt.store))
			if tt.before != nil {
				r.Use(tt.before)
			}
			var errs []error
			r.GET("/", func(c *gin.Context) {
				s := sessions.Default(c)
				errs = append(errs, dynamogin.Load(c, s), dynamogin.Regenerate(c, s), dynamogin.Delete(c, s))
			})
			r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
			if len(errs) != 3 {
				t.Fatalf("handler did not run")
			}
			for i, err := range errs {
				if !errors.Is(err, dynamostore.ErrUnsupported) || dynamostore.Unavailable(err) {
					t.Errorf("call %d returned %v, want an error wrapping ErrUnsupported", i, err)
				}
			}
		})
	}
}

// TestRequestReplacedAfterLoad: a c.Request derived from the one the
// session was loaded with, after the load, is the same session.
func TestRequestReplacedAfterLoad(t *testing.T) {
	a := newApp(t, nil)
	c, id := a.login()
	r := gin.New()
	r.Use(sessions.Sessions("s", a.store), func(c *gin.Context) {
		_ = sessions.Default(c).Get("user") // loads it
		c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), ctxKey{}, 1))
	})
	r.POST("/logout", func(c *gin.Context) {
		if err := dynamogin.Delete(c, sessions.Default(c)); err != nil {
			c.String(http.StatusInternalServerError, "%v", err)
		}
	})
	req := httptest.NewRequest(http.MethodPost, "/logout", nil)
	req.AddCookie(c)
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	if w.Code != http.StatusOK || a.rowExists(id) {
		t.Fatalf("logout: status %d: %s; row exists: %v", w.Code, w.Body, a.rowExists(id))
	}
}

func TestOptions(t *testing.T) {
	tests := []struct {
		name       string
		opts       sessions.Options
		wantMaxAge int
	}{
		{"one hour", sessions.Options{Path: "/app", Domain: "example.com", MaxAge: 3600, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode}, 3600},
		{"browser session", sessions.Options{Path: "/", HttpOnly: true}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newApp(t, func(s *dynamogin.Store) { s.Options(tt.opts) })
			c, _ := a.login()
			if c.Path != tt.opts.Path || c.Domain != tt.opts.Domain || c.Secure != tt.opts.Secure ||
				c.HttpOnly != tt.opts.HttpOnly || c.MaxAge != tt.wantMaxAge {
				t.Fatalf("cookie = %+v, want the options %+v", c, tt.opts)
			}
			if tt.opts.SameSite != 0 && c.SameSite != tt.opts.SameSite {
				t.Fatalf("cookie SameSite = %v, want %v", c.SameSite, tt.opts.SameSite)
			}
		})
	}
}
