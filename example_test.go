package dynamostore_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/internal/dbtest"
	"github.com/gorilla/sessions"
)

// The examples that print output run against the DynamoDB the tests use
// (DYNAMODB_ENDPOINT), each on a table of its own that it deletes at the
// end. Keys are fixed here to keep the examples short; real keys come
// from a secret store, never from source code.
var (
	hashKey    = []byte("example hash key, 32 bytes long!")
	oldHashKey = []byte("retired hash key, 32 bytes long!")
)

// exampleTable returns a fresh table name for one example, once the test
// DynamoDB is up and DYNAMODB_ENDPOINT names it.
func exampleTable() string {
	if _, err := dbtest.Start(); err != nil {
		log.Fatal(err)
	}
	return "example-" + strings.ToLower(rand.Text())
}

// dropExampleTable deletes an example's table.
func dropExampleTable(table string) {
	client := dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(os.Getenv("DYNAMODB_ENDPOINT")),
		Credentials:  credentials.NewStaticCredentialsProvider("local", "local", ""),
	})
	if _, err := client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)}); err != nil {
		log.Printf("deleting example table %s: %v", table, err)
	}
}

// localOptions returns opts after the options of a Store on the test
// DynamoDB that creates its table and runs no reaper goroutine.
func localOptions(opts ...dynamostore.Option) []dynamostore.Option {
	return append([]dynamostore.Option{
		dynamostore.WithEndpoint(os.Getenv("DYNAMODB_ENDPOINT")),
		dynamostore.WithAutoCreate(dynamostore.TableOptions{OnDemand: true}),
		dynamostore.WithReaper(dynamostore.ReaperOptions{Interval: -1}),
	}, opts...)
}

// localStore returns a Store on a new table of the test DynamoDB with the
// given options, and a function that closes it and deletes the table.
func localStore(opts ...dynamostore.Option) (*dynamostore.Store, func()) {
	table := exampleTable()
	store, err := dynamostore.NewStore(context.Background(), table, localOptions(opts...)...)
	if err != nil {
		log.Fatal(err)
	}
	return store, func() { _ = store.Close(); dropExampleTable(table) }
}

// saveSession stores values in a new session named "session" and returns
// the cookie the response set.
func saveSession(store sessions.Store, values map[string]any) *http.Cookie {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	sess, err := store.Get(r, "session")
	if err != nil {
		log.Fatal(err)
	}
	for k, v := range values {
		sess.Values[k] = v
	}
	w := httptest.NewRecorder()
	if err := sess.Save(r, w); err != nil {
		log.Fatal(err)
	}
	return w.Result().Cookies()[0]
}

// loadSession loads the "session" session of a request carrying cookie.
func loadSession(store sessions.Store, cookie *http.Cookie) (*sessions.Session, error) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(cookie)
	return store.Get(r, "session")
}

// A Store built from an aws.Config that the application loaded, here with
// the default credential chain and a named profile. The Store builds its
// DynamoDB client from it.
func ExampleNewStore_awsConfig() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRegion("eu-west-1"),
		config.WithSharedConfigProfile("production"))
	if err != nil {
		log.Fatal(err)
	}
	store, err := dynamostore.NewStore(ctx, "sessions",
		dynamostore.WithAWSConfig(cfg),
		dynamostore.WithKeyPairs(hashKey))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		sess, _ := store.Get(r, "session")
		sess.Values["visits"] = visits(sess) + 1
		if err := sess.Save(r, w); err != nil {
			http.Error(w, "session unavailable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "visit %d\n", sess.Values["visits"])
	})
}

func visits(s *sessions.Session) int {
	n, _ := s.Values["visits"].(int)
	return n
}

// A Store on DynamoDB Local, for development and tests: WithEndpoint points
// it at the local server (with dummy credentials and region us-east-1,
// since the endpoint is on this machine) and WithAutoCreate creates the
// table on first use.
func ExampleNewStore_dynamoDBLocal() {
	ctx := context.Background()
	table := exampleTable()
	store, err := dynamostore.NewStore(ctx, table,
		dynamostore.WithEndpoint(os.Getenv("DYNAMODB_ENDPOINT")), // e.g. http://127.0.0.1:8000
		dynamostore.WithAutoCreate(dynamostore.TableOptions{OnDemand: true}),
		dynamostore.WithKeyPairs(hashKey))
	if err != nil {
		log.Fatal(err)
	}
	defer dropExampleTable(table)
	defer store.Close()

	cookie := saveSession(store, map[string]any{"user": "ada"})
	sess, err := loadSession(store, cookie)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("user:", sess.Values["user"])
	// Output: user: ada
}

