package dbtest_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynamostore/dynamostore/internal/dbtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

var validTableName = regexp.MustCompile(`^[a-zA-Z0-9_.-]{3,255}$`)

func TestEndpointIsExported(t *testing.T) {
	ep := dbtest.Endpoint(t)
	if !strings.HasPrefix(ep, "http") {
		t.Fatalf("Endpoint() = %q, want a URL", ep)
	}
	if got := os.Getenv(dbtest.EndpointEnv); strings.TrimRight(got, "/") != ep {
		t.Fatalf("%s = %q, want %q", dbtest.EndpointEnv, got, ep)
	}
}

func TestPutGetRoundTrip(t *testing.T) {
	c := dbtest.Client(t)
	table := dbtest.NewTable(t, c)

	_, err := c.PutItem(t.Context(), &dynamodb.PutItemInput{
		TableName: aws.String(table),
		Item: map[string]types.AttributeValue{
			"id":   &types.AttributeValueMemberS{Value: "session-1"},
			"data": &types.AttributeValueMemberB{Value: []byte{0, 1, 2, 255}},
		},
	})
	if err != nil {
		t.Fatalf("PutItem: %v", err)
	}
	out, err := c.GetItem(t.Context(), &dynamodb.GetItemInput{
		TableName:      aws.String(table),
		Key:            map[string]types.AttributeValue{"id": &types.AttributeValueMemberS{Value: "session-1"}},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		t.Fatalf("GetItem: %v", err)
	}
	data, ok := out.Item["data"].(*types.AttributeValueMemberB)
	if !ok {
		t.Fatalf("GetItem returned %#v, want a binary data attribute", out.Item)
	}
	if want := []byte{0, 1, 2, 255}; string(data.Value) != string(want) {
		t.Fatalf("data = %v, want %v", data.Value, want)
	}
}

func TestTableNamesAreValidAndUnique(t *testing.T) {
	c := dbtest.Client(t)
	seen := map[string]bool{}
	for _, sub := range []string{"plain", "with spaces/and:colons", strings.Repeat("long", 100), "ünïcode"} {
		t.Run(sub, func(t *testing.T) {
			name := dbtest.TableName(t, c)
			if !validTableName.MatchString(name) {
				t.Fatalf("TableName() = %q, not a valid DynamoDB table name", name)
			}
			if seen[name] {
				t.Fatalf("TableName() = %q twice", name)
			}
			seen[name] = true
		})
	}
}

// TestTableNameCleanup creates a table under a name from TableName in a
// subtest, and checks that it is gone once the subtest has finished.
func TestTableNameCleanup(t *testing.T) {
	c := dbtest.Client(t)
	var name string
	t.Run("create", func(t *testing.T) {
		name = dbtest.TableName(t, c)
		_, err := c.DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String(name)})
		var notFound *types.ResourceNotFoundException
		if !errors.As(err, &notFound) {
			t.Fatalf("DescribeTable of a fresh name: err = %v, want ResourceNotFoundException", err)
		}
		_, err = c.CreateTable(t.Context(), &dynamodb.CreateTableInput{
			TableName:            aws.String(name),
			AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
			KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
			BillingMode:          types.BillingModePayPerRequest,
		})
		if err != nil {
			t.Fatalf("CreateTable: %v", err)
		}
	})
	if t.Failed() {
		return
	}
	// DeleteTable may leave the table DELETING for a while (dynalite does);
	// it must not be ACTIVE any more.
	out, err := c.DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	var notFound *types.ResourceNotFoundException
	switch {
	case errors.As(err, &notFound):
	case err != nil:
		t.Fatalf("DescribeTable after cleanup: %v", err)
	case out.Table.TableStatus != types.TableStatusDeleting:
		t.Fatalf("table %s is %s after cleanup, want it deleted", name, out.Table.TableStatus)
	}
}

func TestParallelTables(t *testing.T) {
	c := dbtest.Client(t)
	for i := range 4 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			table := dbtest.NewTable(t, c)
			_, err := c.PutItem(t.Context(), &dynamodb.PutItemInput{
				TableName: aws.String(table),
				Item:      map[string]types.AttributeValue{"id": &types.AttributeValueMemberS{Value: fmt.Sprint(i)}},
			})
			if err != nil {
				t.Fatalf("PutItem: %v", err)
			}
			out, err := c.Scan(t.Context(), &dynamodb.ScanInput{TableName: aws.String(table)})
			if err != nil {
				t.Fatalf("Scan: %v", err)
			}
			if out.Count != 1 {
				t.Fatalf("table %s has %d items, want 1 (tables are shared?)", table, out.Count)
			}
		})
	}
}

// childEnv, set in the environment, makes the helper tests below do their
// work: TestSetUpIsLazy runs them in a child test binary.
const childEnv = "DBTEST_CHILD"

// TestHelperNoDatabase never asks for the database.
func TestHelperNoDatabase(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("run by TestSetUpIsLazy")
	}
}

// TestHelperDatabase asks for the database from two parallel subtests.
func TestHelperDatabase(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("run by TestSetUpIsLazy")
	}
	for i := range 2 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			dbtest.Client(t)
		})
	}
}

// TestSetUpIsLazy runs the helper tests in a child test binary that cannot
// get a database: one where DYNAMODB_ENDPOINT is unset and DynamoDB Local
// cannot be started (the working directory is outside the repository, so
// the script is not found), and one where DYNAMODB_ENDPOINT names a port
// nothing listens on. A test that never asks for the database passes, so
// Main set nothing up and checked nothing; one that asks fails, saying
// why, in every subtest.
func TestSetUpIsLazy(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		t.Skip("already in the child")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name     string
		endpoint string // "" leaves DYNAMODB_ENDPOINT unset
		reason   string
	}{
		{"unset outside the repository", "", "DynamoDB Local could not be started"},
		{"endpoint that does not answer", closed, "does not answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			run := func(test string) (string, error) {
				cmd := exec.CommandContext(t.Context(), exe, "-test.run=^"+test+"$", "-test.v", "-test.count=1")
				cmd.Dir = t.TempDir()
				cmd.Env = []string{childEnv + "=1"}
				for _, kv := range os.Environ() {
					if !strings.HasPrefix(kv, dbtest.EndpointEnv+"=") && !strings.HasPrefix(kv, childEnv+"=") {
						cmd.Env = append(cmd.Env, kv)
					}
				}
				if tc.endpoint != "" {
					cmd.Env = append(cmd.Env, dbtest.EndpointEnv+"="+tc.endpoint)
				}
				out, err := cmd.CombinedOutput()
				return string(out), err
			}

			out, err := run("TestHelperNoDatabase")
			if err != nil || !strings.Contains(out, "--- PASS: TestHelperNoDatabase") {
				t.Errorf("a test that needs no database: %v\n%s", err, out)
			}

			out, err = run("TestHelperDatabase")
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("a test that needs the database: err = %v, want a failed run\n%s", err, out)
			}
			for _, want := range []string{"--- FAIL: TestHelperDatabase/0", "--- FAIL: TestHelperDatabase/1", tc.reason} {
				if !strings.Contains(out, want) {
					t.Errorf("a test that needs the database: output lacks %q\n%s", want, out)
				}
			}
			if strings.Contains(out, "--- SKIP") {
				t.Errorf("a test that needs the database was skipped\n%s", out)
			}
		})
	}
}
