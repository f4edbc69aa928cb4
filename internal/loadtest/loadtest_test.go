package loadtest

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/sessions"

	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/internal/dbtest"
	"github.com/dynamostore/dynamostore/internal/ddbmeter"
)

// The load test runs small by default, so that it can stay in the ordinary
// test run; scripts/bench --load runs it larger, e.g.
//
//	go test ./internal/loadtest -run TestLoad -v -loadtest.clients 64 -loadtest.requests 500 -loadtest.duration 60s
var (
	flagClients  = flag.Int("loadtest.clients", 8, "concurrent clients, each with its own cookie jar")
	flagRequests = flag.Int("loadtest.requests", 25, "requests per client")
	flagDuration = flag.Duration("loadtest.duration", 30*time.Second, "time limit of each store's run")
	flagWrites   = flag.Float64("loadtest.writes", 0.2, "share of requests that change the session")
	flagOut      = flag.String("loadtest.out", "", "also write the results table (Markdown) to this file")
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

var (
	hashKey  = []byte("0123456789abcdef0123456789abcdef")
	blockKey = []byte("fedcba9876543210fedcba9876543210")
)

// touchAfter is the store's touchAfter in TestLoad: its default, 10 seconds.
const touchAfter = 10 * time.Second

// TestLoad drives the same handler on dynamostore (DynamoDB Local) and on
// gorilla's FilesystemStore, one after the other, and reports throughput,
// latency percentiles and DynamoDB calls per HTTP request. It fails on any
// failed request, and when the store makes more DynamoDB calls than one per
// request, plus one per write, plus one expiry touch per session and
// touch interval.
func TestLoad(t *testing.T) {
	cfg := Config{Clients: *flagClients, Requests: *flagRequests, Duration: *flagDuration, WriteRatio: *flagWrites}
	ctx := t.Context()

	counter := &ddbmeter.Meter{}
	client := dbtest.Client(t, counter.Option)
	table := dbtest.NewTable(t, client)
	store, err := dynamostore.NewStore(ctx, table, dynamostore.WithClient(client),
		dynamostore.WithKeyPairs(hashKey, blockKey), dynamostore.WithTouchAfter(touchAfter),
		dynamostore.WithReaper(dynamostore.ReaperOptions{Interval: -1}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	fs := sessions.NewFilesystemStore(t.TempDir(), hashKey, blockKey)

	type row struct {
		name  string
		res   Result
		usage ddbmeter.Usage
	}
	var rows []row
	for _, s := range []struct {
		name  string
		store sessions.Store
	}{
		{"dynamostore (DynamoDB Local)", store},
		{"gorilla FilesystemStore", fs},
	} {
		counter.Take()
		res, err := Run(ctx, NewHandler(s.store), cfg)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if res.Failures > 0 {
			t.Errorf("%s: %d failed requests; the first: %s", s.name, res.Failures, res.FirstFailure)
		}
		rows = append(rows, row{s.name, res, counter.Take()})
	}

	ddb := rows[0]
	total := ddb.usage.Total()
	touches := cfg.Clients * (int(ddb.res.Elapsed/touchAfter) + 1)
	if limit := ddb.res.Requests + ddb.res.Writes + touches; total > limit {
		t.Errorf("dynamostore made %d DynamoDB calls for %d requests (%d writes); at most %d expected", total, ddb.res.Requests, ddb.res.Writes, limit)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "%d clients × %d requests, %.0f%% writes, loopback, GOMAXPROCS %d\n\n", cfg.Clients, cfg.Requests, cfg.WriteRatio*100, runtime.GOMAXPROCS(0))
	b.WriteString("| store | requests | throughput (req/s) | p50 | p99 | DynamoDB calls per request | RCU / WCU per request |\n")
	b.WriteString("|---|---:|---:|---:|---:|---|---|\n")
	for _, r := range rows {
		perReq, units := "—", "—"
		if n := r.usage.Total(); n > 0 {
			req := float64(r.res.Requests)
			perReq = fmt.Sprintf("%.2f (%s)", float64(n)/req, describe(r.usage.Calls, r.res.Requests))
			units = fmt.Sprintf("%.2f / %.2f", r.usage.RCU/req, r.usage.WCU/req)
		}
		fmt.Fprintf(&b, "| %s | %d | %.0f | %s | %s | %s | %s |\n", r.name, r.res.Requests, r.res.Throughput(),
			r.res.P50.Round(10*time.Microsecond), r.res.P99.Round(10*time.Microsecond), perReq, units)
	}
	t.Log("\n" + b.String())
	if *flagOut != "" {
		if err := os.WriteFile(*flagOut, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// describe lists calls per request by operation.
func describe(m map[string]int, requests int) string {
	var parts []string
	for _, op := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %.2f", op, float64(m[op])/float64(requests)))
	}
	return strings.Join(parts, ", ")
}