// Rotating the cookie signing key: the new key goes first and signs every
// cookie from now on; the retired key follows and still verifies the
// cookies it signed, until they expire and it can be dropped. Each
// argument pair is a hash key and a block key (nil: no encryption).
func ExampleWithKeyPairs_rotation() {
	ctx := context.Background()
	table := exampleTable()
	defer dropExampleTable(table)

	before, err := dynamostore.NewStore(ctx, table, localOptions(
		dynamostore.WithKeyPairs(oldHashKey))...)
	if err != nil {
		log.Fatal(err)
	}
	defer before.Close()
	cookie := saveSession(before, map[string]any{"user": "ada"})

	// The same table, after the rotation.
	after, err := dynamostore.NewStore(ctx, table, localOptions(
		dynamostore.WithKeyPairs(hashKey, nil, oldHashKey, nil))...)
	if err != nil {
		log.Fatal(err)
	}
	defer after.Close()

	sess, err := loadSession(after, cookie)
	fmt.Println("old cookie:", sess.Values["user"], err)

	fresh := saveSession(after, map[string]any{"user": "grace"})
	_, err = loadSession(before, fresh)
	fmt.Println("new cookie on a store without the new key:", errors.Is(err, dynamostore.ErrInvalidCookie))
	// Output:
	// old cookie: ada <nil>
	// new cookie on a store without the new key: true
}

// stringSerializer is a custom Serializer: it stores Values as a JSON object
// of strings, readable from any language, and refuses anything else.
type stringSerializer struct{}

func (stringSerializer) Serialize(values map[any]any) ([]byte, error) {
	m := make(map[string]string, len(values))
	for k, v := range values {
		ks, kok := k.(string)
		vs, vok := v.(string)
		if !kok || !vok {
			return nil, fmt.Errorf("%w: key %v: only strings are stored", dynamostore.ErrEncode, k)
		}
		m[ks] = vs
	}
	return json.Marshal(m)
}

func (stringSerializer) Deserialize(data []byte, values map[any]any) error {
	var m map[string]string
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("%w: %w", dynamostore.ErrDecode, err)
	}
	for k, v := range m {
		values[k] = v
	}
	return nil
}

// A custom Serializer decides how Values are stored. Errors wrap ErrEncode
// (Save writes nothing) or ErrDecode (Get returns a fresh session).
func ExampleWithSerializer() {
	store, done := localStore(
		dynamostore.WithKeyPairs(hashKey),
		dynamostore.WithSerializer(stringSerializer{}))
	defer done()

	cookie := saveSession(store, map[string]any{"theme": "dark"})
	sess, _ := loadSession(store, cookie)
	fmt.Println("theme:", sess.Values["theme"])

	r := httptest.NewRequest(http.MethodGet, "/", nil)
	sess, _ = store.Get(r, "session")
	sess.Values["visits"] = 3
	err := sess.Save(r, httptest.NewRecorder())
	fmt.Println("saving a number:", errors.Is(err, dynamostore.ErrEncode))
	// Output:
	// theme: dark
	// saving a number: true
}

// Tuning the reaper, which deletes expired rows between DynamoDB's own TTL
// deletions. Every Store of a fleet runs it; the lease (on by default)
// makes one of them reap at a time.
func ExampleWithReaper() {
	store, err := dynamostore.NewStore(context.Background(), "sessions",
		dynamostore.WithKeyPairs(hashKey),
		dynamostore.WithReaper(dynamostore.ReaperOptions{
			// A pass every 10 minutes (jittered), in 4 parallel scan
			// segments of at most 100 items a page, using no more than
			// 50 read and 25 write units a second. Rows are deleted 5
			// minutes after they expired (the default grace), so an
			// instance whose clock runs ahead does not delete sessions
			// the others still serve.
			Interval:   10 * time.Minute,
			Segments:   4,
			PageSize:   100,
			ReadUnits:  50,
			WriteUnits: 25,
			OnPass: func(st dynamostore.ReapStats, err error) {
				// Export st as metrics here.
			},
		}),
		dynamostore.WithLogger(slog.Default()))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
}

