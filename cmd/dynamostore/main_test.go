package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/internal/dbtest"
	"github.com/dynamostore/dynamostore/internal/tableschema"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

// result is what one run of the command produced.
type result struct {
	code           int
	stdout, stderr string
}

// cli runs the command with args and stdin.
func cli(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, strings.NewReader(stdin), &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

// ok fails the test unless r succeeded.
func (r result) ok(t *testing.T) result {
	t.Helper()
	if r.code != exitOK || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q, stdout %q; want success", r.code, r.stderr, r.stdout)
	}
	return r
}

// okProgress is ok for reap, which may write progress lines to standard
// error: it fails the test unless r succeeded with nothing but progress
// lines on stderr.
func (r result) okProgress(t *testing.T) result {
	t.Helper()
	if r.code != exitOK {
		t.Fatalf("exit %d, stderr %q, stdout %q; want success", r.code, r.stderr, r.stdout)
	}
	for _, line := range strings.SplitAfter(r.stderr, "\n") {
		if line != "" && (!strings.HasPrefix(line, "progress: ") || !strings.HasSuffix(line, "\n")) {
			t.Fatalf("stderr %q holds more than progress lines", r.stderr)
		}
	}
	return r
}

// terminals runs the command as if standard error were a terminal (where
// reap draws its bar) when stderrTerminal, and standard input one when
// stdinTerminal.
func terminals(t *testing.T, stdinTerminal, stderrTerminal bool, stdin string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := runWith(t.Context(), args, &env{stdin: bufio.NewReader(strings.NewReader(stdin)), stdinTerminal: stdinTerminal,
		stdout: &stdout, stderr: &stderr, stderrTerminal: stderrTerminal})
	return result{code, stdout.String(), stderr.String()}
}

// fails checks that r failed with status code and one line on stderr
// containing want.
func (r result) fails(t *testing.T, code int, want string) {
	t.Helper()
	if r.code != code || !strings.Contains(r.stderr, want) || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("exit %d, stderr %q; want exit %d and one line containing %q", r.code, r.stderr, code, want)
	}
}

// on returns the flags that point a command at table on the test database.
func on(t *testing.T, table string) []string {
	return []string{"--table", table, "--endpoint", dbtest.Endpoint(t), "--region", dbtest.Region}
}

func args(lists ...[]string) []string {
	var all []string
	for _, l := range lists {
		all = append(all, l...)
	}
	return all
}

func TestUsage(t *testing.T) {
	t.Setenv("DYNAMOSTORE_TABLE", "")
	tests := []struct {
		name string
		args []string
		code int
		out  string // in stdout
		err  string // in the one line of stderr
	}{
		{"no command", nil, exitUsage, "", "usage: dynamostore <command>"},
		{"help", []string{"-h"}, exitOK, "create-table", ""},
		{"unknown command", []string{"vacuum"}, exitUsage, "", `unknown command "vacuum"`},
		{"create-table -h", []string{"create-table", "-h"}, exitOK, "-read units", ""},
		{"status -h", []string{"status", "-h"}, exitOK, "-json", ""},
		{"reap -h", []string{"reap", "--help"}, exitOK, "-dry-run", ""},
		{"delete -h", []string{"delete", "-h"}, exitOK, "-hash-key-file file", ""},
		{"revoke-owner -h", []string{"revoke-owner", "-h"}, exitOK, "usage: dynamostore revoke-owner --table name [flags] <owner|->", ""},
		{"unknown flag", []string{"reap", "--fast"}, exitUsage, "", "flag provided but not defined: -fast"},
		{"no table", []string{"status", "--endpoint", "http://127.0.0.1:1"}, exitUsage, "", "no table"},
		{"extra argument", []string{"status", "t", "now"}, exitUsage, "", "status takes no arguments (the table is --table), got 2"},
		{"two tables", []string{"status", "t", "--table", "u"}, exitUsage, "", "two tables, --table u and the argument t"},
		{"flag before the command", []string{"--table", "t", "status"}, exitUsage, "", "the command comes first"},
		{"keygen argument", []string{"keygen", "32"}, exitUsage, "", "keygen takes no arguments"},
		{"keygen takes no table", []string{"keygen", "--table", "t"}, exitUsage, "", "flag provided but not defined: -table"},
		{"delete: flag-like argument", []string{"delete", "--table", "t", "-abc"}, exitUsage, "", "write -- before an argument that begins with -"},
		{"delete: two arguments", []string{"delete", "t", "id"}, exitUsage, "", "delete takes one argument, got 2"},
		{"revoke-owner without owner", []string{"revoke-owner", "--table", "t"}, exitUsage, "", "takes one argument"},
		{"revoke-owner with empty owner", []string{"revoke-owner", "--table", "t", "-"}, exitUsage, "", "empty owner"},
		{"negative capacity", []string{"create-table", "--table", "t", "--read", "-1"}, exitUsage, "", "must not be negative"},
		{"negative rate", []string{"reap", "--table", "t", "--rate", "-1"}, exitUsage, "", "--rate"},
		{"negative grace", []string{"reap", "--table", "t", "--grace", "-1s"}, exitUsage, "", "--grace must not be negative"},
		{"segments in dry run", []string{"reap", "--table", "t", "--dry-run", "--segments", "2"}, exitUsage, "", "--segments"},
		{"delete without argument", []string{"delete", "--table", "t"}, exitUsage, "", "takes one argument"},
		{"cookie without key", []string{"delete", "--table", "t", "not-an-id"}, exitUsage, "", "needs the hash key"},
		{"bad storage key", []string{"delete", "--table", "t", "--key", "short"}, exitUsage, "", "not a storage key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := cli(t, "", tt.args...)
			if tt.code == exitOK {
				r.ok(t)
			} else if tt.name == "no command" {
				// The whole usage, on stderr.
				if r.code != exitUsage || !strings.Contains(r.stderr, tt.err) {
					t.Fatalf("exit %d, stderr %q; want exit 2 and the usage", r.code, r.stderr)
				}
			} else {
				r.fails(t, tt.code, tt.err)
			}
			if !strings.Contains(r.stdout, tt.out) {
				t.Fatalf("stdout %q does not contain %q", r.stdout, tt.out)
			}
		})
	}
}

