package dynamostore

// Benchmarks of the client-side cost alone: the SDK's HTTP client is
// replaced by one that answers from memory with canned DynamoDB responses,
// so what remains is CPU and allocations in the process (request
// building, signing, JSON, the store's cookie and serializer work), with no
// network or server time to hide them. The raw SDK rows go through the very
// same transport.

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/dynamostore/dynamostore/internal/ddbmeter"
)

// cannedDynamoDB is an HTTP client for the SDK that answers every DynamoDB
// request from memory: GetItem with the item of the last PutItem made while
// recording (the session the benchmark loads), every write with an empty
// success.
type cannedDynamoDB struct {
	mu        sync.Mutex
	recording bool
	getItem   []byte // {"Item": …} of the last PutItem recorded
}

// Do implements the SDK's HTTPClient.
func (c *cannedDynamoDB) Do(r *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	_ = r.Body.Close()
	answer := []byte("{}")
	switch r.Header.Get("X-Amz-Target") {
	case "DynamoDB_20120810.GetItem":
		c.mu.Lock()
		answer = c.getItem
		c.mu.Unlock()
	case "DynamoDB_20120810.PutItem":
		c.mu.Lock()
		recording := c.recording
		c.mu.Unlock()
		if recording {
			if err := c.remember(body); err != nil {
				return nil, err
			}
		}
	}
	return &http.Response{
		StatusCode:    http.StatusOK,
		Header:        http.Header{"Content-Type": {"application/x-amz-json-1.0"}},
		Body:          io.NopCloser(bytes.NewReader(answer)),
		ContentLength: int64(len(answer)),
		Request:       r,
	}, nil
}

// remember keeps the item of a PutItem request as the GetItem answer.
func (c *cannedDynamoDB) remember(body []byte) error {
	var in struct{ Item json.RawMessage }
	if err := json.Unmarshal(body, &in); err != nil {
		return err
	}
	out, err := json.Marshal(struct{ Item json.RawMessage }{in.Item})
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.getItem = out
	c.mu.Unlock()
	return nil
}

// cannedTarget is a benchTarget whose client talks to a cannedDynamoDB.
// The answers carry no consumed capacity, so only calls are reported.
func cannedTarget(b *testing.B) *benchTarget {
	canned := &cannedDynamoDB{getItem: []byte("{}")}
	t := &benchTarget{meter: &ddbmeter.Meter{}, clock: newFakeClock(), table: "sessions"}
	t.record = func(on bool) {
		canned.mu.Lock()
		canned.recording = on
		canned.mu.Unlock()
	}
	t.client = dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("bench", "bench", ""),
		BaseEndpoint: aws.String("http://dynamodb.invalid"),
		HTTPClient:   canned,
	}, t.meter.Option)
	return t
}

// BenchmarkTransport runs the rows of BenchmarkDynamoDB against canned
// responses: the difference between impl=raw and impl=store is the store's
// own CPU and allocations per request.
func BenchmarkTransport(b *testing.B) {
	// load-eventual is the same work as load on the client.
	ops := selectOps("load", "load+unchanged", "load+changed", "load+changed-vs-update", "new", "new-vs-conditional")
	runBenchOps(b, cannedTarget(b), ops, serializerImpls, referenceValues())
}

// BenchmarkPairedTransport is BenchmarkPairedDynamoDB on canned responses:
// the store's own CPU time against the raw SDK's, call by call.
func BenchmarkPairedTransport(b *testing.B) {
	ops := selectOps("load", "load+unchanged", "load+changed", "new")
	runPaired(b, cannedTarget(b), ops, serializerImpls, referenceValues())
}

// BenchmarkTransportOverhead breaks the store's load down: the store with
// a serializer that does nothing shows what the store adds besides
// decoding values.
func BenchmarkTransportOverhead(b *testing.B) {
	ops := selectOps("load", "load+unchanged", "new")
	runBenchOps(b, cannedTarget(b), ops, []storeImpl{
		{name: "store-noop-serializer", opts: []Option{WithSerializer(nopSerializer{})}},
	}, referenceValues())
}

// nopSerializer stores a fixed 1 KB and decodes nothing: it takes the
// serializer out of the store's cost.
type nopSerializer struct{}

var nopData = noise(1024)

func (nopSerializer) Serialize(map[any]any) ([]byte, error) { return nopData, nil }
func (nopSerializer) Deserialize([]byte, map[any]any) error { return nil }
