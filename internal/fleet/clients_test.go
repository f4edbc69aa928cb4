package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"sync"
	"time"
)

// What the app knows clients by; see app/main.go.
const (
	cookieName   = "fleet"
	headerClient = "X-Fleet-Client"
	headerUser   = "X-Fleet-User"
)

// reply is the app's answer to every route (app/main.go).
type reply struct {
	Proc      int            `json:"proc"`
	Status    int            `json:"status"`
	Loaded    bool           `json:"loaded"`
	Token     string         `json:"token"`
	Nonce     string         `json:"nonce"`
	User      string         `json:"user"`
	Counter   int            `json:"counter"`
	GetErr    string         `json:"get_err"`
	SaveErr   string         `json:"save_err"`
	Err       string         `json:"err"`
	Calls     map[string]int `json:"calls"`
	RCU       float64        `json:"rcu"`
	WCU       float64        `json:"wcu"`
	Attempts  int64          `json:"attempts"`
	Throttled int64          `json:"throttled"`
}

// calls returns the number of DynamoDB calls the request made.
func (r *reply) calls() int {
	n := 0
	for _, c := range r.Calls {
		n += c
	}
	return n
}

// wrote reports whether the request wrote to the table.
func (r *reply) wrote() bool {
	return r.WCU > 0 || r.Calls["PutItem"]+r.Calls["UpdateItem"]+r.Calls["DeleteItem"] > 0
}

// retried reports whether any of the request's DynamoDB calls was retried.
func (r *reply) retried() bool { return r.Attempts > int64(r.calls()) || r.Throttled > 0 }

// Kinds of request, in the order the report lists them.
const (
	kindCreate  = "create"
	kindAnon    = "anonymous read"
	kindRead    = "signed-in read"
	kindWrite   = "write"
	kindSignIn  = "sign-in"
	kindSignOut = "sign-out"
	kindReplay  = "replay"
	kindFinal   = "final read"
)

var kinds = []string{kindCreate, kindAnon, kindRead, kindWrite, kindSignIn, kindSignOut, kindReplay, kindFinal}

// record is one HTTP request a client made and what came back.
type record struct {
	kind       string
	start, end time.Time
	status     int  // 0: no HTTP answer at all
	proxyErr   bool // the proxy's own 502
	ok         bool // rep holds the app's reply
	rep        reply
	// lastWriter is the process that last wrote the session before the
	// request, -1 when unknown (for reads: the row of the cost matrix).
	lastWriter int
}

// tracked is what a client knows of its current session.
type tracked struct {
	live       bool   // a session was acknowledged and not signed out
	nonce      string // its nonce
	acked      int    // the highest counter value acknowledged
	lastWriter int    // process of the last acknowledged write; -1 unknown
	// mayBeGone is set when a sign-in or sign-out was not acknowledged:
	// it may have ended the session without the client knowing.
	mayBeGone bool
}

// client is one browser: its own cookie jar, one request at a time.
type client struct {
	r     *run
	id    int
	token string
	user  string
	jar   *cookiejar.Jar
	hc    *http.Client
	recs  []record
	s     tracked
	dead  []string // cookie values that must never load again
}

func newClient(r *run, id int) *client {
	return &client{r: r, id: id, token: fmt.Sprintf("client-%02d-%s", id, randomHex(6)), user: fmt.Sprintf("user%02d", id)}
}

// cycle runs one scripted visit: create a session, read it, sign in,
// replay the pre-sign-in cookie, read, write and read twice, sign out and
// replay the signed-out cookie. It stops early when a step fails for good
// or stop is closed.
func (c *client) cycle(ctx context.Context, stop <-chan struct{}) {
	jar, _ := cookiejar.New(nil)
	c.jar = jar
	c.hc = &http.Client{Jar: jar, Transport: c.r.transport, Timeout: 15 * time.Second}
	c.s = tracked{lastWriter: -1}
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return ctx.Err() != nil
		}
	}

	rep, ok := c.step(ctx, kindCreate, http.MethodPost, "/visit")
	if !ok {
		return
	}
	c.s = tracked{live: true, nonce: rep.Nonce, acked: rep.Counter, lastWriter: rep.Proc}
	for range 2 {
		if stopped() || !c.read(ctx, kindAnon) {
			return
		}
	}
	if stopped() || !c.signIn(ctx) {
		return
	}
	if stopped() || !c.read(ctx, kindRead) {
		return
	}
	for range 2 {
		if stopped() || !c.incr(ctx) || stopped() || !c.read(ctx, kindRead) {
			return
		}
	}
	if stopped() {
		return
	}
	c.signOut(ctx)
}

