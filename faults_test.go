package dynamostore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/dynamostore/dynamostore/internal/dbtest"
	"github.com/gorilla/sessions"
)

// fault is one way a request to DynamoDB goes wrong on its way there or
// back.
type fault int

const (
	noFault fault = iota
	// faultPTEE answers 400 ProvisionedThroughputExceededException
	// without reaching the server.
	faultPTEE
	// faultThrottling answers 400 ThrottlingException.
	faultThrottling
	// fault500 answers 500 InternalServerError.
	fault500
	// fault503 answers 503 ServiceUnavailable.
	fault503
	// faultResetBefore resets the connection before the request reaches
	// the server.
	faultResetBefore
	// faultResetAfter lets the server handle the request, then resets
	// the connection before the answer arrives.
	faultResetAfter
	// faultSlowBefore holds the request until its context ends; it never
	// reaches the server.
	faultSlowBefore
	// faultSlowAfter lets the server handle the request and holds the
	// answer until the request's context ends.
	faultSlowAfter
	// faultTruncated lets the server handle the request and cuts the
	// answer's body in half.
	faultTruncated
)

var faultNames = map[fault]string{
	faultPTEE:        "ProvisionedThroughputExceeded",
	faultThrottling:  "ThrottlingException",
	fault500:         "500",
	fault503:         "503",
	faultResetBefore: "reset before server",
	faultResetAfter:  "reset after server",
	faultSlowBefore:  "slow before server",
	faultSlowAfter:   "slow after server",
	faultTruncated:   "truncated body",
}

func (f fault) String() string { return faultNames[f] }

// reachesServer reports whether a request under the fault is handled by
// DynamoDB, so that a write may have happened although the caller sees
// an error.
func (f fault) reachesServer() bool {
	return f == faultResetAfter || f == faultSlowAfter || f == faultTruncated
}

// slow reports whether the fault holds the request past its deadline.
func (f fault) slow() bool { return f == faultSlowBefore || f == faultSlowAfter }

// retried reports whether the SDK's retryer retries an attempt that fails
// with the fault. It does not retry past the caller's deadline, nor an
// answer it could not read (a deserialization error).
func (f fault) retried() bool { return !f.slow() && f != faultTruncated }

// faultTransport is an http.RoundTripper in front of DynamoDB Local that
// injects one fault into the requests of one operation, a given number of
// times, and counts every attempt per operation.
type faultTransport struct {
	base http.RoundTripper

	mu       sync.Mutex
	op       string // operation to fault, e.g. "GetItem"
	fault    fault
	times    int // attempts still to fault; < 0 means all of them
	attempts map[string]int
	bodies   [][]byte // request bodies of faulted attempts
}

func newFaultTransport() *faultTransport {
	return &faultTransport{base: http.DefaultTransport, attempts: map[string]int{}}
}

// arm makes the next times attempts of op ("*": of every operation) fail with f (times < 0: every
// attempt) and resets the attempt counts.
func (ft *faultTransport) arm(op string, f fault, times int) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	ft.op, ft.fault, ft.times = op, f, times
	ft.attempts = map[string]int{}
	ft.bodies = nil
}

// disarm stops injecting faults.
func (ft *faultTransport) disarm() { ft.arm("", noFault, 0) }

// attemptsOf returns how many attempts of op reached the transport since
// the last arm.
func (ft *faultTransport) attemptsOf(op string) int {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return ft.attempts[op]
}

// faultedBodies returns the bodies of the requests that were faulted.
func (ft *faultTransport) faultedBodies() [][]byte {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return append([][]byte(nil), ft.bodies...)
}

// operationOf returns the DynamoDB operation of a request from its
// X-Amz-Target header ("DynamoDB_20120810.GetItem").
func operationOf(r *http.Request) string {
	t := r.Header.Get("X-Amz-Target")
	if i := strings.LastIndexByte(t, '.'); i >= 0 {
		return t[i+1:]
	}
	return t
}

