package dynamostore

import (
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// gobStamp holds a pointer to a type with its own gob encoding, whose
// definition encoding/gob writes with another ID inside.
type gobStamp struct {
	Name string
	At   *time.Time
}

// gobPoint is a user type, off the fast path.
type gobPoint struct {
	X, Y int
	Tags map[string]int
	Any  any
}

func init() {
	// Types of the cases below that encoding/gob only sends once
	// registered. gorilla/sessions registers []any itself.
	gob.Register(time.Time{})
	gob.Register(map[string]int{})
	gob.Register(map[string]any{})
	gob.Register(map[any]any{})
	gob.Register(gobPoint{})
	gob.Register([]string{})
	gob.Register(float32(0))
	gob.Register(gobStamp{})
	gob.Register([4]byte{})
	gob.Register([2]uint16{})
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

// nested returns a map[string]any nested depth deep, each level holding a
// few values besides the next level.
func nested(depth int) map[any]any {
	var inner any = "bottom"
	for i := range depth - 1 {
		inner = map[string]any{"level": i, "name": "n", "next": inner}
	}
	return map[any]any{"tree": inner}
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

// flashAndTime is a typical signed-in session: a user, a sign-in time and
// a flash message.
func flashAndTime() map[any]any {
	return map[any]any{
		"user": "ada@example.com", "visits": 42, "blob": noise(1024),
		"signed_in": time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC), "_flash": []any{"Welcome back"},
	}
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
	"string slice":           {"roles": []string{"admin", "editor"}},
	"float32":                {"f": float32(1.5)},
	"nil key":                {nil: "x"},
	"map value":              {"m": map[string]int{"a": 1, "b": 2, "c": 3}},
	"struct":                 {"p": gobPoint{X: 1, Tags: map[string]int{"z": 1, "a": 2}, Any: map[string]any{"q": 1, "r": []any{time.Unix(3, 0).UTC()}}}},
	"mixed":                  {"user": "ada", "at": time.Unix(0, 0).UTC(), "roles": []string{"x"}, "m": map[string]any{"k": map[string]int{"y": 1, "x": 2}}},
	"time key":               {time.Unix(5, 0).UTC(): "t", "other": map[any]any{time.Unix(6, 0).UTC(): 1, "s": 2}},
	"nan keys":               {math.NaN(): 1, "x": map[any]any{math.NaN(): "a", math.NaN(): "b"}},
	"pointer to a marshaler": {"s": gobStamp{Name: "a", At: &stampTime}},
	"many slow entries":      manySlow(60),
	"arrays":                 {"csrf": [4]byte{1, 200, 3, 4}, "u": [2]uint16{300, 1}, "user": "ada", "n": 1, "m": 2},
}

// checkCanonical checks what every encoding GobSerializer writes must be:
// what encoding/gob reads as the values it reads from its own encoding of
// values, and the canonical rewriting of encoding/gob's encoding.
func checkCanonical(t *testing.T, values map[any]any, data []byte) {
	t.Helper()
	std := stdGobEncode(t, values)
	want, err := stdGobDecode(std)
	if err != nil {
		t.Fatal(err)
	}
	got, err := stdGobDecode(data)
	if err != nil {
		t.Fatalf("encoding/gob cannot read the encoding: %v", err)
	}
	if !reflect.DeepEqual(got, want) && fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) {
		t.Errorf("encoding/gob read %#v from the encoding, want %#v", got, want)
	}
	canon, err := gobCanonicalize(std)
	if err != nil {
		t.Fatalf("gobCanonicalize(encoding/gob's encoding): %v", err)
	}
	if !bytes.Equal(canon, data) {
		t.Errorf("the encoding\n% x\ndiffers from the canonical rewriting of encoding/gob's\n% x", trim(data), trim(canon))
	}
	again, err := gobCanonicalize(data)
	if err != nil || !bytes.Equal(again, data) {
		t.Errorf("rewriting the canonical encoding changed it (%v)", err)
	}
	// The same values in a map built in another order give the same bytes.
	if other, err := (GobSerializer{}).Serialize(maps2(values)); err != nil || !bytes.Equal(other, data) {
		t.Errorf("encoding the same values again gave other bytes (%v)", err)
	}
}

// trim shortens b for an error message.
func trim(b []byte) []byte { return b[:min(len(b), 256)] }

func TestGobFastPathMatchesEncodingGob(t *testing.T) {
	for name, values := range fastGobCases {
		t.Run(name, func(t *testing.T) {
			fast, ok, err := gobFastEncode(values)
			if err != nil || !ok {
				t.Fatalf("fast path refused to encode (%v)", err)
			}
			checkCanonical(t, values, fast)
			want, _ := stdGobDecode(stdGobEncode(t, values))
			got := map[any]any{}
			if !gobFastDecode(fast, got) {
				t.Fatal("fast path refused to decode its own encoding")
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("fast path read %#v, want %#v", got, want)
			}
			if !gobCanonical(fast) {
				t.Error("gobCanonical refused the fast encoding")
			}
			// encoding/gob's own encoding is canonical only when it is
			// the same bytes.
			if std := stdGobEncode(t, values); gobCanonical(std) != bytes.Equal(std, fast) {
				t.Errorf("gobCanonical(encoding/gob's encoding) = %v; equal to the fast one: %v", gobCanonical(std), bytes.Equal(std, fast))
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

func TestGobSlowPathIsCanonical(t *testing.T) {
	for name, values := range slowGobCases {
		t.Run(name, func(t *testing.T) {
			if _, ok, err := gobFastEncode(values); ok || err != nil {
				t.Fatalf("fast path encoded values it does not handle (%v)", err)
			}
			data, err := GobSerializer{}.Serialize(values)
			if err != nil {
				t.Fatal(err)
			}
			if name == "nan keys" {
				// NaN keys have no order, and fmt prints them in any.
				if _, err := stdGobDecode(data); err != nil {
					t.Fatal(err)
				}
				return
			}
			checkCanonical(t, values, data)
			into := map[any]any{"kept": 1}
			if gobFastDecode(data, into) {
				t.Error("fast path decoded values it does not handle")
			}
			if !reflect.DeepEqual(into, map[any]any{"kept": 1}) {
				t.Errorf("a refused decode changed the map: %v", into)
			}
			got := map[any]any{}
			if err := (GobSerializer{}).Deserialize(data, got); err != nil {
				t.Fatal(err)
			}
			want, _ := stdGobDecode(stdGobEncode(t, values))
			if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) {
				t.Errorf("round trip gave %#v, want %#v", got, want)
			}
		})
	}
}

// TestGobSameValuesSeesOnlyEqualBits: the unchanged check of a session
// written by encoding/gob (another release or program) finds it unchanged
// when its values are the same, and changed when any bit differs, where
// reflect.DeepEqual would see no change.
func TestGobSameValuesSeesOnlyEqualBits(t *testing.T) {
	negZero := math.Copysign(0, -1)
	nan1, nan2 := math.Float64frombits(0x7ff8000000000001), math.Float64frombits(0x7ff8000000000002)
	for _, c := range []struct {
		name        string
		stored, now map[any]any
		same        bool
	}{
		{"same map", map[any]any{"m": map[string]int{"a": 1, "b": 2}}, map[any]any{"m": map[string]int{"b": 2, "a": 1}}, true},
		{"same struct", slowGobCases["struct"], slowGobCases["struct"], true},
		{"0.0 to -0.0", map[any]any{"f": 0.0, "r": []string{"x"}}, map[any]any{"f": negZero, "r": []string{"x"}}, false},
		{"0.0 to -0.0, fast path", map[any]any{"f": 0.0}, map[any]any{"f": negZero}, false},
		{"float32 0 to -0", map[any]any{"f": float32(0)}, map[any]any{"f": float32(negZero)}, false},
		{"NaN payload", map[any]any{"f": nan1, "r": []string{"x"}}, map[any]any{"f": nan2, "r": []string{"x"}}, false},
		{"nested -0.0", map[any]any{"m": map[string]any{"f": 0.0}}, map[any]any{"m": map[string]any{"f": negZero}}, false},
		{"nil to empty slice", map[any]any{"s": []string(nil), "t": time.Unix(0, 0).UTC()}, map[any]any{"s": []string{}, "t": time.Unix(0, 0).UTC()}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			stored := stdGobEncode(t, c.stored)
			data, err := GobSerializer{}.Serialize(c.now)
			if err != nil {
				t.Fatal(err)
			}
			same := bytes.Equal(data, stored) || GobSerializer{}.sameValues(data, stored)
			if same != c.same {
				t.Errorf("same values = %v, want %v", same, c.same)
			}
		})
	}
}

func TestGobRefusesDeepNesting(t *testing.T) {
	for _, c := range []struct {
		name   string
		values map[any]any
		ok     bool
	}{
		{"fast path, 1024 deep", nested(1024), true},
		{"fast path, 1025 deep", nested(1025), false},
		{"slices, 2000 deep", map[any]any{"s": deepSlice(2000)}, false},
		{"slow path, 1025 deep", map[any]any{"p": deepPoint(1100)}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := GobSerializer{}.Serialize(c.values)
			if c.ok && err != nil {
				t.Fatal(err)
			}
			if !c.ok && !errors.Is(err, ErrEncode) {
				t.Fatalf("Serialize = %v, want ErrEncode", err)
			}
		})
	}
}

func deepSlice(depth int) any {
	var v any = 1
	for range depth {
		v = []any{v}
	}
	return v
}

func deepPoint(depth int) any {
	var v any = 1
	for range depth {
		v = gobPoint{X: 1, Any: v}
	}
	return v
}

func TestGobFastDecodeRefusesWhatEncodingGobWouldNotReadTheSame(t *testing.T) {
	valid, _, _ := gobFastEncode(map[any]any{"k": "v"})
	def := appendGobDef(nil, wireFirstUser, wireMapAny, gobSame)
	body := valid[len(def)+1:]
	for name, data := range map[string][]byte{
		"truncated":          valid[:len(valid)-1],
		"trailing byte":      append(bytes.Clone(valid), 0x00),
		"no type definition": valid[len(def):],
		"int8 out of range":  gobMessageAfter(def, patchBytes(body, "\x06string\x0c\x03\x00\x01v", "\x04int8\x04\x04\x00\xfe\x02\x58")),
		"byte slice key":     gobMessageAfter(def, patchBytes(body, "\x06string\x0c", "\x07[]uint8\x0a")),
		"bool of 2":          gobMessageAfter(def, patchBytes(body, "\x06string\x0c\x03\x00\x01v", "\x04bool\x02\x02\x00\x02")),
		"wrong wire type":    gobMessageAfter(def, patchBytes(body, "\x06string\x0c\x03\x00\x01v", "\x06string\x04\x03\x00\x01v")),
		"short byte count":   gobMessageAfter(def, patchBytes(body, "\x06string\x0c\x03\x00\x01v", "\x06string\x0c\x02\x00\x01v")),
		"unregistered name":  gobMessageAfter(def, patchBytes(body, "\x06string\x0c\x03\x00\x01v", "\x06nosuch\x0c\x03\x00\x01v")),
	} {
		t.Run(name, func(t *testing.T) {
			into := map[any]any{}
			if gobFastDecode(data, into) {
				t.Errorf("fast path accepted % x as %v", data, into)
			}
		})
	}
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
		if data, ok, _ := gobFastEncode(values); ok && len(data) < 4096 {
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
			if len(got) != 0 {
				t.Fatalf("a refused stream left %d values in an empty map: % x", len(got), data)
			}
			kept := map[any]any{"kept": "yes"}
			if gobFastDecode(data, kept) || len(kept) != 1 || kept["kept"] != "yes" {
				t.Fatalf("a refused stream changed the values there were to %#v: % x", kept, data)
			}
			return
		}
		want, err := stdGobDecode(data)
		if err != nil {
			t.Fatalf("fast path accepted what encoding/gob refuses (%v): % x", err, data)
		}
		// fmt prints maps sorted, and NaN, which reflect.DeepEqual never
		// finds equal, as itself.
		if !reflect.DeepEqual(got, want) && fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) && !strings.Contains(fmt.Sprint(want), "NaN") {
			t.Fatalf("fast path read %#v, encoding/gob %#v, from % x", got, want, data)
		}
		if canonical {
			if canon, err := gobCanonicalize(data); err != nil || !bytes.Equal(canon, data) {
				t.Fatalf("a canonical stream rewrites to other bytes (%v): % x", err, data)
			}
		}
	})
}

