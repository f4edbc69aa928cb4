package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/gorilla/securecookie"

	"github.com/dynamostore/dynamostore/internal/dbtest"
)

var updateScreenshot = flag.Bool("update-screenshot", false,
	"also write the signed-in screenshot to docs/example-signed-in.png")

// chromiumEnv names a Chromium or Chrome binary to use instead of the
// one found in PATH.
const chromiumEnv = "CHROMIUM_PATH"

// TestBrowser drives the example in headless Chromium as a person would:
// visits, sign-in, flash messages, a second browser, a server restart and
// sign-out, checking the session table directly along the way. It fails,
// never skips, when no browser can be started.
func TestBrowser(t *testing.T) {
	tb := newTable(t)
	keyFile := filepath.Join(t.TempDir(), "session-key")
	srv := startServer(t,
		"-addr", "127.0.0.1:0",
		"-endpoint", dbtest.Endpoint(t),
		"-table", tb.name,
		"-create-table",
		"-key-file", keyFile,
		"-reap-interval", "0",
	)
	key, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatalf("the server did not write its key file: %v", err)
	}
	hashKey, err := decodeKey(string(key))
	if err != nil {
		t.Fatal(err)
	}
	b := &browserTab{t: t, ctx: newBrowser(t), srv: srv, hashKey: hashKey}

	// A first visit starts a session: one row, counter at 1, not signed in.
	b.open("")
	b.wantText("#visits", "1")
	b.wantVisible("#anonymous")
	first := b.sessionID()
	tb.requireRow(first, true, "after the first visit")

	// The counter goes up on every reload, in the same session.
	for _, want := range []string{"2", "3"} {
		b.do(chromedp.Reload())
		b.wantText("#visits", want)
	}
	if id := b.sessionID(); id != first {
		t.Fatal("the session ID changed on a reload")
	}

	// The cookie is HttpOnly, SameSite Lax, scoped to the site, and signed
	// with the server's key: scripts cannot read it, and another key cannot
	// verify it.
	c := b.sessionCookie()
	if !c.HTTPOnly || c.SameSite != network.CookieSameSiteLax || c.Path != "/" || c.Session {
		t.Errorf("cookie: HttpOnly %v, SameSite %q, Path %q, session-only %v; want HttpOnly, Lax, /, persistent",
			c.HTTPOnly, c.SameSite, c.Path, c.Session)
	}
	if got := b.eval(`document.cookie`); got != "" {
		t.Errorf("document.cookie = %q, want the session cookie hidden from scripts", got)
	}
	if strings.Contains(c.Value, first) {
		t.Error("the cookie shows the session ID in the clear")
	}
	var raw []byte
	other := securecookie.New(securecookie.GenerateRandomKey(32), nil).SetSerializer(securecookie.NopEncoder{})
	if err := other.Decode(sessionName, c.Value, &raw); err == nil {
		t.Error("the cookie verifies under a key that is not the server's")
	}

	// Sign in: the session keeps its counter but gets a new ID, and the
	// row of the old ID is gone.
	b.do(chromedp.SendKeys(chromedp.ID("username"), "alice"))
	b.submit("#signin")
	b.wantText("#user", "alice")
	b.wantText("#visits", "4")
	b.wantFlash("Signed in as alice.")
	signedIn := b.sessionID()
	if signedIn == first {
		t.Fatal("the session ID did not change at sign-in")
	}
	tb.requireRow(first, false, "the pre-sign-in session after sign-in")
	tb.requireRow(signedIn, true, "the signed-in session")
	b.screenshot("example-signed-in.png")

	// The flash message shows once.
	b.do(chromedp.Reload())
	b.wantText("#user", "alice")
	b.wantText("#visits", "5")
	b.wantFlash()

	// The JSON view shows the state, and no secret.
	b.open("session.json")
	body := b.eval(`document.body.innerText`)
	var st sessionState
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("session.json: %v\n%s", err, body)
	}
	if !st.Stored || !st.SignedIn || st.User != "alice" || st.Visits != 5 || st.Created == nil || st.Table != tb.name {
		t.Errorf("session.json = %+v, want alice's stored session with 5 visits", st)
	}
	for _, secret := range []string{signedIn, c.Value, b.sessionCookie().Value} {
		if strings.Contains(body, secret) {
			t.Errorf("session.json shows the session ID or cookie:\n%s", body)
		}
	}

	// A second browser context (another person) has a session of its own.
	b2 := &browserTab{t: t, srv: srv, hashKey: hashKey}
	var cancel context.CancelFunc
	b2.ctx, cancel = chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	defer cancel()
	if err := chromedp.Do(b2.ctx); err != nil {
		t.Fatalf("opening a second browser context: %v", err)
	}
	b2.open("")
	b2.wantText("#visits", "1")
	b2.wantVisible("#anonymous")
	second := b2.sessionID()
	if second == signedIn {
		t.Fatal("the second browser got the first one's session")
	}
	tb.requireRow(second, true, "the second browser's session")

	// A tampered cookie is refused: the server starts a new session.
	forged := b2.sessionCookie()
	b2.setCookie(tamper(forged.Value))
	b2.do(chromedp.Reload())
	b2.wantText("#visits", "1")
	if id := b2.sessionID(); id == second {
		t.Error("a tampered cookie still loaded its session")
	}

	// Restart the server: a new Store on the same table with the same key.
	// The signed-in session is still there.
	srv.restart()
	b.open("")
	b.wantText("#user", "alice")
	b.wantText("#visits", "6")
	if id := b.sessionID(); id != signedIn {
		t.Error("the session ID changed across a server restart")
	}

	// Sign out: the row is deleted; a fresh session carries the message,
	// once.
	b.submit("#signout")
	b.wantVisible("#anonymous")
	b.wantFlash("Signed out.")
	b.wantText("#visits", "1")
	tb.requireRow(signedIn, false, "the signed-in session after sign-out")
	after := b.sessionID()
	if after == signedIn {
		t.Fatal("the session ID survived sign-out")
	}
	tb.requireRow(after, true, "the session after sign-out")
	b.do(chromedp.Reload())
	b.wantFlash()

	// Left in the table: the second browser's new session (after the
	// forged cookie), its first one, and the first browser's current one.
	if n := tb.count(); n != 3 {
		t.Errorf("the table holds %d rows at the end, want 3", n)
	}
}