func (ft *faultTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	op := operationOf(req)
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		_ = req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	ft.mu.Lock()
	ft.attempts[op]++
	f := noFault
	if (op == ft.op || ft.op == "*") && ft.times != 0 {
		f = ft.fault
		if ft.times > 0 {
			ft.times--
		}
		ft.bodies = append(ft.bodies, body)
	}
	ft.mu.Unlock()

	switch f {
	case noFault:
		return ft.base.RoundTrip(req)
	case faultPTEE:
		// As DynamoDB answers, with the reason.
		return errorResponse(req, http.StatusBadRequest, "ProvisionedThroughputExceededException",
			"The level of configured provisioned throughput for the table was exceeded.",
			map[string]string{"reason": "Table" + map[bool]string{true: "Read", false: "Write"}[strings.Contains(op, "Get")] + "ProvisionedThroughputExceeded",
				"resource": "arn:aws:dynamodb:us-east-1:000000000000:table/sessions"}), nil
	case faultThrottling:
		return errorResponse(req, http.StatusBadRequest, "ThrottlingException", "Rate of requests exceeds the allowed throughput."), nil
	case fault500:
		return errorResponse(req, http.StatusInternalServerError, "InternalServerError", "Internal server error"), nil
	case fault503:
		return errorResponse(req, http.StatusServiceUnavailable, "ServiceUnavailable", "Service unavailable"), nil
	case faultResetBefore:
		return nil, connectionReset()
	case faultSlowBefore:
		<-req.Context().Done()
		return nil, req.Context().Err()
	}

	// The remaining faults let the server handle the request. It is sent
	// with a context that outlives the caller's, so that the write lands
	// even when the caller gives up.
	fwd := req.Clone(context.WithoutCancel(req.Context()))
	fwd.Body = io.NopCloser(bytes.NewReader(body))
	resp, err := ft.base.RoundTrip(fwd)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	switch f {
	case faultResetAfter:
		return nil, connectionReset()
	case faultSlowAfter:
		<-req.Context().Done()
		return nil, req.Context().Err()
	default: // faultTruncated
		// Content-Length still promises the whole body.
		resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(data[:len(data)/2]), errReader{io.ErrUnexpectedEOF}))
		return resp, nil
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// connectionReset is the error a read on a connection the peer reset
// returns.
func connectionReset() error {
	return &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
}

// errorResponse is a DynamoDB error answer in the awsJson1.0 protocol,
// with the throttling reasons given.
func errorResponse(req *http.Request, status int, code, msg string, reasons ...map[string]string) *http.Response {
	e := map[string]any{
		"__type":  "com.amazonaws.dynamodb.v20120810#" + code,
		"message": msg,
	}
	if len(reasons) > 0 {
		e["ThrottlingReasons"] = reasons
	}
	body, _ := json.Marshal(e)
	h := http.Header{}
	h.Set("Content-Type", "application/x-amz-json-1.0")
	h.Set("X-Amzn-Errortype", code)
	h.Set("X-Amzn-Requestid", "FAULT0000000000000000000000000000000000000000000000")
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", status, http.StatusText(status)),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

// faultyClient is a DynamoDB client for the test endpoint whose requests go
// through ft. Retries keep the SDK's standard retryer and DynamoDB's
// attempt count, with the backoff capped at a millisecond so that the
// tests take no time.
func faultyClient(t *testing.T, ft *faultTransport) *dynamodb.Client {
	return dbtest.Client(t, func(o *dynamodb.Options) {
		o.HTTPClient = &http.Client{Transport: ft}
		o.Retryer = retry.AddWithMaxBackoffDelay(retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = faultAttempts
		}), time.Millisecond)
	})
}

// faultAttempts is how many attempts the faulty client makes: DynamoDB's
// default in the SDK.
const faultAttempts = 4

// faultOp is one store operation under a fault.
type faultOp struct {
	name string
	// ddbOp is the DynamoDB operation it makes, the one faulted.
	ddbOp string
}

var faultOps = []faultOp{
	{"Get", "GetItem"},
	{"Save new", "PutItem"},
	{"Save changed", "UpdateItem"},
	{"Save touch", "UpdateItem"},
	{"Delete", "DeleteItem"},
	// Regenerate writes the new row (PutItem, as Save new) and then
	// deletes the old one while it is live: the delete is faulted.
	{"Regenerate", "DeleteItem"},
}

var allFaults = []fault{faultPTEE, faultThrottling, fault500, fault503, faultResetBefore, faultResetAfter,
	faultSlowBefore, faultSlowAfter, faultTruncated}

// faultCase is one cell of the fault matrix: an operation under a fault
// that is transient (the first attempt fails, the retry succeeds) or
// persistent (every attempt fails).
type faultCase struct {
	op         faultOp
	fault      fault
	persistent bool
	locking    bool
}

func (c faultCase) name() string {
	kind := "transient"
	if c.persistent {
		kind = "persistent"
	}
	return fmt.Sprintf("%s/%s/%s", c.op.name, c.fault, kind)
}

