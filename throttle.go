package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

// callError wraps the error of the DynamoDB operation op, made to do what.
// When DynamoDB throttled the call, the message says so and, where the
// exception carries them, why: each ThrottlingReason (table or index, read
// or write, and which limit: provisioned throughput, the account's
// on-demand quota, a hot key range) and the resource it names.
func callError(op, what string, err error) error {
	var de *smithy.DeserializationError
	if errors.As(err, &de) {
		return fmt.Errorf("dynamostore: %s (%s): %w", what, op, unreadableAnswer{err})
	}
	if !isThrottle(err) {
		return fmt.Errorf("dynamostore: %s (%s): %w", what, op, err)
	}
	if reasons := throttlingReasons(err); reasons != "" {
		return fmt.Errorf("dynamostore: %s (%s) throttled: %s: %w", what, op, reasons, err)
	}
	return fmt.Errorf("dynamostore: %s (%s) throttled: %w", what, op, err)
}

// unreadableAnswer is the SDK's error for an answer it could not read. Its
// text leaves out the SDK's, which may quote the answer and so a session's
// values; errors.As and errors.Is still reach the SDK's error.
type unreadableAnswer struct{ err error }

func (u unreadableAnswer) Error() string {
	msg := "DynamoDB's answer could not be read (the SDK's message, which may quote it, is left out)"
	switch {
	case errors.Is(u.err, context.DeadlineExceeded), errors.Is(u.err, context.Canceled):
		msg += ": the request's context ended while it was read"
	case errors.Is(u.err, io.ErrUnexpectedEOF):
		msg += ": it was cut short"
	}
	var re interface{ ServiceRequestID() string }
	if errors.As(u.err, &re) && re.ServiceRequestID() != "" {
		msg += "; request ID " + re.ServiceRequestID()
	}
	return msg
}

func (u unreadableAnswer) Unwrap() error { return u.err }

// throttlingReasons returns the reasons a throttling exception in err's
// chain gives, as "reason on resource" joined by "; ", or "".
func throttlingReasons(err error) string {
	var reasons []types.ThrottlingReason
	var ptee *types.ProvisionedThroughputExceededException
	var te *types.ThrottlingException
	var rle *types.RequestLimitExceeded
	switch {
	case errors.As(err, &ptee):
		reasons = ptee.ThrottlingReasons
	case errors.As(err, &te):
		reasons = te.ThrottlingReasons
	case errors.As(err, &rle):
		reasons = rle.ThrottlingReasons
	}
	parts := make([]string, 0, len(reasons))
	for _, r := range reasons {
		p := aws.ToString(r.Reason)
		if p == "" {
			continue
		}
		if res := aws.ToString(r.Resource); res != "" {
			p += " on " + res
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "; ")
}
