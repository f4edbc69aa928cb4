package gobwire

import (
	"bytes"
	"encoding/gob"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// stamp holds a pointer to a type with its own gob encoding, whose
// definition encoding/gob writes with another ID inside.
type stamp struct {
	Name string
	At   *time.Time
}

// point is a user type, off the fast path.
type point struct {
	X, Y int
	Tags map[string]int
	Any  any
}

func init() {
	// Types of the cases below that encoding/gob only sends once
	// registered. gorilla/sessions registers []any itself; these tests
	// register it as gorilla/sessions would.
	gob.Register([]any{})
	gob.Register(time.Time{})
	gob.Register(map[string]int{})
	gob.Register(map[string]any{})
	gob.Register(map[any]any{})
	gob.Register(point{})
	gob.Register([]string{})
	gob.Register(float32(0))
	gob.Register(stamp{})
	gob.Register([4]byte{})
	gob.Register([2]uint16{})
}

// referenceValues is the root package's reference session: a user string,
// an int and 1 KB of incompressible bytes.
func referenceValues() map[any]any {
	return map[any]any{"user": "ada@example.com", "visits": 42, "blob": noise(1024)}
}

// noise returns n pseudo-random, incompressible bytes, the same for the same n.
func noise(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{}).Read(b)
	return b
}

// flashAndTime is a typical signed-in session: a user, a sign-in time and
// a flash message.
func flashAndTime() map[any]any {
	return map[any]any{
		"user": "ada@example.com", "visits": 42, "blob": noise(1024),
		"signed_in": time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC), "_flash": []any{"Welcome back"},
	}
}

// nested returns a map[string]any nested depth deep, each level holding a
// few values besides the next level.
func nested(depth int) map[any]any {
	var inner any = "bottom"
	for i := range depth - 1 {
		inner = map[string]any{"level": i, "name": "n", "next": inner}
	}
	return map[any]any{"tree": inner}
}

func manyEntries(n int) map[any]any {
	m := make(map[any]any, n)
	for i := range n {
		m[i] = i * i
	}
	return m
}

// manySlow is a session of many entries whose values are off the fast
// path: encoding/gob splits its value message after the first definition.
func manySlow(n int) map[any]any {
	m := make(map[any]any, n)
	for i := range n {
		m[i] = []string{"x"}
	}
	return m
}

var stampTime = time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)

// fastCases are sessions the fast path reads and writes.
var fastCases = map[string]map[any]any{
	"reference":               referenceValues(),
	"one string":              {"user": "ada"},
	"empty strings and bytes": {"": "", "b": []byte{}, "nilbytes": []byte(nil)},
	"nil value":               {"gone": nil},
	"bools":                   {"t": true, "f": false},
	"signed": {
		"int": math.MinInt, "int8": int8(math.MinInt8), "int16": int16(math.MaxInt16),
		"int32": int32(math.MinInt32), "int64": int64(math.MaxInt64), "zero": 0, "small": -1, "mid": 300,
	},
	"unsigned": {
		"uint": uint(math.MaxUint), "uint8": uint8(255), "uint16": uint16(math.MaxUint16),
		"uint32": uint32(math.MaxUint32), "uint64": uint64(1 << 63), "zero": uint(0), "byte": uint8(127),
	},
	"floats":           {"pi": math.Pi, "neg": -0.5, "zero": 0.0, "negzero": math.Copysign(0, -1), "inf": math.Inf(-1), "tiny": math.SmallestNonzeroFloat64},
	"non-string keys":  {1: "one", int64(1): "one64", uint8(1): "byte", true: "yes", 2.5: "float", "1": "string"},
	"long string keys": {"m": map[string]any{"k": 1, strings.Repeat("a", 130): 2, strings.Repeat("b", 300): 3, strings.Repeat("a", 127): 4}},
	"large":            {"blob": bytes.Repeat([]byte{0xfe}, 100<<10), "text": string(bytes.Repeat([]byte("x"), 70000))},
	"many entries":     manyEntries(300),
	"long keys":        {strings.Repeat("k", 200): 1, strings.Repeat("k", 100): 2, strings.Repeat("j", 70000): 3, "k": 4},
	"time":             {"at": time.Date(2026, 12, 1, 0, 0, 0, 5, time.UTC), "zone": time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600+7))},
	"flashes":          {"_flash": []any{"saved", 2}, "user": "ada"},
	"flash and time":   flashAndTime(),
	"empty slice":      {"s": []any{}, "nil": []any(nil)},
	"nested maps":      {"m": map[string]any{"a": 1, "b": map[string]any{"c": []any{"d", map[any]any{1: 2, "x": nil}}}}},
	"empty maps":       {"a": map[string]any{}, "b": map[any]any{}, "c": map[string]any(nil)},
	"every composite":  {"m": map[any]any{"t": time.Unix(1, 0).UTC()}, "s": []any{map[string]any{"u": time.Unix(2, 0).UTC()}}},
	"depth 10":         nested(10),
	"depth 100":        nested(100),
	"depth 1000":       nested(1000),
}

