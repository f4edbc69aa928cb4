// Command app is the small web app the fleet test runs several copies of,
// each in its own process, against one shared session table. It uses only
// the store's public API and answers every store error the way README.md
// tells apps to.
//
// It listens on a loopback address, prints
//
//	listening http://127.0.0.1:PORT
//
// on standard output once it accepts connections, and exits when its
// standard input reaches EOF (so that it never outlives the test that
// started it), or on SIGINT or SIGTERM.
//
// Routes (every answer is a JSON reply, see the reply type):
//
//	POST /visit    load the session; create it if there is none
//	GET  /read     load and save unchanged; never creates one
//	POST /signin   set the user, SetOwner, Regenerate
//	POST /incr     add one to the session's counter and save
//	POST /signout  store.Delete
//
// and, for the test only, refused when they come through a proxy:
//
//	POST /admin/faults?permille=N  answer N per thousand DynamoDB calls with a throttling error
//	GET  /admin/stats              throttling errors injected so far, and the store's Stats
//
// The session secret comes from the environment (FLEET_HASH_KEY, hex), so
// every process of a fleet verifies the others' cookies.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/gob"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	"github.com/gorilla/sessions"

	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/internal/ddbmeter"
)

// cookieName is the name of the session and of its cookie.
const cookieName = "fleet"

// Keys of the session's Values.
const (
	keyToken   = "token"   // string: the client's token, set when the session is created
	keyNonce   = "nonce"   // string: random, set when the session is created
	keyUser    = "user"    // string: set at sign-in
	keyCounter = "counter" // int: what /incr counts
)

// Request headers the test's clients send.
const (
	headerClient = "X-Fleet-Client" // the client's token, stored in a session it creates
	headerUser   = "X-Fleet-User"   // the user name /signin stores
)

// reply is the answer to every route.
type reply struct {
	Proc   int `json:"proc"`   // index of the process that answered
	Status int `json:"status"` // the HTTP status, repeated
	// Loaded is true when the request's cookie loaded a stored session.
	Loaded bool `json:"loaded"`
	// Token, Nonce, User and Counter are the session's values after the
	// request (before it, for /signout).
	Token   string `json:"token,omitempty"`
	Nonce   string `json:"nonce,omitempty"`
	User    string `json:"user,omitempty"`
	Counter int    `json:"counter"`
	// GetErr is the class of the error store.Get returned, SaveErr that of
	// the error Save, Regenerate or Delete returned (see classify); Err
	// is the failing error's text.
	GetErr  string `json:"get_err,omitempty"`
	SaveErr string `json:"save_err,omitempty"`
	Err     string `json:"err,omitempty"`
	// What the request cost in DynamoDB: calls by operation (retries not
	// counted), capacity units, HTTP attempts (retries counted) and how
	// many of them the fault transport answered with a throttling error.
	Calls     map[string]int `json:"calls"`
	RCU       float64        `json:"rcu"`
	WCU       float64        `json:"wcu"`
	Attempts  int64          `json:"attempts"`
	Throttled int64          `json:"throttled"`
}

func main() {
	proc := flag.Int("proc", 0, "index of this process in the fleet, reported in every reply")
	history := flag.String("history", "plain", "gob history at start-up: plain, struct-map or map-struct")
	addr := flag.String("addr", "127.0.0.1:0", "loopback address to listen on")
	endpoint := flag.String("endpoint", "", "DynamoDB endpoint (required)")
	table := flag.String("table", "", "session table (required)")
	touchAfter := flag.Duration("touch-after", 10*time.Minute, "the store's touchAfter")
	backoff := flag.Duration("retry-backoff", 20*time.Millisecond, "the SDK retryer's largest backoff")
	flag.Parse()
	if err := run(*proc, *history, *addr, *endpoint, *table, *touchAfter, *backoff); err != nil {
		fmt.Fprintln(os.Stderr, "app:", err)
		os.Exit(1)
	}
}

