package ddbmeter

import (
	"context"

	"github.com/aws/smithy-go/middleware"
)

type contextKey struct{}

// NewContext returns a copy of ctx that carries m: a call made with it on a
// client that has ContextMiddleware installed is counted by m. An app gives
// each request a Meter of its own this way and sees what that request cost.
func NewContext(ctx context.Context, m *Meter) context.Context {
	return context.WithValue(ctx, contextKey{}, m)
}

// FromContext returns the Meter ctx carries, or nil.
func FromContext(ctx context.Context) *Meter {
	m, _ := ctx.Value(contextKey{}).(*Meter)
	return m
}

// ContextMiddleware adds to a DynamoDB client's middleware stack a step
// that counts every call into the Meter its context carries (see
// NewContext); calls whose context carries none are not counted. Add it to
// aws.Config.APIOptions or dynamodb.Options.APIOptions.
func ContextMiddleware(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("contextMeter",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			m := FromContext(ctx)
			if m == nil {
				return next.HandleInitialize(ctx, in)
			}
			return m.handle(ctx, in, next)
		}), middleware.Before)
}
