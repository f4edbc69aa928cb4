package dynamostore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Attribute names of a session item. They are short on purpose: DynamoDB
// counts attribute names in an item's size, and so in its write units.
const (
	// AttrID is the partition key (String): StorageKey of the session ID.
	AttrID = "id"
	// AttrValues holds the serialized session Values (Binary). It is
	// absent when the session has no values.
	AttrValues = "v"
	// AttrExpires is the expiry in epoch seconds (Number). Enable
	// DynamoDB's native TTL on it; EnsureTable does.
	AttrExpires = "exp"
	// AttrModified is when the item was last written, in epoch
	// milliseconds (Number).
	AttrModified = "mod"
	// AttrVersion is the write counter used by optimistic locking
	// (Number). It is absent unless WithOptimisticLocking is on.
	AttrVersion = "ver"
	// AttrOwner is the owner set by Store.SetOwner (String), the key of
	// the owner index. It is absent for sessions without an owner.
	AttrOwner = "own"
)

// OwnerIndexName is the name of the global secondary index on AttrOwner
// that Store.RevokeOwner queries. EnsureTable creates it when
// TableOptions.OwnerIndex is set.
const OwnerIndexName = "owner-index"

// MaxItemSize is DynamoDB's limit on the size of one item, attribute names
// included: 400 KB.
const MaxItemSize = 400 * 1024

// DynamoDBAPI is the part of *dynamodb.Client that the DynamoDB backend uses.
// Any value with these methods will do: a client wrapped for tracing, or a
// fake in tests.
type DynamoDBAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
}

var _ DynamoDBAPI = (*dynamodb.Client)(nil)

// DynamoDBBackend is the Backend that keeps sessions in a DynamoDB table
// whose partition key is AttrID (String). Create one with
// NewDynamoDBBackend; the Store makes its own unless WithBackend is given.
type DynamoDBBackend struct {
	client         DynamoDBAPI
	table          *string
	consistentRead *bool

	createCond compiledExpr // attribute_not_exists(id)
	// updates holds the UpdateItem expressions of PutExisting, indexed by
	// the updateFlags of the record written.
	updates    [updateVariants]compiledExpr
	touch      compiledExpr // SET exp, mod if live
	deleteLive compiledExpr // delete if live
	ownerQuery compiledExpr // own = :owner
	reapScan   compiledExpr // projection id, exp; filter exp < now
	reapDelete compiledExpr // delete if exp < now
}

var _ Backend = (*DynamoDBBackend)(nil)

// NewDynamoDBBackend returns a Backend on the named table. consistentRead
// selects strongly consistent reads (the Store's default) or eventually
// consistent ones, which cost half the read units but may miss a write made
// a moment earlier through another instance.
func NewDynamoDBBackend(client DynamoDBAPI, table string, consistentRead bool) (*DynamoDBBackend, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil DynamoDB client", ErrInvalidOption)
	}
	if err := validTableName(table); err != nil {
		return nil, err
	}
	b := &DynamoDBBackend{
		client:         client,
		table:          aws.String(table),
		consistentRead: aws.Bool(consistentRead),
	}
	id, exp, mod := expression.Name(AttrID), expression.Name(AttrExpires), expression.Name(AttrModified)
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
		{&b.ownerQuery, expression.NewBuilder().WithKeyCondition(expression.Key(AttrOwner).Equal(expression.Value(paramMarker + "owner")))},
		{&b.reapScan, expression.NewBuilder().WithProjection(expression.NamesList(id, exp)).
			WithFilter(exp.LessThan(param("now")))},
		{&b.reapDelete, expression.NewBuilder().WithCondition(exp.LessThan(param("now")))},
	} {
		if *c.dst, err = compile(c.b); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// updateFlags selects the UpdateItem expression of PutExisting.
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
	v, exp, mod := expression.Name(AttrValues), expression.Name(AttrExpires), expression.Name(AttrModified)
	u := expression.Set(exp, param("exp")).Set(mod, param("mod"))
	if f&withData != 0 {
		u = u.Set(v, param("v"))
	} else {
		u = u.Remove(v)
	}
	cond := live
	if f&withVersion != 0 {
		ver := expression.Name(AttrVersion)
		u = u.Set(ver, param("ver"))
		cond = cond.And(expression.AttributeNotExists(ver).Or(ver.Equal(param("prev"))))
	}
	if f&withOwner != 0 {
		u = u.Set(expression.Name(AttrOwner), param("own"))
	} else if f&withoutOwner != 0 {
		u = u.Remove(expression.Name(AttrOwner))
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
func (b *DynamoDBBackend) Table() string { return *b.table }

func keyOf(key string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{AttrID: &types.AttributeValueMemberS{Value: key}}
}

func epochSeconds(t time.Time) *types.AttributeValueMemberN {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(t.Unix(), 10)}
}

func epochMillis(t time.Time) *types.AttributeValueMemberN {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(t.UnixMilli(), 10)}
}

