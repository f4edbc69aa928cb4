package dynamostore

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"reflect"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// The fuzz targets below run their committed seed corpus
// (testdata/fuzz/<name>/) with every go test; scripts/fuzz runs each with
// -fuzz for a bounded time.

// fuzzCodec is the cookie codec of the fuzz targets: the test keys, with
// the signature age check off so that the committed seeds stay valid.
func fuzzCodec(t testing.TB) *idCodec {
	c, err := newIDCodec([][]byte{testHashKey, testBlockKey}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	c.setMaxAge(0)
	return c
}

// FuzzCookieDecode feeds arbitrary cookie names and values to the cookie
// codec: it never panics, refuses with ErrInvalidCookie, and whatever it
// accepts is a well-formed session ID, given with its storage key, that
// signs and verifies again.
func FuzzCookieDecode(f *testing.F) {
	c := fuzzCodec(f)
	f.Fuzz(func(t *testing.T, name, value string) {
		id, key, _, err := c.decode(name, value)
		if err != nil {
			if !errors.Is(err, ErrInvalidCookie) {
				t.Fatalf("decode error %v does not wrap ErrInvalidCookie", err)
			}
			if id != "" {
				t.Fatalf("decode returned ID %q with an error", id)
			}
			return
		}
		if !validID(id) {
			t.Fatalf("decode accepted malformed ID %q", id)
		}
		if key != storageKey(id) {
			t.Fatalf("decode gave key %q for ID %q; want %q", key, id, storageKey(id))
		}
		if len(value) > maxCookieValue {
			t.Fatalf("decode accepted a %d-byte value", len(value))
		}
		again, err := c.encode(name, id)
		if err != nil {
			t.Fatalf("re-signing an accepted ID: %v", err)
		}
		if back, _, _, err := c.decode(name, again); err != nil || back != id {
			t.Fatalf("re-signed cookie decodes to %q, %v", back, err)
		}
	})
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// FuzzValidID checks validID against a regular expression of the ID
// format, and that every valid ID is 256 bits and hashes to a valid
// storage key.
func FuzzValidID(f *testing.F) {
	f.Fuzz(func(t *testing.T, id string) {
		valid := validID(id)
		if want := idPattern.MatchString(id); valid != want {
			t.Fatalf("validID(%q) = %v; want %v", id, valid, want)
		}
		if !valid {
			return
		}
		raw, err := base64.RawURLEncoding.DecodeString(id)
		if err != nil || len(raw) != idBytes {
			t.Fatalf("valid ID %q decodes to %d bytes, %v", id, len(raw), err)
		}
		if key := storageKey(id); !validID(key) || key == id {
			t.Fatalf("storage key %q of %q", key, id)
		}
	})
}

// FuzzDecodeItem builds stored items from arbitrary attributes, the way a
// corrupt or hostile row would look, and decodes them as a load does:
// decodeItem, then both serializers. Nothing panics; every refusal wraps
// ErrDecode.
func FuzzDecodeItem(f *testing.F) {
	f.Fuzz(func(t *testing.T, v []byte, kinds uint8, exp, mod, ver, own string) {
		item := map[string]types.AttributeValue{attrID: &types.AttributeValueMemberS{Value: "key"}}
		// Two bits per attribute choose its type: absent, N, S or B.
		attr := func(shift uint, s string, b []byte) types.AttributeValue {
			switch (kinds >> shift) & 3 {
			case 1:
				return &types.AttributeValueMemberN{Value: s}
			case 2:
				return &types.AttributeValueMemberS{Value: s}
			case 3:
				return &types.AttributeValueMemberB{Value: b}
			}
			return nil
		}
		for name, av := range map[string]types.AttributeValue{
			attrValues:  attr(0, string(v), v),
			attrExpires: attr(2, exp, []byte(exp)),
			attrVersion: attr(4, ver, []byte(ver)),
			attrOwner:   attr(6, own, []byte(own)),
		} {
			if av != nil {
				item[name] = av
			}
		}
		item[attrModified] = &types.AttributeValueMemberN{Value: mod}
		rec, err := decodeItem("key", item)
		if err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("decodeItem error %v does not wrap ErrDecode", err)
			}
			return
		}
		if rec.Key != "key" || rec.Version < 0 {
			t.Fatalf("decoded record %+v", rec)
		}
		if b, ok := item[attrValues].(*types.AttributeValueMemberB); ok && !bytes.Equal(rec.Data, b.Value) {
			t.Fatal("decoded data differs from the stored bytes")
		}
		for _, sz := range []Serializer{GobSerializer{}, JSONSerializer{}} {
			values := map[any]any{}
			if err := sz.Deserialize(rec.Data, values); err != nil && !errors.Is(err, ErrDecode) {
				t.Fatalf("%T.Deserialize error %v does not wrap ErrDecode", sz, err)
			}
		}
	})
}

