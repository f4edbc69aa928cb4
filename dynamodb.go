package dynamostore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

// dynamoAPI is the part of *dynamodb.Client that the DynamoDB backend uses,
// so that tests can give it a fake.
type dynamoAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
}

var _ dynamoAPI = (*dynamodb.Client)(nil)

// dynamoBackend is the Backend that keeps sessions in a DynamoDB table
// whose partition key is attrID (String).
type dynamoBackend struct {
	client         dynamoAPI
	table          *string
	consistentRead *bool
	owner          string        // reaper lease owner ID of this backend
	reaping        chan struct{} // one reaper pass at a time
	prefix         string        // DynamoDBOptions.KeyPrefix

	createCond compiledExpr // attribute_not_exists(id)
	// updates holds the UpdateItem expressions of Update, indexed by
	// the updateFlags of the record written.
	updates    [updateVariants]compiledExpr
	touch      compiledExpr // SET exp, mod if live
	deleteLive compiledExpr // delete if live
	deleteVer  compiledExpr // delete if live and of the version :prev (or none)
	ownerQuery compiledExpr // own = :owner
	reapScan   compiledExpr // projection id, exp; filter exp < now
	reapDelete compiledExpr // delete if exp < now
}

var _ Backend = (*dynamoBackend)(nil)

// DynamoDBOptions configure NewDynamoDBBackend. The zero value is the
// Store's own configuration.
type DynamoDBOptions struct {
	// EventuallyConsistent makes reads eventually consistent, which costs
	// half the read units but may miss a write made a moment earlier
	// through another instance. Default: strongly consistent reads.
	EventuallyConsistent bool

	// KeyPrefix shares one table between several apps or environments:
	// the backend stores its sessions under KeyPrefix + storage key and
	// never loads, writes, reaps or revokes a row outside its prefix (nor,
	// without a prefix, one with a prefix), and keeps its own reaper lease.
	// It must end with '#' ("staging#", "app1#"), which no storage key
	// contains, and be at most 255 bytes. An IAM policy can confine an app
	// to its prefix (dynamodb:LeadingKeys; see docs/infrastructure).
	// Default: none.
	KeyPrefix string
}

// NewDynamoDBBackend returns the Backend that keeps sessions in the named
// DynamoDB table, the one a Store makes itself unless WithBackend is given:
// for a job that reaps (its Reap) or revokes (its DeleteOwner) without a
// Store, for a Store with a key prefix (give it with WithBackend), or to
// wrap in a Backend of your own. An invalid table name or KeyPrefix is an
// error wrapping ErrInvalidOption.
func NewDynamoDBBackend(client *dynamodb.Client, table string, opts DynamoDBOptions) (Backend, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil DynamoDB client", ErrInvalidOption)
	}
	p := opts.KeyPrefix
	if p != "" && (!strings.HasSuffix(p, "#") || len(p) > 255 || !utf8.ValidString(p)) {
		return nil, fmt.Errorf("%w: key prefix %q must end with '#' and be at most 255 bytes of UTF-8", ErrInvalidOption, p)
	}
	return newPrefixedBackend(client, table, !opts.EventuallyConsistent, p)
}

func newDynamoBackend(client dynamoAPI, table string, consistentRead bool) (*dynamoBackend, error) {
	return newPrefixedBackend(client, table, consistentRead, "")
}