// tamper changes one character in the middle of a cookie value.
func tamper(v string) string {
	b := []byte(v)
	i := len(b) / 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

// chromiumPath finds the browser: $CHROMIUM_PATH, else Debian's chromium
// (what scripts/install-chromium installs), else a Chrome in PATH.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(chromiumEnv); p != "" {
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("no Chromium found: run scripts/install-chromium (Debian: apt-get install chromium) or set %s", chromiumEnv)
	return ""
}

// newBrowser starts headless Chromium with a fresh profile and returns
// the context of its first tab. The browser is stopped when the test
// ends.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath(t)
	output := new(lockedBuffer)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(900, 760),
		chromedp.CombinedOutput(output),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(cancel)
	// The first action starts the browser, which lives as long as the
	// context of that action: ctx, not one with a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium (%s): %v\n%s", path, err, output.String())
	}
	return ctx
}

// lockedBuffer is a bytes.Buffer that the browser's output goroutine and
// the test may share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// browserTab is one browser tab on the example server, with the test's
// checks.
type browserTab struct {
	t       *testing.T
	ctx     context.Context
	srv     *testServer
	hashKey []byte
}

// stepTimeout bounds every browser step, so a hung browser fails the test
// instead of hanging it.
const stepTimeout = 30 * time.Second

func (b *browserTab) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

// open loads path on the server and waits for the page.
func (b *browserTab) open(path string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.srv.url + path))
}

