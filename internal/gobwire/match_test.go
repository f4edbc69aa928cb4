package gobwire

import (
	"bytes"
	"math"
	"testing"
	"time"
)

// mustEncode is encode, failing the test on an error.
func mustEncode(t testing.TB, values map[any]any) []byte {
	t.Helper()
	data, err := encode(values)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// hasFloatKey reports whether a map in v has a float key, which Matches
// never matches.
func hasFloatKey(v any) bool {
	switch v := v.(type) {
	case map[any]any:
		for k, e := range v {
			if _, ok := k.(float64); ok || hasFloatKey(e) {
				return true
			}
		}
	case map[string]any:
		for _, e := range v {
			if hasFloatKey(e) {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if hasFloatKey(e) {
				return true
			}
		}
	}
	return false
}

// TestMatchesItsOwnEncoding: a session matches its encoding, and the
// values decoded from it match it, as a loaded session saved unchanged
// does, whatever order its maps were built in.
func TestMatchesItsOwnEncoding(t *testing.T) {
	for name, values := range fastCases {
		t.Run(name, func(t *testing.T) {
			data := mustEncode(t, values)
			loaded := map[any]any{}
			if !Decode(data, loaded) {
				t.Fatal("Decode refused the encoding")
			}
			want := !hasFloatKey(values)
			for what, v := range map[string]map[any]any{"values": values, "loaded": loaded, "rebuilt": rebuilt(values)} {
				if got := Matches(v, data); got != want {
					t.Errorf("Matches(%s) = %v, want %v", what, got, want)
				}
			}
		})
	}
}

// changes are sessions that differ from their base in one place each, as
// a request changes one: none may match the base's encoding.
func changes() []struct {
	name       string
	base, with map[any]any
} {
	tm := time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)
	deep := func(bottom any) map[any]any {
		v := nested(100)
		m := v["tree"].(map[string]any)
		for m["next"] != "bottom" {
			m = m["next"].(map[string]any)
		}
		m["next"] = bottom
		return v
	}
	nan := func(payload uint64) float64 { return math.Float64frombits(0x7ff8000000000000 | payload) }
	return []struct {
		name       string
		base, with map[any]any
	}{
		{"counter", referenceValues(), func() map[any]any { v := referenceValues(); v["visits"] = 43; return v }()},
		{"int to int64", map[any]any{"n": 1}, map[any]any{"n": int64(1)}},
		{"uint to int", map[any]any{"n": uint(1)}, map[any]any{"n": 1}},
		{"string", map[any]any{"u": "ada"}, map[any]any{"u": "adb"}},
		{"string to bytes", map[any]any{"u": "ada"}, map[any]any{"u": []byte("ada")}},
		{"bytes", map[any]any{"b": []byte{1, 2}}, map[any]any{"b": []byte{1, 3}}},
		{"zero to negative zero", map[any]any{"f": 0.0}, map[any]any{"f": math.Copysign(0, -1)}},
		{"NaN payload", map[any]any{"f": nan(1)}, map[any]any{"f": nan(2)}},
		{"bool", map[any]any{"b": true}, map[any]any{"b": false}},
		{"nil to empty string", map[any]any{"x": nil}, map[any]any{"x": ""}},
		{"key added", map[any]any{"a": 1}, map[any]any{"a": 1, "b": 1}},
		{"key removed", map[any]any{"a": 1, "b": 1}, map[any]any{"a": 1}},
		{"key renamed", map[any]any{"a": 1}, map[any]any{"b": 1}},
		{"key type", map[any]any{1: "x"}, map[any]any{int64(1): "x"}},
		{"flash added", map[any]any{"u": "ada"}, map[any]any{"u": "ada", "_flash": []any{"hi"}}},
		{"flash consumed", map[any]any{"u": "ada", "_flash": []any{"hi"}}, map[any]any{"u": "ada", "_flash": []any(nil)}},
		{"slice element", map[any]any{"s": []any{"a", "b"}}, map[any]any{"s": []any{"a", "c"}}},
		{"slice appended", map[any]any{"s": []any{"a"}}, map[any]any{"s": []any{"a", "a"}}},
		{"time", map[any]any{"t": tm}, map[any]any{"t": tm.Add(time.Nanosecond)}},
		{"time zone", map[any]any{"t": tm}, map[any]any{"t": tm.In(time.FixedZone("x", 3600))}},
		{"map kind", map[any]any{"m": map[string]any{"a": 1}}, map[any]any{"m": map[any]any{"a": 1}}},
		{"nested value", map[any]any{"m": map[string]any{"a": map[any]any{1: 2}}}, map[any]any{"m": map[string]any{"a": map[any]any{1: 3}}}},
		{"nested key", map[any]any{"m": map[string]any{"a": 1}}, map[any]any{"m": map[string]any{"b": 1}}},
		{"bottom of depth 100", deep("bottom"), deep("bottom!")},
		{"bottom of depth 100 to a map", deep("bottom"), deep(map[string]any{})},
	}
}

// TestMatchesNoChange: a changed session never matches the encoding of
// what it was, and Matches agrees with comparing encodings.
func TestMatchesNoChange(t *testing.T) {
	for _, c := range changes() {
		t.Run(c.name, func(t *testing.T) {
			base, with := mustEncode(t, c.base), mustEncode(t, c.with)
			if bytes.Equal(base, with) {
				t.Fatal("the change does not change the encoding")
			}
			if Matches(c.with, base) {
				t.Error("Matches said a changed session is unchanged")
			}
			if Matches(c.base, with) {
				t.Error("Matches said the session it changed from is unchanged")
			}
			if !Matches(c.base, base) || !Matches(c.with, with) {
				t.Error("Matches refused a session its own encoding")
			}
		})
	}
}

// TestMatchesAnotherProcess: a stream encoding/gob wrote matches only
// when it holds the same values, and does when Decode reads it and its
// maps' entries are in canonical order; otherwise Matches says false, and
// the caller compares canonical encodings.
func TestMatchesAnotherProcess(t *testing.T) {
	for name, values := range fastCases {
		t.Run(name, func(t *testing.T) {
			std := stdEncode(t, values)
			if Matches(values, std) {
				if canon, err := Canonicalize(std); err != nil || !bytes.Equal(canon, mustEncode(t, values)) {
					t.Fatalf("Matches said a stream of other values matches (%v)", err)
				}
			}
		})
	}
	// One entry: encoding/gob's order is canonical.
	values := map[any]any{"user": "ada"}
	if !Matches(values, stdEncode(t, values)) {
		t.Error("Matches refused encoding/gob's encoding of the same values")
	}
}

// TestMatchesRefusesBadStreams: truncated, duplicated and disordered
// streams never match, and never panic.
func TestMatchesRefusesBadStreams(t *testing.T) {
	values := map[any]any{"a": 1, "b": 1}
	data := mustEncode(t, values)
	for n := range len(data) {
		if Matches(values, data[:n]) {
			t.Fatalf("Matches accepted the first %d of %d bytes", n, len(data))
		}
	}
	if Matches(values, append(bytes.Clone(data), 0)) {
		t.Error("Matches accepted a trailing byte")
	}
	// The same key twice, as many entries as values has.
	dup := bytes.Replace(data, []byte("\x01b"), []byte("\x01a"), 1)
	if bytes.Equal(dup, data) {
		t.Fatal("no key b to replace")
	}
	if Matches(values, dup) || Matches(map[any]any{"a": 1}, dup) {
		t.Error("Matches accepted a stream with a key twice")
	}
	// The entries the other way round.
	swapped := bytes.Replace(bytes.Replace(data, []byte("\x01a"), []byte("\x01c"), 1), []byte("\x01b"), []byte("\x01a"), 1)
	if Matches(map[any]any{"a": 1, "c": 1}, swapped) {
		t.Error("Matches accepted a map out of order")
	}
	// A composite the stream never defines, whose interface value's name
	// is two NUL bytes: read as a byte count and contents, they would
	// pass for an empty slice or map.
	body := appendInt(nil, wireFirstUser)
	body = append(body, 0x00, 0x01)
	body, _ = appendIface(body, "s", true)
	body = append(body, 0x02, 0x00, 0x00)
	undefined := messageAfter(appendDef(nil, wireFirstUser, wireMapAny, identity), body)
	for _, v := range []any{[]any{}, map[string]any{}, map[any]any{}} {
		if Matches(map[any]any{"s": v}, undefined) {
			t.Errorf("Matches accepted a %T of a kind the stream does not define", v)
		}
	}
	var deep any = 1
	for range MaxDepth {
		deep = []any{deep}
	}
	tooDeep := deepSlices(MaxDepth + 1)
	if Matches(map[any]any{"s": deep}, tooDeep) {
		t.Error("Matches accepted values nested too deeply")
	}
}

// TestMatchesAllocatesNothing: comparing a loaded session costs no
// allocation, whatever its shape.
func TestMatchesAllocatesNothing(t *testing.T) {
	for _, name := range []string{"reference", "flash and time", "depth 100", "non-string keys", "long string keys", "every composite"} {
		t.Run(name, func(t *testing.T) {
			values := fastCases[name]
			data := mustEncode(t, values)
			loaded := map[any]any{}
			if !Decode(data, loaded) {
				t.Fatal("Decode refused the encoding")
			}
			Matches(loaded, data) // fill the pool
			if n := testing.AllocsPerRun(100, func() { Matches(loaded, data) }); n != 0 && !raceEnabled {
				t.Errorf("Matches allocates %v times", n)
			}
		})
	}
}

// BenchmarkMatches compares loaded sessions with their encodings: an
// unchanged one, and one whose counter beside a tree nested 100 deep
// changed, which is seen before the tree is read.
func BenchmarkMatches(b *testing.B) {
	counter := nested(100)
	counter["visits"] = 1
	for _, c := range []struct {
		name   string
		values map[any]any
		change func(map[any]any)
	}{
		{"reference/unchanged", referenceValues(), func(map[any]any) {}},
		{"depth=100/unchanged", nested(100), func(map[any]any) {}},
		{"depth=1000/unchanged", nested(1000), func(map[any]any) {}},
		{"depth=100/counter-changed", counter, func(v map[any]any) { v["visits"] = 2 }},
	} {
		b.Run(c.name, func(b *testing.B) {
			data := mustEncode(b, c.values)
			loaded := map[any]any{}
			if !Decode(data, loaded) {
				b.Fatal("Decode refused the encoding")
			}
			c.change(loaded)
			b.ReportAllocs()
			for range b.N {
				Matches(loaded, data)
			}
		})
	}
}

// TestTimesNeverWrittenAreNotCanonical: time.Time reads forms it never
// writes (nanoseconds of a second or more); a stream holding one decodes,
// as with encoding/gob, but is not canonical, and the values read from it
// do not match it.
func TestTimesNeverWrittenAreNotCanonical(t *testing.T) {
	tm := time.Unix(1, 0).UTC()
	data := mustEncode(t, map[any]any{"t": tm})
	tb, err := tm.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, tb)
	if i < 0 {
		t.Fatal("no time in the stream")
	}
	odd := bytes.Clone(data)
	copy(odd[i+9:i+13], []byte{0x41, 0x30, 0x30, 0x30}) // nanoseconds, over 10^9
	got := map[any]any{}
	if !Decode(odd, got) {
		t.Fatal("Decode refused a time encoding/gob reads")
	}
	if Canonical(odd) {
		t.Error("Canonical accepted a time in a form time.Time never writes")
	}
	if Matches(got, odd) {
		t.Error("Matches matched a time in a form time.Time never writes")
	}
	if !Canonical(mustEncode(t, got)) {
		t.Error("the values read do not encode canonically")
	}
}

// TestTimeIsNoLevel: a time.Time at the bottom of values nested MaxDepth
// deep is no level more, to Canonicalize as to Encode.
func TestTimeIsNoLevel(t *testing.T) {
	var v any = time.Unix(1, 0).UTC()
	for range MaxDepth - 1 {
		v = []any{v}
	}
	values := map[any]any{"t": v}
	data, ok, err := Encode(values, nil)
	if !ok || err != nil {
		t.Fatalf("Encode = %v, %v", ok, err)
	}
	if canon, err := Canonicalize(data); err != nil || !bytes.Equal(canon, data) {
		t.Errorf("Canonicalize = %v", err)
	}
}
