package dynamostore

import (
	"math"
	"strconv"
	"testing"
)

func TestNumbers(t *testing.T) {
	tests := [][]int64{
		nil,
		{0},
		{-1, 1},
		{1764600000, 1765809600, 1764600000123},
		{math.MinInt64, math.MaxInt64, math.MinInt64, math.MaxInt64}, // past the stack buffer
	}
	for _, ns := range tests {
		avs := numbers(ns...)
		if len(avs) != len(ns) {
			t.Fatalf("numbers(%v) gave %d values", ns, len(avs))
		}
		for i, n := range ns {
			if want := strconv.FormatInt(n, 10); avs[i].Value != want {
				t.Errorf("numbers(%v)[%d] = %q; want %q", ns, i, avs[i].Value, want)
			}
		}
	}
}
