package dynamostore

import (
	"fmt"
	"testing"
)

// benchShapes are the session shapes the store must serve as cheaply as
// the reference session: one with a flash message and a time.Time, maps
// nested 10, 100 and 1000 deep, and 1 KiB to 350 KiB of bytes. Each holds
// the "visits" counter that changeAndSave increments.
func benchShapes() []struct {
	name   string
	values map[any]any
} {
	shapes := []struct {
		name   string
		values map[any]any
	}{
		{"reference", referenceValues()},
		{"flash+time", flashAndTime()},
	}
	for _, depth := range []int{10, 100, 1000} {
		v := nested(depth)
		v["visits"] = 1
		shapes = append(shapes, struct {
			name   string
			values map[any]any
		}{fmt.Sprintf("depth=%d", depth), v})
	}
	for _, kib := range []int{1, 10, 100, 350} {
		shapes = append(shapes, struct {
			name   string
			values map[any]any
		}{fmt.Sprintf("size=%dKiB", kib), map[any]any{"user": "ada@example.com", "visits": 42, "blob": noise(kib << 10)}})
	}
	return shapes
}

// shapeOps are the request path's rows that the shapes are measured on.
var shapeOps = selectOps("load", "load+unchanged", "load+changed-vs-update")

// BenchmarkShapes measures calls, capacity units and allocations of each
// session shape against raw SDK calls of the same item.
func BenchmarkShapes(b *testing.B) {
	t := dynamoTarget(b)
	for _, shape := range benchShapes() {
		b.Run("shape="+shape.name, func(b *testing.B) {
			runBenchOps(b, t, shapeOps, []storeImpl{{name: "store"}}, shape.values)
		})
	}
}

// BenchmarkPairedShapes times each session shape against raw SDK calls of
// the same item, call by call (see BenchmarkPairedDynamoDB).
func BenchmarkPairedShapes(b *testing.B) {
	t := dynamoTarget(b)
	for _, shape := range benchShapes() {
		b.Run("shape="+shape.name, func(b *testing.B) {
			runPaired(b, t, shapeOps, []storeImpl{{name: "store"}}, shape.values)
		})
	}
}