// submit clicks a form's button and waits for the page that answers.
func (b *browserTab) submit(button string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(button), chromedp.NodeVisible))
	if err != nil {
		b.t.Fatalf("clicking %s: %v", button, err)
	}
	if resp.Status != 200 {
		b.t.Fatalf("clicking %s: status %d", button, resp.Status)
	}
}

func (b *browserTab) eval(expr string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

func (b *browserTab) wantText(sel, want string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	got, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		b.t.Fatalf("reading %s: %v", sel, err)
	}
	if got = strings.TrimSpace(got); got != want {
		b.t.Fatalf("%s shows %q, want %q", sel, got, want)
	}
}

func (b *browserTab) wantVisible(sel string) {
	b.t.Helper()
	b.do(chromedp.WaitVisible(chromedp.CSS(sel)))
}

// wantFlash checks the page's flash messages: each of want, in order, and
// nothing else. With no argument, there must be none.
func (b *browserTab) wantFlash(want ...string) {
	b.t.Helper()
	got := b.eval(`Array.from(document.querySelectorAll(".flash"), e => e.innerText.trim()).join("\n")`)
	var msgs []string
	if got != "" {
		msgs = strings.Split(got, "\n")
	}
	if len(msgs) != len(want) {
		b.t.Fatalf("flash messages %q, want %d starting %q", msgs, len(want), want)
	}
	for i := range want {
		if !strings.HasPrefix(msgs[i], want[i]) {
			b.t.Fatalf("flash message %q, want one starting %q", msgs[i], want[i])
		}
	}
}

// sessionCookie returns the browser's session cookie for the server.
func (b *browserTab) sessionCookie() *network.Cookie {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{b.srv.url}})
	if err != nil {
		b.t.Fatalf("reading cookies: %v", err)
	}
	var found *network.Cookie
	for _, c := range res.Cookies {
		if c.Name == sessionName {
			if found != nil {
				b.t.Fatalf("two %s cookies", sessionName)
			}
			found = c
		}
	}
	if found == nil {
		b.t.Fatalf("no %s cookie", sessionName)
	}
	return found
}

// sessionID verifies the session cookie with the server's key, as the
// Store does, and returns the session ID it carries.
func (b *browserTab) sessionID() string {
	b.t.Helper()
	c := b.sessionCookie()
	codec := securecookie.New(b.hashKey, nil).SetSerializer(securecookie.NopEncoder{})
	var raw []byte
	if err := codec.Decode(sessionName, c.Value, &raw); err != nil {
		b.t.Fatalf("the session cookie does not verify with the server's key: %v", err)
	}
	return string(raw)
}

// setCookie replaces the session cookie's value, as a user editing cookies
// would.
func (b *browserTab) setCookie(value string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	httpOnly := true
	_, err := chromedp.Call(ctx, network.SetCookie, network.SetCookieParams{
		Name: sessionName, Value: value, URL: b.srv.url, HTTPOnly: &httpOnly,
		SameSite: network.CookieSameSiteLax,
	})
	if err != nil {
		b.t.Fatalf("setting the cookie: %v", err)
	}
}

// screenshot saves the page to the artifacts folder at the root of the
// repository and, with -update-screenshot, to docs/ for the README.
func (b *browserTab) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	root := repoRoot(b.t)
	dirs := []string{filepath.Join(root, "artifacts")}
	if *updateScreenshot {
		dirs = append(dirs, filepath.Join(root, "docs"))
	}
	for _, dir := range dirs {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, png, 0o644); err != nil {
			b.t.Fatal(err)
		}
		b.t.Logf("screenshot: %s", path)
	}
}

// repoRoot returns the root of the repository: two levels up from this
// package, where the core module's go.mod is.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !strings.Contains(string(data), "module github.com/dynamostore/dynamostore\n") {
		t.Fatalf("%s is not the repository root (go.mod: %v)", root, err)
	}
	return root
}
