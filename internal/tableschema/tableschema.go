// Package tableschema checks the description of a DynamoDB table against
// the layout a dynamostore Store reads and writes, so that EnsureTable and
// the command line refuse, with one and the same explanation, a table the
// store cannot use.
package tableschema

import (
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// The names of the layout. The root package exports the same values
// (AttrID, AttrOwner, OwnerIndexName); a test there checks that they agree.
const (
	// KeyAttr is the table's partition key, of type S, alone.
	KeyAttr = "id"
	// OwnerAttr is the partition key of the owner index, of type S.
	OwnerAttr = "own"
	// OwnerIndex is the name of the global secondary index on OwnerAttr.
	OwnerIndex = "owner-index"
)

// Attributes are the attributes the store writes, with the type it writes
// each as. A table that defines one of them (as the key of the table or of
// an index) with another type refuses the store's writes.
var Attributes = map[string]types.ScalarAttributeType{
	KeyAttr:   types.ScalarAttributeTypeS,
	"v":       types.ScalarAttributeTypeB,
	"exp":     types.ScalarAttributeTypeN,
	"mod":     types.ScalarAttributeTypeN,
	"ver":     types.ScalarAttributeTypeN,
	OwnerAttr: types.ScalarAttributeTypeS,
}

const newTable = "a table's key cannot be changed, so create a new table " +
	"(EnsureTable, WithAutoCreate and `dynamostore create-table` make one) and point the store at it"

// Problems returns what keeps the described table from serving the store,
// each a sentence saying what is wrong and how to fix it: a key other than
// the partition key KeyAttr of type S alone, and an attribute of
// Attributes defined with another type. It does not look at the owner
// index (see OwnerIndexProblem) or TTL. It returns nil for a table the
// store can use.
func Problems(d *types.TableDescription) []string {
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