// newPrefixedBackend is the backend on table whose rows are those of
// prefix (see DynamoDBOptions.KeyPrefix and ownsID).
func newPrefixedBackend(client dynamoAPI, table string, consistentRead bool, prefix string) (*dynamoBackend, error) {
	if err := validTableName(table); err != nil {
		return nil, err
	}
	b := &dynamoBackend{
		client:         client,
		table:          aws.String(table),
		consistentRead: aws.Bool(consistentRead),
		owner:          newOwnerID(),
		reaping:        make(chan struct{}, 1),
		prefix:         prefix,
	}
	// The reaper's Scan keeps to the rows ownsID says are the backend's.
	ours := expression.Not(expression.Contains(id0, paramMarker+"hash"))
	if prefix != "" {
		ours = expression.BeginsWith(id0, paramMarker+"prefix").And(id0.Size().Equal(param("len")))
	}
	id, exp, mod := id0, expression.Name(attrExpires), expression.Name(attrModified)
	live := expression.AttributeExists(id).And(exp.GreaterThan(param("now")))
	for f := range updateFlags(updateVariants) {
		var err error
		if b.updates[f], err = compile(f.builder(live)); err != nil {
			return nil, err
		}
	}
	var err error
	for _, c := range []struct {
		dst *compiledExpr
		b   expression.Builder
	}{
		{&b.createCond, expression.NewBuilder().WithCondition(expression.AttributeNotExists(id))},
		{&b.touch, expression.NewBuilder().WithCondition(live).WithUpdate(
			expression.Set(exp, param("exp")).Set(mod, param("mod")))},
		{&b.deleteLive, expression.NewBuilder().WithCondition(live)},
		{&b.deleteVer, expression.NewBuilder().WithCondition(live.And(
			expression.AttributeNotExists(expression.Name(attrVersion)).Or(expression.Name(attrVersion).Equal(param("prev")))))},
		{&b.ownerQuery, expression.NewBuilder().WithKeyCondition(expression.Key(attrOwner).Equal(expression.Value(paramMarker + "owner")))},
		{&b.reapScan, expression.NewBuilder().WithProjection(expression.NamesList(id, exp)).
			WithFilter(exp.LessThan(param("now")).And(ours))},
		{&b.reapDelete, expression.NewBuilder().WithCondition(exp.LessThan(param("now")))},
	} {
		if *c.dst, err = compile(c.b); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// id0 is the name of the partition key in expressions.
var id0 = expression.Name(attrID)

// ownsID reports whether the row with partition key id is one of the
// backend's sessions: with a prefix, the prefix and then a storage key (no
// '#'); without, an ID with no '#' (which also leaves every lease item
// alone).
func (b *dynamoBackend) ownsID(id string) bool {
	if b.prefix == "" {
		return !strings.Contains(id, "#")
	}
	return strings.HasPrefix(id, b.prefix) && len(id) == len(b.prefix)+storageKeyLen
}

// storageKeyLen is the length of a storage key: a SHA-256 in unpadded
// base64url.
var storageKeyLen = len(storageKey(""))

// updateFlags selects the UpdateItem expression of Update.
type updateFlags int

const (
	withData     updateFlags = 1 << iota // SET v (else REMOVE v)
	withVersion                          // check and SET ver
	withOwner                            // SET own
	withoutOwner                         // REMOVE own
	updateVariants
)

func flagsOf(rec Record) updateFlags {
	var f updateFlags
	if len(rec.Data) > 0 {
		f |= withData
	}
	if rec.Version > 0 {
		f |= withVersion
	}
	if rec.Owner != "" {
		f |= withOwner
	} else if rec.ClearOwner {
		f |= withoutOwner
	}
	return f
}

// builder returns the UpdateItem expression for the flags: the row must be
// live, and with withVersion hold the previous version.
func (f updateFlags) builder(live expression.ConditionBuilder) expression.Builder {
	v, exp, mod := expression.Name(attrValues), expression.Name(attrExpires), expression.Name(attrModified)
	u := expression.Set(exp, param("exp")).Set(mod, param("mod"))
	if f&withData != 0 {
		u = u.Set(v, param("v"))
	} else {
		u = u.Remove(v)
	}
	cond := live
	if f&withVersion != 0 {
		ver := expression.Name(attrVersion)
		u = u.Set(ver, param("ver"))
		cond = cond.And(expression.AttributeNotExists(ver).Or(ver.Equal(param("prev"))))
	}
	if f&withOwner != 0 {
		u = u.Set(expression.Name(attrOwner), param("own"))
	} else if f&withoutOwner != 0 {
		u = u.Remove(expression.Name(attrOwner))
	}
	return expression.NewBuilder().WithCondition(cond).WithUpdate(u)
}

// validTableName checks a name against DynamoDB's rules: 3 to 255
// characters of a-z, A-Z, 0-9, '_', '-' and '.'.
func validTableName(name string) error {
	if len(name) < 3 || len(name) > 255 {
		return fmt.Errorf("%w: table name %q must be 3 to 255 characters", ErrInvalidOption, name)
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return fmt.Errorf("%w: table name %q has a character other than a-z, A-Z, 0-9, '_', '-', '.'", ErrInvalidOption, name)
		}
	}
	return nil
}

// Table returns the table name.

// isConditionFailed reports whether err is DynamoDB refusing a conditional
// write.
func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

// Get implements Backend with one GetItem.
func (b *dynamoBackend) Get(ctx context.Context, key string, now time.Time) (Record, error) {
	out, err := b.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      b.table,
		Key:            keyOf(b.prefix + key),
		ConsistentRead: b.consistentRead,
	})
	if err != nil {
		return Record{}, callError("GetItem", "loading session", err)
	}
	if out.Item == nil {
		return Record{}, ErrNotFound
	}
	rec, err := decodeItem(key, out.Item)
	if err != nil {
		return Record{}, err
	}
	if expired(now, rec.Expires) {
		return Record{}, ErrNotFound
	}
	return rec, nil
}

