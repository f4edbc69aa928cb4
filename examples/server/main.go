// Command server is a small web app whose sessions live in DynamoDB through
// dynamostore: a visit counter, sign-in with a new session ID, sign-out that
// deletes the session, flash messages and a JSON view of the session.
//
// Run it with scripts/run-example, which starts DynamoDB Local too, or see
// server -h for its flags and environment variables.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/sessions"

	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/examples/internal/command"
	"github.com/dynamostore/dynamostore/examples/internal/ddb"
)

// Time limits of start-up and shutdown.
const (
	// startTimeout bounds loading the AWS configuration and finding or
	// creating the table.
	startTimeout = 3 * time.Minute
	// shutdownTimeout bounds the wait for requests in flight at shutdown.
	shutdownTimeout = 10 * time.Second
)

// sessionLifetime is the MaxAge of the session cookie: dynamostore's
// default TTL, 14 days.
const sessionLifetime = 14 * 24 * time.Hour

func main() { command.Main("server", run) }

// run parses the command line, listens on the configured address and
// serves until ctx is done.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, ln, getenv, log, stdout)
}

// serve opens the Store, serves the app on ln and prints its URL to stdout.
// When ctx is done it shuts down gracefully: it stops accepting
// connections, lets requests in flight finish (for up to shutdownTimeout)
// and closes the Store. It closes ln.
func serve(ctx context.Context, cfg config, ln net.Listener, getenv func(string) string, log *slog.Logger, stdout io.Writer) error {
	defer ln.Close()
	store, err := openStore(ctx, cfg, getenv, log)
	if err != nil {
		return err
	}
	defer store.Close()
	a, err := newApp(store, log, storeInfo{
		Table:        cfg.table,
		Endpoint:     cfg.endpoint,
		TouchAfter:   cfg.touchAfter,
		ReapInterval: cfg.reapInterval,
	})
	if err != nil {
		return err
	}
	var fresh freshConns
	srv := &http.Server{
		Handler:           a.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ConnState:         fresh.track,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "dynamostore example: open %s in your browser (Ctrl-C stops it)\n", appURL(ln.Addr()))

	select {
	case err := <-errc:
		return fmt.Errorf("serving HTTP: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	fresh.closeAll()
	err = srv.Shutdown(sctx)
	<-errc // http.ErrServerClosed
	if err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	return nil
}

// freshConns tracks the connections on which no request has started yet.
// Browsers open such connections ahead of need; Shutdown waits 5 seconds
// before it counts them as idle, so the server closes them itself.
type freshConns struct {
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// track is the server's ConnState hook.
func (f *freshConns) track(c net.Conn, state http.ConnState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case state == http.StateNew && f.closed:
		c.Close()
	case state == http.StateNew:
		if f.conns == nil {
			f.conns = make(map[net.Conn]struct{})
		}
		f.conns[c] = struct{}{}
	default:
		delete(f.conns, c)
	}
}

// closeAll closes the connections that have not started a request, and any
// accepted from now on.
func (f *freshConns) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for c := range f.conns {
		c.Close()
	}
	clear(f.conns)
}

// appURL returns the URL a browser on this machine opens for addr: an
// unspecified address (":8080", "0.0.0.0:8080") becomes localhost.
func appURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String() + "/"
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

// openStore builds the DynamoDB client and the Store from cfg. It looks the
// table up first: a missing table is created with -create-table, and
// reported at start-up rather than on the first request without it.
func openStore(ctx context.Context, cfg config, getenv func(string) string, log *slog.Logger) (*dynamostore.Store, error) {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	key, err := loadKey(cfg, log)
	if err != nil {
		return nil, err
	}
	awsCfg, err := ddb.Config(ctx, cfg.region, cfg.endpoint, getenv)
	if err != nil {
		return nil, err
	}
	client := ddb.NewClient(awsCfg, cfg.endpoint)
	reaper := dynamostore.ReaperOptions{Interval: cfg.reapInterval}
	if cfg.reapInterval == 0 {
		reaper.Interval = -1 // no reaper goroutine: DynamoDB's TTL deletes expired rows
	}
	opts := []dynamostore.Option{
		dynamostore.WithClient(client),
		dynamostore.WithKeyPairs(key),
		dynamostore.WithReaper(reaper),
		dynamostore.WithTouchAfter(cfg.touchAfter),
		dynamostore.WithLogger(log),
		dynamostore.WithCookieOptions(sessions.Options{
			Path:     "/",
			MaxAge:   int(sessionLifetime / time.Second),
			HttpOnly: true,
			Secure:   cfg.secureCookie,
			SameSite: http.SameSiteLaxMode,
		}),
	}
	exists, err := ddb.TableExists(ctx, client, cfg.table)
	switch {
	case err != nil:
		return nil, err
	case !exists && !cfg.createTable:
		return nil, fmt.Errorf("table %s does not exist; run with -create-table to create it", cfg.table)
	case !exists:
		// On-demand billing costs nothing while the example sits idle.
		opts = append(opts, dynamostore.WithAutoCreate(dynamostore.TableOptions{OnDemand: true}))
		log.Info("creating the table", "table", cfg.table)
	}
	store, err := dynamostore.NewStore(ctx, cfg.table, opts...)
	if err != nil {
		return nil, fmt.Errorf("opening the session store: %w", err)
	}
	log.Info("session store ready", "table", cfg.table, "endpoint", cfg.endpoint, "region", awsCfg.Region,
		"touchAfter", cfg.touchAfter, "reapInterval", cfg.reapInterval)
	return store, nil
}