// faultCases is the fault matrix. Faults the SDK does not retry are only
// tried once: transient or persistent, the first attempt fails and is the
// last.
func faultCases() []faultCase {
	var cases []faultCase
	for _, op := range faultOps {
		for _, f := range allFaults {
			if f.retried() {
				cases = append(cases, faultCase{op: op, fault: f})
			}
			cases = append(cases, faultCase{op: op, fault: f, persistent: true})
		}
	}
	return cases
}

// TestFaultMatrix runs every store operation under every fault, transient
// and persistent, against DynamoDB Local through a fault-injecting
// transport. Transient faults are absorbed by the SDK's retryer; persistent
// ones surface as an error wrapping the cause; either way nothing partial
// is returned or written, and no cookie is set on error.
func TestFaultMatrix(t *testing.T) {
	testFaultMatrix(t, false)
}

// TestFaultMatrixWithLocking is TestFaultMatrix with optimistic locking on:
// a versioned write whose answer is lost and that is retried must not
// report a conflict with itself.
func TestFaultMatrixWithLocking(t *testing.T) {
	testFaultMatrix(t, true)
}

func testFaultMatrix(t *testing.T, locking bool) {
	clean := dbtest.Client(t)
	table := dbtest.NewTable(t, clean)
	cases := faultCases()
	t.Logf("%d fault cases", len(cases))
	for _, c := range cases {
		c.locking = locking
		t.Run(c.name(), func(t *testing.T) {
			t.Parallel()
			runFaultCase(t, clean, table, c)
		})
	}
}

// faultEnv is one fault case's stores: ref on a clean client to set up and
// check, faulty through the fault transport.
type faultEnv struct {
	t      *testing.T
	ft     *faultTransport
	ref    *Store
	faulty *Store
	clock  *fakeClock
}

func newFaultEnv(t *testing.T, clean *dynamodb.Client, table string, opts ...Option) *faultEnv {
	fe := &faultEnv{t: t, ft: newFaultTransport(), clock: newFakeClock()}
	base := []Option{WithKeyPairs(testHashKey, testBlockKey), withCleanupInterval(0), withClock(fe.clock.Now)}
	var err error
	if fe.ref, err = NewStore(context.Background(), table, append(append(base, withAPI(clean)), opts...)...); err != nil {
		t.Fatal(err)
	}
	if fe.faulty, err = NewStore(context.Background(), table, append(append(base, withAPI(faultyClient(t, fe.ft))), opts...)...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fe.ref.Close(); _ = fe.faulty.Close() })
	return fe
}

// newFaultSession makes a fresh table, a faultEnv on it with opts, and a session {"n": 1} saved through the reference store.
func newFaultSession(t *testing.T, opts ...Option) (*faultEnv, *http.Cookie) {
	t.Helper()
	clean := dbtest.Client(t)
	table := dbtest.NewTable(t, clean)
	fe := newFaultEnv(t, clean, table, opts...)
	return fe, fe.create(map[any]any{"n": 1})
}

// newLoggedFaultSession is newFaultSession with both stores logging as text to the returned buffer.
func newLoggedFaultSession(t *testing.T, opts ...Option) (*faultEnv, *http.Cookie, *bytes.Buffer) {
	t.Helper()
	logs := &bytes.Buffer{}
	fe, c := newFaultSession(t, append([]Option{WithLogger(slog.New(slog.NewTextHandler(logs, nil)))}, opts...)...)
	return fe, c, logs
}

// create saves a new session with values through the reference store.
func (fe *faultEnv) create(values map[any]any) *http.Cookie {
	fe.t.Helper()
	r := request()
	sess, _ := fe.ref.New(r, "s")
	for k, v := range values {
		sess.Values[k] = v
	}
	w := httptest.NewRecorder()
	if err := sess.Save(r, w); err != nil {
		fe.t.Fatalf("setting up: %v", err)
	}
	return cookieOf(w, "s")
}

// stored loads the session of cookie through the reference store: its
// values, or nil when there is none.
func (fe *faultEnv) stored(c *http.Cookie) map[any]any {
	fe.t.Helper()
	sess, err := fe.ref.New(request(c), "s")
	if err != nil {
		fe.t.Fatalf("reading back: %v", err)
	}
	if sess.IsNew {
		return nil
	}
	return sess.Values
}