// writeValues holds the attribute values of one write, so that they take
// one allocation together rather than one each: the key, up to three
// numbers and the data.
type writeValues struct {
	key  types.AttributeValueMemberS
	num  [3]types.AttributeValueMemberN
	data types.AttributeValueMemberB
}

// newWriteValues returns the values of a write of key and data with the
// numbers ns, of which there are at most three.
func newWriteValues(key string, data []byte, ns ...int64) *writeValues {
	v := &writeValues{
		key:  types.AttributeValueMemberS{Value: key},
		data: types.AttributeValueMemberB{Value: data},
	}
	setNumbers(v.num[:len(ns)], ns...)
	return v
}

// keyMap returns the Key parameter of the write.
func (v *writeValues) keyMap() map[string]types.AttributeValue {
	return map[string]types.AttributeValue{AttrID: &v.key}
}

// setNumbers sets dst to Number values of ns, in order, with the digits of
// all of them in one allocation.
func setNumbers(dst []types.AttributeValueMemberN, ns ...int64) {
	var buf [64]byte
	digits := buf[:0]
	for _, n := range ns {
		digits = strconv.AppendInt(digits, n, 10)
	}
	all := string(digits)
	for i, n := range ns {
		l := len(strconv.AppendInt(buf[:0], n, 10))
		dst[i].Value, all = all[:l], all[l:]
	}
}

// isConditionFailed reports whether err is DynamoDB refusing a conditional
// write.
func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