// FuzzGobValues decodes arbitrary bytes as gob session values: no panic,
// refusals wrap ErrDecode, and what decodes encodes again.
func FuzzGobValues(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		values := map[any]any{}
		err := GobSerializer{}.Deserialize(data, values)
		if err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("error %v does not wrap ErrDecode", err)
			}
			return
		}
		if _, err := (GobSerializer{}).Serialize(values); err != nil {
			t.Fatalf("decoded values %v do not encode again: %v", values, err)
		}
	})
}

// FuzzJSONValues decodes arbitrary bytes as JSON session values: no panic,
// refusals wrap ErrDecode, and what decodes round-trips.
func FuzzJSONValues(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		values := map[any]any{}
		err := JSONSerializer{}.Deserialize(data, values)
		if err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("error %v does not wrap ErrDecode", err)
			}
			return
		}
		enc, err := JSONSerializer{}.Serialize(values)
		if err != nil {
			t.Fatalf("decoded values do not encode again: %v", err)
		}
		again := map[any]any{}
		if err := (JSONSerializer{}).Deserialize(enc, again); err != nil || !reflect.DeepEqual(values, again) {
			t.Fatalf("round trip: %v, %v != %v", err, again, values)
		}
	})
}

// allocated returns the bytes f allocates on the heap.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// gobUint is gob's encoding of an unsigned integer: one byte below 128,
// else the negated byte count and the big-endian bytes.
func gobUint(x uint64) []byte {
	if x < 128 {
		return []byte{byte(x)}
	}
	var b []byte
	for ; x > 0; x >>= 8 {
		b = append([]byte{byte(x)}, b...)
	}
	return append([]byte{byte(-len(b))}, b...)
}

// gobMessage frames body as one gob message.
func gobMessage(body []byte) []byte { return append(gobUint(uint64(len(body))), body...) }

// patchCount returns the gob stream with its value message (after the
// first skip bytes) re-framed, and the count that starts the first match
// of at replaced by count.
func patchCount(t *testing.T, stream []byte, skip int, at []byte, count uint64) []byte {
	t.Helper()
	msg := stream[skip:]
	prefix := 1
	if msg[0] >= 0x80 {
		prefix += int(-int8(msg[0]))
	}
	body := msg[prefix:]
	i := bytes.Index(body, at)
	if i < 0 {
		t.Fatalf("% x not in % x", at, body)
	}
	old := 1
	if at[0] >= 0x80 {
		old += int(-int8(at[0]))
	}
	patched := append(append(append([]byte{}, body[:i]...), gobUint(count)...), body[i+old:]...)
	return append(append([]byte{}, stream[:skip]...), gobMessage(patched)...)
}