func TestCreateTable(t *testing.T) {
	dbtest.RequireTTL(t) // create-table enables TTL
	tests := []struct {
		name        string
		flags       []string
		billing     types.BillingMode
		read, write int64
	}{
		{"on demand by default", nil, types.BillingModePayPerRequest, 0, 0},
		{"provisioned", []string{"--read", "3", "--write", "4"}, types.BillingModeProvisioned, 3, 4},
		{"provisioned, write defaulted", []string{"--read", "7"}, types.BillingModeProvisioned, 7, defaultCapacity},
		{"provisioned, --read 0 given", []string{"--read", "0"}, types.BillingModeProvisioned, defaultCapacity, defaultCapacity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := dbtest.Client(t)
			table := dbtest.TableName(t, client)
			// The table as an argument rather than --table.
			r := cli(t, "", args([]string{"create-table", "--endpoint", dbtest.Endpoint(t)}, tt.flags, []string{table})...).ok(t)
			if want := fmt.Sprintf("table %s is ACTIVE, billing %s", table, tt.billing); !strings.Contains(r.stdout, want) {
				t.Fatalf("stdout %q does not contain %q", r.stdout, want)
			}

			d, err := client.DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String(table)})
			if err != nil {
				t.Fatal(err)
			}
			billing := types.BillingModeProvisioned
			if s := d.Table.BillingModeSummary; s != nil && s.BillingMode != "" {
				billing = s.BillingMode
			}
			if billing != tt.billing {
				t.Fatalf("billing %s, want %s", billing, tt.billing)
			}
			if tt.billing == types.BillingModeProvisioned {
				pt := d.Table.ProvisionedThroughput
				if got := [2]int64{aws.ToInt64(pt.ReadCapacityUnits), aws.ToInt64(pt.WriteCapacityUnits)}; got != [2]int64{tt.read, tt.write} {
					t.Fatalf("capacity %v, want %v", got, [2]int64{tt.read, tt.write})
				}
			}
			if k := d.Table.KeySchema; len(k) != 1 || aws.ToString(k[0].AttributeName) != tableschema.KeyAttr {
				t.Fatalf("key schema %+v, want %s alone", k, tableschema.KeyAttr)
			}
			ttl, err := client.DescribeTimeToLive(t.Context(), &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(table)})
			if err != nil {
				t.Fatal(err)
			}
			if d := ttl.TimeToLiveDescription; d.TimeToLiveStatus != types.TimeToLiveStatusEnabled || aws.ToString(d.AttributeName) != tableschema.ExpiresAttr {
				t.Fatalf("TTL %s on %q, want ENABLED on %q", d.TimeToLiveStatus, aws.ToString(d.AttributeName), tableschema.ExpiresAttr)
			}

			// Again: the table exists, nothing changes, and that is fine.
			cli(t, "", args([]string{"create-table"}, on(t, table), tt.flags)...).ok(t)
		})
	}
}

