package gobwire

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestFastPathMatchesEncodingGob(t *testing.T) {
	for name, values := range fastCases {
		t.Run(name, func(t *testing.T) {
			fast, ok, err := Encode(values, nil)
			if err != nil || !ok {
				t.Fatalf("fast path refused to encode (%v)", err)
			}
			checkCanonical(t, values, fast)
			want, _ := stdDecode(stdEncode(t, values))
			got := map[any]any{}
			if !Decode(fast, got) {
				t.Fatal("fast path refused to decode its own encoding")
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("fast path read %#v, want %#v", got, want)
			}
			if !Canonical(fast) {
				t.Error("Canonical refused the fast encoding")
			}
			// encoding/gob's own encoding is canonical only when it is
			// the same bytes.
			if std := stdEncode(t, values); Canonical(std) != bytes.Equal(std, fast) {
				t.Errorf("Canonical(encoding/gob's encoding) = %v; equal to the fast one: %v", Canonical(std), bytes.Equal(std, fast))
			}
		})
	}
}

// TestRefusesDeepNesting: values nested more than MaxDepth deep are
// ErrTooDeep to Encode and Canonicalize, and Decode refuses them.
func TestRefusesDeepNesting(t *testing.T) {
	for _, depth := range []int{MaxDepth, MaxDepth + 1} {
		t.Run(fmt.Sprint(depth), func(t *testing.T) {
			var v any = 1
			for range depth - 1 {
				v = []any{v}
			}
			values := map[any]any{"s": v}
			ok := depth <= MaxDepth
			data, fast, err := Encode(values, nil)
			if fast != ok || (err == nil) != ok || (err != nil && !errors.Is(err, ErrTooDeep)) {
				t.Errorf("Encode = %v, %v", fast, err)
			}
			if fast && !bytes.Equal(data, deepSlices(depth)) {
				t.Fatal("deepSlices differs from Encode")
			}
			if _, err := Canonicalize(stdEncode(t, values)); (err == nil) != ok || (err != nil && !errors.Is(err, ErrTooDeep)) {
				t.Errorf("Canonicalize = %v", err)
			}
			if got := Decode(deepSlices(depth), map[any]any{}); got != ok {
				t.Errorf("Decode = %v", got)
			}
		})
	}
}

// deepSlices is the canonical encoding of a map holding []any nested
// inside each other, depth deep with the map, built without Encode.
func deepSlices(depth int) []byte {
	v, _ := appendIface(nil, 1, false)
	for range depth - 1 {
		payload := append([]byte{0x00, 0x01}, v...) // a singleton of one element
		v = appendString(nil, "[]interface {}")
		v = appendInt(v, wireFirstUser+1)
		v = appendUint(v, uint64(len(payload)))
		v = append(v, payload...)
	}
	body := appendInt(nil, wireFirstUser)
	body = append(body, 0x00, 0x01)
	body, _ = appendIface(body, "s", true)
	body = append(body, v...)
	data := appendDef(nil, wireFirstUser, wireMapAny, identity)
	data = appendDef(data, wireFirstUser+1, wireSliceAny, identity)
	return append(data, message(body)...)
}

func TestDecodeRefusesWhatEncodingGobWouldNotReadTheSame(t *testing.T) {
	valid, _, _ := Encode(map[any]any{"k": "v"}, nil)
	def := appendDef(nil, wireFirstUser, wireMapAny, identity)
	body := valid[len(def)+1:]
	for name, data := range map[string][]byte{
		"truncated":          valid[:len(valid)-1],
		"trailing byte":      append(bytes.Clone(valid), 0x00),
		"no type definition": valid[len(def):],
		"int8 out of range":  messageAfter(def, patchBytes(body, "\x06string\x0c\x03\x00\x01v", "\x04int8\x04\x04\x00\xfe\x02\x58")),
		"byte slice key":     messageAfter(def, patchBytes(body, "\x06string\x0c", "\x07[]uint8\x0a")),
		"bool of 2":          messageAfter(def, patchBytes(body, "\x06string\x0c\x03\x00\x01v", "\x04bool\x02\x02\x00\x02")),
		"wrong wire type":    messageAfter(def, patchBytes(body, "\x06string\x0c\x03\x00\x01v", "\x06string\x04\x03\x00\x01v")),
		"short byte count":   messageAfter(def, patchBytes(body, "\x06string\x0c\x03\x00\x01v", "\x06string\x0c\x02\x00\x01v")),
		"unregistered name":  messageAfter(def, patchBytes(body, "\x06string\x0c\x03\x00\x01v", "\x06nosuch\x0c\x03\x00\x01v")),
	} {
		t.Run(name, func(t *testing.T) {
			into := map[any]any{}
			if Decode(data, into) {
				t.Errorf("fast path accepted % x as %v", data, into)
			}
		})
	}
}

// patchBytes replaces the first old in b with new.
func patchBytes(b []byte, old, new string) []byte {
	return bytes.Replace(b, []byte(old), []byte(new), 1)
}

// messageAfter is the type definition def followed by body framed as a
// message.
func messageAfter(def, body []byte) []byte {
	return append(bytes.Clone(def), message(body)...)
}

// FuzzDecode checks that whatever the fast path accepts, encoding/gob
// reads as the same values, that Canonical accepts nothing the fast path
// refuses, and that Matches matches the values read only with a stream
// that holds them.
func FuzzDecode(f *testing.F) {
	for _, values := range fastCases {
		if data, ok, _ := Encode(values, nil); ok && len(data) < 4096 {
			f.Add(data)
		}
	}
	for _, values := range slowCases {
		f.Add(stdEncode(f, values))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got := map[any]any{}
		canonical := Canonical(data)
		if !Decode(data, got) {
			if canonical {
				t.Fatalf("Canonical accepted what the fast path does not read: % x", data)
			}
			if len(got) != 0 {
				t.Fatalf("a refused stream left %d values in an empty map: % x", len(got), data)
			}
			kept := map[any]any{"kept": "yes"}
			if Decode(data, kept) || len(kept) != 1 || kept["kept"] != "yes" {
				t.Fatalf("a refused stream changed the values there were to %#v: % x", kept, data)
			}
			return
		}
		want, err := stdDecode(data)
		if err != nil {
			t.Fatalf("fast path accepted what encoding/gob refuses (%v): % x", err, data)
		}
		// fmt prints maps sorted, and NaN, which reflect.DeepEqual never
		// finds equal, as itself.
		if !reflect.DeepEqual(got, want) && fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) && !strings.Contains(fmt.Sprint(want), "NaN") {
			t.Fatalf("fast path read %#v, encoding/gob %#v, from % x", got, want, data)
		}
		if canonical {
			if canon, err := Canonicalize(data); err != nil || !bytes.Equal(canon, data) {
				t.Fatalf("a canonical stream rewrites to other bytes (%v): % x", err, data)
			}
		}
		// The values read match the stream only when it holds them: the
		// canonical encoding of both is the same. A canonical stream
		// matches what it holds (unless a map key is a float).
		matches := Matches(got, data)
		if matches {
			canon, err := Canonicalize(data)
			if err != nil || !bytes.Equal(canon, mustEncode(t, got)) {
				t.Fatalf("Matches said values match a stream that holds others (%v): % x", err, data)
			}
		}
		if canonical && !matches && !hasFloatKey(got) {
			t.Fatalf("Matches refused the values a canonical stream holds: % x", data)
		}
	})
}
