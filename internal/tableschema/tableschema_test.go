package tableschema

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func def(name string, typ types.ScalarAttributeType) types.AttributeDefinition {
	return types.AttributeDefinition{AttributeName: aws.String(name), AttributeType: typ}
}

func key(name string, kind types.KeyType) types.KeySchemaElement {
	return types.KeySchemaElement{AttributeName: aws.String(name), KeyType: kind}
}

// The DynamoDB tests of EnsureTable and the command line cover the layouts
// DynamoDB accepts; these cover the rest of the descriptions.
func TestProblems(t *testing.T) {
	hash := []types.KeySchemaElement{key(KeyAttr, types.KeyTypeHash)}
	tests := []struct {
		name  string
		d     types.TableDescription
		want  []string // one substring per problem
		owner string   // in OwnerIndexProblem's answer
	}{
		{"the store's layout", types.TableDescription{
			AttributeDefinitions: []types.AttributeDefinition{def(KeyAttr, types.ScalarAttributeTypeS), def(OwnerAttr, types.ScalarAttributeTypeS)},
			KeySchema:            hash,
			GlobalSecondaryIndexes: []types.GlobalSecondaryIndexDescription{{
				IndexName: aws.String(OwnerIndex), KeySchema: []types.KeySchemaElement{key(OwnerAttr, types.KeyTypeHash)},
			}},
		}, nil, ""},
		{"no key at all", types.TableDescription{}, []string{"has no key, but the store needs"}, ""},
		{"a local index on the version as a string", types.TableDescription{
			AttributeDefinitions: []types.AttributeDefinition{def(KeyAttr, types.ScalarAttributeTypeS), def("sk", types.ScalarAttributeTypeS), def("ver", types.ScalarAttributeTypeS)},
			KeySchema:            []types.KeySchemaElement{key(KeyAttr, types.KeyTypeHash), key("sk", types.KeyTypeRange)},
			LocalSecondaryIndexes: []types.LocalSecondaryIndexDescription{{
				IndexName: aws.String("by-ver"), KeySchema: []types.KeySchemaElement{key(KeyAttr, types.KeyTypeHash), key("ver", types.KeyTypeRange)},
			}},
		}, []string{"sort key sk of type S", `attribute "ver" as type S (a key of index by-ver)`}, ""},
		{"binary key", types.TableDescription{
			AttributeDefinitions: []types.AttributeDefinition{def(KeyAttr, types.ScalarAttributeTypeB)},
			KeySchema:            hash,
		}, []string{"has partition key id of type B"}, ""},
		{"owner index keyed on the session key", types.TableDescription{
			AttributeDefinitions: []types.AttributeDefinition{def(KeyAttr, types.ScalarAttributeTypeS)},
			KeySchema:            hash,
			GlobalSecondaryIndexes: []types.GlobalSecondaryIndexDescription{{
				IndexName: aws.String(OwnerIndex), KeySchema: hash,
			}},
		}, nil, "index owner-index on partition key id of type S"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.d.TableName = aws.String("sessions")
			got := Problems(&tt.d)
			if len(got) != len(tt.want) {
				t.Fatalf("Problems = %q, want %d problems", got, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got[i], "table sessions ") || !strings.Contains(got[i], w) {
					t.Errorf("problem %d = %q, want it to name the table and say %q", i, got[i], w)
				}
			}
			present, problem := OwnerIndexProblem(&tt.d)
			if present != (len(tt.d.GlobalSecondaryIndexes) > 0) || (tt.owner == "") != (problem == "") || !strings.Contains(problem, tt.owner) {
				t.Errorf("OwnerIndexProblem = %v, %q; want %q", present, problem, tt.owner)
			}
		})
	}
}