func TestStatus(t *testing.T) {
	dbtest.RequireTTL(t) // create-table enables TTL
	client := dbtest.Client(t)
	table := dbtest.TableName(t, client)
	cli(t, "", args([]string{"create-table", "--read", "2", "--write", "3"}, on(t, table))...).ok(t)
	seed(t, client, table, 2, 1)

	r := cli(t, "", args([]string{"status"}, on(t, table))...).ok(t)
	for _, want := range []string{"status:      ACTIVE", "key:         HASH id (S)", "billing:     PROVISIONED (read 2, write 3)", "ttl:         ENABLED on exp"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "problem") {
		t.Errorf("status reports a problem with a table create-table made:\n%s", r.stdout)
	}

	r = cli(t, "", args([]string{"status", "--json"}, on(t, table))...).ok(t)
	var st tableStatus
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	want := tableStatus{Table: table, Status: "ACTIVE", Billing: "PROVISIONED", ReadCapacity: 2, WriteCapacity: 3,
		TTLStatus: "ENABLED", TTLAttribute: "exp", KeySchema: "HASH id (S)", ItemCount: st.ItemCount, SizeBytes: st.SizeBytes, Usable: true}
	if fmt.Sprint(st) != fmt.Sprint(want) {
		t.Errorf("status --json = %+v, want %+v", st, want)
	}

	// A table made by hand without TTL: status says what is wrong, but
	// the store can use the table (the reaper deletes expired rows).
	bare := dbtest.NewTable(t, client)
	r = cli(t, "", args([]string{"status"}, on(t, bare))...).ok(t)
	if !strings.Contains(r.stdout, "problem:     TTL is off") {
		t.Errorf("status of a table without TTL does not say so:\n%s", r.stdout)
	}

	cli(t, "", args([]string{"status"}, on(t, table+"-missing"))...).fails(t, exitFail, "not found")
}

// TestWrongTableSchema: create-table refuses an existing table the store
// cannot use, and status reports it and exits with status 1.
func TestWrongTableSchema(t *testing.T) {
	dbtest.RequireTTL(t) // create-table enables TTL on a table it accepts
	def := func(name string, typ types.ScalarAttributeType) types.AttributeDefinition {
		return types.AttributeDefinition{AttributeName: aws.String(name), AttributeType: typ}
	}
	key := func(name string, kind types.KeyType) types.KeySchemaElement {
		return types.KeySchemaElement{AttributeName: aws.String(name), KeyType: kind}
	}
	idS := def(tableschema.KeyAttr, types.ScalarAttributeTypeS)
	hashID := key(tableschema.KeyAttr, types.KeyTypeHash)
	tests := []struct {
		name  string
		in    dynamodb.CreateTableInput
		owner bool // wrong for create-table only with --owner-index
		want  string
	}{
		{"numeric id", dynamodb.CreateTableInput{
			AttributeDefinitions: []types.AttributeDefinition{def(tableschema.KeyAttr, types.ScalarAttributeTypeN)},
			KeySchema:            []types.KeySchemaElement{hashID},
		}, false, "has partition key id of type N, but the store needs the partition key \"id\" of type S alone; a table's key cannot be changed, so create a new table"},
		{"key of another name", dynamodb.CreateTableInput{
			AttributeDefinitions: []types.AttributeDefinition{def("pk", types.ScalarAttributeTypeS)},
			KeySchema:            []types.KeySchemaElement{key("pk", types.KeyTypeHash)},
		}, false, "has partition key pk of type S, but the store needs"},
		{"sort key", dynamodb.CreateTableInput{
			AttributeDefinitions: []types.AttributeDefinition{idS, def("sk", types.ScalarAttributeTypeN)},
			KeySchema:            []types.KeySchemaElement{hashID, key("sk", types.KeyTypeRange)},
		}, false, "has partition key id of type S and sort key sk of type N, but the store needs"},
		{"owner index on another attribute", dynamodb.CreateTableInput{
			AttributeDefinitions: []types.AttributeDefinition{idS, def("user", types.ScalarAttributeTypeS)},
			KeySchema:            []types.KeySchemaElement{hashID},
			GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{
				IndexName:  aws.String(tableschema.OwnerIndex),
				KeySchema:  []types.KeySchemaElement{key("user", types.KeyTypeHash)},
				Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly},
			}},
		}, true, "has an index owner-index on partition key user of type S, but RevokeOwner needs it on the partition key \"own\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := dbtest.Client(t)
			table := dbtest.CreateTable(t, client, tt.in)
			create := args([]string{"create-table"}, on(t, table))
			if tt.owner {
				cli(t, "", create...).ok(t)
				create = append(create, "--owner-index")
			}
			cli(t, "", create...).fails(t, exitFail, tt.want)

			r := cli(t, "", args([]string{"status"}, on(t, table))...)
			r.fails(t, exitFail, "the store cannot use this table: table "+table+" "+tt.want)
			if !strings.Contains(r.stdout, "problem:     table "+table+" "+tt.want) {
				t.Errorf("status output lacks the problem:\n%s", r.stdout)
			}
			r = cli(t, "", args([]string{"status", "--json"}, on(t, table))...)
			r.fails(t, exitFail, tt.want)
			var st tableStatus
			if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
				t.Fatalf("status --json: %v\n%s", err, r.stdout)
			}
			if st.Usable || len(st.Problems) == 0 || !strings.Contains(st.Problems[0], tt.want) {
				t.Errorf("status --json = %+v, want unusable with the problem first", st)
			}
		})
	}
}

