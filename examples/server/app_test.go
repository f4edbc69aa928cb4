package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dynamostore/dynamostore/internal/dbtest"
)

// env returns a getenv func over m.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    func(config) bool
		wantErr string
	}{
		{
			name: "defaults",
			want: func(c config) bool {
				return c.addr == defaultAddr && c.table == defaultTable && c.endpoint == "" && !c.createTable &&
					c.reapInterval == defaultReapInterval && c.touchAfter == defaultTouchAfter &&
					c.keyFile == defaultKeyFile && !c.secureCookie
			},
		},
		{
			name: "environment",
			env: map[string]string{
				envAddr: ":9000", envTable: "t1", envRegion: "eu-west-1", envEndpoint: "http://127.0.0.1:8000",
				envCreateTable: "true", envReapInterval: "1m", envTouchAfter: "0s", envKeyFile: "k",
				envSessionKey: "abc", envSecureCookie: "1",
			},
			want: func(c config) bool {
				return c.addr == ":9000" && c.table == "t1" && c.region == "eu-west-1" && c.endpoint == "http://127.0.0.1:8000" &&
					c.createTable && c.reapInterval == time.Minute && c.touchAfter == 0 && c.keyFile == "k" &&
					c.sessionKey == "abc" && c.secureCookie
			},
		},
		{
			name: "flags win over the environment",
			args: []string{"-table", "t2", "-create-table=false", "-reap-interval", "0", "-touch-after", "30s"},
			env:  map[string]string{envTable: "t1", envCreateTable: "true", envReapInterval: "1m"},
			want: func(c config) bool {
				return c.table == "t2" && !c.createTable && c.reapInterval == 0 && c.touchAfter == 30*time.Second
			},
		},
		{name: "bad boolean", env: map[string]string{envCreateTable: "maybe"}, wantErr: envCreateTable},
		{name: "bad duration", env: map[string]string{envTouchAfter: "soon"}, wantErr: envTouchAfter},
		{name: "reaper too fast", args: []string{"-reap-interval", "500ms"}, wantErr: "-reap-interval"},
		{name: "negative touchAfter", args: []string{"-touch-after", "-1s"}, wantErr: "-touch-after"},
		{name: "stray argument", args: []string{"serve"}, wantErr: "unexpected argument"},
		{name: "no key", args: []string{"-key-file", ""}, wantErr: "no cookie signing key"},
		{name: "unknown flag", args: []string{"-colour"}, wantErr: "colour"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadConfig(tt.args, env(tt.env), io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("loadConfig = %v, want an error mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.want(cfg) {
				t.Errorf("loadConfig = %+v", cfg)
			}
		})
	}
}

func TestLoadKey(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	key32 := make([]byte, 32)
	for i := range key32 {
		key32[i] = byte(i)
	}

	t.Run("generated once and kept", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "dir", "key")
		k1, err := loadKey(config{keyFile: file}, log)
		if err != nil {
			t.Fatal(err)
		}
		if len(k1) != hashKeyLen {
			t.Errorf("generated key is %d bytes, want %d", len(k1), hashKeyLen)
		}
		fi, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("key file mode %v, want 0600", perm)
		}
		k2, err := loadKey(config{keyFile: file}, log)
		if err != nil {
			t.Fatal(err)
		}
		if string(k1) != string(k2) {
			t.Error("the second start read a different key")
		}
	})

	tests := []struct {
		name    string
		value   string
		wantErr bool
	}{
		{"hex", hex.EncodeToString(key32), false},
		{"base64", base64.StdEncoding.EncodeToString(key32), false},
		{"base64url unpadded", base64.RawURLEncoding.EncodeToString(key32), false},
		{"surrounding space", "  " + hex.EncodeToString(key32) + "\n", false},
		{"too short", hex.EncodeToString(key32[:16]), true},
		{"not a key", "correct horse battery staple", true},
	}
	for _, tt := range tests {
		t.Run("env "+tt.name, func(t *testing.T) {
			k, err := loadKey(config{sessionKey: tt.value, keyFile: filepath.Join(t.TempDir(), "unused")}, log)
			if tt.wantErr {
				if err == nil {
					t.Fatal("loadKey accepted a bad key")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(k) != string(key32) {
				t.Errorf("loadKey = %x, want %x", k, key32)
			}
		})
		t.Run("file "+tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "key")
			if err := os.WriteFile(file, []byte(tt.value), 0o600); err != nil {
				t.Fatal(err)
			}
			k, err := loadKey(config{keyFile: file}, log)
			if (err != nil) != tt.wantErr {
				t.Fatalf("loadKey error = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && string(k) != string(key32) {
				t.Errorf("loadKey = %x, want %x", k, key32)
			}
		})
	}
}