// maxAttempts is how often a client tries one step before it gives the
// session up; retryDelay is the wait before the first retry, doubled after
// each.
const (
	maxAttempts = 6
	retryDelay  = 20 * time.Millisecond
)

// step makes one request of the script through the proxy, trying again
// while it is not acknowledged (any answer but 200), and returns the
// acknowledged reply.
func (c *client) step(ctx context.Context, kind, method, path string) (reply, bool) {
	delay := retryDelay
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return reply{}, false
			case <-time.After(delay):
			}
			delay *= 2
		}
		rec := c.send(ctx, kind, method, c.r.proxyURL, path, "")
		if rec.status == http.StatusOK && rec.ok {
			return rec.rep, true
		}
		// Not acknowledged: whatever it did is unknown.
		c.s.lastWriter = -1
		if kind == kindSignIn || kind == kindSignOut {
			c.s.mayBeGone = true
		}
		if rec.status == http.StatusConflict {
			// The session ended under the request.
			if c.s.live && !c.s.mayBeGone {
				c.r.tally.fail(invWrites, "client %d: %s on process %d: session ended under the client: %s", c.id, kind, rec.rep.Proc, rec.rep.Err)
			}
			return reply{}, false
		}
	}
	return reply{}, false
}

// send makes one request to base+path, with the client's jar, or with
// only the given cookie value when cookie is not empty, records it, and
// checks what every answer must satisfy (invariants c and d).
func (c *client) send(ctx context.Context, kind, method string, base *url.URL, path, cookie string) record {
	rec := record{kind: kind, lastWriter: c.s.lastWriter}
	req, err := http.NewRequestWithContext(ctx, method, base.String()+path, nil)
	if err != nil {
		panic(err)
	}
	req.Header.Set(headerClient, c.token)
	req.Header.Set(headerUser, c.user)
	hc := c.hc
	if cookie != "" {
		hc = c.r.bare
		req.AddCookie(&http.Cookie{Name: cookieName, Value: cookie})
	}
	rec.start = time.Now()
	resp, err := hc.Do(req)
	if err == nil {
		var body []byte
		body, err = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		// A body cut short (a process killed while answering) is no answer.
		if err == nil {
			rec.status = resp.StatusCode
			rec.proxyErr = resp.Header.Get(proxyErrorHeader) != ""
			if !rec.proxyErr {
				rec.ok = json.Unmarshal(body, &rec.rep) == nil
			}
		}
	}
	rec.end = time.Now()
	c.checkAnswer(&rec)
	c.recs = append(c.recs, rec)
	return rec
}

// Error classes the README tells apps how to answer (see classify in
// app/main.go): from Get, a fresh session (invalid cookie, decode error)
// or 503 (DynamoDB could not be read); from Save, Regenerate and Delete,
// 503 for a failed load or DynamoDB, 409 for a session that ended or
// changed meanwhile.
var (
	getClasses  = map[string]bool{"": true, "invalid-cookie": true, "decode": true, "throttled": true, "unavailable": true}
	saveClasses = map[string]bool{"": true, "load-failed": true, "throttled": true, "unavailable": true, "gone": true, "conflict": true}
)

