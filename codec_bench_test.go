package dynamostore

// Benchmarks of the store's CPU-only parts: serializers (gob, JSON), the
// cookie's ID codec, the storage key, and compression of large sessions.

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkSerializer encodes and decodes the reference session with each
// Serializer and reports the encoded size.
func BenchmarkSerializer(b *testing.B) {
	for _, sz := range []struct {
		name string
		s    Serializer
	}{
		{"gob", GobSerializer{}},
		{"json", JSONSerializer{}},
	} {
		values := referenceValues()
		data, err := sz.s.Serialize(values)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("ser="+sz.name+"/op=encode", func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, err := sz.s.Serialize(values); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(data)), "bytes")
		})
		b.Run("ser="+sz.name+"/op=decode", func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if err := sz.s.Deserialize(data, make(map[any]any, 4)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(data)), "bytes")
		})
	}
}

// keyAt returns keys[i], or nil past its end.
func keyAt(keys [][]byte, i int) []byte {
	if i < len(keys) {
		return keys[i]
	}
	return nil
}

// BenchmarkIDCodec signs and verifies a session ID for the cookie, with a
// hash key only and with hash and block keys (signed and encrypted, the
// setup the examples use), and derives the storage key.
func BenchmarkIDCodec(b *testing.B) {
	id, err := newID()
	if err != nil {
		b.Fatal(err)
	}
	for _, keys := range []struct {
		name  string
		pairs [][]byte
	}{
		{"sign", [][]byte{testHashKey}},
		{"sign+encrypt", [][]byte{testHashKey, testBlockKey}},
	} {
		c, err := newIDCodec(keys.pairs, nil, defaultTouchAfter)
		if err != nil {
			b.Fatal(err)
		}
		c.setMaxAge(int(defaultTTL.Seconds()))
		cookie, err := c.encode(benchCookie, id)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("keys="+keys.name+"/op=encode", func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, err := c.encode(benchCookie, id); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(cookie)), "cookie-bytes")
		})
		// A value signed more than touchAfter ago is verified twice: by the
		// codec of recent values, which refuses it, then by the others.
		old := signedAt(b, keys.pairs[0], keyAt(keys.pairs, 1), benchCookie, id, time.Now().Add(-time.Hour))
		for _, v := range []struct{ op, value string }{{"decode", cookie}, {"decode-past-touchafter", old}} {
			b.Run("keys="+keys.name+"/op="+v.op, func(b *testing.B) {
				b.ReportAllocs()
				for range b.N {
					if _, _, _, err := c.decode(benchCookie, v.value); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
	b.Run("op=new-id", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := newID(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("op=storage-key", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			_ = storageKey(id)
		}
	})
}

// BenchmarkCompression measures the store's compressing Serializer
// (gzip, fastest level, pooled writers) end to end on 10 KB and 100 KB
// sessions, next to plain gob. internal/compressbench compares gzip and
// zstd levels on the same data.
func BenchmarkCompression(b *testing.B) {
	for _, size := range []int{10 << 10, 100 << 10} {
		data, err := GobSerializer{}.Serialize(largeSession(size))
		if err != nil {
			b.Fatal(err)
		}
		values := largeSession(size)
		cs := newCompressed(nil, 4096)
		stored, err := cs.Serialize(values)
		if err != nil {
			b.Fatal(err)
		}
		for _, sz := range []struct {
			name string
			s    Serializer
		}{{"gob", GobSerializer{}}, {"gob+gzip", cs}} {
			prefix := fmt.Sprintf("size=%dKB/ser=%s", size>>10, sz.name)
			b.Run(prefix+"/op=encode", func(b *testing.B) {
				b.ReportAllocs()
				for range b.N {
					if _, err := sz.s.Serialize(values); err != nil {
						b.Fatal(err)
					}
				}
			})
			in := data
			if sz.name != "gob" {
				in = stored
			}
			b.Run(prefix+"/op=decode", func(b *testing.B) {
				b.ReportAllocs()
				for range b.N {
					if err := sz.s.Deserialize(in, map[any]any{}); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(in)), "bytes")
			})
		}
	}
}

// BenchmarkGobShapes encodes and decodes sessions of several shapes with
// GobSerializer: the reference session, and it with one flash, with one
// time.Time, with a small nested map[string]any, and with a user struct
// (off the fast path, through encoding/gob and the canonical rewriting).
func BenchmarkGobShapes(b *testing.B) {
	with := func(k string, v any) map[any]any {
		m := referenceValues()
		m[k] = v
		return m
	}
	for _, shape := range []struct {
		name   string
		values map[any]any
	}{
		{"reference", referenceValues()},
		{"flash", with("_flash", []any{"Welcome back"})},
		{"time", with("signed_in", time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC))},
		{"nested-map", with("prefs", map[string]any{"theme": "dark", "lang": "en", "size": 12})},
		{"struct", with("point", gobPoint{X: 1, Y: 2, Tags: map[string]int{"a": 1}})},
		{"depth=100", nested(100)},
	} {
		data, err := GobSerializer{}.Serialize(shape.values)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("shape="+shape.name+"/op=encode", func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, err := (GobSerializer{}).Serialize(shape.values); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(data)), "bytes")
		})
		b.Run("shape="+shape.name+"/op=decode", func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if err := (GobSerializer{}).Deserialize(data, make(map[any]any, 8)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