// FuzzGobCanonicalize checks that whatever the rewriter accepts, it
// rewrites to a stream encoding/gob reads as the same values, which
// rewrites to itself.
func FuzzGobCanonicalize(f *testing.F) {
	for _, cases := range []map[string]map[any]any{fastGobCases, slowGobCases} {
		for _, values := range cases {
			if data := stdGobEncode(f, values); len(data) < 4096 {
				f.Add(data)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		canon, err := gobCanonicalize(data)
		if err != nil {
			return
		}
		want, err := stdGobDecode(data)
		if err != nil {
			return // the rewriter reads some streams encoding/gob refuses to decode into a map
		}
		got, err := stdGobDecode(canon)
		if err != nil {
			t.Fatalf("encoding/gob cannot read the rewritten stream (%v): % x from % x", err, canon, data)
		}
		if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) && !strings.Contains(fmt.Sprint(want), "NaN") {
			t.Fatalf("rewritten stream reads %#v, the original %#v", got, want)
		}
		if again, err := gobCanonicalize(canon); err != nil || !bytes.Equal(again, canon) {
			t.Fatalf("rewriting the rewritten stream changed it (%v)", err)
		}
	})
}

// TestGobReusesTheStoredEncoding: saving a loaded session unchanged
// returns the stored bytes themselves, allocating nothing, and any change
// gives new bytes.
func TestGobReusesTheStoredEncoding(t *testing.T) {
	for _, name := range []string{"reference", "flash and time", "depth 100", "large"} {
		t.Run(name, func(t *testing.T) {
			values := fastGobCases[name]
			stored, err := GobSerializer{}.Serialize(values)
			if err != nil {
				t.Fatal(err)
			}
			got, err := GobSerializer{}.serializeReusing(values, stored)
			if err != nil || &got[0] != &stored[0] || len(got) != len(stored) {
				t.Fatalf("unchanged values did not reuse the stored encoding (%v)", err)
			}
			if n := testing.AllocsPerRun(20, func() { _, _ = GobSerializer{}.serializeReusing(values, stored) }); n != 0 && !raceEnabled {
				t.Errorf("an unchanged encoding allocated %v times", n)
			}
			changed := maps2(values)
			changed["extra"] = 1
			got, err = GobSerializer{}.serializeReusing(changed, stored)
			if err != nil || bytes.Equal(got, stored) {
				t.Fatalf("changed values gave the stored encoding (%v)", err)
			}
			if want, _ := (GobSerializer{}).Serialize(changed); !bytes.Equal(got, want) {
				t.Error("serializeReusing of changed values differs from Serialize")
			}
		})
	}
}

