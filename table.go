package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"github.com/dynamostore/dynamostore/internal/tableschema"
)

// tableAPI is the part of *dynamodb.Client that EnsureTable uses.
type tableAPI interface {
	dynamodb.DescribeTableAPIClient
	UpdateTable(ctx context.Context, in *dynamodb.UpdateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateTableOutput, error)
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTimeToLive(ctx context.Context, in *dynamodb.DescribeTimeToLiveInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTimeToLiveOutput, error)
	UpdateTimeToLive(ctx context.Context, in *dynamodb.UpdateTimeToLiveInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error)
}

var _ tableAPI = (*dynamodb.Client)(nil)

// Default provisioned capacity of a table EnsureTable creates, as in
// connect-dynamodb-session.
const (
	defaultReadCapacity  = 5
	defaultWriteCapacity = 5
)

// TableOptions says how EnsureTable creates a missing table. It never
// changes a table that exists, beyond enabling TTL and, with OwnerIndex,
// adding the owner index.
type TableOptions struct {
	// OnDemand creates the table with PAY_PER_REQUEST billing instead of
	// provisioned capacity. Default false.
	OnDemand bool
	// ReadCapacity and WriteCapacity are the provisioned units when
	// OnDemand is false. Default (0): 5 and 5.
	ReadCapacity, WriteCapacity int64
	// WaitTimeout bounds the wait for the table (and the owner index) to
	// become ACTIVE. Zero means 2 minutes.
	WaitTimeout time.Duration
	// OwnerIndex adds the global secondary index "owner-index" on the
	// attribute "own" (String; keys only), which Store.RevokeOwner needs;
	// on an existing table without it, EnsureTable adds it with
	// UpdateTable and waits for it; an existing index of that name must be
	// keyed on "own" alone. Default false.
	OwnerIndex bool
}

// EnsureTable creates the session table when it does not exist (partition
// key "id", String), waits until it is ACTIVE with the SDK's waiter, and
// enables DynamoDB's native TTL on the expiry attribute "exp" (Number,
// epoch seconds) unless DescribeTimeToLive shows it enabled already
// (UpdateTimeToLive may not be repeated within an hour). It is safe to call
// on an existing table and from several processes at once.
//
// An existing table must have the partition key "id" of type S alone, and
// must not define any of the store's attributes ("v" Binary, "exp" and
// "mod" and "ver" Number, "own" String) with another type (as the key of an
// index, say); with opts.OwnerIndex, an existing "owner-index" must be
// keyed on "own" alone. Otherwise EnsureTable changes nothing and returns
// an error wrapping ErrInvalidOption that says what is wrong and how to fix
// it (a table's key cannot be changed: the fix is a new table). The same
// goes for TTL enabled on another attribute than "exp".
func EnsureTable(ctx context.Context, client *dynamodb.Client, table string, opts TableOptions) error {
	if client == nil {
		return fmt.Errorf("%w: nil DynamoDB client", ErrInvalidOption)
	}
	return ensureTable(ctx, client, table, opts)
}

func ensureTable(ctx context.Context, client tableAPI, table string, opts TableOptions) error {
	if err := validTableName(table); err != nil {
		return err
	}
	if opts.ReadCapacity < 0 || opts.WriteCapacity < 0 {
		return fmt.Errorf("%w: negative table capacity", ErrInvalidOption)
	}
	if opts.WaitTimeout < 0 {
		return fmt.Errorf("%w: negative table wait timeout %v", ErrInvalidOption, opts.WaitTimeout)
	}
	if opts.WaitTimeout == 0 {
		opts.WaitTimeout = 2 * time.Minute
	}
	in := &dynamodb.CreateTableInput{
		TableName:            aws.String(table),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(attrID), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(attrID), KeyType: types.KeyTypeHash}},
	}
	throughput := opts.throughput()
	if throughput == nil {
		in.BillingMode = types.BillingModePayPerRequest
	} else {
		in.BillingMode = types.BillingModeProvisioned
		in.ProvisionedThroughput = throughput
	}
	if opts.OwnerIndex {
		in.AttributeDefinitions = append(in.AttributeDefinitions, ownerAttribute())
		in.GlobalSecondaryIndexes = []types.GlobalSecondaryIndex{ownerIndex(throughput)}
	}
	if _, err := client.CreateTable(ctx, in); err != nil {
		var inUse *types.ResourceInUseException
		if !errors.As(err, &inUse) {
			return fmt.Errorf("dynamostore: creating table %s: %w", table, err)
		}
	}
	w := dynamodb.NewTableExistsWaiter(client, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = 200 * time.Millisecond
		o.MaxDelay = 5 * time.Second
	})
	d, err := w.WaitForOutput(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)}, opts.WaitTimeout)
	if err != nil {
		return fmt.Errorf("dynamostore: waiting for table %s: %w", table, err)
	}
	// The table may be one made by hand, or by another tool, before
	// CreateTable was called: nothing is changed on a table the store
	// cannot use.
	if problems := tableschema.Problems(d.Table); len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidOption, strings.Join(problems, "; "))
	}
	if opts.OwnerIndex {
		if err := ensureOwnerIndex(ctx, client, table, opts); err != nil {
			return err
		}
	}
	return ensureTTL(ctx, client, table)
}