// Create implements Backend with a PutItem conditioned on
// attribute_not_exists(id). It makes no call when the item would exceed
// DynamoDB's item size limit.
func (b *dynamoBackend) Create(ctx context.Context, rec Record) error {
	if err := checkSize(rec, b.prefix); err != nil {
		return err
	}
	v := newWriteValues(b.prefix+rec.Key, rec.Data, rec.Expires.Unix(), rec.Modified.UnixMilli())
	item := map[string]types.AttributeValue{
		attrID:       &v.key,
		attrExpires:  &v.num[0],
		attrModified: &v.num[1],
	}
	if len(rec.Data) > 0 {
		item[attrValues] = &v.data
	}
	if rec.Version > 0 {
		item[attrVersion] = &types.AttributeValueMemberN{Value: strconv.FormatInt(rec.Version, 10)}
	}
	if rec.Owner != "" {
		item[attrOwner] = &types.AttributeValueMemberS{Value: rec.Owner}
	}
	_, err := b.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                b.table,
		Item:                     item,
		ConditionExpression:      b.createCond.condition,
		ExpressionAttributeNames: b.createCond.names,
		// On refusal, DynamoDB returns the item in the way.
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if isConditionFailed(err) {
		if b.wroteAlready(ctx, rec, err) {
			return nil
		}
		return ErrExists
	}
	if err != nil {
		return callError("PutItem", "writing session", err)
	}
	return nil
}