// withDeadline returns r with a deadline on its context, which keeps what
// the Store remembers of the request's sessions: slow faults hold the
// request until the deadline; others finish long before it.
func withDeadline(t *testing.T, r *http.Request, f fault) *http.Request {
	d := 30 * time.Second
	if f.slow() {
		d = time.Second
	}
	ctx, cancel := context.WithTimeout(r.Context(), d)
	t.Cleanup(cancel)
	return r.WithContext(ctx)
}

func runFaultCase(t *testing.T, clean *dynamodb.Client, table string, c faultCase) {
	fe := newFaultEnv(t, clean, table, WithOptimisticLocking(c.locking), WithTouchAfter(time.Second))
	times := 1
	if c.persistent {
		times = -1
	}
	old := map[any]any{"user": "ada", "n": 1}
	changed := map[any]any{"user": "ada", "n": 2}
	var cookie *http.Cookie
	var r *http.Request
	var sess *sessions.Session
	if c.op.name != "Save new" {
		cookie = fe.create(old)
		r = request(cookie)
		if c.op.name != "Get" {
			var err error
			if sess, err = fe.faulty.New(r, "s"); err != nil || sess.IsNew {
				t.Fatalf("loading before the fault: %v", err)
			}
		}
	} else {
		r = request()
		sess, _ = fe.faulty.New(r, "s")
	}
	r = withDeadline(t, r, c.fault)
	w := httptest.NewRecorder()

	fe.ft.arm(c.op.ddbOp, c.fault, times)
	var err error
	switch c.op.name {
	case "Get":
		sess, err = fe.faulty.New(r, "s")
	case "Save new", "Save changed":
		clear(sess.Values)
		for k, v := range changed {
			sess.Values[k] = v
		}
		err = sess.Save(r, w)
	case "Save touch":
		fe.clock.Advance(2 * time.Second)
		err = sess.Save(r, w)
	case "Delete":
		err = fe.faulty.Delete(r, w, sess)
	case "Regenerate":
		clear(sess.Values)
		for k, v := range changed {
			sess.Values[k] = v
		}
		err = fe.faulty.Regenerate(r, w, sess)
	}
	attempts := fe.ft.attemptsOf(c.op.ddbOp)
	fe.ft.disarm()

	if selfConflict(c) {
		// Known limitation: with optimistic locking, a versioned update
		// whose answer is lost after DynamoDB applied it is retried by the
		// SDK, and the retry finds the version it wrote itself. Save
		// reports ErrConflict although its values are stored, whole.
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("retried versioned update = %v; want ErrConflict", err)
		}
		if got := fe.stored(cookie); !sameValues(got, changed) {
			t.Fatalf("stored %v; want %v", got, changed)
		}
		return
	}
	if lostRegenerate(c) {
		// Known limitation, on the safe side: the first attempt of the
		// conditional delete removed the old row and its answer was lost;
		// the retry finds no live row, as after a concurrent logout, so
		// Regenerate removes the new row and reports ErrSessionGone. The
		// user is signed out, never signed in twice.
		if !errors.Is(err, ErrSessionGone) || liveCookie(w, "s") != nil {
			t.Fatalf("Regenerate whose delete answer was lost = %v; want ErrSessionGone and no session cookie", err)
		}
		if fe.stored(cookie) != nil {
			t.Fatal("the old session survived")
		}
		if c := cookieOf(w, "s"); c == nil || c.Value != "" || c.MaxAge >= 0 {
			t.Fatalf("Regenerate whose delete answer was lost set cookie %v; want only the expiring one", c)
		}
		return
	}
	if !c.persistent {
		if err != nil {
			t.Fatalf("transient %s: %v", c.fault, err)
		}
		if attempts != 2 {
			t.Errorf("%d attempts; want 2 (one failed, one retried)", attempts)
		}
	} else {
		checkFaultError(t, c, err, attempts)
	}

	// What the caller got back, and what the table holds.
	switch c.op.name {
	case "Get":
		if err == nil {
			if sess.IsNew || !sameValues(sess.Values, old) {
				t.Fatalf("loaded %v; want %v", sess.Values, old)
			}
			break
		}
		if !sess.IsNew || sess.ID != "" || len(sess.Values) != 0 {
			t.Fatalf("failed Get returned a session with ID %t, values %v; want a fresh one", sess.ID != "", sess.Values)
		}
		sess.Values["user"] = "mallory"
		if err := sess.Save(r, w); !errors.Is(err, ErrLoadFailed) {
			t.Fatalf("Save after a failed load = %v; want ErrLoadFailed", err)
		}
		if got := fe.stored(cookie); !sameValues(got, old) {
			t.Fatalf("stored %v after a failed load; want %v intact", got, old)
		}
	case "Save new":
		if err == nil {
			if got := fe.stored(cookieOf(w, "s")); !sameValues(got, changed) {
				t.Fatalf("stored %v; want %v", got, changed)
			}
			break
		}
		// The row the failed Save tried to write is all there or absent.
		for _, key := range putKeys(t, fe.ft.faultedBodies()) {
			item := rawItemByKey(t, clean, table, key)
			if item == nil {
				if c.fault.reachesServer() {
					t.Errorf("the server handled the write but the row is absent")
				}
				continue
			}
			if !c.fault.reachesServer() {
				t.Errorf("a write that never reached the server left a row")
			}
			if got := decodeValues(t, item); !sameValues(got, changed) {
				t.Fatalf("row of the failed Save holds %v; want all of %v", got, changed)
			}
		}
	case "Save changed":
		got := fe.stored(cookie)
		switch {
		case err == nil && !sameValues(got, changed):
			t.Fatalf("stored %v; want %v", got, changed)
		case err != nil && !sameValues(got, old) && !sameValues(got, changed):
			t.Fatalf("stored %v after a failed Save; want the old or the new values whole", got)
		case err != nil && !c.fault.reachesServer() && !sameValues(got, old):
			t.Fatalf("stored %v although the write never reached the server", got)
		}
	case "Save touch":
		if got := fe.stored(cookie); !sameValues(got, old) {
			t.Fatalf("stored %v after a touch; want %v", got, old)
		}
	case "Delete":
		got := fe.stored(cookie)
		switch {
		case err == nil && got != nil:
			t.Fatalf("session still loads after Delete returned nil")
		case err != nil && got != nil && !sameValues(got, old):
			t.Fatalf("stored %v after a failed Delete", got)
		case err != nil && !c.fault.reachesServer() && got == nil:
			t.Fatalf("row gone although the delete never reached the server")
		}
	case "Regenerate":
		oldRow := fe.stored(cookie)
		if err == nil {
			if newRow := fe.stored(cookieOf(w, "s")); oldRow != nil || !sameValues(newRow, changed) {
				t.Fatalf("after Regenerate the old cookie loads %v and the new %v", oldRow, newRow)
			}
			return
		}
		// A failed Regenerate takes the new row back and sets no cookie:
		// the request still holds the old session, which saves as usual
		// (or is gone, when the faulted delete reached the server).
		switch {
		case liveCookie(w, "s") != nil:
			t.Fatal("a failed Regenerate set a session cookie")
		case sess.ID == "":
			t.Fatal("a failed Regenerate left the session without its ID")
		case oldRow != nil && !sameValues(oldRow, old):
			t.Fatalf("after a failed Regenerate the old cookie loads %v", oldRow)
		case !c.fault.reachesServer() && oldRow == nil:
			t.Fatal("old row gone although the delete never reached the server")
		}
		// The request's deadline may have passed; what the Store knows of
		// its sessions is kept.
		again := r.WithContext(context.WithoutCancel(r.Context()))
		err := sess.Save(again, httptest.NewRecorder())
		switch {
		case oldRow != nil && err != nil:
			t.Fatalf("Save after a failed Regenerate = %v; want nil", err)
		case oldRow != nil && !sameValues(fe.stored(cookie), changed):
			t.Fatalf("Save after a failed Regenerate stored %v; want %v", fe.stored(cookie), changed)
		case oldRow == nil && !errors.Is(err, ErrSessionGone):
			t.Fatalf("Save after a failed Regenerate of a deleted row = %v; want ErrSessionGone", err)
		}
		return
	}
	if err != nil && c.op.name != "Get" && len(w.Result().Cookies()) != 0 {
		t.Fatalf("failed %s set a cookie", c.op.name)
	}
	if err == nil && c.op.name != "Get" && cookieOf(w, "s") == nil {
		t.Fatalf("%s set no cookie", c.op.name)
	}
}

