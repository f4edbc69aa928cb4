// Package ddbmeter counts DynamoDB operations and the capacity units they
// consume, from inside the AWS SDK's middleware stack, for the store's
// tests, benchmarks and load test. It is meant for test code only.
package ddbmeter

import (
	"context"
	"maps"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"
)

// Meter counts DynamoDB operations and the capacity units they consumed,
// from inside the SDK's middleware stack of a real client. It asks every
// request for ReturnConsumedCapacity TOTAL (DynamoDB Local honours it) and
// adds up what the responses report, so a test or benchmark sees the cost
// of the store's requests without the store doing anything for it.
type Meter struct {
	mu    sync.Mutex
	usage Usage
}

// Usage is what a Meter counted: operations by name, and read and write
// capacity units.
type Usage struct {
	Calls map[string]int `json:"calls"`
	RCU   float64        `json:"rcu"`
	WCU   float64        `json:"wcu"`
}

// Total returns the number of calls of every kind.
func (u Usage) Total() int {
	n := 0
	for _, c := range u.Calls {
		n += c
	}
	return n
}

// Option installs the meter on a DynamoDB client: pass it to
// dynamodb.New or NewFromConfig, or to a single call.
func (m *Meter) Option(o *dynamodb.Options) {
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("meter", m.handle), middleware.Before)
	})
}

func (m *Meter) handle(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	askCapacity(in.Parameters)
	out, md, err := next.HandleInitialize(ctx, in)
	rcu, wcu := consumed(out.Result)
	m.mu.Lock()
	if m.usage.Calls == nil {
		m.usage.Calls = map[string]int{}
	}
	m.usage.Calls[middleware.GetOperationName(ctx)]++
	m.usage.RCU += rcu
	m.usage.WCU += wcu
	m.mu.Unlock()
	return out, md, err
}

// Take returns what was counted since the last take and starts again.
func (m *Meter) Take() Usage {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.usage
	u.Calls = maps.Clone(u.Calls)
	if u.Calls == nil {
		u.Calls = map[string]int{}
	}
	m.usage = Usage{Calls: m.usage.Calls}
	clear(m.usage.Calls)
	return u
}

// askCapacity sets ReturnConsumedCapacity TOTAL on the inputs of the
// operations the store makes.
func askCapacity(params any) {
	const total = types.ReturnConsumedCapacityTotal
	switch in := params.(type) {
	case *dynamodb.GetItemInput:
		in.ReturnConsumedCapacity = total
	case *dynamodb.PutItemInput:
		in.ReturnConsumedCapacity = total
	case *dynamodb.UpdateItemInput:
		in.ReturnConsumedCapacity = total
	case *dynamodb.DeleteItemInput:
		in.ReturnConsumedCapacity = total
	case *dynamodb.ScanInput:
		in.ReturnConsumedCapacity = total
	case *dynamodb.BatchWriteItemInput:
		in.ReturnConsumedCapacity = total
	}
}

// consumed returns the read and write units a response reports.
func consumed(result any) (rcu, wcu float64) {
	units := func(c *types.ConsumedCapacity) float64 {
		if c == nil || c.CapacityUnits == nil {
			return 0
		}
		return *c.CapacityUnits
	}
	switch out := result.(type) {
	case *dynamodb.GetItemOutput:
		return units(out.ConsumedCapacity), 0
	case *dynamodb.ScanOutput:
		return units(out.ConsumedCapacity), 0
	case *dynamodb.PutItemOutput:
		return 0, units(out.ConsumedCapacity)
	case *dynamodb.UpdateItemOutput:
		return 0, units(out.ConsumedCapacity)
	case *dynamodb.DeleteItemOutput:
		return 0, units(out.ConsumedCapacity)
	case *dynamodb.BatchWriteItemOutput:
		for i := range out.ConsumedCapacity {
			wcu += units(&out.ConsumedCapacity[i])
		}
		return 0, wcu
	}
	return 0, 0
}
