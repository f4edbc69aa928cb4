package dynamostore

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynamostore/dynamostore/internal/dbtest"
)

// reapBenchRows is the number of expired rows each benchmarked pass deletes.
const reapBenchRows = 2000

// BenchmarkReap times one pass over reapBenchRows expired rows against
// DynamoDB: the Store's reaper in its conditional and batch modes, next to
// raw SDK loops making the same Scan and deletes without the Store. It
// reports rows deleted per second of pass and DynamoDB calls per 1,000 rows.
// Seeding the rows is not timed.
//
//	go test -run '^$' -bench BenchmarkReap -benchtime 5x
func BenchmarkReap(b *testing.B) {
	cases := []struct {
		name string
		pass func(ctx context.Context, b *testing.B, client *dynamodb.Client, table string) int
	}{
		// Each mode next to its raw loop, so that the pair runs under the
		// same load.
		{"conditional/store", storePass(false)},
		{"conditional/raw", rawPass(false)},
		{"batch/store", storePass(true)},
		{"batch/raw", rawPass(true)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			calls := &callCounter{}
			client := dbtest.Client(b, calls.option)
			table := dbtest.NewTable(b, client)
			ctx := context.Background()
			deleted, n := 0, 0
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				seedRows(b, client, table, reapBenchRows, time.Now().Add(-time.Hour), 0)
				calls.take()
				b.StartTimer()
				deleted += c.pass(ctx, b, client, table)
				b.StopTimer()
				n += total(calls.take())
			}
			if deleted != b.N*reapBenchRows {
				b.Fatalf("deleted %d rows, want %d", deleted, b.N*reapBenchRows)
			}
			b.ReportMetric(float64(deleted)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(n)*1000/float64(deleted), "calls/1000rows")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// storePass returns a pass made by a Store's Reap, with the default lease.
func storePass(batch bool) func(context.Context, *testing.B, *dynamodb.Client, string) int {
	return func(ctx context.Context, b *testing.B, client *dynamodb.Client, table string) int {
		s, err := NewStore(ctx, table, withAPI(client), WithKeyPairs(testHashKey), withCleanupInterval(0),
			withReaperBatchDelete(batch))
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		st, err := s.Reap(ctx)
		if err != nil {
			b.Fatal(err)
		}
		return st.Deleted
	}
}

// rawPass returns a pass written directly against the SDK, as a user
// without the Store would: a paginated Scan for expired rows, then a
// conditional DeleteItem per row or an unconditional BatchWriteItem per 25.
func rawPass(batch bool) func(context.Context, *testing.B, *dynamodb.Client, string) int {
	return func(ctx context.Context, b *testing.B, client *dynamodb.Client, table string) int {
		exp := expression.Name(attrExpires)
		now := expression.Value(time.Now().Unix())
		scanExpr, err := expression.NewBuilder().
			WithProjection(expression.NamesList(expression.Name(attrID), exp)).
			WithFilter(exp.LessThan(now)).Build()
		if err != nil {
			b.Fatal(err)
		}
		delExpr, err := expression.NewBuilder().WithCondition(exp.LessThan(now)).Build()
		if err != nil {
			b.Fatal(err)
		}
		deleted := 0
		p := dynamodb.NewScanPaginator(client, &dynamodb.ScanInput{
			TableName:                 aws.String(table),
			ProjectionExpression:      scanExpr.Projection(),
			FilterExpression:          scanExpr.Filter(),
			ExpressionAttributeNames:  scanExpr.Names(),
			ExpressionAttributeValues: scanExpr.Values(),
		})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if batch {
				var reqs []types.WriteRequest
				for _, item := range page.Items {
					reqs = append(reqs, types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: map[string]types.AttributeValue{attrID: item[attrID]}}})
				}
				for len(reqs) > 0 {
					n := min(25, len(reqs))
					if err := batchWriteAll(ctx, client, table, reqs[:n]); err != nil {
						b.Fatal(err)
					}
					deleted += n
					reqs = reqs[n:]
				}
				continue
			}
			for _, item := range page.Items {
				_, err := client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
					TableName:                 aws.String(table),
					Key:                       map[string]types.AttributeValue{attrID: item[attrID]},
					ConditionExpression:       delExpr.Condition(),
					ExpressionAttributeNames:  delExpr.Names(),
					ExpressionAttributeValues: delExpr.Values(),
				})
				if err != nil && !isConditionFailed(err) {
					b.Fatal(err)
				}
				if err == nil {
					deleted++
				}
			}
		}
		return deleted
	}
}
