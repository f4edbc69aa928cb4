package dynamostore

import (
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// paramMarker prefixes the placeholder values an expression is compiled
// with; no real value is ever a string starting with a NUL byte.
const paramMarker = "\x00param:"

// param stands for a value supplied at call time in an expression built once.
func param(name string) expression.ValueBuilder {
	return expression.Value(paramMarker + name)
}

// compiledExpr is an expression built once with the SDK's expression builder
// (so reserved words are always aliased) and reused for every request, with
// the values of its params filled in per call.
type compiledExpr struct {
	condition    *string
	keyCondition *string
	update       *string
	filter       *string
	projection   *string
	names        map[string]string
	// placeholders maps a param name to its ":n" placeholder.
	placeholders map[string]string
}

// compile builds b and records where each param landed.
func compile(b expression.Builder) (compiledExpr, error) {
	e, err := b.Build()
	if err != nil {
		return compiledExpr{}, fmt.Errorf("dynamostore: building expression: %w", err)
	}
	c := compiledExpr{
		condition:    e.Condition(),
		keyCondition: e.KeyCondition(),
		update:       e.Update(),
		filter:       e.Filter(),
		projection:   e.Projection(),
		names:        e.Names(),
		placeholders: make(map[string]string),
	}
	for ph, v := range e.Values() {
		s, ok := v.(*types.AttributeValueMemberS)
		if !ok || !strings.HasPrefix(s.Value, paramMarker) {
			return compiledExpr{}, fmt.Errorf("dynamostore: expression value %s is not a param", ph)
		}
		c.placeholders[strings.TrimPrefix(s.Value, paramMarker)] = ph
	}
	return c, nil
}

// ph returns the placeholder of the named param.
func (c *compiledExpr) ph(name string) string { return c.placeholders[name] }
