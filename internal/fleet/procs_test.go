package fleet

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// appPackage is the package of the app the fleet runs.
const appPackage = "github.com/dynamostore/dynamostore/internal/fleet/app"

var (
	buildDir  string // made by TestMain, removed when the tests end
	buildOnce sync.Once
	buildBin  string
	buildErr  error
	buildTook time.Duration
)

// appBinary builds the app once per test binary, with the race detector
// when the test binary has it, and returns its path.
func appBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		start := time.Now()
		buildBin = filepath.Join(buildDir, "app")
		args := []string{"build", "-o", buildBin}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, appPackage)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		buildTook = time.Since(start)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

// appConfig is what every process of a fleet shares.
type appConfig struct {
	bin      string
	endpoint string
	table    string
	hashKey  string // hex
}

// proc is one running app process.
type proc struct {
	idx     int
	history string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	url     *url.URL
	exited  chan struct{} // closed when the process has been waited for
	output  *tailBuffer   // its stderr and what stdout printed after the address
}

// startProc starts process idx with the given gob history, waits until it
// listens, and returns it. The process is stopped when the test ends; it
// also exits by itself when the test binary dies, as its standard input
// then reaches EOF.
func startProc(t *testing.T, cfg appConfig, idx int, history string) (*proc, error) {
	cmd := exec.Command(cfg.bin, "-proc", strconv.Itoa(idx), "-history", history,
		"-endpoint", cfg.endpoint, "-table", cfg.table)
	cmd.Env = append(os.Environ(), "FLEET_HASH_KEY="+cfg.hashKey)
	p := &proc{idx: idx, history: history, cmd: cmd, exited: make(chan struct{}), output: &tailBuffer{}}
	cmd.Stderr = p.output
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p.stdin = stdin
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { p.stop(t) })

	addr := make(chan string, 1)
	go func() {
		br := bufio.NewReader(stdout)
		line, err := br.ReadString('\n')
		if err == nil {
			addr <- strings.TrimSpace(line)
		}
		close(addr)
		_, _ = io.Copy(p.output, br)
		_ = cmd.Wait()
		close(p.exited)
	}()
	select {
	case line, ok := <-addr:
		raw, found := strings.CutPrefix(line, "listening ")
		if !ok || !found {
			p.kill()
			return nil, fmt.Errorf("process %d did not start: %q\n%s", idx, line, p.output)
		}
		if p.url, err = url.Parse(raw); err != nil {
			p.kill()
			return nil, err
		}
	case <-time.After(30 * time.Second):
		p.kill()
		return nil, fmt.Errorf("process %d did not listen within 30s\n%s", idx, p.output)
	}
	return p, nil
}

// kill sends SIGKILL, as a crash or the OOM killer would, and waits until
// the process is gone.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// stop closes the process's standard input, which makes it shut down, and
// kills it if it has not exited within five seconds. It fails the test if
// the race detector reported a race in the process.
func (p *proc) stop(t *testing.T) {
	_ = p.stdin.Close()
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		t.Errorf("process %d did not exit within 5s of its stdin closing; killing it", p.idx)
		p.kill()
	}
	if out := p.output.String(); strings.Contains(out, "WARNING: DATA RACE") {
		t.Errorf("process %d: the race detector reported a race:\n%s", p.idx, out)
	}
}

// admin calls an admin route of the process directly.
func (p *proc) admin(ctx context.Context, method, path string) error {
	req, err := http.NewRequestWithContext(ctx, method, p.url.String()+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s on process %d: %s: %s", method, path, p.idx, resp.Status, body)
	}
	return nil
}

// tailBuffer keeps the last 64 KiB written to it, safe for concurrent use.
type tailBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

const tailMax = 64 << 10

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if extra := b.buf.Len() - tailMax; extra > 0 {
		b.buf.Next(extra)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proxyErrorHeader marks the proxy's own answers (a backend that could not
// be reached), which are no answer of the app's.
const proxyErrorHeader = "X-Fleet-Proxy-Error"

// balancer is a round-robin reverse proxy over the fleet's processes, on
// loopback. A process taken out of rotation gets no requests until it is
// put back.
type balancer struct {
	srv *httptest.Server

	mu       sync.Mutex
	backends []*url.URL // nil: out of rotation
	next     int
}

type backendKey struct{}

func newBalancer(n int) *balancer {
	b := &balancer{backends: make([]*url.URL, n)}
	transport := &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(pr.In.Context().Value(backendKey{}).(*url.URL))
			pr.SetXForwarded()
		},
		Transport: transport,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			w.Header().Set(proxyErrorHeader, "1")
			http.Error(w, "bad gateway: "+err.Error(), http.StatusBadGateway)
		},
	}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/admin/") {
			http.NotFound(w, r)
			return
		}
		u := b.pick()
		if u == nil {
			w.Header().Set(proxyErrorHeader, "1")
			http.Error(w, "no backend", http.StatusBadGateway)
			return
		}
		rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), backendKey{}, u)))
	}))
	return b
}

func (b *balancer) pick() *url.URL {
	b.mu.Lock()
	defer b.mu.Unlock()
	for range b.backends {
		i := b.next % len(b.backends)
		b.next = i + 1
		if u := b.backends[i]; u != nil {
			return u
		}
	}
	return nil
}

// set puts process i in rotation at u, or takes it out (u nil).
func (b *balancer) set(i int, u *url.URL) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.backends[i] = u
}

func (b *balancer) close() { b.srv.Close() }
