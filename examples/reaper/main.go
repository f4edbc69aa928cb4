// Command reaper shows how to tune dynamostore's reaper, the sweep that
// deletes expired sessions from the table (DynamoDB's own TTL deletes them
// too, but only within a few days).
//
// It first writes some sessions that have already expired and some live
// ones, so that there is something to reap, then either runs one pass with
// Store.Reap, as a cron job or a Lambda would (-once), or runs the Store's
// reaper goroutine every -interval until Ctrl-C. Every pass prints its
// statistics through WithReapHook.
//
//	reaper -endpoint http://127.0.0.1:8000 -create-table -seed 500 -segments 4 -read-rate 50
//
// See reaper -h for every flag.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/examples/internal/command"
	"github.com/dynamostore/dynamostore/examples/internal/ddb"
)

func main() { command.Main("reaper", run) }

// options are the command line settings.
type options struct {
	table       string
	region      string
	endpoint    string
	createTable bool
	seedExpired int
	seedLive    int
	once        bool
	interval    time.Duration
	segments    int
	readRate    float64
	writeRate   float64
	pageSize    int
	batch       bool
	lease       bool
	leaseFor    time.Duration
}

const usageHeader = `usage: reaper [flags]

Writes expired and live sessions to a table, then reaps the expired ones with
the reaper tuned by the flags, printing each pass's statistics.

    reaper -endpoint http://127.0.0.1:8000 -create-table               one pass
    reaper -endpoint http://127.0.0.1:8000 -once=false -interval 10s   every 10s or so

Flags:
`

func parseFlags(args []string, getenv func(string) string, output io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("reaper", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.Usage = func() {
		fmt.Fprint(output, usageHeader)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.table, "table", "dynamostore-reaper-example", "DynamoDB table")
	fs.StringVar(&o.region, "region", getenv("AWS_REGION"), "AWS region; with -endpoint it defaults to "+ddb.LocalRegion+" ($AWS_REGION)")
	fs.StringVar(&o.endpoint, "endpoint", getenv("DYNAMODB_ENDPOINT"), "DynamoDB endpoint, e.g. http://127.0.0.1:8000 for DynamoDB Local ($DYNAMODB_ENDPOINT)")
	fs.BoolVar(&o.createTable, "create-table", false, "create the table when it does not exist")
	fs.IntVar(&o.seedExpired, "seed", 200, "expired sessions to write before reaping")
	fs.IntVar(&o.seedLive, "seed-live", 50, "live sessions to write before reaping; the reaper must keep them")
	fs.BoolVar(&o.once, "once", true, "run one pass with Store.Reap and exit; false runs the reaper goroutine until Ctrl-C")
	fs.DurationVar(&o.interval, "interval", dynamostore.DefaultCleanupInterval, "with -once=false: time between passes, jittered by ±50% (WithCleanupInterval)")
	fs.IntVar(&o.segments, "segments", dynamostore.DefaultReaperSegments, "parallel scan segments per pass (WithReaperSegments)")
	fs.Float64Var(&o.readRate, "read-rate", 0, "cap on read capacity units per second, 0 for none (WithReaperRate)")
	fs.Float64Var(&o.writeRate, "write-rate", 0, "cap on write capacity units per second, 0 for none (WithReaperRate)")
	fs.IntVar(&o.pageSize, "page-size", 0, "items per Scan page, 0 for 1 MB pages (WithReaperPageSize)")
	fs.BoolVar(&o.batch, "batch", false, "delete with BatchWriteItem, 25 rows a call, without the refresh check (WithReaperBatchDelete)")
	fs.BoolVar(&o.lease, "lease", true, "coordinate passes across a fleet through a lease item in the table (WithReaperLease)")
	fs.DurationVar(&o.leaseFor, "lease-duration", dynamostore.DefaultLeaseDuration, "how long the lease lasts without renewal (WithReaperLeaseDuration)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q (see -h)", fs.Arg(0))
	}
	if o.seedExpired < 0 || o.seedLive < 0 {
		return o, errors.New("-seed and -seed-live must not be negative")
	}
	return o, nil
}

