package dynamostore

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"
)

func init() {
	// Types of slowGobCases that encoding/gob only sends once registered.
	gob.Register(time.Time{})
	gob.Register(map[string]int{})
}

// stdGobEncode and stdGobDecode are encoding/gob alone, the reference the
// fast path must agree with.
func stdGobEncode(t testing.TB, values map[any]any) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(values); err != nil {
		t.Fatalf("encoding/gob: %v", err)
	}
	return buf.Bytes()
}

func stdGobDecode(data []byte) (map[any]any, error) {
	values := map[any]any{}
	err := gob.NewDecoder(bytes.NewReader(data)).Decode(&values)
	return values, err
}

// fastGobCases are sessions the fast path reads and writes.
var fastGobCases = map[string]map[any]any{
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
	"floats":          {"pi": math.Pi, "neg": -0.5, "zero": 0.0, "inf": math.Inf(-1), "tiny": math.SmallestNonzeroFloat64},
	"non-string keys": {1: "one", int64(1): "one64", uint8(1): "byte", true: "yes", 2.5: "float", "1": "string"},
	"large":           {"blob": bytes.Repeat([]byte{0xfe}, 100<<10), "text": string(bytes.Repeat([]byte("x"), 70000))},
	"many entries":    manyEntries(300),
}

func manyEntries(n int) map[any]any {
	m := make(map[any]any, n)
	for i := range n {
		m[i] = i * i
	}
	return m
}