// lostRegenerate reports whether the case is the one where Regenerate's
// retried conditional delete finds the old row its first attempt removed.
func lostRegenerate(c faultCase) bool {
	return c.op.name == "Regenerate" && c.fault == faultResetAfter && !c.persistent
}

// selfConflict reports whether the case is the one where a retried
// versioned update conflicts with its own first attempt.
func selfConflict(c faultCase) bool {
	return c.locking && c.op.name == "Save changed" && c.fault == faultResetAfter && !c.persistent
}

// checkFaultError checks the error of an operation under a persistent
// fault: it is the Store's, and wraps the cause so errors.Is and errors.As
// find it.
func checkFaultError(t *testing.T, c faultCase, err error, attempts int) {
	t.Helper()
	if err == nil {
		t.Fatalf("persistent %s: no error", c.fault)
	}
	if !strings.HasPrefix(err.Error(), "dynamostore: ") {
		t.Errorf("error %q does not come from the Store", err)
	}
	wantAttempts := faultAttempts
	var apiErr smithy.APIError
	var respErr *smithyhttp.ResponseError
	var maxErr *retry.MaxAttemptsError
	switch c.fault {
	case faultPTEE:
		var ptee *types.ProvisionedThroughputExceededException
		if !errors.As(err, &ptee) {
			t.Errorf("errors.As(%v, *ProvisionedThroughputExceededException) = false", err)
		}
	case faultThrottling:
		if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "ThrottlingException" {
			t.Errorf("errors.As(%v, smithy.APIError) with code ThrottlingException = false", err)
		}
	case fault500, fault503:
		want := map[fault]int{fault500: 500, fault503: 503}[c.fault]
		if !errors.As(err, &respErr) || respErr.HTTPStatusCode() != want {
			t.Errorf("errors.As(%v, *smithyhttp.ResponseError) with status %d = false", err, want)
		}
	case faultResetBefore, faultResetAfter:
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("errors.Is(%v, ECONNRESET) = false", err)
		}
	case faultSlowBefore, faultSlowAfter:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("errors.Is(%v, context.DeadlineExceeded) = false", err)
		}
	case faultTruncated:
		var deserErr *smithy.DeserializationError
		if !errors.Is(err, io.ErrUnexpectedEOF) || !errors.As(err, &deserErr) {
			t.Errorf("errors.Is(%v, io.ErrUnexpectedEOF) and errors.As(smithy.DeserializationError) = false", err)
		}
	}
	if !c.fault.retried() {
		wantAttempts = 1
	}
	if wantAttempts > 1 && !errors.As(err, &maxErr) {
		t.Errorf("errors.As(%v, *retry.MaxAttemptsError) = false", err)
	}
	if c.op.name == "Regenerate" && attempts > wantAttempts && attempts <= 2*wantAttempts {
		// The faulted delete of the old row, then the taking back of the
		// new one, under the same fault.
		attempts = wantAttempts
	}
	if attempts != wantAttempts {
		t.Errorf("%d attempts; want %d", attempts, wantAttempts)
	}
}