// run parses args, seeds the table and reaps it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	awsCfg, err := ddb.Config(ctx, o.region, o.endpoint, getenv)
	if err != nil {
		return err
	}
	client := ddb.NewClient(awsCfg, o.endpoint)
	exists, err := ddb.TableExists(ctx, client, o.table)
	if err != nil {
		return err
	}
	if !exists && !o.createTable {
		return fmt.Errorf("table %s does not exist; run with -create-table to create it", o.table)
	}
	if !exists {
		if err := dynamostore.EnsureTable(ctx, client, o.table, dynamostore.TableOptions{OnDemand: true}); err != nil {
			return err
		}
	}
	// The key signs cookies, which this program throws away.
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	if err := seed(ctx, client, o, key, stdout); err != nil {
		return err
	}

	interval := o.interval
	if o.once {
		interval = 0 // no reaper goroutine: Reap runs the pass
	}
	store, err := dynamostore.NewStore(ctx, o.table,
		dynamostore.WithClient(client),
		dynamostore.WithKeyPairs(key),
		dynamostore.WithLogger(log),
		dynamostore.WithCleanupInterval(interval),
		dynamostore.WithReaperSegments(o.segments),
		dynamostore.WithReaperRate(o.readRate, o.writeRate),
		dynamostore.WithReaperPageSize(o.pageSize),
		dynamostore.WithReaperBatchDelete(o.batch),
		dynamostore.WithReaperLease(o.lease),
		dynamostore.WithReaperLeaseDuration(o.leaseFor),
		dynamostore.WithReapHook(func(st dynamostore.ReapStats, err error) { report(stdout, st, err) }),
	)
	if err != nil {
		return err
	}
	defer store.Close()

	if o.once {
		_, err := store.Reap(ctx)
		return err
	}
	fmt.Fprintf(stdout, "reaping every %v or so; Ctrl-C stops\n", o.interval)
	<-ctx.Done()
	return nil
}

// seed writes o.seedExpired sessions that expired an hour ago and
// o.seedLive live ones, through a Store whose clock is set back for the
// expired ones.
func seed(ctx context.Context, client *dynamodb.Client, o options, key []byte, stdout io.Writer) error {
	write := func(n int, clock func() time.Time) error {
		if n == 0 {
			return nil
		}
		s, err := dynamostore.NewStore(ctx, o.table,
			dynamostore.WithClient(client),
			dynamostore.WithKeyPairs(key),
			dynamostore.WithCleanupInterval(0),
			dynamostore.WithTTL(time.Hour),
			dynamostore.WithClock(clock),
		)
		if err != nil {
			return err
		}
		defer s.Close()
		for i := range n {
			r, err := http.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
			if err != nil {
				return err
			}
			sess, err := s.New(r, "seed")
			if err != nil {
				return err
			}
			sess.Values["n"] = i
			if err := s.Save(r, httptest.NewRecorder(), sess); err != nil {
				return fmt.Errorf("writing session %d: %w", i, err)
			}
		}
		return nil
	}
	twoHoursAgo := func() time.Time { return time.Now().Add(-2 * time.Hour) }
	if err := write(o.seedExpired, twoHoursAgo); err != nil {
		return err
	}
	if err := write(o.seedLive, time.Now); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %d expired and %d live sessions to %s\n", o.seedExpired, o.seedLive, o.table)
	return nil
}

// report prints one pass's statistics.
func report(w io.Writer, st dynamostore.ReapStats, err error) {
	if err != nil {
		fmt.Fprintf(w, "pass failed after %v: %v\n", st.Duration.Round(time.Millisecond), err)
		return
	}
	if st.SkippedByLease {
		fmt.Fprintln(w, "pass skipped: another Store holds the reaper lease, or a pass ran less than an interval ago")
		return
	}
	fmt.Fprintf(w, "pass: scanned %d, deleted %d, kept %d refreshed; %d pages over %d segments; "+
		"%.1f read + %.1f write units; %d throttled; %v\n",
		st.Scanned, st.Deleted, st.Skipped, st.Pages, st.Segments,
		st.ReadCapacity, st.WriteCapacity, st.Throttled, st.Duration.Round(time.Millisecond))
}