func run(proc int, history, addr, endpoint, table string, touchAfter, backoff time.Duration) error {
	if endpoint == "" || table == "" {
		return errors.New("-endpoint and -table are required")
	}
	if backoff <= 0 {
		return fmt.Errorf("-retry-backoff %v must be positive", backoff)
	}
	key, err := hex.DecodeString(os.Getenv("FLEET_HASH_KEY"))
	if err != nil || len(key) < 32 {
		return errors.New("FLEET_HASH_KEY must hold at least 32 bytes in hex")
	}
	if err := gobHistory(history); err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %q is not a loopback address", addr)
	}

	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = 256
	faults := &faultTransport{base: base}
	cfg := aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", ""),
		HTTPClient:  &http.Client{Transport: faults},
		APIOptions:  []func(*middleware.Stack) error{ddbmeter.ContextMiddleware},
		// The SDK's standard retryer, its delay between retries capped
		// at -retry-backoff.
		Retryer: func() aws.Retryer {
			return retry.AddWithMaxBackoffDelay(retry.NewStandard(), backoff)
		},
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	store, err := dynamostore.NewStore(ctx, table,
		dynamostore.WithAWSConfig(cfg),
		dynamostore.WithEndpoint(endpoint),
		dynamostore.WithKeyPairs(key),
		dynamostore.WithTTL(time.Hour),
		dynamostore.WithTouchAfter(touchAfter),
		dynamostore.WithReaper(dynamostore.ReaperOptions{Interval: -1}),
	)
	if err != nil {
		return err
	}
	defer store.Close()

	a := &app{proc: proc, store: store, faults: faults}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: a.routes(), ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Printf("listening http://%s\n", ln.Addr())

	// Exit when the parent closes our standard input, or dies.
	stdinClosed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stdinClosed)
	}()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	case <-stdinClosed:
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}

// Types that some processes register and encode before serving, as apps
// do for their own session values, caches or RPCs: encoding/gob then
// numbers its types in another order in each process.
type prefs struct {
	Theme string
	Langs []string
}

// gobHistory registers and encodes types with encoding/gob as the named
// history says.
func gobHistory(history string) error {
	var buf bytes.Buffer
	switch history {
	case "plain":
		return nil
	case "struct-map":
		gob.Register(prefs{})
		gob.Register(map[string]int{})
		return gob.NewEncoder(&buf).Encode(map[string]any{
			"prefs":  prefs{Theme: "dark", Langs: []string{"en"}},
			"counts": map[string]int{"a": 1},
		})
	case "map-struct":
		gob.Register(map[string]int{})
		gob.Register(prefs{})
		if err := gob.NewEncoder(&buf).Encode(map[string]int{"a": 1}); err != nil {
			return err
		}
		return gob.NewEncoder(&buf).Encode(prefs{Theme: "light"})
	}
	return fmt.Errorf("unknown -history %q", history)
}

type app struct {
	proc   int
	store  *dynamostore.Store
	faults *faultTransport
}

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /visit", a.route(a.visit))
	mux.Handle("GET /read", a.route(a.read))
	mux.Handle("POST /signin", a.route(a.signin))
	mux.Handle("POST /incr", a.route(a.incr))
	mux.Handle("POST /signout", a.route(a.signout))
	mux.Handle("POST /admin/faults", adminOnly(a.setFaults))
	mux.Handle("GET /admin/stats", adminOnly(a.stats))
	return mux
}

// call is one request to a route.
type call struct {
	a   *app
	w   http.ResponseWriter
	r   *http.Request
	rep reply
}

// usage is what one request's DynamoDB calls cost, counted by the meter
// (calls and capacity) and the fault transport (attempts, throttles).
type usage struct {
	meter     ddbmeter.Meter
	attempts  atomic.Int64
	throttled atomic.Int64
}

type usageKey struct{}

