// Package loadtest drives a session-using HTTP handler with many concurrent
// clients, each with its own cookie jar, and measures throughput and
// latency. It serves the store's bounded load test (loadtest_test.go),
// which runs the same handler on dynamostore and on gorilla's
// FilesystemStore in one run.
//
// Everything stays on the loopback interface, and every run stops by
// itself after a fixed number of requests or a time limit, whichever comes
// first.
package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/sessions"
)

// SessionName is the name of the session cookie the handler uses.
const SessionName = "load"

// NewHandler returns a minimal app on store: GET /read loads the session
// and saves it unchanged (the common request); POST /write counts a visit
// in it and saves it. A client's first request creates its session with a
// user string, a counter and 1 KB of bytes, the reference session of the
// store's benchmarks.
func NewHandler(store sessions.Store) http.Handler {
	blob := make([]byte, 1024)
	_, _ = rand.NewChaCha8([32]byte{}).Read(blob)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, err := store.Get(r, SessionName)
		if err != nil {
			http.Error(w, "session unavailable", http.StatusServiceUnavailable)
			return
		}
		if sess.IsNew {
			sess.Values["user"] = "ada@example.com"
			sess.Values["visits"] = 0
			sess.Values["blob"] = blob
		}
		if r.Method == http.MethodPost {
			n, _ := sess.Values["visits"].(int)
			sess.Values["visits"] = n + 1
		}
		if err := sess.Save(r, w); err != nil {
			http.Error(w, "session not saved", http.StatusInternalServerError)
			return
		}
		_, _ = fmt.Fprintf(w, "visits=%v\n", sess.Values["visits"])
	})
}

// Config bounds and shapes a run.
type Config struct {
	// Clients is the number of concurrent clients, each with its own
	// cookie jar (its own session). Default 8.
	Clients int
	// Requests is the number of requests each client makes. Default 25.
	Requests int
	// Duration stops the run early when it is reached. Default 1 minute.
	Duration time.Duration
	// WriteRatio is the share of requests that change the session
	// (POST /write); the others only read it. Default 0.2.
	WriteRatio float64
	// Seed makes the mix of reads and writes reproducible. Default 1.
	Seed uint64
}

func (c Config) withDefaults() Config {
	if c.Clients <= 0 {
		c.Clients = 8
	}
	if c.Requests <= 0 {
		c.Requests = 25
	}
	if c.Duration <= 0 {
		c.Duration = time.Minute
	}
	if c.WriteRatio <= 0 {
		c.WriteRatio = 0.2
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	return c
}

// Result is what a run measured.
type Result struct {
	Requests int           // requests completed with status 200
	Failures int           // requests that failed or did not return 200
	Writes   int           // how many of the requests were writes
	Elapsed  time.Duration // from the first request to the last response
	P50, P99 time.Duration // latency percentiles of completed requests
	// FirstFailure describes the first failure, if any.
	FirstFailure string
}

// Throughput returns completed requests per second.
func (r Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// Run serves h on a loopback test server and drives it with cfg.Clients
// concurrent clients until each has made cfg.Requests requests, cfg.Duration
// has passed or ctx is done.
func Run(ctx context.Context, h http.Handler, cfg Config) (Result, error) {
	cfg = cfg.withDefaults()
	srv := httptest.NewServer(h)
	defer srv.Close()
	transport := &http.Transport{MaxIdleConnsPerHost: cfg.Clients, MaxConnsPerHost: cfg.Clients}
	defer transport.CloseIdleConnections()

	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	type clientResult struct {
		latencies []time.Duration
		writes    int
		failures  int
		first     string
	}
	results := make([]clientResult, cfg.Clients)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range cfg.Clients {
		jar, err := cookiejar.New(nil)
		if err != nil {
			return Result{}, err
		}
		client := &http.Client{Jar: jar, Transport: transport}
		rng := rand.New(rand.NewPCG(cfg.Seed, uint64(i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := &results[i]
			res.latencies = make([]time.Duration, 0, cfg.Requests)
			for n := 0; n < cfg.Requests && ctx.Err() == nil; n++ {
				write := rng.Float64() < cfg.WriteRatio
				began := time.Now()
				err := do(ctx, client, srv.URL, write)
				switch {
				case err == nil:
					res.latencies = append(res.latencies, time.Since(began))
					if write {
						res.writes++
					}
				case ctx.Err() != nil:
					// The time limit cut this request short: not a failure.
				default:
					res.failures++
					if res.first == "" {
						res.first = err.Error()
					}
				}
			}
		}()
	}
	wg.Wait()
	var out Result
	out.Elapsed = time.Since(start)
	var all []time.Duration
	for _, r := range results {
		all = append(all, r.latencies...)
		out.Writes += r.writes
		out.Failures += r.failures
		if out.FirstFailure == "" {
			out.FirstFailure = r.first
		}
	}
	out.Requests = len(all)
	slices.Sort(all)
	out.P50, out.P99 = percentile(all, 0.50), percentile(all, 0.99)
	if out.Requests == 0 {
		return out, errors.New("loadtest: no request completed")
	}
	return out, nil
}

// do makes one read or write request and checks its answer.
func do(ctx context.Context, c *http.Client, base string, write bool) error {
	method, path := http.MethodGet, "/read"
	if write {
		method, path = http.MethodPost, "/write"
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: status %d", method, path, resp.StatusCode)
	}
	return nil
}

// percentile returns the p-quantile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