// sameValues reports whether two session value maps hold the same keys and
// values; nil is the same as empty only for want == nil.
func sameValues(got, want map[any]any) bool {
	if (got == nil) != (want == nil) || len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// putKeys returns the table keys of the PutItem request bodies.
func putKeys(t *testing.T, bodies [][]byte) []string {
	t.Helper()
	seen := map[string]bool{}
	var keys []string
	for _, b := range bodies {
		var in struct {
			Item struct {
				ID struct{ S string } `json:"id"`
			}
		}
		if err := json.Unmarshal(b, &in); err != nil || in.Item.ID.S == "" {
			t.Fatalf("PutItem body %q: %v", b, err)
		}
		if !seen[in.Item.ID.S] {
			seen[in.Item.ID.S] = true
			keys = append(keys, in.Item.ID.S)
		}
	}
	return keys
}

// rawItemByKey reads the item with the table key, strongly consistent;
// nil when there is none.
func rawItemByKey(t *testing.T, c *dynamodb.Client, table, key string) map[string]types.AttributeValue {
	t.Helper()
	out, err := c.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: aws.String(table), Key: keyOf(key), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Item
}

// decodeValues decodes the values of a raw item, failing the test when the
// item is not a whole, valid session.
func decodeValues(t *testing.T, item map[string]types.AttributeValue) map[any]any {
	t.Helper()
	rec, err := decodeItem("", item)
	if err != nil {
		t.Fatalf("stored item does not decode: %v", err)
	}
	values := map[any]any{}
	if err := (GobSerializer{}).Deserialize(rec.Data, values); err != nil {
		t.Fatalf("stored values do not decode: %v", err)
	}
	return values
}

// TestRetriedCreateFindsItsOwnRow checks the backend side of a create
// retried after its answer was lost: finding exactly the item it writes is
// success, while any other item under the key is still ErrExists.
func TestRetriedCreateFindsItsOwnRow(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	// DynamoDB returns the item in the way with the refusal; some
	// implementations (dynalite) do not, and the backend reads it instead.
	backends := map[string]dynamoAPI{
		"item with the refusal":     e.client,
		"item not with the refusal": itemlessRefusals{e.client},
	}
	for name, client := range backends {
		t.Run(name, func(t *testing.T) {
			b, err := newDynamoBackend(client, e.table, true)
			if err != nil {
				t.Fatal(err)
			}
			now := e.clock.Now()
			rec := Record{Key: storageKey("retried-create " + name), Data: []byte("values"), Expires: now.Add(time.Hour), Modified: now, Owner: "ada"}
			if err := b.Create(ctx, rec); err != nil {
				t.Fatal(err)
			}
			if err := b.Create(ctx, rec); err != nil {
				t.Fatalf("the same create again = %v; want nil", err)
			}
			for name, other := range map[string]func(*Record){
				"other data":     func(r *Record) { r.Data = []byte("other") },
				"no data":        func(r *Record) { r.Data = nil },
				"other modified": func(r *Record) { r.Modified = r.Modified.Add(time.Millisecond) },
				"other expiry":   func(r *Record) { r.Expires = r.Expires.Add(time.Second) },
				"other owner":    func(r *Record) { r.Owner = "bob" },
				"other version":  func(r *Record) { r.Version = 3 },
			} {
				o := rec
				other(&o)
				if err := b.Create(ctx, o); !errors.Is(err, ErrExists) {
					t.Errorf("%s: create over an existing item = %v; want ErrExists", name, err)
				}
			}
		})
	}
}

// itemlessRefusals is a DynamoDB client whose refused conditional PutItems
// do not carry the item in the way.
type itemlessRefusals struct{ dynamoAPI }

func (c itemlessRefusals) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	out, err := c.dynamoAPI.PutItem(ctx, in, optFns...)
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		ccf.Item = nil
	}
	return out, err
}