// seed writes expired and live session rows straight into table and
// returns their storage keys.
func seed(t *testing.T, client *dynamodb.Client, table string, expired, live int) (expiredKeys, liveKeys []string) {
	t.Helper()
	now := time.Now().Unix()
	var reqs []types.WriteRequest
	for i := range expired + live {
		exp := now - 3600
		if i >= expired {
			exp = now + 3600
		}
		key := tableschema.StorageKey(rand.Text())
		if i < expired {
			expiredKeys = append(expiredKeys, key)
		} else {
			liveKeys = append(liveKeys, key)
		}
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: map[string]types.AttributeValue{
			tableschema.KeyAttr:     &types.AttributeValueMemberS{Value: key},
			tableschema.ExpiresAttr: &types.AttributeValueMemberN{Value: strconv.FormatInt(exp, 10)},
			tableschema.ValuesAttr:  &types.AttributeValueMemberB{Value: []byte("values")},
		}}})
	}
	for len(reqs) > 0 {
		n := min(len(reqs), 25)
		out, err := client.BatchWriteItem(t.Context(), &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{table: reqs[:n]}})
		if err != nil {
			t.Fatalf("seeding %s: %v", table, err)
		}
		reqs = append(reqs[n:], out.UnprocessedItems[table]...)
	}
	return expiredKeys, liveKeys
}

// keysIn returns the storage keys of the session rows in table.
func keysIn(t *testing.T, client *dynamodb.Client, table string) map[string]bool {
	t.Helper()
	keys := map[string]bool{}
	p := dynamodb.NewScanPaginator(client, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(t.Context())
		if err != nil {
			t.Fatalf("scanning %s: %v", table, err)
		}
		for _, item := range page.Items {
			if k := item[tableschema.KeyAttr].(*types.AttributeValueMemberS).Value; k != tableschema.LeaseKey {
				keys[k] = true
			}
		}
	}
	return keys
}

func TestReap(t *testing.T) {
	const expired, live = 30, 12
	tests := []struct {
		name     string
		flags    []string // for the pass
		dryFlags []string // for the dry run
	}{
		{"conditional deletes", nil, nil},
		{"batch deletes", []string{"--batch"}, nil},
		{"segments", []string{"--segments", "3"}, nil},
		{"rate cap without lease", []string{"--rate", "1000", "--no-lease"}, []string{"--rate", "1000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := dbtest.Client(t)
			table := dbtest.NewTable(t, client)
			_, liveKeys := seed(t, client, table, expired, live)
			base := args(on(t, table), []string{"--page-size", "10", "--progress-interval", "0"})

			// A dry run counts, page by page, and deletes nothing.
			// Its progress lines go to standard error, not a terminal here.
			r := cli(t, "", args([]string{"reap", "--dry-run"}, base, tt.dryFlags)...).okProgress(t)
			if !strings.Contains(r.stdout, fmt.Sprintf("expired:     %d (dry run", expired)) {
				t.Fatalf("dry run output lacks the expired count %d:\n%s", expired, r.stdout)
			}
			if n := strings.Count(r.stderr, "progress: "); n < 5 || strings.Contains(r.stdout, "progress") {
				t.Fatalf("dry run over %d items in pages of 10 printed %d progress lines on stderr, want at least 5 and none on stdout:\nstdout:\n%s\nstderr:\n%s", expired+live, n, r.stdout, r.stderr)
			}
			if n := len(keysIn(t, client, table)); n != expired+live {
				t.Fatalf("after the dry run the table holds %d sessions, want %d", n, expired+live)
			}

			// With --json, on a terminal: the bar on stderr, the JSON
			// document alone on stdout.
			r = terminals(t, false, true, "", args([]string{"reap", "--json"}, base, tt.flags)...)
			if r.code != exitOK {
				t.Fatalf("reap --json: exit %d, stderr %q", r.code, r.stderr)
			}
			var rep reapReport
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
				t.Fatalf("reap --json: %v\n%s", err, r.stdout)
			}
			if rep.Deleted != expired || rep.Expired != expired || rep.Scanned < expired+live || rep.DryRun || rep.SkippedByLease {
				t.Fatalf("reap reported %+v, want %d of %d deleted", rep, expired, expired+live)
			}
			frames := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\r")
			if last := frames[len(frames)-1]; !strings.Contains(last, fmt.Sprintf("100%%  scanned %d of %d, expired %d, deleted %d", rep.Scanned, rep.Scanned, expired, expired)) {
				t.Fatalf("the last frame of the bar is %q, want 100%% and the deletions", last)
			}
			got := keysIn(t, client, table)
			if len(got) != live {
				t.Fatalf("after reaping the table holds %d sessions, want the %d live ones", len(got), live)
			}
			for _, k := range liveKeys {
				if !got[k] {
					t.Fatalf("a live session was deleted")
				}
			}
		})
	}
}