// throughput returns the provisioned throughput of the options, or nil for
// on-demand billing.
func (o TableOptions) throughput() *types.ProvisionedThroughput {
	if o.OnDemand {
		return nil
	}
	return &types.ProvisionedThroughput{
		ReadCapacityUnits:  aws.Int64(orDefault(o.ReadCapacity, defaultReadCapacity)),
		WriteCapacityUnits: aws.Int64(orDefault(o.WriteCapacity, defaultWriteCapacity)),
	}
}

func ownerAttribute() types.AttributeDefinition {
	return types.AttributeDefinition{AttributeName: aws.String(attrOwner), AttributeType: types.ScalarAttributeTypeS}
}

func ownerIndex(throughput *types.ProvisionedThroughput) types.GlobalSecondaryIndex {
	return types.GlobalSecondaryIndex{
		IndexName:             aws.String(ownerIndexName),
		KeySchema:             []types.KeySchemaElement{{AttributeName: aws.String(attrOwner), KeyType: types.KeyTypeHash}},
		Projection:            &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly},
		ProvisionedThroughput: throughput,
	}
}

// ensureOwnerIndex adds the owner index to an existing table that lacks it
// and waits until the index is ACTIVE.
func ensureOwnerIndex(ctx context.Context, client tableAPI, table string, opts TableOptions) error {
	ctx, cancel := context.WithTimeout(ctx, opts.WaitTimeout)
	defer cancel()
	created := false
	for delay := 200 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
		d, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		if err != nil {
			return fmt.Errorf("dynamostore: describing table %s: %w", table, err)
		}
		var status types.IndexStatus
		found := false
		for _, gsi := range d.Table.GlobalSecondaryIndexes {
			if aws.ToString(gsi.IndexName) == ownerIndexName {
				found, status = true, gsi.IndexStatus
			}
		}
		if _, problem := tableschema.OwnerIndexProblem(d.Table); problem != "" {
			return fmt.Errorf("%w: %s", ErrInvalidOption, problem)
		}
		switch {
		case found && (status == types.IndexStatusActive || status == ""):
			return nil
		case !found && !created:
			var throughput *types.ProvisionedThroughput
			if d.Table.BillingModeSummary == nil || d.Table.BillingModeSummary.BillingMode != types.BillingModePayPerRequest {
				if throughput = opts.throughput(); throughput == nil {
					throughput = TableOptions{}.throughput()
				}
			}
			gsi := ownerIndex(throughput)
			_, err := client.UpdateTable(ctx, &dynamodb.UpdateTableInput{
				TableName:            aws.String(table),
				AttributeDefinitions: []types.AttributeDefinition{ownerAttribute()},
				GlobalSecondaryIndexUpdates: []types.GlobalSecondaryIndexUpdate{{Create: &types.CreateGlobalSecondaryIndexAction{
					IndexName: gsi.IndexName, KeySchema: gsi.KeySchema, Projection: gsi.Projection, ProvisionedThroughput: gsi.ProvisionedThroughput,
				}}},
			})
			if err != nil {
				return fmt.Errorf("dynamostore: adding the owner index to %s: %w", table, err)
			}
			created = true
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("dynamostore: waiting for the owner index of %s: %w", table, ctx.Err())
		case <-time.After(delay):
		}
	}
}

func orDefault(v, def int64) int64 {
	if v == 0 {
		return def
	}
	return v
}

// ensureTTL enables TTL on attrExpires unless it is enabled or being enabled.
func ensureTTL(ctx context.Context, client tableAPI, table string) error {
	d, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(table)})
	if err != nil {
		return fmt.Errorf("dynamostore: describing TTL of %s: %w", table, err)
	}
	if ttl := d.TimeToLiveDescription; ttl != nil {
		switch ttl.TimeToLiveStatus {
		case types.TimeToLiveStatusEnabled, types.TimeToLiveStatusEnabling:
			if aws.ToString(ttl.AttributeName) != attrExpires {
				return fmt.Errorf("%w: table %s has TTL on attribute %q, not %q", ErrInvalidOption, table, aws.ToString(ttl.AttributeName), attrExpires)
			}
			return nil
		}
	}
	_, err = client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName: aws.String(table),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{
			AttributeName: aws.String(attrExpires),
			Enabled:       aws.Bool(true),
		},
	})
	if err != nil {
		return fmt.Errorf("dynamostore: enabling TTL on %s: %w", table, err)
	}
	return nil
}

