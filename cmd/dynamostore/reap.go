package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/internal/tableschema"
)

// reapFlags are the flags of the reap command.
type reapFlags struct {
	dryRun   bool
	rate     float64
	segments int
	pageSize int
	batch    bool
	noLease  bool
	asJSON   bool
	every    time.Duration
	grace    time.Duration
}

// defaultGrace is the default of --grace: the reaper's own default grace
// (see dynamostore.ReaperOptions.Grace).
const defaultGrace = 5 * time.Minute

// maxSegments is the most scan segments the reaper takes (see
// dynamostore.ReaperOptions.Segments).
const maxSegments = 1000

func setupReap(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
	var f reapFlags
	f.register(fs)
	return func(ctx context.Context, args []string) error {
		if err := f.check(); err != nil {
			return err
		}
		table, err := e.tableOnly("reap", args)
		if err != nil {
			return err
		}
		// Progress goes to standard error, so that standard output carries
		// only the result; with --json only to a terminal, so that a job's
		// log holds nothing but the JSON document.
		p := &progress{tty: e.stderrTerminal, every: f.every, dryRun: f.dryRun}
		if p.tty || !f.asJSON {
			p.w = e.stderr
		}
		if p.tty {
			p.every = 100 * time.Millisecond
		}
		client, err := e.client(ctx, p.option)
		if err != nil {
			return err
		}
		// The item count only sizes the progress bar; a role that may not
		// describe the table can still reap it.
		out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		var nf *types.ResourceNotFoundException
		if errors.As(err, &nf) {
			return tableError(table, err)
		}
		if err == nil && out.Table != nil {
			p.total = aws.ToInt64(out.Table.ItemCount)
		}

		var rep *reapReport
		if f.dryRun {
			rep, err = countExpired(ctx, client, table, &f)
		} else {
			rep, err = reap(ctx, client, table, &f)
		}
		p.finish(err == nil)
		if err != nil {
			return tableError(table, err)
		}
		rep.Table = table
		rep.GraceSeconds = f.grace.Seconds()
		_, rep.Expired, _ = p.counts()
		return rep.print(e, f.asJSON)
	}
}

// reapDetails is the help of reap after its summary.
const reapDetails = `Standard output carries only the statistics (with --json, one JSON object). Progress goes to standard error: a bar when it is a terminal, ending at 100% when the pass ends; otherwise a line every --progress-interval, except with --json, which shows progress only on a terminal.`

// register defines the flags of the reap command on fs.
func (f *reapFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&f.dryRun, "dry-run", false, "count the expired sessions without deleting them")
	fs.Float64Var(&f.rate, "rate", 0, "cap the pass at this many read `units` per second, and as many write units (default: no cap)")
	fs.IntVar(&f.segments, "segments", 0, fmt.Sprintf("scan in `n` parallel segments, 1 to %d (default 1; not with --dry-run)", maxSegments))
	fs.IntVar(&f.pageSize, "page-size", 0, "examine at most this many `items` per Scan page (default: 1 MB pages)")
	fs.BoolVar(&f.batch, "batch", false, "delete with BatchWriteItem, 25 rows a call, without the check that a row is still expired")
	fs.BoolVar(&f.noLease, "no-lease", false, "run even when another reaper holds the table's reaper lease")
	fs.BoolVar(&f.asJSON, "json", false, "print the statistics as a JSON object")
	fs.DurationVar(&f.grace, "grace", defaultGrace, "delete (or, with --dry-run, count) only sessions that expired at least this `duration` ago, so that\na clock running ahead of the app's deletes no session the app still serves (0: none)")
	fs.DurationVar(&f.every, "progress-interval", 10*time.Second, "when standard error is not a terminal, print a progress line to it this often\n(0: after every page; with --json, progress shows only on a terminal)")
}

func (f *reapFlags) check() error {
	switch {
	case f.rate < 0 || math.IsNaN(f.rate) || math.IsInf(f.rate, 0):
		return usagef("--rate must be a number of capacity units per second, not %v", f.rate)
	case f.segments < 0 || f.segments > maxSegments:
		return usagef("--segments must be from 1 to %d", maxSegments)
	case f.segments > 0 && f.dryRun:
		return usagef("--segments does not apply to --dry-run")
	case f.pageSize < 0 || f.pageSize > math.MaxInt32:
		return usagef("--page-size must be from 1 to %d", math.MaxInt32)
	case f.every < 0:
		return usagef("--progress-interval must not be negative")
	case f.grace < 0:
		return usagef("--grace must not be negative (0 for none)")
	}
	return nil
}

// reaperOptions returns the options of the pass the flags describe. The
// interval is negative, as for a one-off job: the pass leaves the fleet's
// next pass due when it was, rather than putting it off by an interval.
func (f *reapFlags) reaperOptions() dynamostore.ReaperOptions {
	grace := f.grace
	if grace == 0 {
		grace = -1 // --grace 0 is none; a zero Grace is the default
	}
	return dynamostore.ReaperOptions{
		Interval:    -1,
		Grace:       grace,
		Segments:    f.segments,
		ReadUnits:   f.rate,
		WriteUnits:  f.rate,
		PageSize:    f.pageSize,
		BatchDelete: f.batch,
		NoLease:     f.noLease,
	}
}

