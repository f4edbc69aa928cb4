package dynamostore

import (
	"math"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func TestSetNumbers(t *testing.T) {
	tests := [][]int64{
		nil,
		{0},
		{-1, 1},
		{1764600000, 1765809600, 1764600000123},
		{math.MinInt64, math.MaxInt64, math.MinInt64, math.MaxInt64}, // past the stack buffer
	}
	for _, ns := range tests {
		avs := make([]types.AttributeValueMemberN, len(ns))
		setNumbers(avs, ns...)
		for i, n := range ns {
			if want := strconv.FormatInt(n, 10); avs[i].Value != want {
				t.Errorf("setNumbers(%v)[%d] = %q; want %q", ns, i, avs[i].Value, want)
			}
		}
	}
}