// hostileGobs returns stored values of about size bytes built to make a
// gob decoder allocate far more than it reads.
func hostileGobs(t *testing.T, size int) map[string][]byte {
	t.Helper()
	encode := func(v map[any]any) []byte {
		b, err := GobSerializer{}.Serialize(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	filler := bytes.Repeat([]byte{0x01}, size)
	random := make([]byte, size)
	_, _ = rand.Read(random)

	// The first message of every session: the type of map[any]any.
	typeMsg := encode(map[any]any{"k": "v"})
	typeMsg = typeMsg[:int(typeMsg[0])+1]
	mapType := []byte{0xff, 0x80} // the type ID the first message defines

	// A value message claiming a map of 2^40 entries.
	hugeMap := append(append([]byte{}, typeMsg...), gobMessage(append(append(append([]byte{}, mapType...), 0), gobUint(1<<40)...))...)
	hugeMap = append(hugeMap, filler...)

	// A message claiming to be just under gob's 1 GB limit.
	hugeMsg := append(append([]byte{}, typeMsg...), gobUint(1<<30-1)...)
	hugeMsg = append(hugeMsg, filler...)

	// A []byte value and an []int value (a type gob registers itself)
	// claiming 2^40 elements: valid sessions whose counts are patched.
	hugeBytes := append(patchCount(t, encode(map[any]any{"k": bytes.Repeat([]byte{0xab}, 200)}), len(typeMsg),
		append(gobUint(200), 0xab, 0xab), 1<<40), filler...)
	hugeInts := append(patchCount(t, encode(map[any]any{"k": []int{1, 2, 3}}), len(typeMsg),
		[]byte{3, 2, 4, 6}, 1<<40), filler...)

	// A valid session of many small entries: the baseline.
	many := map[any]any{}
	for n := 0; n < size/16; n++ {
		many[n] = n
	}
	return map[string][]byte{
		"random bytes":             random,
		"map of 2^40 entries":      hugeMap,
		"1 GB message":             hugeMsg,
		"[]byte of 2^40 bytes":     hugeBytes,
		"[]int of 2^40 elements":   hugeInts,
		"valid, many entries":      encode(many),
		"type definitions, looped": bytes.Repeat(typeMsg, size/len(typeMsg)),
	}
}

// TestHostileRowAllocation decodes hostile stored values of about 1 MB, as
// a load would, and checks the decoder's allocations stay within a small
// multiple of the input: a corrupt or planted row cannot make a load
// allocate without bound. (encoding/gob pre-sizes maps it decodes into
// from the count the input claims: a value of a map or struct-with-map
// type the application registered with gob is the exception, see
// RELIABILITY.md. The Store decodes the top-level map in place, so the
// claim of the hugeMap case costs nothing.)
func TestHostileRowAllocation(t *testing.T) {
	const size = 1 << 20
	const maxFactor = 32
	for name, data := range hostileGobs(t, size) {
		t.Run(name, func(t *testing.T) {
			var err error
			n := allocated(func() { err = GobSerializer{}.Deserialize(data, map[any]any{}) })
			t.Logf("%d bytes in, %d bytes allocated (%.1fx), err %v", len(data), n, float64(n)/float64(len(data)), err)
			if err != nil && !errors.Is(err, ErrDecode) {
				t.Fatalf("error %v does not wrap ErrDecode", err)
			}
			if limit := uint64(maxFactor * len(data)); n > limit {
				t.Fatalf("decoding %d bytes allocated %d; want at most %d", len(data), n, limit)
			}
		})
	}
	t.Run("JSON nesting", func(t *testing.T) {
		data := []byte(`{"k":` + strings.Repeat("[", size/2) + strings.Repeat("]", size/2) + "}")
		var err error
		n := allocated(func() { err = JSONSerializer{}.Deserialize(data, map[any]any{}) })
		if !errors.Is(err, ErrDecode) || n > uint64(maxFactor*len(data)) {
			t.Fatalf("deep JSON: %v, %d bytes allocated", err, n)
		}
	})
	t.Run("1 MB cookie", func(t *testing.T) {
		c := fuzzCodec(t)
		value := strings.Repeat("A", size)
		var err error
		n := allocated(func() { _, _, _, err = c.decode("s", value) })
		if !errors.Is(err, ErrInvalidCookie) || n > 4096 {
			t.Fatalf("1 MB cookie: %v, %d bytes allocated", err, n)
		}
	})
}

// FuzzSignedWithin feeds arbitrary cookie values to the timestamp hint: it
// never panics, and says true only for a value that starts with the base64
// of a timestamp no older than the window and a '|'.
func FuzzSignedWithin(f *testing.F) {
	f.Add(base64.URLEncoding.EncodeToString([]byte("1764600000|payload|mac")))
	f.Add("")
	now := time.Unix(1764600005, 0)
	f.Fuzz(func(t *testing.T, value string) {
		if !signedWithin(value, 10, now) {
			return
		}
		raw, err := base64.URLEncoding.DecodeString(value[:16])
		if err != nil {
			t.Fatalf("true for a value whose start is not base64: %v", err)
		}
		stamp, _, ok := strings.Cut(string(raw), "|")
		n, err := strconv.ParseInt(stamp, 10, 64)
		if !ok || err != nil || n < now.Unix()-10 {
			t.Fatalf("true for %q", raw)
		}
	})
}