// route runs h with a request whose context counts its DynamoDB calls, and
// writes the reply. A panic is answered with 500, the one status the app
// never gives otherwise.
func (a *app) route(h func(*call)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := &usage{}
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		ctx = ddbmeter.NewContext(context.WithValue(ctx, usageKey{}, u), &u.meter)
		c := &call{a: a, w: w, r: r.WithContext(ctx), rep: reply{Proc: a.proc, Status: http.StatusOK}}
		defer func() {
			if p := recover(); p != nil {
				w.Header().Del("Set-Cookie")
				c.rep.Status = http.StatusInternalServerError
				c.rep.SaveErr = "panic"
				c.rep.Err = fmt.Sprint(p)
			}
			m := u.meter.Take()
			c.rep.Calls, c.rep.RCU, c.rep.WCU = m.Calls, m.RCU, m.WCU
			c.rep.Attempts, c.rep.Throttled = u.attempts.Load(), u.throttled.Load()
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(c.rep.Status)
			_ = json.NewEncoder(w).Encode(&c.rep)
		}()
		h(c)
	})
}

// load gets the session as README.md says: a bad cookie or a row that
// cannot be decoded leaves a fresh session to carry on with; any other
// error means DynamoDB could not be read, answered 503. It returns nil
// then.
func (c *call) load() *sessions.Session {
	sess, err := c.a.store.Get(c.r, cookieName)
	if err != nil {
		c.rep.GetErr = classify(err)
		c.rep.Err = err.Error()
		if !errors.Is(err, dynamostore.ErrInvalidCookie) && !errors.Is(err, dynamostore.ErrDecode) {
			c.rep.Status = http.StatusServiceUnavailable
			return nil
		}
	}
	c.rep.Loaded = !sess.IsNew
	return sess
}

// saved records the outcome of a Save, Regenerate or Delete and reports
// whether it succeeded. A failure sets no cookie: the client keeps the one
// it came with, which still names what is stored.
func (c *call) saved(err error) bool {
	if err == nil {
		return true
	}
	c.w.Header().Del("Set-Cookie")
	c.rep.SaveErr = classify(err)
	c.rep.Err = err.Error()
	switch c.rep.SaveErr {
	case "gone", "conflict":
		c.rep.Status = http.StatusConflict
	default:
		c.rep.Status = http.StatusServiceUnavailable
	}
	return false
}

// show copies the session's values into the reply.
func (c *call) show(sess *sessions.Session) {
	c.rep.Token, _ = sess.Values[keyToken].(string)
	c.rep.Nonce, _ = sess.Values[keyNonce].(string)
	c.rep.User, _ = sess.Values[keyUser].(string)
	c.rep.Counter, _ = sess.Values[keyCounter].(int)
}

// start fills a new session's values.
func (c *call) start(sess *sessions.Session) {
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	sess.Values[keyToken] = c.r.Header.Get(headerClient)
	sess.Values[keyNonce] = hex.EncodeToString(nonce[:])
	sess.Values[keyCounter] = 0
}

func (a *app) visit(c *call) {
	sess := c.load()
	if sess == nil {
		return
	}
	if sess.IsNew {
		c.start(sess)
	}
	if c.saved(sess.Save(c.r, c.w)) {
		c.show(sess)
	}
}

func (a *app) read(c *call) {
	sess := c.load()
	if sess == nil || sess.IsNew {
		return
	}
	if c.saved(sess.Save(c.r, c.w)) {
		c.show(sess)
	}
}

func (a *app) signin(c *call) {
	sess := c.load()
	if sess == nil {
		return
	}
	if sess.IsNew {
		c.start(sess)
	}
	user := c.r.Header.Get(headerUser)
	sess.Values[keyUser] = user
	a.store.SetOwner(c.r, sess, user)
	if c.saved(a.store.Regenerate(c.r, c.w, sess)) {
		c.show(sess)
	}
}

func (a *app) incr(c *call) {
	sess := c.load()
	if sess == nil || sess.IsNew {
		return
	}
	n, _ := sess.Values[keyCounter].(int)
	sess.Values[keyCounter] = n + 1
	if c.saved(sess.Save(c.r, c.w)) {
		c.show(sess)
	}
}