// Update implements Backend with an UpdateItem conditioned on the item
// existing and not having expired (and, versioned, on its version). It
// makes no call when the item would exceed DynamoDB's item size limit.
func (b *dynamoBackend) Update(ctx context.Context, rec Record) error {
	if err := checkSize(rec, b.prefix); err != nil {
		return err
	}
	f := flagsOf(rec)
	e := &b.updates[f]
	vals := make(map[string]types.AttributeValue, len(e.placeholders))
	v := newWriteValues(b.prefix+rec.Key, rec.Data, rec.Modified.Unix(), rec.Expires.Unix(), rec.Modified.UnixMilli())
	vals[e.ph("now")] = &v.num[0]
	vals[e.ph("exp")] = &v.num[1]
	vals[e.ph("mod")] = &v.num[2]
	if f&withData != 0 {
		vals[e.ph("v")] = &v.data
	}
	if f&withVersion != 0 {
		vals[e.ph("ver")] = &types.AttributeValueMemberN{Value: strconv.FormatInt(rec.Version, 10)}
		vals[e.ph("prev")] = &types.AttributeValueMemberN{Value: strconv.FormatInt(rec.Version-1, 10)}
	}
	if f&withOwner != 0 {
		vals[e.ph("own")] = &types.AttributeValueMemberS{Value: rec.Owner}
	}
	_, err := b.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 b.table,
		Key:                       v.keyMap(),
		ConditionExpression:       e.condition,
		UpdateExpression:          e.update,
		ExpressionAttributeNames:  e.names,
		ExpressionAttributeValues: vals,
	})
	if isConditionFailed(err) {
		if f&withVersion != 0 {
			return b.whyRefused(ctx, rec)
		}
		return ErrNotFound
	}
	if err != nil {
		return callError("UpdateItem", "writing session", err)
	}
	return nil
}

// Touch implements Backend with one conditional UpdateItem that sets only
// the expiry and last-written attributes.
func (b *dynamoBackend) Touch(ctx context.Context, key string, expires, modified time.Time) error {
	e := &b.touch
	v := newWriteValues(b.prefix+key, nil, modified.Unix(), expires.Unix(), modified.UnixMilli())
	_, err := b.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                b.table,
		Key:                      v.keyMap(),
		ConditionExpression:      e.condition,
		UpdateExpression:         e.update,
		ExpressionAttributeNames: e.names,
		ExpressionAttributeValues: map[string]types.AttributeValue{
			e.ph("now"): &v.num[0],
			e.ph("exp"): &v.num[1],
			e.ph("mod"): &v.num[2],
		},
	})
	if isConditionFailed(err) {
		return ErrNotFound
	}
	if err != nil {
		return callError("UpdateItem", "updating session expiry", err)
	}
	return nil
}

// Delete implements Backend with one DeleteItem conditioned on the item
// being live.
func (b *dynamoBackend) Delete(ctx context.Context, key string, now time.Time) error {
	e := &b.deleteLive
	err := b.deleteIf(ctx, key, e, map[string]types.AttributeValue{e.ph("now"): epochSeconds(now)})
	if isConditionFailed(err) {
		return ErrNotFound
	}
	return err
}

// deleteIf deletes the row under key on the condition of e, with vals. A
// failed condition is returned as the SDK's error, others wrapped.
func (b *dynamoBackend) deleteIf(ctx context.Context, key string, e *compiledExpr, vals map[string]types.AttributeValue) error {
	_, err := b.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 b.table,
		Key:                       keyOf(b.prefix + key),
		ConditionExpression:       e.condition,
		ExpressionAttributeNames:  e.names,
		ExpressionAttributeValues: vals,
	})
	if err != nil && !isConditionFailed(err) {
		return callError("DeleteItem", "deleting session", err)
	}
	return err
}

// deleteVersioned deletes the live row under key only while it holds
// version (or no version): the delete of the old row of a Regenerate with
// optimistic locking, which must not drop a change written since the load.
// It returns ErrNotFound when the row is gone and ErrConflict when it
// changed.
func (b *dynamoBackend) deleteVersioned(ctx context.Context, key string, version int64, now time.Time) error {
	e := &b.deleteVer
	err := b.deleteIf(ctx, key, e, map[string]types.AttributeValue{
		e.ph("now"):  epochSeconds(now),
		e.ph("prev"): &types.AttributeValueMemberN{Value: strconv.FormatInt(version, 10)},
	})
	if isConditionFailed(err) {
		return b.whyRefused(ctx, Record{Key: key, Version: version + 1, Modified: now})
	}
	return err
}

// versionedDeleter is a Backend that can delete a row only while it holds
// a version (see dynamoBackend.deleteVersioned).
type versionedDeleter interface {
	deleteVersioned(ctx context.Context, key string, version int64, now time.Time) error
}