// A scheduled job (cron, a Lambda) that reaps without a Store: no signing
// keys, only the table and the reaper options. The Store's own goroutine
// is then turned off with a negative Interval.
func ExampleNewDynamoDBBackend_reap() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	backend, err := dynamostore.NewDynamoDBBackend(dynamodb.NewFromConfig(cfg), "sessions", dynamostore.DynamoDBOptions{})
	if err != nil {
		log.Fatal(err)
	}
	st, err := backend.Reap(ctx, dynamostore.ReaperOptions{Interval: -1})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("deleted %d expired sessions, %.1f capacity units", st.Deleted, st.ConsumedCapacity)
}

// Regenerate at sign-in gives the session a new ID and keeps its values,
// so that an ID planted before the sign-in (session fixation) is worth
// nothing after it: the old cookie no longer loads the session.
func ExampleStore_Regenerate() {
	store, done := localStore(dynamostore.WithKeyPairs(hashKey))
	defer done()
	anonymous := saveSession(store, map[string]any{"cart": "1 book"})

	// The sign-in handler, once the password checked out.
	signIn := func(w http.ResponseWriter, r *http.Request) {
		sess, _ := store.Get(r, "session")
		sess.Values["user"] = "ada"
		if err := store.Regenerate(r, w, sess); err != nil {
			http.Error(w, "session unavailable", http.StatusServiceUnavailable)
		}
	}
	r := httptest.NewRequest(http.MethodPost, "/sign-in", nil)
	r.AddCookie(anonymous)
	w := httptest.NewRecorder()
	signIn(w, r)
	signedIn := w.Result().Cookies()[0]

	sess, _ := loadSession(store, signedIn)
	fmt.Println("new cookie:", sess.Values["user"], sess.Values["cart"])
	sess, _ = loadSession(store, anonymous)
	fmt.Println("old cookie is new session:", sess.IsNew)
	// Output:
	// new cookie: ada 1 book
	// old cookie is new session: true
}

// A handler with the Store: Get loads the session (one GetItem), Save
// writes it back (no call at all when nothing changed). Every DynamoDB call
// uses the request's context, so its deadline bounds the request.
func Example() {
	ctx := context.Background()
	store, err := dynamostore.NewStore(ctx, "sessions",
		dynamostore.WithKeyPairs(hashKey), // 32 random bytes, kept secret
		dynamostore.WithAutoCreate(dynamostore.TableOptions{OnDemand: true}))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		sess, err := store.Get(r, "session")
		if dynamostore.Unavailable(err) {
			// DynamoDB did not answer: the session returned is a fresh
			// one, and Save would refuse it.
			log.Printf("loading session: %v", err)
			http.Error(w, "session unavailable", http.StatusServiceUnavailable)
			return
		}
		sess.Values["visits"] = visits(sess) + 1
		if err := sess.Save(r, w); err != nil {
			log.Printf("saving session: %v", err)
			http.Error(w, "session unavailable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "visit %d\n", visits(sess))
	})
}

// Get and Save through the plain sessions.Store interface: the second
// request, carrying the cookie of the first, sees what it saved.
func ExampleStore_Get() {
	store, done := localStore(dynamostore.WithKeyPairs(hashKey))
	defer done()

	cookie := saveSession(store, map[string]any{"visits": 1})
	sess, err := loadSession(store, cookie)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("visits:", sess.Values["visits"], "new:", sess.IsNew)
	// Output: visits: 1 new: false
}

