package dynamostore

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynamostore/dynamostore/internal/dbtest"
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
			if len(td.KeySchema) != 1 || aws.ToString(td.KeySchema[0].AttributeName) != AttrID || td.KeySchema[0].KeyType != types.KeyTypeHash {
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
			if s := ttl.TimeToLiveDescription; s == nil || s.TimeToLiveStatus != types.TimeToLiveStatusEnabled || aws.ToString(s.AttributeName) != AttrExpires {
				t.Fatalf("TTL %+v; want enabled on %q", s, AttrExpires)
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
	s, err := NewStore(context.Background(), table, WithClient(client), WithKeyPairs(testHashKey),
		WithCleanupInterval(0), WithAutoCreate(TableOptions{OnDemand: true}))
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

func TestNewStoreMakesNoCallWithoutAutoCreate(t *testing.T) {
	calls := &callCounter{}
	client := dbtest.Client(t, calls.option)
	s, err := NewStore(context.Background(), "no-such-table", WithClient(client), WithKeyPairs(testHashKey), WithCleanupInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n := total(calls.take()); n != 0 {
		t.Fatalf("NewStore made %d calls", n)
	}
}