// whyRefused tells a versioned update (or delete) refused because the row
// is gone (ErrNotFound) from one refused because another write got there
// first (ErrConflict), with one strongly consistent read on that failure
// path.
func (b *dynamoBackend) whyRefused(ctx context.Context, rec Record) error {
	item, err := b.readRefused(ctx, rec.Key)
	if err != nil {
		return callError("GetItem", "reading session after a refused write", err)
	}
	if item == nil {
		return ErrNotFound
	}
	cur, err := decodeItem(rec.Key, item)
	if err != nil || expired(rec.Modified, cur.Expires) {
		return ErrNotFound
	}
	return fmt.Errorf("%w: stored version %d, expected %d", ErrConflict, cur.Version, rec.Version-1)
}

// readRefused reads, strongly consistent, the item under key that a
// conditional write was refused over; nil when there is none.
func (b *dynamoBackend) readRefused(ctx context.Context, key string) (map[string]types.AttributeValue, error) {
	out, err := b.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: b.table, Key: keyOf(b.prefix + key), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, err
	}
	return out.Item, nil
}

// DeleteOwner implements Backend: it queries the owner index for the
// owner's sessions, page by page, and deletes each. The index is eventually
// consistent, so a session written a moment before may be missed; call it
// again, or rely on the session's expiry, where that matters.
func (b *dynamoBackend) DeleteOwner(ctx context.Context, owner string) (int, error) {
	if owner == "" {
		return 0, nil // no session has the empty owner: SetOwner "" clears it
	}
	q := &b.ownerQuery
	p := dynamodb.NewQueryPaginator(b.client, &dynamodb.QueryInput{
		TableName:                 b.table,
		IndexName:                 aws.String(ownerIndexName),
		KeyConditionExpression:    q.keyCondition,
		ExpressionAttributeNames:  q.names,
		ExpressionAttributeValues: map[string]types.AttributeValue{q.ph("owner"): &types.AttributeValueMemberS{Value: owner}},
	})
	n := 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			var api smithy.APIError
			if errors.As(err, &api) && api.ErrorCode() == "ValidationException" && strings.Contains(api.ErrorMessage(), "index") {
				return n, fmt.Errorf("%w: table %s has no index %s (TableOptions.OwnerIndex adds it): %w", ErrUnsupported, *b.table, ownerIndexName, err)
			}
			return n, callError("Query", "querying sessions of an owner", err)
		}
		for _, item := range page.Items {
			key, ok := item[attrID].(*types.AttributeValueMemberS)
			if !ok || !b.ownsID(key.Value) {
				continue // another store's session in a shared table
			}
			if err := b.Delete(ctx, key.Value[len(b.prefix):], time.Now()); errors.Is(err, ErrNotFound) {
				continue
			} else if err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// wroteAlready reports whether a create refused because its key exists
// found exactly the item it writes: the answer to an earlier attempt of the
// same call was lost (a connection reset after DynamoDB wrote the item) and
// the SDK retried it. The Store creates every session under a fresh random
// key, so no other write can have left that item. The item in the way comes
// with the refusal (ReturnValuesOnConditionCheckFailure); where a DynamoDB
// implementation does not return it, one strongly consistent GetItem reads
// it, on this rare path only.
func (b *dynamoBackend) wroteAlready(ctx context.Context, rec Record, err error) bool {
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		return false
	}
	item := ccf.Item
	if item == nil {
		var gerr error
		if item, gerr = b.readRefused(ctx, rec.Key); gerr != nil || item == nil {
			return false
		}
	}
	cur, derr := decodeItem(rec.Key, item)
	return derr == nil && bytes.Equal(cur.Data, rec.Data) && cur.Expires.Unix() == rec.Expires.Unix() &&
		cur.Modified.UnixMilli() == rec.Modified.UnixMilli() && cur.Version == rec.Version && cur.Owner == rec.Owner
}
