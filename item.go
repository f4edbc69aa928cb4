package dynamostore

import (
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynamostore/dynamostore/internal/tableschema"
)

// The table's layout (see internal/tableschema).
const (
	attrID         = tableschema.KeyAttr
	attrValues     = tableschema.ValuesAttr
	attrExpires    = tableschema.ExpiresAttr
	attrModified   = tableschema.ModifiedAttr
	attrVersion    = tableschema.VersionAttr
	attrOwner      = tableschema.OwnerAttr
	ownerIndexName = tableschema.OwnerIndex
	maxItemSize    = tableschema.MaxItemSize
)

func keyOf(key string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrID: &types.AttributeValueMemberS{Value: key}}
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
	return map[string]types.AttributeValue{attrID: &v.key}
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

// decodeItem reads a session item. A missing or malformed expiry is an
// error wrapping ErrDecode: such a row is never served.
func decodeItem(key string, item map[string]types.AttributeValue) (Record, error) {
	rec := Record{Key: key}
	exp, ok := item[attrExpires].(*types.AttributeValueMemberN)
	if !ok {
		return Record{}, fmt.Errorf("%w: item has no numeric %q attribute", ErrDecode, attrExpires)
	}
	secs, err := strconv.ParseInt(exp.Value, 10, 64)
	if err != nil {
		return Record{}, fmt.Errorf("%w: attribute %q: %w", ErrDecode, attrExpires, err)
	}
	rec.Expires = time.Unix(secs, 0)
	if mod, ok := item[attrModified].(*types.AttributeValueMemberN); ok {
		if ms, err := strconv.ParseInt(mod.Value, 10, 64); err == nil {
			rec.Modified = time.UnixMilli(ms)
		}
	}
	switch v := item[attrValues].(type) {
	case nil:
	case *types.AttributeValueMemberB:
		rec.Data = v.Value
	default:
		return Record{}, fmt.Errorf("%w: attribute %q is not Binary", ErrDecode, attrValues)
	}
	if ver, ok := item[attrVersion].(*types.AttributeValueMemberN); ok {
		if n, err := strconv.ParseInt(ver.Value, 10, 64); err == nil && n > 0 {
			rec.Version = n
		}
	}
	if own, ok := item[attrOwner].(*types.AttributeValueMemberS); ok {
		rec.Owner = own.Value
	}
	return rec, nil
}

// itemSize returns the size DynamoDB counts for the item rec is stored as:
// the lengths of attribute names and values.
func itemSize(rec Record) int {
	n := len(attrID) + len(rec.Key) +
		len(attrExpires) + numberSize(rec.Expires.Unix()) +
		len(attrModified) + numberSize(rec.Modified.UnixMilli())
	if len(rec.Data) > 0 {
		n += len(attrValues) + len(rec.Data)
	}
	if rec.Version > 0 {
		n += len(attrVersion) + numberSize(rec.Version)
	}
	if rec.Owner != "" {
		n += len(attrOwner) + len(rec.Owner)
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

// checkSize refuses, with an error wrapping ErrTooLarge, a record whose
// item would exceed DynamoDB's limit.
func checkSize(rec Record, prefix string) error {
	if size := itemSize(rec) + len(prefix); size > maxItemSize {
		return fmt.Errorf("%w: item would be %d bytes; DynamoDB's limit is %d", ErrTooLarge, size, maxItemSize)
	}
	return nil
}
