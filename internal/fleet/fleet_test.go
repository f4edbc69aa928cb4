package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dynamostore/dynamostore/internal/dbtest"
)

var (
	flagProcs   = flag.Int("fleet.procs", 3, "app processes in TestFleet")
	flagClients = flag.Int("fleet.clients", 24, "concurrent clients, each with its own cookie jar")
	flagHistory = flag.String("fleet.history", "mixed",
		"gob histories of the processes: mixed (plain, struct-map, map-struct in turn) or identical (all plain)")
	flagShapes = flag.String("fleet.shapes", "",
		"process counts for TestFleetShapes, comma-separated (e.g. 1,3,6): the same fault-free traffic on each; empty skips it")
	flagCycles = flag.Int("fleet.cycles", 6, "scripted visits per client in TestFleetShapes")
)

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "fleet-app-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	code := dbtest.Main(m)
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// histories returns the gob history of each of n processes.
func histories(n int) []string {
	mixed := []string{"plain", "struct-map", "map-struct"}
	h := make([]string, n)
	for i := range h {
		h[i] = "plain"
		if *flagHistory == "mixed" {
			h[i] = mixed[i%len(mixed)]
		}
	}
	return h
}

// Timeline of TestFleet: a clean phase, throttling on every process, a
// pause, one process killed with SIGKILL and started again, and another
// clean phase.
const (
	cleanPhase     = 4 * time.Second
	throttlePhase  = 3 * time.Second
	throttleShare  = 300 // per thousand DynamoDB calls
	settlePhase    = 500 * time.Millisecond
	secondClean    = 3 * time.Second
	windowMargin   = 300 * time.Millisecond // around faults, where cost is not measured
	killedProcess  = 1
	finalDeadMax   = 2 // dead cookies per client replayed on every process at the end
	runTimeout     = 45 * time.Second
	shapeTimeLimit = 40 * time.Second
)

// TestFleet runs the app as a fleet of processes (three unless
// -fleet.procs says otherwise) that share one table behind a round-robin
// proxy, with differing gob histories as real deployments have, drives
// it with many clients while throttling DynamoDB and killing a process,
// and checks the invariants a to e (see the report it logs).
func TestFleet(t *testing.T) {
	r := newRun(t, *flagProcs)
	r.drive(func(ctx context.Context, stop chan struct{}) {
		defer close(stop)
		r.chaos(ctx)
	}, 0)
	r.finish()
	r.report(true)
}

// TestFleetShapes runs the same fault-free traffic (-fleet.clients clients
// making -fleet.cycles scripted visits each) on fleets of each size
// -fleet.shapes lists, to compare throughput, latency and cost per request
// by fleet size. It is skipped unless -fleet.shapes is given.
func TestFleetShapes(t *testing.T) {
	if *flagShapes == "" {
		t.Skip("no -fleet.shapes given (e.g. -fleet.shapes=1,3,6)")
	}
	for _, s := range strings.Split(*flagShapes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 16 {
			t.Fatalf("-fleet.shapes: %q is not a process count from 1 to 16", s)
		}
		t.Run(fmt.Sprintf("procs=%d", n), func(t *testing.T) {
			r := newRun(t, n)
			r.drive(nil, *flagCycles)
			r.finish()
			r.report(false)
		})
	}
}

// window is a span of time with a fault in it.
type window struct {
	what       string
	start, end time.Time
}

// run is one fleet and its clients.
type run struct {
	t         *testing.T
	cfg       appConfig
	procs     []*proc
	lb        *balancer
	proxyURL  *url.URL
	transport *http.Transport
	bare      *http.Client // no jar: for replaying a given cookie
	clients   []*client
	tally     *tally
	ctx       context.Context

	mu      sync.Mutex
	windows []window
	clean   []window // fault-free phases, for throughput
	kills   int
	started time.Time
	elapsed time.Duration
}

