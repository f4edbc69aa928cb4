// Command reaper shows how to tune dynamostore's reaper, the sweep that
// deletes expired sessions from the table (DynamoDB's own TTL deletes them
// too, but only within a few days).
//
// It first writes some sessions that have already expired and some live
// ones, so that there is something to reap. Then it reaps through the
// DynamoDB backend alone, with no Store and no cookie keys: either one pass
// with Backend.Reap, as a cron job or a Lambda would (-once), or a first
// pass right away and then one every -interval or so until Ctrl-C, as a
// reaper service would. It prints every pass's statistics.
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
	mathrand "math/rand/v2"
	"time"

	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/examples/internal/command"
	"github.com/dynamostore/dynamostore/examples/internal/ddb"
	"github.com/dynamostore/dynamostore/internal/tableschema"
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
	fs.BoolVar(&o.once, "once", true, "run one pass with Backend.Reap and exit; false runs a pass every -interval until Ctrl-C")
	fs.DurationVar(&o.interval, "interval", 5*time.Minute, "with -once=false: time between passes, jittered by ±50% (ReaperOptions.Interval)")
	fs.IntVar(&o.segments, "segments", 1, "parallel scan segments per pass (ReaperOptions.Segments)")
	fs.Float64Var(&o.readRate, "read-rate", 0, "cap on read capacity units per second, 0 for none (ReaperOptions.ReadUnits)")
	fs.Float64Var(&o.writeRate, "write-rate", 0, "cap on write capacity units per second, 0 for none (ReaperOptions.WriteUnits)")
	fs.IntVar(&o.pageSize, "page-size", 0, "items per Scan page, 0 for 1 MB pages (ReaperOptions.PageSize)")
	fs.BoolVar(&o.batch, "batch", false, "delete with BatchWriteItem, 25 rows a call, without the refresh check (ReaperOptions.BatchDelete)")
	fs.BoolVar(&o.lease, "lease", true, "coordinate passes across a fleet through a lease item in the table (false sets ReaperOptions.NoLease)")
	fs.DurationVar(&o.leaseFor, "lease-duration", time.Minute, "how long the lease lasts without renewal (ReaperOptions.LeaseDuration)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q (see -h)", fs.Arg(0))
	case o.seedExpired < 0 || o.seedLive < 0:
		return o, errors.New("-seed and -seed-live must not be negative")
	case o.segments < 1:
		return o, errors.New("-segments must be at least 1")
	case !o.once && (o.interval < time.Second || o.interval > 400*24*time.Hour):
		return o, errors.New("-interval must be from 1s to 400 days")
	}
	return o, nil
}

// reaperOptions returns the ReaperOptions the flags ask for. A one-off
// pass has a negative Interval, so that the lease does not hold it back
// until an interval after the last pass.
func (o options) reaperOptions() dynamostore.ReaperOptions {
	interval := o.interval
	if o.once {
		interval = -1
	}
	return dynamostore.ReaperOptions{
		Interval:      interval,
		Segments:      o.segments,
		ReadUnits:     o.readRate,
		WriteUnits:    o.writeRate,
		PageSize:      o.pageSize,
		BatchDelete:   o.batch,
		NoLease:       !o.lease,
		LeaseDuration: o.leaseFor,
	}
}

// run parses args, seeds the table and reaps it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
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
	backend, err := dynamostore.NewDynamoDBBackend(client, o.table, dynamostore.DynamoDBOptions{})
	if err != nil {
		return err
	}
	if err := seed(ctx, backend, o, stdout); err != nil {
		return err
	}

	opts := o.reaperOptions()
	opts.Logger = slog.New(slog.NewTextHandler(stderr, nil)) // lease warnings
	if o.once {
		st, err := backend.Reap(ctx, opts)
		report(stdout, st, err)
		return err
	}
	fmt.Fprintf(stdout, "reaping every %v or so; Ctrl-C stops\n", o.interval)
	return reapEvery(ctx, backend, opts, stdout)
}

// reapEvery runs a pass now and then one every opts.Interval or so (see
// jitter) until ctx is done, printing each pass's statistics. A pass that
// fails is tried again at the next interval, except one that fails on its
// options, which would fail every time: reapEvery returns its error.
func reapEvery(ctx context.Context, backend dynamostore.Backend, opts dynamostore.ReaperOptions, stdout io.Writer) error {
	for {
		st, err := backend.Reap(ctx, opts)
		if ctx.Err() != nil {
			return nil
		}
		report(stdout, st, err)
		if errors.Is(err, dynamostore.ErrInvalidOption) {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(jitter(opts.Interval)):
		}
	}
}

// jitter returns d spread uniformly over [d, 3d/2], so that a fleet
// started together does not scan together.
func jitter(d time.Duration) time.Duration {
	return d + mathrand.N(d/2+1)
}

// seed writes o.seedExpired sessions that expired an hour ago and
// o.seedLive that expire in an hour, through the backend: rows such as a
// Store with a one-hour TTL writes, for sessions with random IDs.
func seed(ctx context.Context, backend dynamostore.Backend, o options, stdout io.Writer) error {
	write := func(n int, written time.Time) error {
		for i := range n {
			data, err := dynamostore.GobSerializer{}.Serialize(map[any]any{"n": i})
			if err != nil {
				return fmt.Errorf("encoding session %d: %w", i, err)
			}
			rec := dynamostore.Record{
				Key:      tableschema.StorageKey(rand.Text()),
				Data:     data,
				Expires:  written.Add(time.Hour),
				Modified: written,
			}
			if err := backend.Create(ctx, rec); err != nil {
				return fmt.Errorf("writing session %d: %w", i, err)
			}
		}
		return nil
	}
	now := time.Now()
	if err := write(o.seedExpired, now.Add(-2*time.Hour)); err != nil {
		return err
	}
	if err := write(o.seedLive, now); err != nil {
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
		fmt.Fprintln(w, "pass skipped: another instance holds the reaper lease, or a pass ran less than an interval ago")
		return
	}
	fmt.Fprintf(w, "pass: scanned %d, deleted %d, kept %d refreshed; %d pages over %d segments; "+
		"%.1f read + %.1f write units; %d throttled; %v\n",
		st.Scanned, st.Deleted, st.Skipped, st.Pages, st.Segments,
		st.ReadCapacity, st.WriteCapacity, st.Throttled, st.Duration.Round(time.Millisecond))
}