func (a *app) signout(c *call) {
	sess := c.load()
	if sess == nil {
		return
	}
	c.show(sess)
	c.saved(a.store.Delete(c.r, c.w, sess))
}

// classify names the class of a store error, after the answers README.md
// and errors.go give: "invalid-cookie" and "decode" (carry on with the
// fresh session), "load-failed", "throttled" and "unavailable" (DynamoDB
// could not be reached or refused: 503), "gone" and "conflict" (the
// session ended or changed meanwhile), "refused" (too large or not
// encodable) and "other" for anything else, which the README does not
// cover.
func classify(err error) string {
	switch {
	case errors.Is(err, dynamostore.ErrInvalidCookie):
		return "invalid-cookie"
	case errors.Is(err, dynamostore.ErrDecode):
		return "decode"
	case errors.Is(err, dynamostore.ErrLoadFailed):
		return "load-failed"
	case errors.Is(err, dynamostore.ErrSessionGone):
		return "gone"
	case errors.Is(err, dynamostore.ErrConflict):
		return "conflict"
	case errors.Is(err, dynamostore.ErrTooLarge), errors.Is(err, dynamostore.ErrEncode):
		return "refused"
	}
	var op *smithy.OperationError
	if !errors.As(err, &op) {
		return "other"
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded":
			return "throttled"
		}
	}
	return "unavailable"
}

// adminOnly serves h only to requests made directly to this process from
// the loopback interface, never through a proxy.
func adminOnly(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		ip := net.ParseIP(host)
		if err != nil || ip == nil || !ip.IsLoopback() || r.Header.Get("X-Forwarded-For") != "" {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		h(w, r)
	})
}

func (a *app) setFaults(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.URL.Query().Get("permille"))
	if err != nil || n < 0 || n > 1000 {
		http.Error(w, "permille must be an integer from 0 to 1000", http.StatusBadRequest)
		return
	}
	a.faults.permille.Store(int64(n))
	w.WriteHeader(http.StatusNoContent)
}

func (a *app) stats(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(struct {
		Injected int64             `json:"injected"`
		Store    dynamostore.Stats `json:"store"`
	}{a.faults.injected.Load(), a.store.Stats()})
}

// faultTransport sends DynamoDB requests on, except that while permille is
// above zero it answers that share of them itself with a throttling error
// as DynamoDB sends it. It counts every attempt, and every throttle, into
// the request's usage.
type faultTransport struct {
	base     http.RoundTripper
	permille atomic.Int64
	injected atomic.Int64
}

func (f *faultTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	u, _ := req.Context().Value(usageKey{}).(*usage)
	if u != nil {
		u.attempts.Add(1)
	}
	p := f.permille.Load()
	if p == 0 || mrand.Int64N(1000) >= p {
		return f.base.RoundTrip(req)
	}
	if req.Body != nil {
		_ = req.Body.Close()
	}
	n := f.injected.Add(1)
	if u != nil {
		u.throttled.Add(1)
	}
	if n%2 == 0 {
		return throttleResponse(req, "ProvisionedThroughputExceededException",
			"The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API."), nil
	}
	return throttleResponse(req, "ThrottlingException", "Rate of requests exceeds the allowed throughput."), nil
}

// throttleResponse is DynamoDB's answer to a throttled request in the
// awsJson1.0 protocol: status 400, the error code in x-amzn-ErrorType and
// in the body's __type.
func throttleResponse(req *http.Request, code, msg string) *http.Response {
	body, _ := json.Marshal(map[string]string{
		"__type":  "com.amazonaws.dynamodb.v20120810#" + code,
		"message": msg,
	})
	var id [26]byte
	_, _ = rand.Read(id[:])
	h := http.Header{}
	h.Set("Content-Type", "application/x-amz-json-1.0")
	h.Set("X-Amzn-Errortype", code)
	h.Set("X-Amzn-Requestid", hex.EncodeToString(id[:])[:52])
	return &http.Response{
		Status:        "400 Bad Request",
		StatusCode:    http.StatusBadRequest,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}
