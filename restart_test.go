package dynamostore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/dynamostore/dynamostore/internal/dbtest"
)

// diskServer is a DynamoDB Local of the test's own that keeps its tables in
// a directory, started and stopped with scripts/dynamodb-local.
type diskServer struct {
	stateDir string
	endpoint string
}

// startDiskServer starts DynamoDB Local on dbPath with its own state
// directory; it is stopped when the test ends, or when the test binary
// dies.
func startDiskServer(t *testing.T, dbPath string) *diskServer {
	t.Helper()
	s := &diskServer{stateDir: filepath.Join(t.TempDir(), "state")}
	out, err := runScript("start", "--db-path", dbPath, "--state-dir", s.stateDir, "--watch-pid", strconv.Itoa(os.Getpid()))
	if err != nil {
		t.Fatalf("starting DynamoDB Local on %s: %v", dbPath, err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	s.endpoint = strings.TrimSpace(lines[len(lines)-1])
	if !strings.HasPrefix(s.endpoint, "http://") {
		t.Fatalf("scripts/dynamodb-local start printed %q", out)
	}
	t.Cleanup(func() {
		if _, err := runScript("stop", "--state-dir", s.stateDir); err != nil {
			t.Errorf("stopping DynamoDB Local: %v", err)
		}
	})
	return s
}

// kill sends SIGKILL to the server, as a crash would, and waits until the
// process is gone.
func (s *diskServer) kill(t *testing.T) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(s.stateDir, "pid"))
	if err != nil {
		t.Fatalf("reading the server's pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		t.Fatalf("bad pid %q", data)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", pid, err)
	}
	// The process is not our child, so it cannot be waited for: poll.
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still alive after SIGKILL", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func runScript(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join("scripts", "dynamodb-local")}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// A JVM that only uses its quick compiler starts DynamoDB Local in
	// about half the time, which is most of what this test waits for.
	cmd.Env = append(os.Environ(), "JAVA_TOOL_OPTIONS=-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%v: %s", err, stderr.String())
	}
	return stdout.String(), nil
}

// restartClient is a client for a server of the test's own, retrying
// briefly so that once the server is killed calls fail fast.
func restartClient(t *testing.T, endpoint string) *dynamodb.Client {
	return dbtest.Client(t, func(o *dynamodb.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.Retryer = retry.AddWithMaxBackoffDelay(retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = 3
		}), 20*time.Millisecond)
	})
}

// restartValues are the values of write u to session s of worker w: a
// checksum-like blob makes a partly written row detectable.
func restartValues(w, s, u int) map[any]any {
	blob := bytes.Repeat([]byte(fmt.Sprintf("%d/%d/%d;", w, s, u)), 300)
	return map[any]any{"w": w, "s": s, "u": u, "blob": blob}
}

func sameRestartValues(got, want map[any]any) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if b, ok := v.([]byte); ok {
			if gb, ok := got[k].([]byte); !ok || !bytes.Equal(gb, b) {
				return false
			}
		} else if got[k] != v {
			return false
		}
	}
	return true
}

// restartSession is what one worker did to one session: the cookie (once
// created), the last write acknowledged (-1: none), and whether the write
// after it failed (in doubt).
type restartSession struct {
	w, s    int
	cookie  *http.Cookie
	acked   int
	inDoubt bool
}

