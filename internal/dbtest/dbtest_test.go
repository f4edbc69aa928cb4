package dbtest_test

import (
	"errors"
	"fmt"
	"os"
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