// slowCases are sessions the fast path leaves to encoding/gob.
var slowCases = map[string]map[any]any{
	"string slice":           {"roles": []string{"admin", "editor"}},
	"float32":                {"f": float32(1.5)},
	"nil key":                {nil: "x"},
	"map value":              {"m": map[string]int{"a": 1, "b": 2, "c": 3}},
	"struct":                 {"p": point{X: 1, Tags: map[string]int{"z": 1, "a": 2}, Any: map[string]any{"q": 1, "r": []any{time.Unix(3, 0).UTC()}}}},
	"mixed":                  {"user": "ada", "at": time.Unix(0, 0).UTC(), "roles": []string{"x"}, "m": map[string]any{"k": map[string]int{"y": 1, "x": 2}}},
	"time key":               {time.Unix(5, 0).UTC(): "t", "other": map[any]any{time.Unix(6, 0).UTC(): 1, "s": 2}},
	"nan keys":               {math.NaN(): 1, "x": map[any]any{math.NaN(): "a", math.NaN(): "b"}},
	"pointer to a marshaler": {"s": stamp{Name: "a", At: &stampTime}},
	"many slow entries":      manySlow(60),
	"arrays":                 {"csrf": [4]byte{1, 200, 3, 4}, "u": [2]uint16{300, 1}, "user": "ada", "n": 1, "m": 2},
}

// stdEncode and stdDecode are encoding/gob alone, the reference the fast
// path must agree with.
func stdEncode(t testing.TB, values map[any]any) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(values); err != nil {
		t.Fatalf("encoding/gob: %v", err)
	}
	return buf.Bytes()
}

func stdDecode(data []byte) (map[any]any, error) {
	values := map[any]any{}
	err := gob.NewDecoder(bytes.NewReader(data)).Decode(&values)
	return values, err
}

// encode is the encoding the root package's GobSerializer writes: the
// fast path's, or else encoding/gob's rewritten canonical, or as
// encoding/gob wrote it when it has no canonical encoding.
func encode(values map[any]any) ([]byte, error) {
	if data, ok, err := Encode(values, nil); err != nil || ok {
		return data, err
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(values); err != nil {
		return nil, err
	}
	data, err := Canonicalize(buf.Bytes())
	if errors.Is(err, ErrUnsupported) {
		return buf.Bytes(), nil
	}
	return data, err
}

// rebuilt copies m into a map built in another order.
func rebuilt(m map[any]any) map[any]any {
	c := make(map[any]any, len(m)*2)
	for k, v := range m {
		c[k] = v
	}
	return c
}

// message frames body as one gob message.
func message(body []byte) []byte { return append(appendUint(nil, uint64(len(body))), body...) }

// trim shortens b for an error message.
func trim(b []byte) []byte { return b[:min(len(b), 256)] }