// TestGobCanonicalizeRefusesBadStreams: streams encoding/gob would refuse
// are errors, never a panic or an allocation out of proportion.
func TestGobCanonicalizeRefusesBadStreams(t *testing.T) {
	// A struct definition whose field refers to no type, in a value that
	// never reads the field.
	undefined := appendGobDef(nil, 64, wireMapAny, gobSame)
	undefined = appendGobDef(undefined, 65, &gobWire{field: wireStructT, fields: []gobWireField{{"F", 99}}}, gobSame)
	body := appendGobInt(nil, 64)
	body = append(body, 0, 1)
	body, _ = appendGobIface(body, "k", true)
	body = append(body, 1, 'x')
	body = appendGobInt(body, 65)
	body = append(body, 1, 0)
	undefined = append(undefined, gobMessage(body)...)

	// Maps nested deep, each claiming a huge count.
	var deep []byte
	deep = appendGobDef(deep, 64, wireMapAny, gobSame)
	deep = appendGobDef(deep, 65, wireMapString, gobSame)
	v := appendGobInt(nil, 64)
	v = append(v, 0, 1)
	v, _ = appendGobIface(v, "k", true)
	for range 1000 {
		v = append(v, byte(len("map[string]interface {}")))
		v = append(v, "map[string]interface {}"...)
		v = appendGobInt(v, 65)
		v = append(v, 0x01, 0x00)
		v = appendGobUint(v, 20000)
		v = append(v, 0x01, 'a')
	}
	deep = append(deep, gobMessage(v)...)

	for name, data := range map[string][]byte{"undefined field type": undefined, "huge counts": deep} {
		t.Run(name, func(t *testing.T) {
			if _, err := gobCanonicalize(data); err == nil {
				t.Error("gobCanonicalize accepted it")
			}
		})
	}
}
