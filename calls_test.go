package dynamostore

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynamostore/dynamostore/internal/ddbmeter"
	"github.com/dynamostore/dynamostore/internal/gobwire"
	"github.com/gorilla/sessions"
)

// callsFile holds the committed DynamoDB calls and capacity units of each
// store operation. TestCallsPerOperation fails when the store's figures
// differ from it; after a deliberate change, rewrite it with
//
//	go test -run TestCallsPerOperation -calls.update
var callsFile = "testdata/calls.json"

var updateCalls = flag.Bool("calls.update", false, "rewrite "+callsFile+" with the measured DynamoDB calls per operation")

// callFigures is the content of callsFile.
type callFigures struct {
	Note       string                    `json:"note"`
	Operations map[string]ddbmeter.Usage `json:"operations"`
}

// operation is one request-path operation whose cost is measured: prepare
// sets it up (its calls are not counted) and returns the cookie the
// request carries, or nil; run is the measured part.
type operation struct {
	name    string
	opts    []Option
	prepare func(x *rig, s *Store) *http.Cookie
	run     func(x *rig, s *Store, c *http.Cookie) error
}

// existing prepares a saved reference session.
func existing(x *rig, s *Store) *http.Cookie {
	_, c := create(x.tb, s, referenceValues())
	return c
}

// loadSave loads the session of c and saves it after change.
func loadSave(change func(*Store, *http.Request, *sessions.Session) error) func(*rig, *Store, *http.Cookie) error {
	return func(_ *rig, s *Store, c *http.Cookie) error {
		r := request(c)
		sess, err := s.Get(r, benchCookie)
		if err != nil {
			return err
		}
		return change(s, r, sess)
	}
}

func save(s *Store, r *http.Request, sess *sessions.Session) error {
	return s.Save(r, &discardWriter{h: http.Header{}}, sess)
}

// operations lists the request path's operations, each on the reference
// session (a user string, an int and 1 KB of bytes).
var operations = []operation{
	{
		name: "new+save",
		run: func(x *rig, s *Store, _ *http.Cookie) error {
			r := request()
			sess, err := s.Get(r, benchCookie)
			if err != nil {
				return err
			}
			for k, v := range referenceValues() {
				sess.Values[k] = v
			}
			return save(s, r, sess)
		},
	},
	{
		name:    "load",
		prepare: existing,
		run:     loadSave(func(*Store, *http.Request, *sessions.Session) error { return nil }),
	},
	{
		name:    "load, eventually consistent",
		opts:    []Option{WithConsistentRead(false)},
		prepare: existing,
		run:     loadSave(func(*Store, *http.Request, *sessions.Session) error { return nil }),
	},
	{
		name:    "load, no cookie",
		run:     loadSave(func(*Store, *http.Request, *sessions.Session) error { return nil }),
		prepare: func(*rig, *Store) *http.Cookie { return &http.Cookie{Name: "other", Value: "x"} },
	},
	{
		name:    "load, invalid cookie",
		prepare: func(*rig, *Store) *http.Cookie { return &http.Cookie{Name: benchCookie, Value: "forged"} },
		run: func(_ *rig, s *Store, c *http.Cookie) error {
			if _, err := s.Get(request(c), benchCookie); err == nil {
				return fmt.Errorf("forged cookie accepted")
			}
			return nil
		},
	},
	{
		name: "load, expired row",
		prepare: func(x *rig, s *Store) *http.Cookie {
			c := existing(x, s)
			x.clock.Advance(defaultTTL + time.Second)
			return c
		},
		run: loadSave(func(_ *Store, _ *http.Request, sess *sessions.Session) error {
			if !sess.IsNew {
				return fmt.Errorf("expired row served")
			}
			return nil
		}),
	},
	{
		name:    "load+save unchanged, inside touchAfter",
		prepare: existing,
		run:     loadSave(save),
	},
	{
		name: "load+save unchanged, after touchAfter",
		prepare: func(x *rig, s *Store) *http.Cookie {
			c := existing(x, s)
			x.clock.Advance(defaultTouchAfter)
			return c
		},
		run: loadSave(save),
	},
	{
		name:    "load+save changed",
		prepare: existing,
		run: loadSave(func(s *Store, r *http.Request, sess *sessions.Session) error {
			sess.Values["visits"] = 43
			return save(s, r, sess)
		}),
	},
	{
		name:    "load+delete",
		prepare: existing,
		run: loadSave(func(s *Store, r *http.Request, sess *sessions.Session) error {
			return s.Delete(r, &discardWriter{h: http.Header{}}, sess)
		}),
	},
	{
		name:    "load+regenerate",
		prepare: existing,
		run: loadSave(func(s *Store, r *http.Request, sess *sessions.Session) error {
			return s.Regenerate(r, &discardWriter{h: http.Header{}}, sess)
		}),
	},
}

