package gobwire

import (
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// checkCanonical checks what every encoding of values the root package's
// GobSerializer writes must be: what encoding/gob reads as the values it
// reads from its own encoding of values, and the canonical rewriting of
// encoding/gob's encoding.
func checkCanonical(t *testing.T, values map[any]any, data []byte) {
	t.Helper()
	std := stdEncode(t, values)
	want, err := stdDecode(std)
	if err != nil {
		t.Fatal(err)
	}
	got, err := stdDecode(data)
	if err != nil {
		t.Fatalf("encoding/gob cannot read the encoding: %v", err)
	}
	if !reflect.DeepEqual(got, want) && fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) {
		t.Errorf("encoding/gob read %#v from the encoding, want %#v", got, want)
	}
	canon, err := Canonicalize(std)
	if err != nil {
		t.Fatalf("Canonicalize(encoding/gob's encoding): %v", err)
	}
	if !bytes.Equal(canon, data) {
		t.Errorf("the encoding\n% x\ndiffers from the canonical rewriting of encoding/gob's\n% x", trim(data), trim(canon))
	}
	again, err := Canonicalize(data)
	if err != nil || !bytes.Equal(again, data) {
		t.Errorf("rewriting the canonical encoding changed it (%v)", err)
	}
	// The same values in a map built in another order give the same bytes.
	if other, err := encode(rebuilt(values)); err != nil || !bytes.Equal(other, data) {
		t.Errorf("encoding the same values again gave other bytes (%v)", err)
	}
}

// TestSlowPathIsCanonical rewrites encoding/gob's encoding of values the
// fast path leaves to it, which the fast path then refuses to read.
func TestSlowPathIsCanonical(t *testing.T) {
	for name, values := range slowCases {
		t.Run(name, func(t *testing.T) {
			if _, ok, err := Encode(values, nil); ok || err != nil {
				t.Fatalf("fast path encoded values it does not handle (%v)", err)
			}
			if name == "nan keys" {
				// NaN keys have no order, and no canonical encoding.
				if _, err := Canonicalize(stdEncode(t, values)); !errors.Is(err, ErrUnsupported) {
					t.Fatalf("Canonicalize = %v, want ErrUnsupported", err)
				}
				return
			}
			data, err := encode(values)
			if err != nil {
				t.Fatal(err)
			}
			checkCanonical(t, values, data)
			into := map[any]any{"kept": 1}
			if Decode(data, into) {
				t.Error("fast path decoded values it does not handle")
			}
			if !reflect.DeepEqual(into, map[any]any{"kept": 1}) {
				t.Errorf("a refused decode changed the map: %v", into)
			}
		})
	}
}

// TestCanonicalizeRefusesBadStreams: streams encoding/gob would refuse
// are ErrCorrupt, never a panic or an allocation out of proportion.
// oneField is a struct of one field.
type oneField struct{ A int }

func init() { gob.Register(oneField{}) }

func TestCanonicalizeRefusesBadStreams(t *testing.T) {
	// A struct definition whose field refers to no type, in a value that
	// never reads the field.
	undefined := appendDef(nil, 64, wireMapAny, identity)
	undefined = appendDef(undefined, 65, &typeDef{field: wireStructT, fields: []fieldDef{{"F", 99}}}, identity)
	body := appendInt(nil, 64)
	body = append(body, 0, 1)
	body, _ = appendIface(body, "k", true)
	body = append(body, 1, 'x')
	body = appendInt(body, 65)
	body = append(body, 1, 0)
	undefined = append(undefined, message(body)...)

	// Maps nested deep, each claiming a huge count.
	var deep []byte
	deep = appendDef(deep, 64, wireMapAny, identity)
	deep = appendDef(deep, 65, wireMapString, identity)
	v := appendInt(nil, 64)
	v = append(v, 0, 1)
	v, _ = appendIface(v, "k", true)
	for range 1000 {
		v = append(v, byte(len("map[string]interface {}")))
		v = append(v, "map[string]interface {}"...)
		v = appendInt(v, 65)
		v = append(v, 0x01, 0x00)
		v = appendUint(v, 20000)
		v = append(v, 0x01, 'a')
	}
	deep = append(deep, message(v)...)

	// A struct field delta that wraps the field number around to 0: the
	// struct's one field, then a delta of 2^64-1 (10 bytes more, counted
	// in the interface value's byte count four bytes before the struct).
	var sbuf bytes.Buffer
	if err := gob.NewEncoder(&sbuf).Encode(map[any]any{"s": oneField{A: 1}}); err != nil {
		t.Fatal(err)
	}
	std := sbuf.Bytes()
	i := bytes.LastIndex(std, []byte{0x01, 0x02, 0x00}) // field 1 = 1, the struct's end
	if i < 4 {
		t.Fatal("no field A in the stream")
	}
	wrap := append(bytes.Clone(std[:i+2]), 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00)
	wrap[i-4] += 10

	for name, data := range map[string][]byte{"undefined field type": undefined, "huge counts": deep, "field delta wraps": wrap} {
		t.Run(name, func(t *testing.T) {
			if _, err := Canonicalize(data); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Canonicalize = %v, want ErrCorrupt", err)
			}
		})
	}
}

// FuzzCanonicalize checks that whatever the rewriter accepts, it rewrites
// to a stream encoding/gob reads as the same values, which rewrites to
// itself.
func FuzzCanonicalize(f *testing.F) {
	for _, cases := range []map[string]map[any]any{fastCases, slowCases} {
		for _, values := range cases {
			if data := stdEncode(f, values); len(data) < 4096 {
				f.Add(data)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		canon, err := Canonicalize(data)
		if err != nil {
			return
		}
		want, err := stdDecode(data)
		if err != nil {
			return // the rewriter reads some streams encoding/gob refuses to decode into a map
		}
		got, err := stdDecode(canon)
		if err != nil {
			t.Fatalf("encoding/gob cannot read the rewritten stream (%v): % x from % x", err, canon, data)
		}
		if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) && !strings.Contains(fmt.Sprint(want), "NaN") {
			t.Fatalf("rewritten stream reads %#v, the original %#v", got, want)
		}
		if again, err := Canonicalize(canon); err != nil || !bytes.Equal(again, canon) {
			t.Fatalf("rewriting the rewritten stream changed it (%v)", err)
		}
	})
}
