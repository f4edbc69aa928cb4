package dynamogin_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
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
	"github.com/gin-gonic/gin"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	os.Exit(dbtest.Main(m))
}

var hashKey = []byte("0123456789abcdef0123456789abcdef")

// app is a gin engine with a session "s" in a Store on a fresh table.
type app struct {
	t      *testing.T
	engine *gin.Engine
	client *dynamodb.Client
	table  string
	ids    chan string // session IDs the handlers saw, for checking rows
}

func newApp(t *testing.T, configure func(*dynamogin.Store)) *app {
	t.Helper()
	a := &app{t: t, client: dbtest.Client(t), ids: make(chan string, 16)}
	a.table = dbtest.NewTable(t, a.client)
	store, err := dynamogin.NewStore(t.Context(), a.table,
		dynamostore.WithClient(a.client),
		dynamostore.WithKeyPairs(hashKey),
		dynamostore.WithReaper(dynamostore.ReaperOptions{Interval: -1}))
	if err != nil {
		t.Fatalf("NewStore: %v", err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if configure != nil {
		configure(store)
	}
	r := gin.New()
	r.Use(sessions.Sessions("s", store))
	r.POST("/login", func(c *gin.Context) {
		s := sessions.Default(c)
		s.Set("user", c.Query("user"))
		if err := s.Save(); err != nil {
			c.String(http.StatusInternalServerError, "save: %v", err)
			return
		}
		a.ids <- s.ID()
		c.Status(http.StatusNoContent)
	})
	r.GET("/whoami", func(c *gin.Context) {
		user, _ := sessions.Default(c).Get("user").(string)
		c.String(http.StatusOK, "%s", user)
	})
	r.POST("/logout", func(c *gin.Context) {
		s := sessions.Default(c)
		a.ids <- s.ID()
		s.Clear()
		s.Options(sessions.Options{Path: "/", MaxAge: -1})
		if err := s.Save(); err != nil {
			c.String(http.StatusInternalServerError, "save: %v", err)
			return
		}
		c.Status(http.StatusNoContent)
	})
	a.engine = r
	return a
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

// rowExists reports whether the table holds the row of session id.
func (a *app) rowExists(id string) bool {
	a.t.Helper()
	out, err := a.client.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName:      aws.String(a.table),
		Key:            map[string]types.AttributeValue{tableschema.KeyAttr: &types.AttributeValueMemberS{Value: tableschema.StorageKey(id)}},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		a.t.Fatalf("GetItem: %v", err)
	}
	return out.Item != nil
}

func sessionCookie(t *testing.T, resp *http.Response) *http.Cookie {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name == "s" {
			return c
		}
	}
	t.Fatalf("response set no session cookie; headers %v", resp.Header)
	return nil
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return string(b)
}

func TestLoginWhoamiLogout(t *testing.T) {
	a := newApp(t, nil)

	resp := a.do(http.MethodPost, "/login?user=ada")
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("login: status %d: %s", resp.StatusCode, body(t, resp))
	}
	cookie := sessionCookie(t, resp)
	id := <-a.ids
	if id == "" || !a.rowExists(id) {
		t.Fatalf("after login, no row for the session")
	}
	if strings.Contains(cookie.Value, id) {
		t.Fatalf("cookie carries the raw session ID")
	}

	if got := body(t, a.do(http.MethodGet, "/whoami", cookie)); got != "ada" {
		t.Fatalf("whoami = %q, want ada", got)
	}
	if got := body(t, a.do(http.MethodGet, "/whoami")); got != "" {
		t.Fatalf("whoami without cookie = %q, want empty", got)
	}

	resp = a.do(http.MethodPost, "/logout", cookie)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: status %d: %s", resp.StatusCode, body(t, resp))
	}
	if c := sessionCookie(t, resp); c.MaxAge >= 0 {
		t.Fatalf("logout cookie MaxAge = %d, want it expired", c.MaxAge)
	}
	if <-a.ids != id {
		t.Fatalf("logout saw another session than login")
	}
	if a.rowExists(id) {
		t.Fatalf("row still exists after logout")
	}
	if got := body(t, a.do(http.MethodGet, "/whoami", cookie)); got != "" {
		t.Fatalf("whoami with the old cookie after logout = %q, want empty", got)
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
			resp := a.do(http.MethodPost, "/login?user=ada")
			if resp.StatusCode != http.StatusNoContent {
				t.Fatalf("login: status %d: %s", resp.StatusCode, body(t, resp))
			}
			<-a.ids
			c := sessionCookie(t, resp)
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