// measureOperations runs every operation on one table and returns what
// each cost.
func measureOperations(t *testing.T) map[string]ddbmeter.Usage {
	x := newRig(t)
	got := map[string]ddbmeter.Usage{}
	for _, op := range operations {
		s := x.store
		if len(op.opts) > 0 {
			s = x.newStore(op.opts...)
		}
		var c *http.Cookie
		if op.prepare != nil {
			c = op.prepare(x, s)
		}
		x.meter.Take()
		if err := op.run(x, s, c); err != nil {
			t.Fatalf("%s: %v", op.name, err)
		}
		got[op.name] = x.meter.Take()
	}
	return got
}

// TestCallsPerOperation is the CI check on the request path's cost: it
// measures the DynamoDB calls (and, on DynamoDB Local, the capacity units)
// of each operation against the figures committed in testdata/calls.json,
// and fails when a change adds a call, so an extra round trip never ships
// unnoticed. Fewer calls fail too, until the figures are rewritten, so that
// the improvement is kept.
func TestCallsPerOperation(t *testing.T) {
	got := measureOperations(t)
	if *updateCalls {
		writeFigures(t, got)
		return
	}
	want := readFigures(t)
	// Capacity units are DynamoDB Local's arithmetic; other emulators
	// count differently, so only calls are compared on them.
	checkCapacity := os.Getenv("DYNAMOSTORE_BACKEND") == "" || os.Getenv("DYNAMOSTORE_BACKEND") == "dynamodb-local"
	names := slices.Sorted(func(yield func(string) bool) {
		seen := map[string]bool{}
		for _, m := range []map[string]ddbmeter.Usage{got, want} {
			for n := range m {
				if !seen[n] && !yield(n) {
					return
				}
				seen[n] = true
			}
		}
	})
	for _, name := range names {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s: in %s but no longer measured; rewrite the figures with -calls.update", name, callsFile)
			continue
		}
		w, ok := want[name]
		if !ok {
			t.Errorf("%s: measured (%s) but missing from %s; add it with -calls.update", name, describeUsage(g), callsFile)
			continue
		}
		switch {
		case g.Total() > w.Total():
			t.Errorf("%s: %d DynamoDB calls (%s); the committed figure is %d (%s): the change adds a call to the request path",
				name, g.Total(), describeUsage(g), w.Total(), describeUsage(w))
		case describeCalls(g) != describeCalls(w):
			t.Errorf("%s: calls %s; the committed figures say %s: if this is intended, rewrite them with -calls.update",
				name, describeCalls(g), describeCalls(w))
		case checkCapacity && (g.RCU != w.RCU || g.WCU != w.WCU):
			t.Errorf("%s: %s; the committed figures say %s: if this is intended, rewrite them with -calls.update",
				name, describeUsage(g), describeUsage(w))
		default:
			t.Logf("%-40s %s", name, describeUsage(g))
		}
	}
}

func describeCalls(u ddbmeter.Usage) string {
	parts := make([]string, 0, len(u.Calls))
	for _, op := range slices.Sorted(func(yield func(string) bool) {
		for op, n := range u.Calls {
			if n > 0 && !yield(op) {
				return
			}
		}
	}) {
		parts = append(parts, fmt.Sprintf("%s×%d", op, u.Calls[op]))
	}
	if len(parts) == 0 {
		return "no call"
	}
	return strings.Join(parts, " ")
}

func describeUsage(u ddbmeter.Usage) string {
	return fmt.Sprintf("%s, %g RCU, %g WCU", describeCalls(u), u.RCU, u.WCU)
}