func newRun(t *testing.T, n int) *run {
	bin := appBinary(t)
	db := dbtest.Client(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	r := &run{
		t:     t,
		cfg:   appConfig{bin: bin, endpoint: dbtest.Endpoint(t), table: dbtest.NewTable(t, db), hashKey: hex.EncodeToString(key)},
		lb:    newBalancer(n),
		tally: newTally(),
	}
	t.Cleanup(r.lb.close)
	ctx, cancel := context.WithTimeout(t.Context(), runTimeout)
	t.Cleanup(cancel)
	r.ctx = ctx
	r.proxyURL, _ = url.Parse(r.lb.srv.URL)
	r.transport = &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second}
	t.Cleanup(r.transport.CloseIdleConnections)
	r.bare = &http.Client{Transport: r.transport, Timeout: 15 * time.Second}

	hist := histories(n)
	r.procs = make([]*proc, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.procs[i], errs[i] = startProc(t, r.cfg, i, hist[i])
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
		r.lb.set(i, r.procs[i].url)
	}
	for i := range *flagClients {
		r.clients = append(r.clients, newClient(r, i))
	}
	return r
}

// drive runs every client until stop is closed (by script, which runs
// alongside) or, with script nil, for cycles scripted visits each.
func (r *run) drive(script func(context.Context, chan struct{}), cycles int) {
	stop := make(chan struct{})
	r.started = time.Now()
	var wg sync.WaitGroup
	for _, c := range r.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; script != nil || n < cycles; n++ {
				select {
				case <-stop:
					return
				default:
				}
				if r.ctx.Err() != nil {
					return
				}
				c.cycle(r.ctx, stop)
			}
		}()
	}
	if script != nil {
		script(r.ctx, stop)
	} else {
		go func() {
			select {
			case <-time.After(shapeTimeLimit):
				close(stop)
			case <-r.ctx.Done():
			}
		}()
	}
	wg.Wait()
	r.elapsed = time.Since(r.started)
	if script == nil {
		r.clean = append(r.clean, window{"run", r.started, r.started.Add(r.elapsed)})
	}
	if r.ctx.Err() != nil {
		r.t.Errorf("the run did not end within %v", runTimeout)
	}
}

// chaos is TestFleet's timeline.
func (r *run) chaos(ctx context.Context) {
	t := r.t
	sleep := func(d time.Duration) bool {
		select {
		case <-time.After(d):
			return true
		case <-ctx.Done():
			return false
		}
	}
	mark := func(list *[]window, what string, start time.Time) {
		r.mu.Lock()
		*list = append(*list, window{what, start, time.Now()})
		r.mu.Unlock()
	}

	start := time.Now()
	if !sleep(cleanPhase) {
		return
	}
	mark(&r.clean, "clean", start)

	start = time.Now()
	r.throttle(ctx, throttleShare)
	sleep(throttlePhase)
	r.throttle(ctx, 0)
	mark(&r.windows, "throttle", start)
	if !sleep(settlePhase) {
		return
	}

	if k := killedProcess % len(r.procs); len(r.procs) > 1 {
		start = time.Now()
		old := r.procs[k]
		old.kill()
		r.lb.set(k, nil)
		r.kills++
		p, err := startProc(t, r.cfg, k, old.history)
		if err != nil {
			t.Errorf("restarting process %d: %v", k, err)
		} else {
			r.procs[k] = p
			r.lb.set(k, p.url)
		}
		mark(&r.windows, fmt.Sprintf("kill -9 process %d, restart", k), start)
		if !sleep(settlePhase) {
			return
		}
	}
	start = time.Now()
	if sleep(secondClean) {
		mark(&r.clean, "clean", start)
	}
}

// throttle sets the share of DynamoDB calls every process answers with a
// throttling error.
func (r *run) throttle(ctx context.Context, permille int) {
	for _, p := range r.procs {
		if err := p.admin(ctx, http.MethodPost, "/admin/faults?permille="+strconv.Itoa(permille)); err != nil {
			r.t.Errorf("switching throttling to %d‰: %v", permille, err)
		}
	}
}

// finish runs the final checks: every client's live session on every
// process directly, and its last dead cookies on every process.
func (r *run) finish() {
	urls := make([]*url.URL, len(r.procs))
	for i, p := range r.procs {
		urls[i] = p.url
	}
	var wg sync.WaitGroup
	for _, c := range r.clients {
		if c.jar == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.final(r.ctx, urls, finalDeadMax)
		}()
	}
	wg.Wait()
}

