package dynamostore

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynamostore/dynamostore/internal/dbtest"
	"github.com/dynamostore/dynamostore/internal/tableschema"
)

func TestEnsureTable(t *testing.T) {
	dbtest.RequireTTL(t)
	tests := []struct {
		name      string
		opts      TableOptions
		billing   types.BillingMode
		read, wrt int64
	}{
		{"seed defaults", TableOptions{}, types.BillingModeProvisioned, 5, 5},
		{"provisioned", TableOptions{ReadCapacity: 7, WriteCapacity: 3}, types.BillingModeProvisioned, 7, 3},
		{"on demand", TableOptions{OnDemand: true}, types.BillingModePayPerRequest, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := &callCounter{}
			client := dbtest.Client(t, calls.option)
			table := dbtest.TableName(t, client)
			ctx := context.Background()
			if err := EnsureTable(ctx, client, table, tt.opts); err != nil {
				t.Fatal(err)
			}
			d, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
			if err != nil {
				t.Fatal(err)
			}
			td := d.Table
			if td.TableStatus != types.TableStatusActive {
				t.Fatalf("status %v", td.TableStatus)
			}
			if len(td.KeySchema) != 1 || aws.ToString(td.KeySchema[0].AttributeName) != attrID || td.KeySchema[0].KeyType != types.KeyTypeHash {
				t.Fatalf("key schema %+v", td.KeySchema)
			}
			billing := types.BillingModeProvisioned
			if td.BillingModeSummary != nil {
				billing = td.BillingModeSummary.BillingMode
			}
			if billing != tt.billing {
				t.Fatalf("billing %v; want %v", billing, tt.billing)
			}
			if tt.billing == types.BillingModeProvisioned {
				pt := td.ProvisionedThroughput
				if aws.ToInt64(pt.ReadCapacityUnits) != tt.read || aws.ToInt64(pt.WriteCapacityUnits) != tt.wrt {
					t.Fatalf("capacity %d/%d; want %d/%d", aws.ToInt64(pt.ReadCapacityUnits), aws.ToInt64(pt.WriteCapacityUnits), tt.read, tt.wrt)
				}
			}
			ttl, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(table)})
			if err != nil {
				t.Fatal(err)
			}
			if s := ttl.TimeToLiveDescription; s == nil || s.TimeToLiveStatus != types.TimeToLiveStatusEnabled || aws.ToString(s.AttributeName) != attrExpires {
				t.Fatalf("TTL %+v; want enabled on %q", s, attrExpires)
			}
			// A second call changes nothing and does not repeat UpdateTimeToLive.
			calls.take()
			if err := EnsureTable(ctx, client, table, tt.opts); err != nil {
				t.Fatalf("second EnsureTable: %v", err)
			}
			if n := calls.take()["UpdateTimeToLive"]; n != 0 {
				t.Fatalf("UpdateTimeToLive repeated %d times", n)
			}
		})
	}
}

func TestEnsureTableRejectsOtherTTLAttribute(t *testing.T) {
	dbtest.RequireTTL(t)
	client := dbtest.Client(t)
	table := dbtest.NewTable(t, client)
	ctx := context.Background()
	_, err := client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName:               aws.String(table),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String("ttl"), Enabled: aws.Bool(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := EnsureTable(ctx, client, table, TableOptions{}); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("EnsureTable over TTL on another attribute = %v; want ErrInvalidOption", err)
	}
}