// checkTable makes sure, with one DescribeTable, that the Store can start:
// the table exists and has the store's key schema, and the credentials and
// region reach it. Its error says which and how to fix it, wrapping
// ErrInvalidOption: only a change of configuration fixes those. A check it
// cannot make (no permission, throttling, a failure or no answer within
// timeout, checkTimeout but in tests) is logged as a warning, and the Store starts unchecked.
// When the Store runs no reaper (reaperOff), one DescribeTimeToLive more
// warns if DynamoDB's TTL is off too, as expired rows would then stay for
// good.
func checkTable(ctx context.Context, client tableAPI, table string, reaperOff bool, timeout time.Duration, log *slog.Logger) error {
	caller := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	region := "the configured region"
	if c, ok := client.(*dynamodb.Client); ok {
		region = "region " + c.Options().Region
	}
	out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	var missing *types.ResourceNotFoundException
	var api smithy.APIError
	switch {
	case errors.As(err, &missing):
		return fmt.Errorf("%w: table %s does not exist in %s: create it (WithAutoCreate, EnsureTable or `dynamostore create-table`), or check the table name and region: %w", ErrInvalidOption, table, region, err)
	case errors.As(err, &api) && api.ErrorCode() == "AccessDeniedException":
		log.WarnContext(ctx, "dynamostore: cannot check the session table (no dynamodb:DescribeTable permission); starting unchecked", "table", table, "error", err)
		return nil
	case err != nil && noCredentials(err):
		return fmt.Errorf("%w: no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE, run on a role, or give them with WithAWSConfig: %w", ErrInvalidOption, err)
	case errors.As(err, &api) && refusedCredentials[api.ErrorCode()]:
		return fmt.Errorf("%w: DynamoDB in %s refused the AWS credentials (%s): check AWS_ACCESS_KEY_ID, AWS_PROFILE or the credentials given with WithAWSConfig: %w", ErrInvalidOption, region, api.ErrorCode(), err)
	case err != nil && caller.Err() != nil:
		// The construction's own context ended: the caller gave up.
		return fmt.Errorf("dynamostore: checking table %s: %w", table, err)
	case err != nil:
		// Throttling, a 5xx, the network, no answer in time: DynamoDB may
		// be back by the first request.
		log.WarnContext(ctx, "dynamostore: cannot check the session table now; starting unchecked", "table", table, "region", region, "error", err)
		return nil
	}
	if out.Table == nil {
		// Not DynamoDB's answer (a proxy, an emulator): nothing to check.
		log.WarnContext(ctx, "dynamostore: DynamoDB's answer to DescribeTable described no table; starting unchecked", "table", table, "region", region)
		return nil
	}
	if problems := tableschema.Problems(out.Table); len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidOption, strings.Join(problems, "; "))
	}
	switch st := out.Table.TableStatus; st {
	case types.TableStatusDeleting, types.TableStatusArchiving, types.TableStatusArchived, types.TableStatusInaccessibleEncryptionCredentials:
		return fmt.Errorf("%w: table %s is %s and cannot hold sessions", ErrInvalidOption, table, st)
	}
	if !reaperOff {
		return nil
	}
	ttl, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(table)})
	if err != nil {
		log.WarnContext(ctx, "dynamostore: cannot tell whether the session table has TTL on", "table", table, "error", err)
		return nil
	}
	if d := ttl.TimeToLiveDescription; d == nil || (d.TimeToLiveStatus != types.TimeToLiveStatusEnabled && d.TimeToLiveStatus != types.TimeToLiveStatusEnabling) {
		log.WarnContext(ctx, "dynamostore: the session table has TTL off and the reaper is disabled: expired rows will accumulate; enable TTL on attribute exp (EnsureTable does) or run the reaper", "table", table)
	}
	return nil
}

// checkTimeout bounds the table check at construction, which a DynamoDB
// that does not answer would otherwise hold for as long as ctx allows.
const checkTimeout = 5 * time.Second

// refusedCredentials are the error codes with which DynamoDB refuses a
// request's credentials.
var refusedCredentials = map[string]bool{
	"UnrecognizedClientException":  true,
	"InvalidSignatureException":    true,
	"ExpiredTokenException":        true,
	"IncompleteSignatureException": true,
	"InvalidClientTokenId":         true,
}

// noCredentials reports whether err is the SDK finding no credentials to
// sign with (before any request was sent), or DynamoDB answering a request
// sent without any.
func noCredentials(err error) bool {
	var api smithy.APIError
	if errors.As(err, &api) {
		code := api.ErrorCode()
		return code == "MissingAuthenticationToken" || code == "MissingAuthenticationTokenException"
	}
	msg := err.Error()
	return strings.Contains(msg, "get identity") || strings.Contains(msg, "failed to retrieve credentials")
}