// checkAnswer checks invariants c and d on one answer.
func (c *client) checkAnswer(rec *record) {
	if rec.status == 0 || rec.proxyErr {
		return // no answer of the app's: a killed process, or a dead connection
	}
	t := c.r.tally
	rep := &rec.rep
	switch {
	case !rec.ok:
		t.fail(invErrors, "client %d: %s: status %d without the app's reply", c.id, rec.kind, rec.status)
	case rec.status == http.StatusInternalServerError:
		t.fail(invErrors, "client %d: %s on process %d: 500: %s %s", c.id, rec.kind, rep.Proc, rep.SaveErr, rep.Err)
	case rep.Status != rec.status:
		t.fail(invErrors, "client %d: %s on process %d: HTTP %d, reply says %d", c.id, rec.kind, rep.Proc, rec.status, rep.Status)
	case !getClasses[rep.GetErr]:
		t.fail(invErrors, "client %d: %s on process %d: Get error of class %q, which the README does not cover: %s", c.id, rec.kind, rep.Proc, rep.GetErr, rep.Err)
	case !saveClasses[rep.SaveErr]:
		t.fail(invErrors, "client %d: %s on process %d: Save error of class %q, which the README does not cover: %s", c.id, rec.kind, rep.Proc, rep.SaveErr, rep.Err)
	case rec.status != http.StatusOK && rep.GetErr == "" && rep.SaveErr == "":
		t.fail(invErrors, "client %d: %s on process %d: status %d without an error", c.id, rec.kind, rep.Proc, rec.status)
	case rec.status != http.StatusOK && rec.status != http.StatusServiceUnavailable && rec.status != http.StatusConflict:
		t.fail(invErrors, "client %d: %s on process %d: status %d", c.id, rec.kind, rep.Proc, rec.status)
	default:
		t.pass(invErrors)
	}
	// A refused request shows no values; an acknowledged one always does.
	if rec.ok && rep.Loaded && (rec.status == http.StatusOK || rep.Token != "") {
		t.check(invOwn, rep.Token == c.token, "client %d: %s on process %d carried the session of %q", c.id, rec.kind, rep.Proc, rep.Token)
	}
}

// loadedOwn checks an acknowledged answer that should carry the client's
// current session (invariants a and c), and reports whether it did.
func (c *client) loadedOwn(kind string, rep reply) bool {
	t := c.r.tally
	if !rep.Loaded {
		if !c.s.mayBeGone {
			t.fail(invWrites, "client %d: %s on process %d: the session is gone (counter %d acknowledged)", c.id, kind, rep.Proc, c.s.acked)
		}
		c.s.live = false
		return false
	}
	if !t.check(invOwn, rep.Nonce == c.s.nonce, "client %d: %s on process %d carried another session of the client's (nonce %s, want %s)", c.id, kind, rep.Proc, rep.Nonce, c.s.nonce) {
		return false
	}
	return t.check(invWrites, rep.Counter >= c.s.acked, "client %d: %s on process %d: counter %d, below the acknowledged %d", c.id, kind, rep.Proc, rep.Counter, c.s.acked)
}

func (c *client) read(ctx context.Context, kind string) bool {
	rep, ok := c.step(ctx, kind, http.MethodGet, "/read")
	if !ok || !c.loadedOwn(kind, rep) {
		return false
	}
	if rep.wrote() {
		c.s.lastWriter = rep.Proc
	}
	return true
}

func (c *client) incr(ctx context.Context) bool {
	before := c.s.acked
	rep, ok := c.step(ctx, kindWrite, http.MethodPost, "/incr")
	if !ok || !c.loadedOwn(kindWrite, rep) {
		return false
	}
	c.r.tally.check(invWrites, rep.Counter > before, "client %d: write on process %d: counter %d after %d was acknowledged", c.id, rep.Proc, rep.Counter, before)
	c.s.acked, c.s.lastWriter = rep.Counter, rep.Proc
	return true
}

func (c *client) signIn(ctx context.Context) bool {
	pre := c.cookie()
	rep, ok := c.step(ctx, kindSignIn, http.MethodPost, "/signin")
	if !ok {
		return false
	}
	t := c.r.tally
	switch {
	case rep.Loaded && rep.Nonce != c.s.nonce:
		t.fail(invOwn, "client %d: sign-in on process %d signed in another session of the client's", c.id, rep.Proc)
		return false
	case !rep.Loaded && !c.s.mayBeGone:
		t.fail(invWrites, "client %d: sign-in on process %d: the session is gone", c.id, rep.Proc)
	}
	c.s = tracked{live: true, nonce: rep.Nonce, acked: rep.Counter, lastWriter: rep.Proc}
	if pre != "" {
		c.mustNotLoad(ctx, pre, "the pre-sign-in cookie")
	}
	return true
}