func TestAutoCreate(t *testing.T) {
	dbtest.RequireTTL(t)
	calls := &callCounter{}
	client := dbtest.Client(t, calls.option)
	table := dbtest.TableName(t, client)
	s, err := NewStore(context.Background(), table, withAPI(client), WithKeyPairs(testHashKey),
		withCleanupInterval(0), WithAutoCreate(TableOptions{OnDemand: true}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := calls.take(); got["CreateTable"] != 1 || got["UpdateTimeToLive"] != 1 {
		t.Fatalf("autoCreate calls %v", got)
	}
	e := &env{t: t, store: s, client: client, calls: calls, clock: newFakeClock(), table: table}
	c := e.save("s", map[any]any{"a": 1})
	calls.take()
	if _, sess, err := e.load("s", c); err != nil || sess.Values["a"] != 1 {
		t.Fatalf("store on auto-created table: %v", err)
	}
	// No table calls on the request path.
	if got := calls.take(); total(got) != 1 {
		t.Fatalf("request path calls %v", got)
	}
}

// TestNewStoreCallsAtConstruction: without WithAutoCreate, NewStore makes
// one call (the table check), two with the reaper off (the TTL too), and
// none with a Backend of the user's own.
func TestNewStoreCallsAtConstruction(t *testing.T) {
	calls := &callCounter{}
	client := dbtest.Client(t, calls.option)
	table := dbtest.NewTable(t, client)
	calls.take()
	for _, tc := range []struct {
		name string
		opts []Option
		want int
	}{
		{"reaper on", []Option{withAPI(client)}, 1},
		{"reaper off", []Option{withAPI(client), withCleanupInterval(0)}, 2},
		{"own backend", []Option{WithBackend(newMapBackend()), withCleanupInterval(0)}, 0},
	} {
		s, err := NewStore(context.Background(), table, append([]Option{WithKeyPairs(testHashKey)}, tc.opts...)...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		_ = s.Close()
		if n := total(calls.take()); n != tc.want {
			t.Errorf("%s: NewStore made %d calls, want %d", tc.name, n, tc.want)
		}
	}
}

func attrDef(name string, typ types.ScalarAttributeType) types.AttributeDefinition {
	return types.AttributeDefinition{AttributeName: aws.String(name), AttributeType: typ}
}

// keys returns a key schema: the partition key, then the sort key if any.
func keys(hash string, sort ...string) []types.KeySchemaElement {
	k := []types.KeySchemaElement{{AttributeName: aws.String(hash), KeyType: types.KeyTypeHash}}
	for _, s := range sort {
		k = append(k, types.KeySchemaElement{AttributeName: aws.String(s), KeyType: types.KeyTypeRange})
	}
	return k
}

func gsi(name string, projection types.ProjectionType, k []types.KeySchemaElement) types.GlobalSecondaryIndex {
	return types.GlobalSecondaryIndex{IndexName: aws.String(name), KeySchema: k, Projection: &types.Projection{ProjectionType: projection}}
}

// idS is the attribute definition of the store's key.
var idS = attrDef(attrID, types.ScalarAttributeTypeS)

// badTables are layouts of existing tables that the store cannot use, and
// what the error must say. With owner set, the layout is wrong only for
// owner revocation (TableOptions.OwnerIndex).
var badTables = []struct {
	name  string
	in    dynamodb.CreateTableInput
	owner bool
	want  string
}{
	{"numeric id", dynamodb.CreateTableInput{
		AttributeDefinitions: []types.AttributeDefinition{attrDef(attrID, types.ScalarAttributeTypeN)}, KeySchema: keys(attrID),
	}, false, "has partition key id of type N, but the store needs the partition key \"id\" of type S alone; a table's key cannot be changed, so create a new table"},
	{"key of another name", dynamodb.CreateTableInput{
		AttributeDefinitions: []types.AttributeDefinition{attrDef("pk", types.ScalarAttributeTypeS)}, KeySchema: keys("pk"),
	}, false, "has partition key pk of type S, but the store needs"},
	{"sort key", dynamodb.CreateTableInput{
		AttributeDefinitions: []types.AttributeDefinition{idS, attrDef("sk", types.ScalarAttributeTypeS)}, KeySchema: keys(attrID, "sk"),
	}, false, "has partition key id of type S and sort key sk of type S, but the store needs"},
	{"expiry indexed as a string", dynamodb.CreateTableInput{
		AttributeDefinitions:   []types.AttributeDefinition{idS, attrDef(attrExpires, types.ScalarAttributeTypeS)},
		KeySchema:              keys(attrID),
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{gsi("by-exp", types.ProjectionTypeKeysOnly, keys(attrExpires))},
	}, false, `defines attribute "exp" as type S (a key of index by-exp), but the store writes it as type N`},
	{"numeric owner index", dynamodb.CreateTableInput{
		AttributeDefinitions:   []types.AttributeDefinition{idS, attrDef(attrOwner, types.ScalarAttributeTypeN)},
		KeySchema:              keys(attrID),
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{gsi(ownerIndexName, types.ProjectionTypeKeysOnly, keys(attrOwner))},
	}, false, `defines attribute "own" as type N (a key of index owner-index), but the store writes it as type S`},
	{"owner index on another attribute", dynamodb.CreateTableInput{
		AttributeDefinitions:   []types.AttributeDefinition{idS, attrDef("user", types.ScalarAttributeTypeS)},
		KeySchema:              keys(attrID),
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{gsi(ownerIndexName, types.ProjectionTypeKeysOnly, keys("user"))},
	}, true, "has an index owner-index on partition key user of type S, but RevokeOwner needs it on the partition key \"own\" of type S alone; delete the index"},
	{"owner index with a sort key", dynamodb.CreateTableInput{
		AttributeDefinitions:   []types.AttributeDefinition{idS, attrDef(attrOwner, types.ScalarAttributeTypeS), attrDef(attrModified, types.ScalarAttributeTypeN)},
		KeySchema:              keys(attrID),
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{gsi(ownerIndexName, types.ProjectionTypeAll, keys(attrOwner, attrModified))},
	}, true, "has an index owner-index on partition key own of type S and sort key mod of type N, but RevokeOwner needs"},
}

// TestEnsureTableRejectsWrongSchema: EnsureTable and NewStore with
// WithAutoCreate refuse an existing table the store cannot use, say why,
// and change nothing on it.
func TestEnsureTableRejectsWrongSchema(t *testing.T) {
	dbtest.RequireTTL(t)
	for _, tc := range badTables {
		t.Run(tc.name, func(t *testing.T) {
			client := dbtest.Client(t)
			table := dbtest.CreateTable(t, client, tc.in)
			ctx := context.Background()
			opts := TableOptions{OnDemand: true, OwnerIndex: tc.owner}
			err := EnsureTable(ctx, client, table, opts)
			if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "table "+table+" ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("EnsureTable = %v; want ErrInvalidOption naming the table and saying %q", err, tc.want)
			}
			s, err := NewStore(ctx, table, withAPI(client), WithKeyPairs(testHashKey), withCleanupInterval(0), WithAutoCreate(opts))
			if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), tc.want) {
				_ = s.Close()
				t.Fatalf("NewStore with WithAutoCreate = %v; want ErrInvalidOption saying %q", err, tc.want)
			}
			// Nothing was changed: no TTL, no index added.
			ttl, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(table)})
			if err != nil {
				t.Fatal(err)
			}
			if d := ttl.TimeToLiveDescription; d != nil && d.TimeToLiveStatus != types.TimeToLiveStatusDisabled {
				t.Fatalf("TTL %s on a table EnsureTable refused", d.TimeToLiveStatus)
			}
			d, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
			if err != nil {
				t.Fatal(err)
			}
			if len(d.Table.GlobalSecondaryIndexes) != len(tc.in.GlobalSecondaryIndexes) {
				t.Fatalf("%d indexes on a table EnsureTable refused, want %d", len(d.Table.GlobalSecondaryIndexes), len(tc.in.GlobalSecondaryIndexes))
			}
			if tc.owner {
				// Without owner revocation, the owner index is none of
				// the store's business.
				if err := EnsureTable(ctx, client, table, TableOptions{OnDemand: true}); err != nil {
					t.Fatalf("EnsureTable without OwnerIndex: %v", err)
				}
			}
		})
	}
}

