// Package tableschema checks the description of a DynamoDB table against
// the layout a dynamostore Store reads and writes, so that EnsureTable and
// the command line refuse, with one and the same explanation, a table the
// store cannot use.
package tableschema

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// The names of the layout: the attributes of a session item, the owner
// index and the lease item. Attribute names are short on purpose: DynamoDB
// counts them in an item's size, and so in its write units.
const (
	// KeyAttr is the table's partition key, of type S, alone: the storage
	// key of the session ID (see StorageKey).
	KeyAttr = "id"
	// ValuesAttr holds the serialized session Values (B). It is absent when
	// the session has no values.
	ValuesAttr = "v"
	// ExpiresAttr is the expiry in epoch seconds (N), the attribute
	// DynamoDB's TTL is enabled on.
	ExpiresAttr = "exp"
	// ModifiedAttr is when the item was last written, in epoch
	// milliseconds (N).
	ModifiedAttr = "mod"
	// VersionAttr is the write counter of optimistic locking (N).
	VersionAttr = "ver"
	// OwnerAttr is the owner of a session (S), the key of the owner index.
	OwnerAttr = "own"
	// OwnerIndex is the name of the global secondary index on OwnerAttr.
	OwnerIndex = "owner-index"
	// LeaseKey is the KeyAttr of the reaper lease item. It contains '#',
	// which never appears in a storage key (unpadded base64url), so it
	// cannot collide with a session.
	LeaseKey = "lease#reaper"
	// MaxItemSize is DynamoDB's limit on the size of one item, attribute
	// names included: 400 KB.
	MaxItemSize = 400 * 1024
)

// StorageKey returns the KeyAttr value of the session with the given ID: a
// SHA-256 of the ID in unpadded URL-safe base64. The ID itself is never
// stored, so the table and its backups hold nothing a cookie could be made
// from.
func StorageKey(sessionID string) string {
	var in [64]byte // session IDs fit, so hashing allocates nothing
	var out [43]byte
	return string(AppendStorageKey(out[:0], append(in[:0], sessionID...)))
}

// AppendStorageKey appends the storage key of the session ID id to dst.
func AppendStorageKey(dst, id []byte) []byte {
	sum := sha256.Sum256(id)
	return base64.RawURLEncoding.AppendEncode(dst, sum[:])
}

// Attributes are the attributes the store writes, with the type it writes
// each as. A table that defines one of them (as the key of the table or of
// an index) with another type refuses the store's writes.
var Attributes = map[string]types.ScalarAttributeType{
	KeyAttr:      types.ScalarAttributeTypeS,
	ValuesAttr:   types.ScalarAttributeTypeB,
	ExpiresAttr:  types.ScalarAttributeTypeN,
	ModifiedAttr: types.ScalarAttributeTypeN,
	VersionAttr:  types.ScalarAttributeTypeN,
	OwnerAttr:    types.ScalarAttributeTypeS,
}

const newTable = "a table's key cannot be changed, so create a new table " +
	"(EnsureTable, WithAutoCreate and `dynamostore create-table` make one) and point the store at it"

// Problems returns what keeps the described table from serving the store,
// each a sentence saying what is wrong and how to fix it: a key other than
// the partition key KeyAttr of type S alone, and an attribute of
// Attributes defined with another type. It does not look at the owner
// index (see OwnerIndexProblem) or TTL. It returns nil for a table the
// store can use, and a problem for no description (nil).
func Problems(d *types.TableDescription) []string {
	if d == nil {
		return []string{"DynamoDB's answer described no table"}
	}
	table := aws.ToString(d.TableName)
	defs := definitions(d)
	var problems []string
	if k := d.KeySchema; len(k) != 1 || k[0].KeyType != types.KeyTypeHash || aws.ToString(k[0].AttributeName) != KeyAttr || defs[KeyAttr] != types.ScalarAttributeTypeS {
		problems = append(problems, fmt.Sprintf("table %s has %s, but the store needs the partition key %q of type S alone; %s",
			table, keyString(k, defs), KeyAttr, newTable))
	}
	names := make([]string, 0, len(defs))
	for name := range defs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		want, ok := Attributes[name]
		if !ok || name == KeyAttr || defs[name] == want {
			continue
		}
		fix := "use another table"
		where := "a key of the table"
		if idx := indexesOn(d, name); len(idx) > 0 {
			where = "a key of index " + strings.Join(idx, ", ")
			fix = "delete that index (UpdateTable) or use another table"
		}
		problems = append(problems, fmt.Sprintf("table %s defines attribute %q as type %s (%s), but the store writes it as type %s, so DynamoDB would refuse its writes; %s",
			table, name, defs[name], where, want, fix))
	}
	return problems
}

// OwnerIndexProblem reports whether the described table has the owner
// index and, if it does, what keeps Store.RevokeOwner from using it ("" for
// nothing). RevokeOwner queries the index on OwnerAttr alone and reads the
// table's key from what it returns; every projection includes the table's
// key, so any projection will do, but a sort key would leave out of the
// index every session without that attribute. The type of OwnerAttr is
// checked by Problems.
func OwnerIndexProblem(d *types.TableDescription) (present bool, problem string) {
	if d == nil {
		return false, ""
	}
	for _, gsi := range d.GlobalSecondaryIndexes {
		if aws.ToString(gsi.IndexName) != OwnerIndex {
			continue
		}
		k := gsi.KeySchema
		if len(k) == 1 && k[0].KeyType == types.KeyTypeHash && aws.ToString(k[0].AttributeName) == OwnerAttr {
			return true, ""
		}
		return true, fmt.Sprintf("table %s has an index %s on %s, but RevokeOwner needs it on the partition key %q of type S alone; "+
			"delete the index (UpdateTable) and let EnsureTable with OwnerIndex, or `dynamostore create-table --owner-index`, add it again",
			aws.ToString(d.TableName), OwnerIndex, keyString(k, definitions(d)), OwnerAttr)
	}
	return false, ""
}

// definitions returns the types of the attributes the table defines.
func definitions(d *types.TableDescription) map[string]types.ScalarAttributeType {
	defs := make(map[string]types.ScalarAttributeType, len(d.AttributeDefinitions))
	for _, a := range d.AttributeDefinitions {
		defs[aws.ToString(a.AttributeName)] = a.AttributeType
	}
	return defs
}

// keyString describes a key schema: "partition key id of type N and sort
// key sk of type S".
func keyString(k []types.KeySchemaElement, defs map[string]types.ScalarAttributeType) string {
	if len(k) == 0 {
		return "no key"
	}
	parts := make([]string, len(k))
	for i, e := range k {
		kind := "partition key"
		if e.KeyType == types.KeyTypeRange {
			kind = "sort key"
		}
		name := aws.ToString(e.AttributeName)
		parts[i] = fmt.Sprintf("%s %s of type %s", kind, name, defs[name])
	}
	return strings.Join(parts, " and ")
}

// indexesOn returns the names of the table's indexes keyed on attribute
// name.
func indexesOn(d *types.TableDescription, name string) []string {
	var idx []string
	keyed := func(k []types.KeySchemaElement) bool {
		return slices.ContainsFunc(k, func(e types.KeySchemaElement) bool { return aws.ToString(e.AttributeName) == name })
	}
	for _, g := range d.GlobalSecondaryIndexes {
		if keyed(g.KeySchema) {
			idx = append(idx, aws.ToString(g.IndexName))
		}
	}
	for _, l := range d.LocalSecondaryIndexes {
		if keyed(l.KeySchema) {
			idx = append(idx, aws.ToString(l.IndexName))
		}
	}
	return idx
}