// slowGobCases are sessions the fast path leaves to encoding/gob.
var slowGobCases = map[string]map[any]any{
	"time":         {"at": time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
	"flashes":      {"_flash": []any{"saved"}},
	"string slice": {"roles": []string{"admin"}},
	"float32":      {"f": float32(1.5)},
	"nil key":      {nil: "x"},
	"map value":    {"m": map[string]int{"a": 1}},
	"mixed":        {"user": "ada", "at": time.Unix(0, 0).UTC()},
}

func TestGobFastPathMatchesEncodingGob(t *testing.T) {
	for name, values := range fastGobCases {
		t.Run(name, func(t *testing.T) {
			fast, ok := gobFastEncode(values)
			if !ok {
				t.Fatal("fast path refused to encode")
			}
			// What the fast path writes, encoding/gob reads back as the
			// same values it would have read from its own encoding.
			want, err := stdGobDecode(stdGobEncode(t, values))
			if err != nil {
				t.Fatal(err)
			}
			got, err := stdGobDecode(fast)
			if err != nil {
				t.Fatalf("encoding/gob cannot read the fast encoding: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("encoding/gob read %#v from the fast encoding, want %#v", got, want)
			}
			// The fast path reads encoding/gob's output, and its own,
			// exactly as encoding/gob does.
			for what, data := range map[string][]byte{"encoding/gob's": stdGobEncode(t, values), "its own": fast} {
				got := map[any]any{}
				if !gobFastDecode(data, got) {
					t.Fatalf("fast path refused to decode %s encoding", what)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("fast path read %#v from %s encoding, want %#v", got, what, want)
				}
			}
			// The fast encoding is canonical; encoding/gob's is only when
			// it happens to be the same bytes.
			if !gobCanonical(fast) {
				t.Error("the fast encoding is not canonical")
			}
			if std := stdGobEncode(t, values); gobCanonical(std) != bytes.Equal(std, fast) {
				t.Errorf("gobCanonical(encoding/gob's encoding) = %v; equal to the fast one: %v", gobCanonical(std), bytes.Equal(std, fast))
			}
			// The same values always give the same bytes.
			again, _ := gobFastEncode(maps2(values))
			if !bytes.Equal(again, fast) {
				t.Error("encoding the same values twice gave different bytes")
			}
			if len(values) == 1 && !bytes.Equal(fast, stdGobEncode(t, values)) {
				t.Errorf("one entry: fast encoding\n% x\ndiffers from encoding/gob's\n% x", fast, stdGobEncode(t, values))
			}
		})
	}
}

// maps2 copies m into a map built in another order.
func maps2(m map[any]any) map[any]any {
	c := make(map[any]any, len(m)*2)
	for k, v := range m {
		c[k] = v
	}
	return c
}

func TestGobFastPathLeavesOtherTypesToEncodingGob(t *testing.T) {
	for name, values := range slowGobCases {
		t.Run(name, func(t *testing.T) {
			if _, ok := gobFastEncode(values); ok {
				t.Error("fast path encoded values it does not handle")
			}
			data := stdGobEncode(t, values)
			if gobCanonical(data) {
				t.Error("gobCanonical accepted values the fast path does not handle")
			}
			into := map[any]any{"kept": 1}
			if gobFastDecode(data, into) {
				t.Error("fast path decoded values it does not handle")
			}
			if !reflect.DeepEqual(into, map[any]any{"kept": 1}) {
				t.Errorf("a refused decode changed the map: %v", into)
			}
			// GobSerializer still round-trips them, through encoding/gob.
			enc, err := GobSerializer{}.Serialize(values)
			if err != nil {
				t.Fatal(err)
			}
			got := map[any]any{}
			if err := (GobSerializer{}).Deserialize(enc, got); err != nil {
				t.Fatal(err)
			}
			want, _ := stdGobDecode(data)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("round trip gave %#v, want %#v", got, want)
			}
		})
	}
}

func TestGobFastDecodeRefusesWhatEncodingGobWouldNotReadTheSame(t *testing.T) {
	valid, _ := gobFastEncode(map[any]any{"k": "v"})
	def, _ := gobMapType()
	body := valid[len(def)+1:]
	for name, data := range map[string][]byte{
		"truncated":          valid[:len(valid)-1],
		"trailing byte":      append(bytes.Clone(valid), 0x00),
		"no type definition": valid[len(def):],
		"int8 out of range":  stdGobEncodeInt8Overflow(t),
		"byte slice key":     gobMessageAfter(def, patchBytes(body, "\x06string\x0c", "\x07[]uint8\x0a")),
		"bool of 2":          gobMessageAfter(def, patchBytes(stdGobEncode(t, map[any]any{"k": true})[len(def)+1:], "\x02\x02\x00\x01", "\x02\x02\x00\x02")),
		"wrong wire type":    gobMessageAfter(def, patchBytes(body, "\x06string\x0c\x03\x00\x01v", "\x06string\x04\x03\x00\x01v")),
	} {
		t.Run(name, func(t *testing.T) {
			into := map[any]any{}
			if gobFastDecode(data, into) {
				t.Errorf("fast path accepted % x as %v", data, into)
			}
		})
	}
}

// stdGobEncodeInt8Overflow is a session holding int8 300, which
// encoding/gob refuses to read.
func stdGobEncodeInt8Overflow(t *testing.T) []byte {
	data := stdGobEncode(t, map[any]any{"k": int64(300)})
	def, _ := gobMapType()
	return gobMessageAfter(def, patchBytes(data[len(def)+1:], "\x05int64", "\x04int8"))
}

// patchBytes replaces the first old in b with new.
func patchBytes(b []byte, old, new string) []byte {
	return bytes.Replace(b, []byte(old), []byte(new), 1)
}

// gobMessageAfter is the type definition def followed by body framed as a
// message.
func gobMessageAfter(def, body []byte) []byte {
	return append(bytes.Clone(def), gobMessage(body)...)
}

// FuzzGobFastDecode checks that whatever the fast path accepts,
// encoding/gob reads as the same values, and that gobCanonical accepts
// nothing the fast path refuses.
func FuzzGobFastDecode(f *testing.F) {
	for _, values := range fastGobCases {
		if data, ok := gobFastEncode(values); ok && len(data) < 4096 {
			f.Add(data)
		}
	}
	for _, values := range slowGobCases {
		f.Add(stdGobEncode(f, values))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got := map[any]any{}
		canonical := gobCanonical(data)
		if !gobFastDecode(data, got) {
			if canonical {
				t.Fatalf("gobCanonical accepted what the fast path does not read: % x", data)
			}
			return
		}
		want, err := stdGobDecode(data)
		if err != nil {
			t.Fatalf("fast path accepted what encoding/gob refuses (%v): % x", err, data)
		}
		// fmt prints maps sorted, and NaN, which reflect.DeepEqual never
		// finds equal, as itself.
		if !reflect.DeepEqual(got, want) && fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) {
			t.Fatalf("fast path read %#v, encoding/gob %#v, from % x", got, want, data)
		}
	})
}