// TestEnsureTableAcceptsOtherIndexes: indexes of the application's own
// attributes, and an owner index projecting more than the keys, are fine.
func TestEnsureTableAcceptsOtherIndexes(t *testing.T) {
	dbtest.RequireTTL(t)
	client := dbtest.Client(t)
	table := dbtest.CreateTable(t, client, dynamodb.CreateTableInput{
		AttributeDefinitions: []types.AttributeDefinition{idS, attrDef(attrOwner, types.ScalarAttributeTypeS), attrDef("tenant", types.ScalarAttributeTypeN)},
		KeySchema:            keys(attrID),
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{
			gsi(ownerIndexName, types.ProjectionTypeAll, keys(attrOwner)),
			gsi("by-tenant", types.ProjectionTypeKeysOnly, keys("tenant")),
		},
	})
	if err := EnsureTable(context.Background(), client, table, TableOptions{OnDemand: true, OwnerIndex: true}); err != nil {
		t.Fatalf("EnsureTable: %v", err)
	}
}

// TestTableSchemaNames: the layout EnsureTable checks is the one the store
// writes.
func TestTableSchemaNames(t *testing.T) {
	if tableschema.KeyAttr != attrID || tableschema.OwnerAttr != attrOwner || tableschema.OwnerIndex != ownerIndexName {
		t.Fatalf("tableschema names %q %q %q; the store's %q %q %q", tableschema.KeyAttr, tableschema.OwnerAttr, tableschema.OwnerIndex, attrID, attrOwner, ownerIndexName)
	}
	want := map[string]types.ScalarAttributeType{
		attrID: types.ScalarAttributeTypeS, attrValues: types.ScalarAttributeTypeB, attrExpires: types.ScalarAttributeTypeN,
		attrModified: types.ScalarAttributeTypeN, attrVersion: types.ScalarAttributeTypeN, attrOwner: types.ScalarAttributeTypeS,
	}
	if !maps.Equal(tableschema.Attributes, want) {
		t.Fatalf("tableschema.Attributes = %v, want %v", tableschema.Attributes, want)
	}
}