// reapReport is what reap prints.
type reapReport struct {
	Table          string  `json:"table"`
	DryRun         bool    `json:"dryRun"`
	SkippedByLease bool    `json:"skippedByLease"`
	Pages          int     `json:"pages"`
	Scanned        int     `json:"scanned"`
	Expired        int64   `json:"expired"`
	Deleted        int     `json:"deleted"`
	Skipped        int     `json:"skipped"`
	ReadCapacity   float64 `json:"readCapacity"`
	WriteCapacity  float64 `json:"writeCapacity"`
	Throttled      int     `json:"throttled"`
	Unprocessed    int     `json:"unprocessed"`
	Segments       int     `json:"segments"`
	Seconds        float64 `json:"seconds"`
	// GraceSeconds is --grace: sessions that expired less long ago were
	// neither deleted nor counted.
	GraceSeconds float64 `json:"graceSeconds"`
}

func (r *reapReport) print(e *env, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(e.stdout).Encode(r)
	}
	w := e.stdout
	if r.SkippedByLease {
		fmt.Fprintf(w, "skipped: another reaper holds the lease on %s, or the fleet's next pass is not due yet (--no-lease runs anyway)\n", r.Table)
		return nil
	}
	line := func(name, value string) { fmt.Fprintf(w, "%-13s%s\n", name+":", value) }
	itoa := strconv.Itoa
	line("table", r.Table)
	line("pages", itoa(r.Pages))
	line("scanned", itoa(r.Scanned))
	line("grace", fmt.Sprintf("%v (sessions that expired less long ago are kept)", time.Duration(r.GraceSeconds*float64(time.Second))))
	if r.DryRun {
		line("expired", fmt.Sprintf("%d (dry run: nothing deleted)", r.Expired))
		line("capacity", fmt.Sprintf("read %.1f", r.ReadCapacity))
	} else {
		line("expired", strconv.FormatInt(r.Expired, 10))
		line("deleted", itoa(r.Deleted))
		line("kept", fmt.Sprintf("%d (refreshed between scan and delete)", r.Skipped))
		line("capacity", fmt.Sprintf("read %.1f, write %.1f", r.ReadCapacity, r.WriteCapacity))
		line("throttled", itoa(r.Throttled))
		line("unprocessed", itoa(r.Unprocessed))
		line("segments", itoa(r.Segments))
	}
	line("duration", time.Duration(r.Seconds*float64(time.Second)).Round(time.Millisecond).String())
	return nil
}

// reap runs one reaper pass through the table's backend, with the
// reaper options the flags give. It needs no Store, so no signing keys.
func reap(ctx context.Context, client *dynamodb.Client, table string, f *reapFlags) (*reapReport, error) {
	backend, err := dynamostore.NewDynamoDBBackend(client, table, dynamostore.DynamoDBOptions{})
	if err != nil {
		return nil, usageIfInvalid(err)
	}
	st, err := backend.Reap(ctx, f.reaperOptions())
	if err != nil {
		return nil, usageIfInvalid(err)
	}
	return &reapReport{
		SkippedByLease: st.SkippedByLease,
		Pages:          st.Pages,
		Scanned:        st.Scanned,
		Deleted:        st.Deleted,
		Skipped:        st.Skipped,
		ReadCapacity:   st.ReadCapacity,
		WriteCapacity:  st.WriteCapacity,
		Throttled:      st.Throttled,
		Unprocessed:    st.Unprocessed,
		Segments:       st.Segments,
		Seconds:        st.Duration.Seconds(),
	}, nil
}

// countExpired scans the table as the reaper does, with the same filter
// (tableschema.ExpiresAttr before now less the grace), but only counts the
// rows that match.
func countExpired(ctx context.Context, client *dynamodb.Client, table string, f *reapFlags) (*reapReport, error) {
	start := time.Now()
	cutoff := start.Add(-f.grace)
	in := &dynamodb.ScanInput{
		TableName:                 aws.String(table),
		Select:                    types.SelectCount,
		FilterExpression:          aws.String("#exp < :now"),
		ExpressionAttributeNames:  map[string]string{"#exp": tableschema.ExpiresAttr},
		ExpressionAttributeValues: map[string]types.AttributeValue{":now": &types.AttributeValueMemberN{Value: strconv.FormatInt(cutoff.Unix(), 10)}},
		ReturnConsumedCapacity:    types.ReturnConsumedCapacityTotal,
	}
	if f.pageSize > 0 {
		in.Limit = aws.Int32(int32(f.pageSize))
	}
	rep := &reapReport{DryRun: true}
	pages := dynamodb.NewScanPaginator(client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("scanning %s: %w", table, err)
		}
		rep.Pages++
		rep.Scanned += int(page.ScannedCount)
		if c := page.ConsumedCapacity; c != nil {
			rep.ReadCapacity += aws.ToFloat64(c.CapacityUnits)
		}
		if err := pace(ctx, start, rep.ReadCapacity, f.rate); err != nil {
			return nil, err
		}
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

// pace waits until consuming units since start keeps within rate units per
// second on average. A rate of 0 never waits.
func pace(ctx context.Context, start time.Time, units, rate float64) error {
	if rate <= 0 {
		return nil
	}
	d := time.Until(start.Add(time.Duration(units / rate * float64(time.Second))))
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