func TestCheckUserName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"alice", true},
		{"a.b-c_9", true},
		{strings.Repeat("x", maxUserName), true},
		{"", false},
		{strings.Repeat("x", maxUserName+1), false},
		{"<script>", false},
		{"two words", false},
		{"émile", false},
	}
	for _, tt := range tests {
		if msg := checkUserName(tt.name); (msg == "") != tt.ok {
			t.Errorf("checkUserName(%q) = %q, want ok %v", tt.name, msg, tt.ok)
		}
	}
}

// appClient is an HTTP client with a cookie jar on an in-process app.
type appClient struct {
	t      *testing.T
	srv    *httptest.Server
	client *http.Client
}

// newAppServer serves the app on a fresh table through httptest.
func newAppServer(t *testing.T) *httptest.Server {
	t.Helper()
	tb := newTable(t)
	cfg, err := loadConfig([]string{"-endpoint", dbtest.Endpoint(t), "-table", tb.name, "-create-table",
		"-reap-interval", "0", "-key-file", filepath.Join(t.TempDir(), "key")}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	store, err := openStore(t.Context(), cfg, env(nil), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	a, err := newApp(store, log, storeInfo{Table: cfg.table})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.routes())
	t.Cleanup(srv.Close)
	return srv
}

func newAppClient(t *testing.T, srv *httptest.Server) *appClient {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &appClient{t: t, srv: srv, client: &http.Client{Jar: jar}}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// get fetches path and returns the response and its body.
func (c *appClient) get(path string) (*http.Response, string) {
	c.t.Helper()
	return c.do(c.client.Get(c.srv.URL + path))
}

// post posts the form to path, following the redirect.
func (c *appClient) post(path string, form url.Values) (*http.Response, string) {
	c.t.Helper()
	return c.do(c.client.PostForm(c.srv.URL+path, form))
}

func (c *appClient) do(resp *http.Response, err error) (*http.Response, string) {
	c.t.Helper()
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp, string(body)
}

// token returns the form token on the home page (counting a visit).
func (c *appClient) token() string {
	c.t.Helper()
	_, body := c.get("/")
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		c.t.Fatalf("no form token on the page:\n%s", body)
	}
	return m[1]
}

func TestFormsNeedTheSessionToken(t *testing.T) {
	srv := newAppServer(t)
	c := newAppClient(t, srv)
	token := c.token()

	// Another visitor's token, a made-up one, or none: all refused.
	other := newAppClient(t, srv).token()
	for _, bad := range []string{"", "x", other, token + "x"} {
		for _, path := range []string{"/signin", "/signout"} {
			resp, _ := c.post(path, url.Values{"csrf": {bad}, "username": {"mallory"}})
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("POST %s with token %q: status %d, want 403", path, bad, resp.StatusCode)
			}
		}
	}
	if _, body := c.get("/"); strings.Contains(body, "mallory") {
		t.Fatal("a forged form signed the visitor in")
	}

	// The real token works.
	resp, body := c.post("/signin", url.Values{"csrf": {token}, "username": {"alice"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `id="user">alice<`) {
		t.Fatalf("sign-in with the right token: status %d\n%s", resp.StatusCode, body)
	}
	// Sign-in replaced the token: the old one no longer works.
	if resp, _ := c.post("/signout", url.Values{"csrf": {token}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("sign-out with the pre-sign-in token: status %d, want 403", resp.StatusCode)
	}
}

func TestSignInRejectsBadNames(t *testing.T) {
	srv := newAppServer(t)
	c := newAppClient(t, srv)
	resp, body := c.post("/signin", url.Values{"csrf": {c.token()}, "username": {"<b>x</b>"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if !strings.Contains(body, `class="flash"`) || !strings.Contains(body, `id="anonymous"`) {
		t.Errorf("a bad name did not come back as a message on the signed-out page:\n%s", body)
	}
	if strings.Contains(body, "<b>x</b>") {
		t.Error("the page echoes markup unescaped")
	}
}

func TestSessionJSON(t *testing.T) {
	srv := newAppServer(t)
	c := newAppClient(t, srv)

	// No session yet: the JSON view creates none.
	resp, body := c.get("/session.json")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"stored": false`) {
		t.Fatalf("status %d, body %s", resp.StatusCode, body)
	}
	if len(resp.Cookies()) != 0 {
		t.Error("session.json set a cookie for a visitor without a session")
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}

	// With a session: the state, and none of the secrets.
	token := c.token()
	c.post("/signin", url.Values{"csrf": {token}, "username": {"bob"}})
	_, body = c.get("/session.json")
	for _, want := range []string{`"stored": true`, `"signed_in": true`, `"user": "bob"`, `"visits": 2`, `"pending_flashes": 0`} {
		if !strings.Contains(body, want) {
			t.Errorf("session.json lacks %s:\n%s", want, body)
		}
	}
	u, _ := url.Parse(srv.URL)
	for _, ck := range c.client.Jar.Cookies(u) {
		if strings.Contains(body, ck.Value) {
			t.Error("session.json shows the cookie")
		}
	}
	newToken := csrfField.FindStringSubmatch(func() string { _, b := c.get("/"); return b }())[1]
	if strings.Contains(body, newToken) {
		t.Error("session.json shows the form token")
	}
}

func TestHeaders(t *testing.T) {
	srv := newAppServer(t)
	c := newAppClient(t, srv)
	resp, _ := c.get("/")
	for name, want := range map[string]string{
		"X-Content-Type-Options": "nosniff",
		"Cache-Control":          "no-store",
		"Referrer-Policy":        "same-origin",
	} {
		if got := resp.Header.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") ||
		!strings.Contains(csp, "form-action 'self'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	setCookie := resp.Header.Get("Set-Cookie")
	for _, want := range []string{sessionName + "=", "HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="} {
		if !strings.Contains(setCookie, want) {
			t.Errorf("Set-Cookie %q lacks %s", setCookie, want)
		}
	}
	if resp, _ := c.get("/nowhere"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown path: status %d", resp.StatusCode)
	}
	if resp, _ := c.do(c.client.Post(srv.URL+"/", "text/plain", nil)); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: status %d, want 405", resp.StatusCode)
	}
}

func TestStoreUnavailable(t *testing.T) {
	cfg := config{
		endpoint: "http://127.0.0.1:1", table: "t", keyFile: filepath.Join(t.TempDir(), "key"),
		createTable: true,
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err := openStore(ctx, cfg, env(nil), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		t.Fatal("openStore with no DynamoDB answered nil")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("openStore hung until the deadline: %v", err)
	}
}

// TestRequestsHaveADeadline: every request's context, which the Store's
// DynamoDB calls use, ends within requestTimeout.
func TestRequestsHaveADeadline(t *testing.T) {
	var deadline time.Time
	var ok bool
	h := withDeadline(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		deadline, ok = r.Context().Deadline()
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if end := time.Now().Add(requestTimeout); !ok || deadline.After(end) {
		t.Fatalf("request deadline %v (set %v); want within %v", time.Until(deadline), ok, requestTimeout)
	}
}