// Flash messages (gorilla's AddFlash and Flashes) live in the session
// until read: the request that reads them must save the session.
func ExampleStore_Save_flashes() {
	store, done := localStore(dynamostore.WithKeyPairs(hashKey))
	defer done()

	r := httptest.NewRequest(http.MethodPost, "/settings", nil)
	sess, _ := store.Get(r, "session")
	sess.AddFlash("Settings saved")
	w := httptest.NewRecorder()
	if err := sess.Save(r, w); err != nil {
		log.Fatal(err)
	}
	cookie := w.Result().Cookies()[0]

	for range 2 {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.AddCookie(cookie)
		sess, _ := store.Get(r, "session")
		fmt.Println("flashes:", sess.Flashes())
		if err := sess.Save(r, httptest.NewRecorder()); err != nil {
			log.Fatal(err)
		}
	}
	// Output:
	// flashes: [Settings saved]
	// flashes: []
}

// Delete at sign-out removes the session's row and expires its cookie: a
// copy of the old cookie loads nothing afterwards.
func ExampleStore_Delete() {
	store, done := localStore(dynamostore.WithKeyPairs(hashKey))
	defer done()
	cookie := saveSession(store, map[string]any{"user": "ada"})

	r := httptest.NewRequest(http.MethodPost, "/sign-out", nil)
	r.AddCookie(cookie)
	sess, _ := store.Get(r, "session")
	w := httptest.NewRecorder()
	if err := store.Delete(r, w, sess); err != nil {
		log.Fatal(err)
	}
	fmt.Println("cookie MaxAge:", w.Result().Cookies()[0].MaxAge)

	sess, _ = loadSession(store, cookie)
	fmt.Println("old cookie is new session:", sess.IsNew)
	// Output:
	// cookie MaxAge: -1
	// old cookie is new session: true
}

// SetOwner at sign-in records whose session it is; RevokeOwner later ends
// every session of that user, on every device, after a password change
// say. It needs the owner index (TableOptions.OwnerIndex).
func ExampleStore_RevokeOwner() {
	store, done := localStore(dynamostore.WithKeyPairs(hashKey),
		dynamostore.WithAutoCreate(dynamostore.TableOptions{OnDemand: true, OwnerIndex: true}))
	defer done()

	signIn := func(user string) *http.Cookie {
		r := httptest.NewRequest(http.MethodPost, "/sign-in", nil)
		sess, _ := store.Get(r, "session")
		sess.Values["user"] = user
		store.SetOwner(r, sess, user)
		w := httptest.NewRecorder()
		if err := sess.Save(r, w); err != nil {
			log.Fatal(err)
		}
		return w.Result().Cookies()[0]
	}
	laptop, phone, other := signIn("ada"), signIn("ada"), signIn("grace")

	n, err := store.RevokeOwner(context.Background(), "ada")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("revoked:", n)
	for _, c := range []*http.Cookie{laptop, phone, other} {
		sess, _ := loadSession(store, c)
		fmt.Println("signed in:", !sess.IsNew)
	}
	// Output:
	// revoked: 2
	// signed in: false
	// signed in: false
	// signed in: true
}

// EnsureTable creates the session table (on-demand billing here, with the
// owner index), waits until it is active and turns DynamoDB's TTL on. It is
// safe to run at every deploy: an existing table is only checked.
func ExampleEnsureTable() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	err = dynamostore.EnsureTable(ctx, dynamodb.NewFromConfig(cfg), "sessions",
		dynamostore.TableOptions{OnDemand: true, OwnerIndex: true})
	if errors.Is(err, dynamostore.ErrInvalidOption) {
		log.Fatalf("the table cannot hold sessions: %v", err) // the message says how to fix it
	}
	if err != nil {
		log.Fatal(err)
	}
}

// How a handler tells the errors of a load apart: a cookie that does not
// verify, or a row that cannot be decoded, comes with a fresh session to
// use; any other error means DynamoDB did not answer.
func ExampleStore_New_errors() {
	store, done := localStore(dynamostore.WithKeyPairs(hashKey))
	defer done()

	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(&http.Cookie{Name: "session", Value: "forged"})
	sess, err := store.Get(r, "session")
	switch {
	case dynamostore.Unavailable(err):
		fmt.Println("answer 503 and retry later")
	case err != nil: // ErrInvalidCookie here; ErrDecode alike
		fmt.Println("fresh session:", sess.IsNew, errors.Is(err, dynamostore.ErrInvalidCookie))
	}
	// Output: fresh session: true true
}