// Get implements Backend with one GetItem.
func (b *DynamoDBBackend) Get(ctx context.Context, key string, now time.Time) (Record, error) {
	out, err := b.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      b.table,
		Key:            keyOf(key),
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

// decodeItem reads a session item. A missing or malformed expiry is an
// error wrapping ErrDecode: such a row is never served.
func decodeItem(key string, item map[string]types.AttributeValue) (Record, error) {
	rec := Record{Key: key}
	exp, ok := item[AttrExpires].(*types.AttributeValueMemberN)
	if !ok {
		return Record{}, fmt.Errorf("%w: item has no numeric %q attribute", ErrDecode, AttrExpires)
	}
	secs, err := strconv.ParseInt(exp.Value, 10, 64)
	if err != nil {
		return Record{}, fmt.Errorf("%w: attribute %q: %w", ErrDecode, AttrExpires, err)
	}
	rec.Expires = time.Unix(secs, 0)
	if mod, ok := item[AttrModified].(*types.AttributeValueMemberN); ok {
		if ms, err := strconv.ParseInt(mod.Value, 10, 64); err == nil {
			rec.Modified = time.UnixMilli(ms)
		}
	}
	switch v := item[AttrValues].(type) {
	case nil:
	case *types.AttributeValueMemberB:
		rec.Data = v.Value
	default:
		return Record{}, fmt.Errorf("%w: attribute %q is not Binary", ErrDecode, AttrValues)
	}
	if ver, ok := item[AttrVersion].(*types.AttributeValueMemberN); ok {
		if n, err := strconv.ParseInt(ver.Value, 10, 64); err == nil && n > 0 {
			rec.Version = n
		}
	}
	if own, ok := item[AttrOwner].(*types.AttributeValueMemberS); ok {
		rec.Owner = own.Value
	}
	return rec, nil
}

// ItemSize returns the size DynamoDB counts for the item rec is stored as:
// the lengths of attribute names and values.
func ItemSize(rec Record) int {
	n := len(AttrID) + len(rec.Key) +
		len(AttrExpires) + numberSize(rec.Expires.Unix()) +
		len(AttrModified) + numberSize(rec.Modified.UnixMilli())
	if len(rec.Data) > 0 {
		n += len(AttrValues) + len(rec.Data)
	}
	if rec.Version > 0 {
		n += len(AttrVersion) + numberSize(rec.Version)
	}
	if rec.Owner != "" {
		n += len(AttrOwner) + len(rec.Owner)
	}
	return n
}

// numberSize is DynamoDB's size for a Number: about one byte per two
// significant digits, plus one.
func numberSize(v int64) int {
	digits := len(strconv.FormatInt(v, 10))
	if v < 0 {
		digits--
	}
	return (digits+1)/2 + 1
}

// Put implements Backend: PutNew is a PutItem conditioned on
// attribute_not_exists(id); PutExisting an UpdateItem conditioned on the
// item existing and not having expired. Neither is called when the item
// would exceed MaxItemSize.
func (b *DynamoDBBackend) Put(ctx context.Context, rec Record, mode PutMode) error {
	if size := ItemSize(rec); size > MaxItemSize {
		return fmt.Errorf("%w: item would be %d bytes; DynamoDB's limit is %d", ErrTooLarge, size, MaxItemSize)
	}
	var err error
	op := "PutItem"
	switch mode {
	case PutNew:
		v := newWriteValues(rec.Key, rec.Data, rec.Expires.Unix(), rec.Modified.UnixMilli())
		item := map[string]types.AttributeValue{
			AttrID:       &v.key,
			AttrExpires:  &v.num[0],
			AttrModified: &v.num[1],
		}
		if len(rec.Data) > 0 {
			item[AttrValues] = &v.data
		}
		if rec.Version > 0 {
			item[AttrVersion] = &types.AttributeValueMemberN{Value: strconv.FormatInt(rec.Version, 10)}
		}
		if rec.Owner != "" {
			item[AttrOwner] = &types.AttributeValueMemberS{Value: rec.Owner}
		}
		_, err = b.client.PutItem(ctx, &dynamodb.PutItemInput{
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
	case PutExisting:
		op = "UpdateItem"
		f := flagsOf(rec)
		e := &b.updates[f]
		vals := make(map[string]types.AttributeValue, len(e.placeholders))
		v := newWriteValues(rec.Key, rec.Data, rec.Modified.Unix(), rec.Expires.Unix(), rec.Modified.UnixMilli())
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
		_, err = b.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
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
	default:
		return fmt.Errorf("%w: unknown PutMode %d", ErrInvalidOption, mode)
	}
	if err != nil {
		return callError(op, "writing session", err)
	}
	return nil
}

// SetExpires implements Backend with one conditional UpdateItem that touches
// only the expiry and last-written attributes.
func (b *DynamoDBBackend) SetExpires(ctx context.Context, key string, expires, modified time.Time) error {
	e := &b.touch
	v := newWriteValues(key, nil, modified.Unix(), expires.Unix(), modified.UnixMilli())
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
func (b *DynamoDBBackend) Delete(ctx context.Context, key string, now time.Time) error {
	e := &b.deleteLive
	_, err := b.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 b.table,
		Key:                       keyOf(key),
		ConditionExpression:       e.condition,
		ExpressionAttributeNames:  e.names,
		ExpressionAttributeValues: map[string]types.AttributeValue{e.ph("now"): epochSeconds(now)},
	})
	if isConditionFailed(err) {
		return ErrNotFound
	}
	if err != nil {
		return callError("DeleteItem", "deleting session", err)
	}
	return nil
}

// whyRefused tells a versioned update refused because the row is gone
// (ErrNotFound) from one refused because another write got there first
// (ErrConflict), with one strongly consistent read on that failure path.
func (b *DynamoDBBackend) whyRefused(ctx context.Context, rec Record) error {
	item, err := b.readRefused(ctx, rec.Key)
	if err != nil {
		return callError("GetItem", "reading session after a refused update", err)
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
func (b *DynamoDBBackend) readRefused(ctx context.Context, key string) (map[string]types.AttributeValue, error) {
	out, err := b.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: b.table, Key: keyOf(key), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, err
	}
	return out.Item, nil
}

// DeleteOwner implements OwnerBackend: it queries OwnerIndexName for the
// owner's sessions, page by page, and deletes each. The index is eventually
// consistent, so a session written a moment before may be missed; call it
// again, or rely on the session's expiry, where that matters.
func (b *DynamoDBBackend) DeleteOwner(ctx context.Context, owner string) (int, error) {
	if owner == "" {
		return 0, fmt.Errorf("%w: empty owner", ErrInvalidOption)
	}
	q := &b.ownerQuery
	p := dynamodb.NewQueryPaginator(b.client, &dynamodb.QueryInput{
		TableName:                 b.table,
		IndexName:                 aws.String(OwnerIndexName),
		KeyConditionExpression:    q.keyCondition,
		ExpressionAttributeNames:  q.names,
		ExpressionAttributeValues: map[string]types.AttributeValue{q.ph("owner"): &types.AttributeValueMemberS{Value: owner}},
	})
	n := 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return n, callError("Query", "querying sessions of an owner", err)
		}
		for _, item := range page.Items {
			key, ok := item[AttrID].(*types.AttributeValueMemberS)
			if !ok {
				continue
			}
			if err := b.Delete(ctx, key.Value, time.Now()); errors.Is(err, ErrNotFound) {
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
func (b *DynamoDBBackend) wroteAlready(ctx context.Context, rec Record, err error) bool {
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