// TestRetriesFromAWSConfig checks that the retry settings of the
// aws.Config given to WithAWSConfig (RetryMaxAttempts, and a Retryer with
// the SDK's AddWithMaxBackoffDelay) reach the client the Store builds: the
// attempts counted at the transport under persistent faults, and the delays
// the retryer would wait.
func TestRetriesFromAWSConfig(t *testing.T) {
	clean := dbtest.Client(t)
	table := dbtest.NewTable(t, clean)
	throttled := &types.ProvisionedThroughputExceededException{Message: aws.String("slow down")}
	tests := []struct {
		name         string
		attempts     int           // aws.Config.RetryMaxAttempts; 0: the SDK's
		backoff      time.Duration // the Retryer's max backoff; 0: the SDK's
		fault        fault
		wantAttempts int
		maxBackoff   time.Duration // 0: not checked
	}{
		// DynamoDB's SDK default is 4 attempts; its backoff for 5xx
		// starts at 25ms.
		{"defaults", 0, 0, fault500, 4, 0},
		// A Retryer of the user's own, retry.NewStandard here, keeps its
		// own 3 attempts.
		{"max backoff only", 0, time.Millisecond, faultThrottling, 3, time.Millisecond},
		{"max attempts 1", 1, 0, faultThrottling, 1, 0},
		{"max attempts 2", 2, time.Millisecond, faultPTEE, 2, time.Millisecond},
		{"max attempts 7", 7, 2 * time.Millisecond, faultThrottling, 7, 2 * time.Millisecond},
		{"connection resets", 5, time.Millisecond, faultResetBefore, 5, time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ft := newFaultTransport()
			cfg := aws.Config{
				Region:      dbtest.Region,
				Credentials: credentials.NewStaticCredentialsProvider("local", "local", ""),
				HTTPClient:  &http.Client{Transport: ft},

				RetryMaxAttempts: tt.attempts,
			}
			if tt.backoff > 0 {
				cfg.Retryer = func() aws.Retryer { return retry.AddWithMaxBackoffDelay(retry.NewStandard(), tt.backoff) }
			}
			s, err := NewStore(context.Background(), table, WithAWSConfig(cfg), WithEndpoint(dbtest.Endpoint(t)),
				WithKeyPairs(testHashKey), withCleanupInterval(0))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			retryer := s.backend.(*dynamoBackend).client.(*dynamodb.Client).Options().Retryer
			if n := retryer.MaxAttempts(); n != tt.wantAttempts {
				t.Errorf("retryer allows %d attempts; want %d", n, tt.wantAttempts)
			}
			if tt.maxBackoff > 0 {
				for attempt := 1; attempt <= 10; attempt++ {
					if d, err := retryer.RetryDelay(attempt, throttled); err != nil || d > tt.maxBackoff {
						t.Errorf("delay before retry %d of a throttled call = %v, %v; want at most %v", attempt, d, err, tt.maxBackoff)
					}
				}
			}

			r := request()
			sess, _ := s.New(r, "s")
			sess.Values["a"] = 1
			ft.arm("PutItem", tt.fault, -1)
			err = sess.Save(r, httptest.NewRecorder())
			var maxErr *retry.MaxAttemptsError
			switch {
			case err == nil:
				t.Fatal("Save under a persistent fault succeeded")
			case tt.wantAttempts > 1 && !errors.As(err, &maxErr):
				t.Fatalf("Save = %v; want a MaxAttemptsError", err)
			}
			if n := ft.attemptsOf("PutItem"); n != tt.wantAttempts {
				t.Fatalf("%d attempts; want %d", n, tt.wantAttempts)
			}
			ft.disarm()
			if err := sess.Save(r, httptest.NewRecorder()); err != nil {
				t.Fatalf("Save once the fault is gone: %v", err)
			}
		})
	}
}