func TestReapText(t *testing.T) {
	client := dbtest.Client(t)
	table := dbtest.NewTable(t, client)
	seed(t, client, table, 3, 2)
	r := cli(t, "", args([]string{"reap"}, on(t, table))...).okProgress(t)
	for _, want := range []string{"expired:     3", "deleted:     3", "kept:        0", "segments:    1"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("reap output lacks %q:\n%s", want, r.stdout)
		}
	}
	// A pass from the command line does not put the next one off: reaping
	// again at once runs, lease and all.
	seed(t, client, table, 1, 0)
	r = cli(t, "", args([]string{"reap"}, on(t, table))...).okProgress(t)
	if !strings.Contains(r.stdout, "deleted:     1") {
		t.Errorf("a second reap right after the first did not run:\n%s", r.stdout)
	}
	cli(t, "", args([]string{"reap"}, on(t, table+"-missing"))...).fails(t, exitFail, "not found")
}

// TestReaperOptions: every reap flag that shapes the pass reaches its
// field of ReaperOptions.
func TestReaperOptions(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want dynamostore.ReaperOptions
	}{
		{"defaults", nil, dynamostore.ReaperOptions{Interval: -1, Grace: defaultGrace}},
		{"no grace", []string{"--grace", "0"}, dynamostore.ReaperOptions{Interval: -1, Grace: -1}},
		{"every flag", []string{"--grace", "2m", "--segments", "4", "--rate", "25.5", "--page-size", "100", "--batch", "--no-lease"},
			dynamostore.ReaperOptions{Interval: -1, Grace: 2 * time.Minute, Segments: 4, ReadUnits: 25.5, WriteUnits: 25.5, PageSize: 100, BatchDelete: true, NoLease: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("reap", flag.ContinueOnError)
			var f reapFlags
			f.register(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			if got := f.reaperOptions(); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("options %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestReapGrace: reap deletes, and its dry run counts, only the sessions
// that expired longer than --grace ago (default 5 minutes), so that a
// machine whose clock runs ahead spares sessions the app still serves.
func TestReapGrace(t *testing.T) {
	ages := []time.Duration{time.Minute, 4 * time.Minute, 6 * time.Minute, time.Hour, -time.Hour} // before now; negative: live
	tests := []struct {
		name  string
		flags []string
		grace time.Duration
	}{
		{"default", nil, 5 * time.Minute},
		{"none", []string{"--grace", "0"}, 0},
		{"two minutes", []string{"--grace", "2m"}, 2 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := dbtest.Client(t)
			table := dbtest.NewTable(t, client)
			now := time.Now()
			keys := map[time.Duration]string{}
			want := 0
			for _, age := range ages {
				keys[age] = tableschema.StorageKey(rand.Text())
				_, err := client.PutItem(t.Context(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: map[string]types.AttributeValue{
					tableschema.KeyAttr:     &types.AttributeValueMemberS{Value: keys[age]},
					tableschema.ExpiresAttr: &types.AttributeValueMemberN{Value: strconv.FormatInt(now.Add(-age).Unix(), 10)},
				}})
				if err != nil {
					t.Fatal(err)
				}
				if age > tt.grace {
					want++
				}
			}
			base := args(on(t, table), tt.flags)
			r := cli(t, "", args([]string{"reap", "--dry-run"}, base)...).okProgress(t)
			if !strings.Contains(r.stdout, fmt.Sprintf("expired:     %d (dry run", want)) || !strings.Contains(r.stdout, fmt.Sprintf("grace:       %v (", tt.grace)) {
				t.Fatalf("dry run with grace %v does not count %d sessions:\n%s", tt.grace, want, r.stdout)
			}
			// Standard error is no terminal: no progress, only the JSON.
			r = cli(t, "", args([]string{"reap", "--json"}, base)...).ok(t)
			var rep reapReport
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
				t.Fatalf("reap --json: %v\n%s", err, r.stdout)
			}
			if rep.Deleted != want || rep.GraceSeconds != tt.grace.Seconds() {
				t.Fatalf("reap with grace %v reported %+v, want %d deleted", tt.grace, rep, want)
			}
			left := keysIn(t, client, table)
			for _, age := range ages {
				if left[keys[age]] == (age > tt.grace) {
					t.Errorf("session expired %v ago: kept %v, want %v", age, left[keys[age]], age <= tt.grace)
				}
			}
		})
	}
}

// testStore returns a Store on table with the given key pairs and no reaper
// goroutine, closed when the test ends.
func testStore(t *testing.T, client *dynamodb.Client, table string, keyPairs ...[]byte) *dynamostore.Store {
	t.Helper()
	s, err := dynamostore.NewStore(context.Background(), table, dynamostore.WithClient(client),
		dynamostore.WithKeyPairs(keyPairs...), dynamostore.WithReaper(dynamostore.ReaperOptions{Interval: -1}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// session saves a new session through a Store signing with hashKey and
// blockKey, and returns its ID and cookie value.
func session(t *testing.T, client *dynamodb.Client, table string, hashKey, blockKey []byte) (id, cookie string) {
	t.Helper()
	s := testStore(t, client, table, hashKey, blockKey)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	sess, err := s.New(r, "sid")
	if err != nil {
		t.Fatal(err)
	}
	sess.Values["user"] = "ada"
	w := httptest.NewRecorder()
	if err := sess.Save(r, w); err != nil {
		t.Fatal(err)
	}
	return sess.ID, w.Result().Cookies()[0].Value
}

func TestDelete(t *testing.T) {
	hashKey, blockKey := make([]byte, 32), make([]byte, 32)
	_, _ = rand.Read(hashKey)
	_, _ = rand.Read(blockKey)
	dir := t.TempDir()
	writeKey := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	hexHash := writeKey("hash.hex", []byte(hex.EncodeToString(hashKey)+"\n"))
	hexBlock := writeKey("block.hex", []byte(hex.EncodeToString(blockKey)+"\n"))
	rawHash := writeKey("hash.raw", hashKey)
	rawBlock := writeKey("block.raw", blockKey)
	wrongHash := writeKey("wrong.hex", []byte(strings.Repeat("ab", 32)))

	tests := []struct {
		name string
		env  map[string]string
		// argv returns the arguments for the session with id and cookie.
		argv func(id, cookie string) []string
		// stdin returns standard input for the session.
		stdin func(id, cookie string) string
	}{
		// IDs, storage keys and cookie values are base64url and may
		// begin with "-": "--" ends the flags, as a user must write it.
		{"session ID", nil, func(id, _ string) []string { return []string{"--", id} }, nil},
		{"storage key", nil, func(id, _ string) []string { return []string{"--key", "--", tableschema.StorageKey(id)} }, nil},
		{"cookie, hex key files", nil, func(_, c string) []string {
			return []string{"--name", "sid", "--hash-key-file", hexHash, "--block-key-file", hexBlock, "--", c}
		}, nil},
		{"cookie, raw key files", nil, func(_, c string) []string {
			return []string{"--name", "sid", "--key-encoding", "raw", "--hash-key-file", rawHash, "--block-key-file", rawBlock, "--", c}
		}, nil},
		{"cookie on stdin, base64 keys in env", map[string]string{
			hashKeyEnv:  base64.StdEncoding.EncodeToString(hashKey),
			blockKeyEnv: base64.URLEncoding.EncodeToString(blockKey),
		}, func(_, _ string) []string { return []string{"--name", "sid", "--key-encoding", "base64", "-"} },
			func(_, c string) string { return c + "\n" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			client := dbtest.Client(t)
			table := dbtest.NewTable(t, client)
			id, cookie := session(t, client, table, hashKey, blockKey)
			otherID, _ := session(t, client, table, hashKey, blockKey)
			stdin := ""
			if tt.stdin != nil {
				stdin = tt.stdin(id, cookie)
			}
			argv := args([]string{"delete", "--yes"}, on(t, table), tt.argv(id, cookie))

			r := cli(t, stdin, argv...).ok(t)
			key := tableschema.StorageKey(id)
			if !strings.Contains(r.stdout, "deleted the session stored under id="+key) {
				t.Fatalf("delete output %q does not name the deleted row", r.stdout)
			}
			if strings.Contains(r.stdout, id) || strings.Contains(r.stdout, cookie) {
				t.Fatalf("delete printed the session ID or cookie: %q", r.stdout)
			}
			got := keysIn(t, client, table)
			if got[key] || !got[tableschema.StorageKey(otherID)] || len(got) != 1 {
				t.Fatalf("after delete the table holds %v, want only the other session", got)
			}

			// Again: there is no such session any more, which is a failure.
			r = cli(t, stdin, argv...)
			r.fails(t, exitFail, "no session stored under id="+key+" in table "+table)
			if r.stdout != "" {
				t.Fatalf("deleting again printed %q on stdout", r.stdout)
			}
		})
	}

	t.Run("wrong key", func(t *testing.T) {
		client := dbtest.Client(t)
		table := dbtest.NewTable(t, client)
		_, cookie := session(t, client, table, hashKey, blockKey)
		cli(t, "", args([]string{"delete", "--name", "sid", "--hash-key-file", wrongHash, "--block-key-file", hexBlock}, on(t, table), []string{cookie})...).
			fails(t, exitFail, "does not verify")
		cli(t, "", args([]string{"delete", "--hash-key-file", hexHash, "--block-key-file", hexBlock}, on(t, table), []string{cookie})...).
			fails(t, exitFail, `as cookie "session"`)
		if n := len(keysIn(t, client, table)); n != 1 {
			t.Fatalf("a failed delete left %d sessions, want 1", n)
		}
	})
}

func TestProgressDraw(t *testing.T) {
	tests := []struct {
		name   string
		tty    bool
		total  int64
		dryRun bool
		want   string // after one page
		done   string // what finish writes after a pass that succeeded
	}{
		{"terminal", true, 200, false,
			"\r[###############---------------]  50%  scanned 100 of ~200, expired 10, deleted 5\x1b[K",
			"\r[##############################] 100%  scanned 100 of 100, expired 10, deleted 5\x1b[K\n"},
		{"terminal, past the estimate", true, 50, false,
			"\r[#############################-]  99%  scanned 100 of ~100, expired 10, deleted 5\x1b[K",
			"\r[##############################] 100%  scanned 100 of 100, expired 10, deleted 5\x1b[K\n"},
		{"plain", false, 200, false, "progress:  50%  scanned 100 of ~200, expired 10, deleted 5\n",
			"progress: 100%  scanned 100 of 100, expired 10, deleted 5\n"},
		{"plain, no estimate", false, 0, false, "progress: scanned 100, expired 10, deleted 5\n",
			"progress: 100%  scanned 100 of 100, expired 10, deleted 5\n"},
		{"plain dry run", false, 0, true, "progress: scanned 100, expired 10\n",
			"progress: 100%  scanned 100 of 100, expired 10\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, ok := range []bool{true, false} {
				var buf bytes.Buffer
				p := &progress{w: &buf, tty: tt.tty, total: tt.total, dryRun: tt.dryRun}
				p.add(100, 10, 5)
				if buf.String() != tt.want {
					t.Fatalf("drew %q, want %q", buf.String(), tt.want)
				}
				buf.Reset()
				p.finish(ok)
				// A failed pass keeps its last state, and ends the bar's
				// line on a terminal.
				want := map[bool]string{true: "\n", false: ""}[tt.tty]
				if ok {
					want = tt.done
				}
				if buf.String() != want {
					t.Fatalf("finish(%v) wrote %q, want %q", ok, buf.String(), want)
				}
			}
		})
	}

	t.Run("nothing shown", func(t *testing.T) {
		// A pass the lease skips scans nothing: finish shows nothing.
		var buf bytes.Buffer
		p := &progress{w: &buf, tty: true, total: 10}
		p.finish(true)
		if buf.Len() != 0 {
			t.Fatalf("finish wrote %q for a pass that scanned nothing", buf.String())
		}
	})
	t.Run("nowhere", func(t *testing.T) {
		// Without a writer, progress only counts.
		p := &progress{total: 10}
		p.add(3, 2, 1)
		p.finish(true)
		if s, e, d := p.counts(); s != 3 || e != 2 || d != 1 {
			t.Fatalf("counts %d, %d, %d; want 3, 2, 1", s, e, d)
		}
	})
}

func TestRevokeOwner(t *testing.T) {
	dbtest.RequireTTL(t) // create-table enables TTL
	client := dbtest.Client(t)
	table := dbtest.TableName(t, client)
	cli(t, "", args([]string{"create-table", "--owner-index"}, on(t, table))...).ok(t)
	r := cli(t, "", args([]string{"status"}, on(t, table))...).ok(t)
	if !strings.Contains(r.stdout, "owner index: owner-index ACTIVE") {
		t.Fatalf("status does not show the owner index:\n%s", r.stdout)
	}

	s := testStore(t, client, table, make([]byte, 32))
	owned := map[string]string{} // storage key -> owner
	for _, owner := range []string{"ada", "ada", "grace"} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		sess, _ := s.New(req, "sid")
		sess.Values["n"] = 1
		s.SetOwner(req, sess, owner)
		if err := sess.Save(req, httptest.NewRecorder()); err != nil {
			t.Fatal(err)
		}
		owned[tableschema.StorageKey(sess.ID)] = owner
	}

	r = cli(t, "ada\n", args([]string{"revoke-owner", "--yes"}, on(t, table), []string{"-"})...).ok(t)
	if r.stdout != "deleted 2 sessions\n" {
		t.Fatalf("revoke-owner printed %q, want 2 sessions deleted", r.stdout)
	}
	left := keysIn(t, client, table)
	for key, owner := range owned {
		if left[key] != (owner == "grace") {
			t.Fatalf("after revoking ada, the session of %s is there: %v", owner, left[key])
		}
	}

	bare := dbtest.NewTable(t, client)
	cli(t, "", args([]string{"revoke-owner", "--yes"}, on(t, bare), []string{"ada"})...).fails(t, exitFail, "create-table --owner-index")
}

// atTerminal runs the command as if standard input were a terminal on which
// the user types stdin.
func atTerminal(ctx context.Context, stdin io.Reader, args ...string) result {
	var stdout, stderr bytes.Buffer
	code := runWith(ctx, args, &env{stdin: bufio.NewReader(stdin), stdinTerminal: true, stdout: &stdout, stderr: &stderr})
	return result{code, stdout.String(), stderr.String()}
}

// TestConfirm: delete and revoke-owner ask on a terminal unless --yes, act
// only on a yes, and without a terminal refuse to run unless --yes.
func TestConfirm(t *testing.T) {
	dbtest.RequireTTL(t) // create-table enables TTL
	client := dbtest.Client(t)
	table := dbtest.TableName(t, client)
	cli(t, "", args([]string{"create-table", "--owner-index"}, on(t, table))...).ok(t)
	store := testStore(t, client, table, make([]byte, 32))
	// newSession saves a session of owner and returns its ID.
	newSession := func(owner string) string {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		sess, _ := store.New(req, "sid")
		sess.Values["n"] = 1
		store.SetOwner(req, sess, owner)
		if err := sess.Save(req, httptest.NewRecorder()); err != nil {
			t.Fatal(err)
		}
		return sess.ID
	}

	tests := []struct {
		name     string
		revoke   bool // revoke-owner rather than delete
		terminal bool
		yes      bool
		fromIn   bool   // the argument is "-", read from standard input
		answer   string // typed at the prompt
		code     int
		asked    bool
		errLine  string // in the last line of stderr, when code != 0
	}{
		{"delete: y", false, true, false, false, "y\n", exitOK, true, ""},
		{"delete: YES", false, true, false, false, "YES\n", exitOK, true, ""},
		{"delete: n", false, true, false, false, "n\n", exitFail, true, "not confirmed: nothing deleted"},
		{"delete: no answer", false, true, false, false, "", exitFail, true, "not confirmed: nothing deleted"},
		{"delete: ID typed, then y", false, true, false, true, "y\n", exitOK, true, ""},
		{"delete: --yes on a terminal", false, true, true, false, "", exitOK, false, ""},
		{"delete: no terminal", false, false, false, false, "y\n", exitUsage, false, "standard input is not a terminal, so delete cannot ask for confirmation: pass --yes"},
		{"delete: ID on a pipe", false, false, false, true, "", exitUsage, false, "pass --yes"},
		{"revoke-owner: y", true, true, false, false, "y\n", exitOK, true, ""},
		{"revoke-owner: owner typed, then y", true, true, false, true, "y\n", exitOK, true, ""},
		{"revoke-owner: n", true, true, false, false, "no\n", exitFail, true, "not confirmed: nothing deleted"},
		{"revoke-owner: no terminal", true, false, false, false, "y\n", exitUsage, false, "standard input is not a terminal, so revoke-owner cannot ask for confirmation: pass --yes"},
		{"revoke-owner: --yes", true, false, true, false, "", exitOK, false, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			owner := fmt.Sprintf("user-%d", i)
			id := newSession(owner)
			key := tableschema.StorageKey(id)
			cmd, target, question := "delete", id, fmt.Sprintf("delete the session stored under id=%s from table %s? [y/N] ", key, table)
			if tt.revoke {
				cmd, target, question = "revoke-owner", owner, fmt.Sprintf("delete every session of owner %q from table %s? [y/N] ", owner, table)
			}
			argv := args([]string{cmd}, on(t, table))
			if tt.yes {
				argv = append(argv, "--yes")
			}
			stdin := tt.answer
			if tt.fromIn {
				argv = append(argv, "-")
				stdin = target + "\n" + stdin
			} else {
				argv = append(argv, "--", target)
			}
			var r result
			if tt.terminal {
				r = atTerminal(t.Context(), strings.NewReader(stdin), argv...)
			} else {
				r = cli(t, stdin, argv...)
			}

			if r.code != tt.code {
				t.Fatalf("exit %d, want %d; stdout %q, stderr %q", r.code, tt.code, r.stdout, r.stderr)
			}
			if asked := strings.HasPrefix(r.stderr, question); asked != tt.asked {
				t.Fatalf("stderr %q; asked %v, want %v (%q)", r.stderr, asked, tt.asked, question)
			}
			rest := strings.TrimPrefix(r.stderr, question)
			if tt.code == exitOK {
				if rest != "" {
					t.Fatalf("stderr %q after the question", rest)
				}
			} else if !strings.Contains(rest, tt.errLine) || strings.Count(rest, "\n") != 1 {
				t.Fatalf("stderr %q after the question, want one line containing %q", rest, tt.errLine)
			}
			if gone := !keysIn(t, client, table)[key]; gone != (tt.code == exitOK) {
				t.Fatalf("session deleted: %v, want %v", gone, tt.code == exitOK)
			}
		})
	}

	t.Run("interrupted at the prompt", func(t *testing.T) {
		id := newSession("user-interrupted")
		in, typing := io.Pipe() // nobody types
		defer typing.Close()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan result, 1)
		go func() { done <- atTerminal(ctx, in, args([]string{"delete"}, on(t, table), []string{"--", id})...) }()
		cancel()
		r := <-done
		if r.code != exitFail || !strings.HasPrefix(r.stderr, "delete the session stored under") || !strings.Contains(r.stderr, "context canceled") {
			t.Fatalf("exit %d, stderr %q; want a failure for the interruption", r.code, r.stderr)
		}
		if !keysIn(t, client, table)[tableschema.StorageKey(id)] {
			t.Fatal("an interrupted delete deleted the session")
		}
	})
}