// TestNewStoreChecksTheTable: without WithAutoCreate, NewStore describes
// the table once and refuses, naming the cause and the fix, a missing
// table, one with another key, and credentials it cannot sign with; a
// table with TTL off while the reaper is off starts with a warning.
func TestNewStoreChecksTheTable(t *testing.T) {
	client := dbtest.Client(t)
	good := dbtest.TableName(t, client) // the store's layout, TTL on
	if err := EnsureTable(context.Background(), client, good, TableOptions{OnDemand: true}); err != nil {
		t.Fatal(err)
	}
	noTTL := dbtest.CreateTable(t, client, dynamodb.CreateTableInput{
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	wrongKey := dbtest.CreateTable(t, client, dynamodb.CreateTableInput{
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	endpoint := dbtest.Endpoint(t)
	tests := []struct {
		name    string
		table   string
		opts    []Option
		wantErr string // "" for success
		warns   bool
	}{
		{"usable table", good, nil, "", false},
		{"usable table, no reaper", good, []Option{withCleanupInterval(0)}, "", false},
		{"TTL off, reaper on", noTTL, nil, "", false},
		{"TTL off, reaper off", noTTL, []Option{withCleanupInterval(0)}, "", true},
		{"missing table", "no-such-table-" + strings.ToLower(t.Name()[:4]), nil, "does not exist", false},
		{"another key", wrongKey, nil, "partition key", false},
		{"no credentials", good, []Option{WithAWSConfig(aws.Config{Region: dbtest.Region})}, "no AWS credentials", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			opts := append([]Option{WithEndpoint(endpoint), WithKeyPairs(testHashKey), WithLogger(slog.New(slog.NewTextHandler(&logs, nil)))}, tt.opts...)
			s, err := NewStore(context.Background(), tt.table, opts...)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("NewStore = %v", err)
			case tt.wantErr != "" && (!errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("NewStore = %v; want ErrInvalidOption saying %q", err, tt.wantErr)
			}
			if s != nil {
				_ = s.Close()
			}
			if warned := strings.Contains(logs.String(), "TTL off"); warned != tt.warns {
				t.Errorf("TTL warning %v, want %v; logs:\n%s", warned, tt.warns, logs.String())
			}
		})
	}
	// A construction whose own context has ended fails rather than start
	// unchecked.
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if s, err := NewStore(cancelled, good, WithEndpoint(endpoint), WithKeyPairs(testHashKey)); !errors.Is(err, context.Canceled) {
		if s != nil {
			_ = s.Close()
		}
		t.Errorf("NewStore with a cancelled context = %v; want context.Canceled", err)
	}
}

// TestNewStoreSurvivesAnEmptyDescription: an endpoint that answers
// DescribeTable without a table (a proxy or an emulator, not DynamoDB)
// starts the Store unchecked, with a warning, instead of crashing it.
func TestNewStoreSurvivesAnEmptyDescription(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		_, _ = w.Write([]byte("{}"))
	}))
	t.Cleanup(srv.Close)
	for _, reaper := range []bool{true, false} {
		var logs bytes.Buffer
		opts := []Option{WithEndpoint(srv.URL), WithKeyPairs(testHashKey), WithLogger(slog.New(slog.NewTextHandler(&logs, nil)))}
		if !reaper {
			opts = append(opts, withCleanupInterval(0))
		}
		s, err := NewStore(context.Background(), "sessions", opts...)
		if err != nil {
			t.Fatalf("NewStore (reaper %v) = %v", reaper, err)
		}
		_ = s.Close()
		if !strings.Contains(logs.String(), "described no table") {
			t.Errorf("no warning that the table was not checked (reaper %v); logs:\n%s", reaper, logs.String())
		}
	}
	if problems := tableschema.Problems(nil); len(problems) != 1 {
		t.Errorf("Problems(nil) = %q; want one problem", problems)
	}
	if present, problem := tableschema.OwnerIndexProblem(nil); present || problem != "" {
		t.Errorf("OwnerIndexProblem(nil) = %v, %q", present, problem)
	}
}