func readFigures(t *testing.T) map[string]ddbmeter.Usage {
	t.Helper()
	data, err := os.ReadFile(callsFile)
	if err != nil {
		t.Fatalf("reading the committed figures: %v (create them with -calls.update)", err)
	}
	var f callFigures
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("%s: %v", callsFile, err)
	}
	return f.Operations
}

func writeFigures(t *testing.T, ops map[string]ddbmeter.Usage) {
	t.Helper()
	for name, u := range ops {
		for op, n := range u.Calls {
			if n == 0 {
				delete(u.Calls, op)
			}
		}
		ops[name] = u
	}
	f := callFigures{
		Note:       "DynamoDB calls and capacity units (DynamoDB Local, ReturnConsumedCapacity TOTAL) per store operation on the reference session; checked by TestCallsPerOperation, rewritten with go test -run TestCallsPerOperation -calls.update",
		Operations: ops,
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(callsFile, append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", callsFile)
}

// TestReferenceItemSize checks the stored size of the reference session
// against the target: at most 20 bytes above its gob bytes, its key and its
// expiry, attribute names counted against the 20.
func TestReferenceItemSize(t *testing.T) {
	x := newRig(t)
	id, _ := create(t, x.store, referenceValues())
	item := (&env{t: t, client: x.client, table: x.table}).rawItem(id)
	got := 0
	for name, av := range item {
		got += len(name) + attrSize(t, av)
	}
	gobBytes, err := GobSerializer{}.Serialize(referenceValues())
	if err != nil {
		t.Fatal(err)
	}
	exp := numberAttr(t, item, attrExpires)
	floor := len(gobBytes) + len(storageKey(id)) + numberSize(exp)
	t.Logf("item %d bytes: gob %d + key %d + expiry %d, and %d bytes of attribute names and last-written time",
		got, len(gobBytes), len(storageKey(id)), numberSize(exp), got-floor)
	if got > floor+20 {
		t.Errorf("reference item is %d bytes, %d above gob + key + expiry; the target is at most 20", got, got-floor)
	}
	rec := Record{Key: storageKey(id), Data: gobBytes, Expires: time.Unix(exp, 0), Modified: time.UnixMilli(numberAttr(t, item, attrModified))}
	if itemSize(rec) != got {
		t.Errorf("itemSize = %d; the stored item is %d bytes", itemSize(rec), got)
	}
}

// attrSize is DynamoDB's size of an attribute value of the kinds a session
// item holds.
func attrSize(t *testing.T, av types.AttributeValue) int {
	switch v := av.(type) {
	case *types.AttributeValueMemberS:
		return len(v.Value)
	case *types.AttributeValueMemberB:
		return len(v.Value)
	case *types.AttributeValueMemberN:
		var n int64
		if _, err := fmt.Sscan(v.Value, &n); err != nil {
			t.Fatal(err)
		}
		return numberSize(n)
	}
	t.Fatalf("unexpected attribute %#v", av)
	return 0
}

// TestUnchangedSaveOfManyKeysMakesNoCall saves a loaded, unchanged session
// of many keys several times. Its values include a []string, which
// GobSerializer leaves to encoding/gob, and encoding/gob writes map entries
// in random order, so its bytes differ from one encoding to the next: the
// store must still see that nothing changed and make no write.
func TestUnchangedSaveOfManyKeysMakesNoCall(t *testing.T) {
	x := newRig(t)
	values := map[any]any{"blob": noise(64), "roles": []string{"admin", "editor"}}
	for i := range 8 {
		values[fmt.Sprintf("k%d", i)] = i
	}
	if _, fast, _ := gobwire.Encode(values, nil); fast {
		t.Fatal("the values must go through encoding/gob")
	}
	_, c := create(t, x.store, values)
	for i := range 5 {
		x.meter.Take()
		r := request(c)
		sess, err := x.store.Get(r, benchCookie)
		if err != nil {
			t.Fatal(err)
		}
		if err := save(x.store, r, sess); err != nil {
			t.Fatal(err)
		}
		if u := x.meter.Take(); describeCalls(u) != "GetItem×1" {
			t.Fatalf("round %d: load and unchanged save made %s; want only the GetItem", i, describeCalls(u))
		}
	}
}
