package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynamostore/dynamostore/internal/dbtest"
	"github.com/dynamostore/dynamostore/internal/tableschema"
)

// TestMain runs the tests against DynamoDB Local (or $DYNAMODB_ENDPOINT);
// they fail when neither can be had.
func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

// testServer is the example server running in the test process, on a
// loopback port, the way main runs it: configuration from flags, a Store
// of its own, graceful shutdown when stopped.
type testServer struct {
	t      *testing.T
	cfg    config
	addr   string // host:port, kept across restarts
	url    string // http://host:port/
	cancel context.CancelFunc
	done   chan error
}

// startServer parses args as the server's command line (with no
// environment) and starts the server. It is stopped when the test ends.
func startServer(t *testing.T, args ...string) *testServer {
	t.Helper()
	cfg, err := loadConfig(args, func(string) string { return "" }, testWriter{t})
	if err != nil {
		t.Fatalf("loadConfig(%q): %v", args, err)
	}
	s := &testServer{t: t, cfg: cfg, addr: cfg.addr}
	s.start()
	t.Cleanup(s.stop)
	return s
}

// start listens on s.addr (the same port again on a restart) and serves
// until stop; it returns once the server has printed its URL, that is once
// the Store is open and the server accepts requests.
func (s *testServer) start() {
	s.t.Helper()
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("listen: %v", err)
	}
	s.addr = ln.Addr().String()
	s.url = "http://" + s.addr + "/"
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.done = make(chan error, 1)
	ready := newReadyWriter()
	log := slog.New(slog.NewTextHandler(testWriter{s.t}, nil))
	go func() {
		s.done <- serve(ctx, s.cfg, ln, func(string) string { return "" }, log, ready)
	}()
	select {
	case <-ready.c:
	case err := <-s.done:
		s.done <- err
		s.t.Fatalf("server stopped before it was ready: %v", err)
	case <-time.After(3 * time.Minute):
		s.t.Fatal("server not ready after 3 minutes")
	}
}

// stop shuts the server down as SIGINT would, and waits for serve to
// return. It is safe to call more than once.
func (s *testServer) stop() {
	s.t.Helper()
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	if err := <-s.done; err != nil {
		s.t.Errorf("serve returned %v after shutdown", err)
	}
}

// restart stops the server and starts it again with the same configuration,
// hence a new Store on the same table with the same key file.
func (s *testServer) restart() {
	s.t.Helper()
	s.stop()
	s.start()
}

// readyWriter stands in for stdout; its channel is closed on the first
// write, which is the line with the URL.
type readyWriter struct {
	c    chan struct{}
	once sync.Once
}

func newReadyWriter() *readyWriter { return &readyWriter{c: make(chan struct{})} }

func (w *readyWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.c) })
	return len(p), nil
}

// testWriter sends what is written to it to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// table reads the session table directly, as an operator would.
type table struct {
	t      *testing.T
	client *dynamodb.Client
	name   string
}

// newTable returns a fresh table name (the server creates the table with
// -create-table; the table is deleted when the test ends) and a reader for
// it.
func newTable(t *testing.T) *table {
	dbtest.RequireTTL(t) // -create-table enables TTL
	c := dbtest.Client(t)
	return &table{t: t, client: c, name: dbtest.TableName(t, c)}
}

// hasSession reports whether the table has a row for the session ID.
func (tb *table) hasSession(id string) bool {
	tb.t.Helper()
	out, err := tb.client.GetItem(tb.t.Context(), &dynamodb.GetItemInput{
		TableName:      aws.String(tb.name),
		Key:            map[string]types.AttributeValue{tableschema.KeyAttr: &types.AttributeValueMemberS{Value: tableschema.StorageKey(id)}},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		tb.t.Fatalf("GetItem: %v", err)
	}
	return out.Item != nil
}

// count returns the number of rows in the table.
func (tb *table) count() int {
	tb.t.Helper()
	out, err := tb.client.Scan(tb.t.Context(), &dynamodb.ScanInput{
		TableName:      aws.String(tb.name),
		Select:         types.SelectCount,
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		tb.t.Fatalf("Scan: %v", err)
	}
	return int(out.Count)
}

// requireRow fails the test unless the table's holding of a row for id is
// want.
func (tb *table) requireRow(id string, want bool, what string) {
	tb.t.Helper()
	if got := tb.hasSession(id); got != want {
		state := map[bool]string{true: "present", false: "gone"}
		tb.t.Fatalf("%s: row is %s, want %s", what, state[got], state[want])
	}
}

func TestAppURL(t *testing.T) {
	tests := []struct {
		addr string
		want string
	}{
		{"127.0.0.1:8080", "http://127.0.0.1:8080/"},
		{"0.0.0.0:8080", "http://localhost:8080/"},
		{"[::]:9000", "http://localhost:9000/"},
		{"[::1]:9000", "http://[::1]:9000/"},
	}
	for _, tt := range tests {
		addr, err := net.ResolveTCPAddr("tcp", tt.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := appURL(addr); got != tt.want {
			t.Errorf("appURL(%s) = %s, want %s", tt.addr, got, tt.want)
		}
	}
}

func TestRunStopsOnContext(t *testing.T) {
	tb := newTable(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	ready := newReadyWriter()
	args := []string{"-addr", "127.0.0.1:0", "-endpoint", dbtest.Endpoint(t), "-table", tb.name,
		"-create-table", "-key-file", dir + "/key"}
	go func() { errc <- run(ctx, args, func(string) string { return "" }, ready, testWriter{t}) }()
	select {
	case <-ready.c:
	case err := <-errc:
		t.Fatalf("run returned before serving: %v", err)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("run after cancel = %v, want nil", err)
	}
}

func TestRunMissingTable(t *testing.T) {
	tb := newTable(t)
	args := []string{"-addr", "127.0.0.1:0", "-endpoint", dbtest.Endpoint(t), "-table", tb.name,
		"-key-file", t.TempDir() + "/key"}
	err := run(t.Context(), args, func(string) string { return "" }, testWriter{t}, testWriter{t})
	if err == nil || !strings.Contains(err.Error(), "-create-table") {
		t.Fatalf("run without the table = %v, want an error that suggests -create-table", err)
	}
}

func TestRunHelp(t *testing.T) {
	var out strings.Builder
	err := run(t.Context(), []string{"-h"}, func(string) string { return "" }, &out, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("run -h = %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"usage: server", "-endpoint", "-create-table", "-reap-interval", "-touch-after", "-key-file", envSessionKey} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help does not mention %s:\n%s", want, out.String())
		}
	}
}