// TestRestartMidLoad runs a bounded load of saves from several goroutines
// against a DynamoDB Local that keeps its data on disk, kills it with
// SIGKILL in the middle, starts it again on the same files, and checks
// every session: each Save that returned nil is there, and each that
// failed is there whole or not at all.
func TestRestartMidLoad(t *testing.T) {
	// Most of the time is two DynamoDB Local starts on a server of the
	// test's own: overlap it with the other tests.
	t.Parallel()
	const workers, maxOps, killAfter = 4, 60, 40
	dbPath := t.TempDir()
	ctx := context.Background()

	first := startDiskServer(t, dbPath)
	client := restartClient(t, first.endpoint)
	const table = "restart-sessions"
	if err := EnsureTable(ctx, client, table, TableOptions{OnDemand: true}); err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	opts := []Option{WithKeyPairs(testHashKey, testBlockKey), withCleanupInterval(0), withClock(clock.Now)}
	store, err := NewStore(ctx, table, append(opts, withAPI(client))...)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()

	var acked atomic.Int64
	killNow := make(chan struct{})
	var once sync.Once
	results := make([][]*restartSession, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var cur *restartSession
			for op := 0; op < maxOps; op++ {
				// Each session: a create and two updates.
				u := op % 3
				if u == 0 {
					cur = &restartSession{w: w, s: op / 3, acked: -1}
					results[w] = append(results[w], cur)
				}
				var r *http.Request
				if cur.cookie == nil {
					r = request()
				} else {
					r = request(cur.cookie)
				}
				sess, err := store.New(r, "s")
				if err == nil && cur.cookie != nil && sess.IsNew {
					err = errors.New("acknowledged session not found")
				}
				if err == nil {
					clear(sess.Values)
					for k, v := range restartValues(w, cur.s, u) {
						sess.Values[k] = v
					}
					rec := httptest.NewRecorder()
					if err = sess.Save(r, rec); err == nil {
						cur.acked = u
						cur.cookie = cookieOf(rec, "s")
						if acked.Add(1) >= killAfter {
							once.Do(func() { close(killNow) })
						}
						continue
					}
					cur.inDoubt = true
				}
				// The server is gone: this worker's load ends.
				return
			}
		}()
	}
	select {
	case <-killNow:
	case <-waitDone(&wg):
		t.Fatal("the load ended before the server was killed")
	}
	first.kill(t)
	wg.Wait()
	t.Logf("killed after %d acknowledged saves (%d when the load stopped)", killAfter, acked.Load())

	second := startDiskServer(t, dbPath)
	client2 := restartClient(t, second.endpoint)
	store2, err := NewStore(ctx, table, append(opts, withAPI(client2))...)
	if err != nil {
		t.Fatal(err)
	}
	defer store2.Close()

	// Every acknowledged session loads, with its last acknowledged values
	// or, when the write after them failed, possibly those.
	attempted := map[[2]int]map[int]bool{} // (w, s) -> writes tried
	checked, inDoubt := 0, 0
	for _, sessions := range results {
		for _, rs := range sessions {
			tried := map[int]bool{}
			for u := 0; u <= rs.acked; u++ {
				tried[u] = true
			}
			if rs.inDoubt {
				tried[rs.acked+1] = true
				inDoubt++
			}
			attempted[[2]int{rs.w, rs.s}] = tried
			if rs.acked < 0 {
				continue
			}
			checked++
			sess, err := store2.New(request(rs.cookie), "s")
			if err != nil || sess.IsNew {
				t.Fatalf("session %d/%d acknowledged up to write %d is gone after the restart: %v", rs.w, rs.s, rs.acked, err)
			}
			ok := sameRestartValues(sess.Values, restartValues(rs.w, rs.s, rs.acked))
			if !ok && rs.inDoubt {
				ok = sameRestartValues(sess.Values, restartValues(rs.w, rs.s, rs.acked+1))
			}
			if !ok {
				t.Fatalf("session %d/%d holds %v/%v/%v; want write %d (or the failed one after it)",
					rs.w, rs.s, sess.Values["w"], sess.Values["s"], sess.Values["u"], rs.acked)
			}
		}
	}

	// Every row is one whole write that was tried: a failed create is
	// there whole or not at all.
	rows := 0
	p := dynamodb.NewScanPaginator(client2, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, item := range page.Items {
			rows++
			values := decodeValues(t, item)
			w, _ := values["w"].(int)
			s, _ := values["s"].(int)
			u, _ := values["u"].(int)
			if !attempted[[2]int{w, s}][u] || !sameRestartValues(values, restartValues(w, s, u)) {
				t.Fatalf("row holds %v/%v/%v, which is not a whole write that was tried", values["w"], values["s"], values["u"])
			}
		}
	}
	if rows < checked {
		t.Fatalf("%d rows for %d acknowledged sessions", rows, checked)
	}
	t.Logf("%d acknowledged sessions load after the restart; %d rows; %d saves failed in doubt", checked, rows, inDoubt)
	if err := second.checkAlive(); err != nil {
		t.Fatal(err)
	}
}

// checkAlive reports whether the server still runs.
func (s *diskServer) checkAlive() error {
	_, err := runScript("status", "--state-dir", s.stateDir)
	return err
}

// waitDone returns a channel closed when wg's count reaches zero.
func waitDone(wg *sync.WaitGroup) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	return done
}

// TestSignOutOnAClockAhead: an instance whose clock runs ahead signs out a
// session its row's expiry has passed by that clock, but not by another
// instance's: the row is deleted, and the other instance never loads the
// session again.
func TestSignOutOnAClockAhead(t *testing.T) {
	client := dbtest.Client(t)
	table := dbtest.NewTable(t, client)
	ahead, behind := newFakeClock(), newFakeClock()
	ahead.Advance(5 * time.Second)
	fast := newTestStore(t, table, client, ahead)
	slow := newTestStore(t, table, client, behind)
	r := request()
	sess, _ := slow.New(r, "s")
	sess.Options.MaxAge = 10
	sess.Values["user"] = "alice"
	w := httptest.NewRecorder()
	if err := sess.Save(r, w); err != nil {
		t.Fatal(err)
	}
	c := cookieOf(w, "s")
	ahead.Advance(7 * time.Second) // expired by the fast clock, live by the slow one
	behind.Advance(7 * time.Second)
	r = request(c)
	sess, _ = fast.Get(r, "s")
	sess.Options.MaxAge = -1
	if err := sess.Save(r, httptest.NewRecorder()); err != nil {
		t.Fatalf("sign-out = %v", err)
	}
	if got, err := slow.Get(request(c), "s"); err == nil && !got.IsNew {
		t.Errorf("the signed-out session loads on the other instance: %v", got.Values)
	}
}