// nearFault reports whether rec ran during a fault window or within
// windowMargin of one.
func (r *run) nearFault(rec *record) bool {
	for _, w := range r.windows {
		if rec.end.After(w.start.Add(-windowMargin)) && rec.start.Before(w.end.Add(windowMargin)) {
			return true
		}
	}
	return false
}

// measured reports whether rec counts for the cost and latency figures:
// acknowledged, away from faults, with no DynamoDB call retried.
func (r *run) measured(rec *record) bool {
	return rec.status == http.StatusOK && rec.ok && !rec.rep.retried() && !r.nearFault(rec)
}

// report logs the run's figures and fails the test on any violation.
func (r *run) report(chaos bool) {
	t := r.t
	var all []*record
	for _, c := range r.clients {
		for i := range c.recs {
			all = append(all, &c.recs[i])
		}
	}
	n := len(r.procs)

	// Invariant e, and the cost matrix: acknowledged reads of a loaded
	// session, away from faults, whose last write is known.
	type cell struct {
		reads, calls, gets int
		wcu                float64
	}
	matrix := make([][]cell, n)
	for i := range matrix {
		matrix[i] = make([]cell, n)
	}
	for _, rec := range all {
		if (rec.kind != kindAnon && rec.kind != kindRead) || !r.measured(rec) || !rec.rep.Loaded ||
			rec.lastWriter < 0 || rec.lastWriter >= n || rec.rep.Proc < 0 || rec.rep.Proc >= n {
			continue
		}
		c := &matrix[rec.lastWriter][rec.rep.Proc]
		c.reads++
		c.calls += rec.rep.calls()
		c.gets += rec.rep.Calls["GetItem"]
		c.wcu += rec.rep.WCU
		r.tally.check(invCost, rec.rep.calls() == 1 && rec.rep.Calls["GetItem"] == 1 && rec.rep.WCU == 0,
			"%s written by process %d, read on process %d: calls %v, %.1f WCU",
			rec.kind, rec.lastWriter, rec.rep.Proc, rec.rep.Calls, rec.rep.WCU)
	}

	var b strings.Builder
	hist := make([]string, n)
	for i, p := range r.procs {
		hist[i] = p.history
	}
	statuses := map[int]int{}
	perProc := make([]int, n)
	var throttled, retried, proxyErrs, noAnswer, errsOutside int
	classes := map[string]int{}
	for _, rec := range all {
		statuses[rec.status]++
		switch {
		case rec.status == 0:
			noAnswer++
		case rec.proxyErr:
			proxyErrs++
		case rec.ok:
			if rec.rep.Proc >= 0 && rec.rep.Proc < n {
				perProc[rec.rep.Proc]++
			}
			throttled += int(rec.rep.Throttled)
			if rec.rep.retried() {
				retried++
			}
			for _, cl := range []string{rec.rep.GetErr, rec.rep.SaveErr} {
				if cl != "" {
					classes[cl]++
				}
			}
			if rec.status != http.StatusOK && !r.nearFault(rec) {
				errsOutside++
			}
		}
	}
	fmt.Fprintf(&b, "fleet: %d processes (gob histories %s), %d clients, app built in %v (race detector %v), traffic %.1fs\n",
		n, strings.Join(hist, ", "), len(r.clients), buildTook.Round(time.Millisecond), raceEnabled, r.elapsed.Seconds())
	fmt.Fprintf(&b, "requests %d: %s; per process %v; proxy 502 %d, no answer %d\n",
		len(all), statusLine(statuses), perProc, proxyErrs, noAnswer)
	if chaos {
		var ws []string
		for _, w := range r.windows {
			ws = append(ws, fmt.Sprintf("%s at +%.1fs for %.1fs", w.what, w.start.Sub(r.started).Seconds(), w.end.Sub(w.start).Seconds()))
		}
		fmt.Fprintf(&b, "faults: %s; kills %d; throttle share %d‰\n", strings.Join(ws, "; "), r.kills, throttleShare)
	}
	fmt.Fprintf(&b, "throttled DynamoDB calls %d; requests with a retried call %d; error classes %v; errors away from faults %d\n",
		throttled, retried, classes, errsOutside)

	fmt.Fprintf(&b, "\n%-40s %8s %10s\n", "invariant", "checked", "violations")
	for _, inv := range invariants {
		fmt.Fprintf(&b, "%-40s %8d %10d\n", inv, r.tally.checked[inv], r.tally.violations[inv])
	}

	fmt.Fprintf(&b, "\ncost matrix: DynamoDB calls per unchanged read (reads), row = process of the last write, column = process serving the read\n%8s", "")
	for j := range n {
		fmt.Fprintf(&b, " %16s", fmt.Sprintf("read on %d", j))
	}
	b.WriteString("\n")
	for i := range n {
		fmt.Fprintf(&b, "%8s", fmt.Sprintf("write %d", i))
		for j := range n {
			c := matrix[i][j]
			if c.reads == 0 {
				fmt.Fprintf(&b, " %16s", "-")
				continue
			}
			fmt.Fprintf(&b, " %16s", fmt.Sprintf("%.2f (%d) %.1fW", float64(c.calls)/float64(c.reads), c.reads, c.wcu/float64(c.reads)))
		}
		b.WriteString("\n")
	}

	// Throughput and latency without faults, and cost by kind.
	var reqs int
	var span time.Duration
	for _, w := range r.clean {
		span += w.end.Sub(w.start)
		for _, rec := range all {
			if !rec.start.Before(w.start) && !rec.end.After(w.end) {
				reqs++
			}
		}
	}
	var lat []time.Duration
	for _, rec := range all {
		if r.measured(rec) && r.inClean(rec) {
			lat = append(lat, rec.end.Sub(rec.start))
		}
	}
	if span > 0 {
		fmt.Fprintf(&b, "\nwithout faults: %.0f req/s over %.1fs, latency p50 %v p99 %v (%d requests)\n",
			float64(reqs)/span.Seconds(), span.Seconds(), pct(lat, 50), pct(lat, 99), len(lat))
	}
	fmt.Fprintf(&b, "\n%-15s %6s %9s %7s %7s %7s %7s %7s %7s %9s %9s\n",
		"kind", "n", "calls/req", "Get", "Put", "Update", "Delete", "RCU", "WCU", "p50", "p99")
	for _, k := range kinds {
		var cnt, calls int
		var ops = map[string]int{}
		var rcu, wcu float64
		var kl []time.Duration
		for _, rec := range all {
			if rec.kind != k || !r.measured(rec) || !r.inClean(rec) {
				continue
			}
			cnt++
			calls += rec.rep.calls()
			for op, v := range rec.rep.Calls {
				ops[op] += v
			}
			rcu += rec.rep.RCU
			wcu += rec.rep.WCU
			kl = append(kl, rec.end.Sub(rec.start))
		}
		if cnt == 0 {
			continue
		}
		f := func(v float64) float64 { return v / float64(cnt) }
		fmt.Fprintf(&b, "%-15s %6d %9.2f %7.2f %7.2f %7.2f %7.2f %7.2f %7.2f %9v %9v\n", k, cnt, f(float64(calls)),
			f(float64(ops["GetItem"])), f(float64(ops["PutItem"])), f(float64(ops["UpdateItem"])), f(float64(ops["DeleteItem"])),
			f(rcu), f(wcu), pct(kl, 50), pct(kl, 99))
	}
	t.Log("\n" + b.String())

	for _, inv := range invariants {
		if v := r.tally.violations[inv]; v > 0 {
			t.Errorf("%s: %d of %d checks failed, e.g.\n\t%s", inv, v, r.tally.checked[inv], strings.Join(r.tally.examples[inv], "\n\t"))
		}
	}
	if r.tally.checked[invCost] == 0 {
		t.Errorf("%s: no read was measured", invCost)
	}
}

// inClean reports whether rec ran inside a fault-free phase.
func (r *run) inClean(rec *record) bool {
	for _, w := range r.clean {
		if !rec.start.Before(w.start) && !rec.end.After(w.end) {
			return true
		}
	}
	return false
}

func statusLine(m map[int]int) string {
	var keys []int
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		name := strconv.Itoa(k)
		if k == 0 {
			name = "none"
		}
		parts = append(parts, fmt.Sprintf("%s %d", name, m[k]))
	}
	return strings.Join(parts, ", ")
}

// pct returns the p-th percentile of ds, rounded for display.
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	return s[i].Round(10 * time.Microsecond)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