func (c *client) signOut(ctx context.Context) bool {
	out := c.cookie()
	rep, ok := c.step(ctx, kindSignOut, http.MethodPost, "/signout")
	if !ok {
		return false
	}
	if !rep.Loaded && !c.s.mayBeGone {
		c.r.tally.fail(invWrites, "client %d: sign-out on process %d: the session was gone already", c.id, rep.Proc)
	}
	c.s.live = false
	if c.cookie() != "" {
		c.r.tally.fail(invDead, "client %d: sign-out on process %d left the cookie in the jar", c.id, rep.Proc)
	}
	if out != "" {
		c.mustNotLoad(ctx, out, "the signed-out cookie")
	}
	return true
}

// mustNotLoad replays a cookie that no longer names a session through the
// proxy (invariant b), and keeps it for the final replay on every process.
func (c *client) mustNotLoad(ctx context.Context, cookie, what string) {
	c.dead = append(c.dead, cookie)
	c.replay(ctx, c.r.proxyURL, kindReplay, cookie, what)
}

func (c *client) replay(ctx context.Context, base *url.URL, kind, cookie, what string) {
	for attempt := 0; attempt < maxAttempts && ctx.Err() == nil; attempt++ {
		rec := c.send(ctx, kind, http.MethodGet, base, "/read", cookie)
		if rec.status == http.StatusOK && rec.ok {
			c.r.tally.check(invDead, !rec.rep.Loaded, "client %d: %s loaded again on process %d", c.id, what, rec.rep.Proc)
			return
		}
	}
}

// final checks, on every process directly, that the client's live session
// loads with every acknowledged write, and that none of its dead cookies
// loads.
func (c *client) final(ctx context.Context, procs []*url.URL, maxDead int) {
	live := c.cookie()
	for _, u := range procs {
		if c.s.live && !c.s.mayBeGone && live != "" {
			rec := c.send(ctx, kindFinal, http.MethodGet, u, "/read", live)
			if rec.status == http.StatusOK && rec.ok {
				c.loadedOwn(kindFinal, rec.rep)
			} else {
				c.r.tally.fail(invWrites, "client %d: final read on %s: status %d %s", c.id, u.Host, rec.status, rec.rep.Err)
			}
		}
		dead := c.dead
		if len(dead) > maxDead {
			dead = dead[len(dead)-maxDead:]
		}
		for _, ck := range dead {
			c.replay(ctx, u, kindFinal, ck, "a dead cookie")
		}
	}
}

// cookie returns the value of the session cookie in the client's jar, ""
// when there is none.
func (c *client) cookie() string {
	if c.jar == nil {
		return ""
	}
	for _, ck := range c.jar.Cookies(c.r.proxyURL) {
		if ck.Name == cookieName {
			return ck.Value
		}
	}
	return ""
}

// Invariants.
const (
	invWrites = "a. no acknowledged write lost"
	invDead   = "b. dead cookies never load"
	invOwn    = "c. no other client's session"
	invErrors = "d. no 500; errors the README covers"
	invCost   = "e. unchanged read: 1 GetItem, 0 WCU"
)

var invariants = []string{invWrites, invDead, invOwn, invErrors, invCost}

// tally counts, per invariant, the checks made and the violations seen,
// with the first few violations described.
type tally struct {
	mu         sync.Mutex
	checked    map[string]int
	violations map[string]int
	examples   map[string][]string
}

func newTally() *tally {
	return &tally{checked: map[string]int{}, violations: map[string]int{}, examples: map[string][]string{}}
}

const maxExamples = 6

func (t *tally) check(inv string, ok bool, format string, args ...any) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.checked[inv]++
	if !ok {
		t.violations[inv]++
		if len(t.examples[inv]) < maxExamples {
			t.examples[inv] = append(t.examples[inv], fmt.Sprintf(format, args...))
		}
	}
	return ok
}

func (t *tally) pass(inv string) { t.check(inv, true, "") }

func (t *tally) fail(inv string, format string, args ...any) { t.check(inv, false, format, args...) }