// TestRetriedCreateWithAnOwnerNotUTF8: DynamoDB stores an owner's bytes
// that are not UTF-8 as U+FFFD; a create whose answer was lost still
// recognises its own row when the SDK sends it again.
func TestRetriedCreateWithAnOwnerNotUTF8(t *testing.T) {
	clean := dbtest.Client(t)
	table := dbtest.NewTable(t, clean)
	fe := newFaultEnv(t, clean, table)
	r := request()
	sess, _ := fe.faulty.New(r, "s")
	sess.Values["a"] = 1
	fe.faulty.SetOwner(r, sess, "user\xff")
	fe.ft.arm("PutItem", faultResetAfter, 1)
	w := httptest.NewRecorder()
	if err := sess.Save(r, w); err != nil {
		t.Fatalf("Save whose first attempt landed = %v", err)
	}
	if cookieOf(w, "s") == nil {
		t.Fatal("no cookie set for the row written")
	}
}

// rewriteAnswers hands DynamoDB's answers to op through rewrite.
type rewriteAnswers struct {
	op      string
	rewrite func([]byte) []byte
}

func (a rewriteAnswers) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || operationOf(r) != a.op {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	body = a.rewrite(body)
	resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	resp.Header.Del("Content-Length")
	return resp, nil
}

// TestUnreadableAnswerNotLogged: an answer the SDK cannot read (the values
// attribute not a binary) fails the load, and neither the error nor the
// log line quotes the answer, which holds the session's values.
func TestUnreadableAnswerNotLogged(t *testing.T) {
	clean := dbtest.Client(t)
	table := dbtest.NewTable(t, clean)
	clock := newFakeClock()
	ref := newTestStore(t, table, clean, clock)
	c, _ := saveNew(t, ref, "s", map[any]any{"card": "4111-1111-1111-1111"})
	var stored []byte // the values as stored, base64 in the answer
	broken := dbtest.Client(t, func(o *dynamodb.Options) {
		o.HTTPClient = &http.Client{Transport: rewriteAnswers{op: "GetItem", rewrite: func(b []byte) []byte {
			i := bytes.Index(b, []byte(`"v":{"B":"`))
			if i < 0 {
				return b
			}
			end := i + len(`"v":{"B":"`) + bytes.IndexByte(b[i+len(`"v":{"B":"`):], '"')
			stored = bytes.Clone(b[i+len(`"v":{"B":"`) : end])
			return slices.Concat(b[:i], []byte(`"v":`), b[i+len(`"v":{"B":`):end+1], b[end+2:])
		}}}
	})
	var logs bytes.Buffer
	faulty := newTestStore(t, table, broken, clock, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	_, err := faulty.New(request(c), "s")
	if err == nil || !Unavailable(err) {
		t.Fatalf("load of an unreadable answer = %v; want an error that is Unavailable", err)
	}
	if len(stored) < 16 {
		t.Fatal("the answer held no values to hide")
	}
	quote := string(stored[:16])
	if strings.Contains(err.Error(), quote) || strings.Contains(logs.String(), quote) {
		t.Errorf("the session's values appear in the error or the log:\nerror: %v\nlog: %s", err, logs.String())
	}
	var de *smithy.DeserializationError
	if !errors.As(err, &de) {
		t.Errorf("the SDK's error is not reachable: %v", err)
	}
}
