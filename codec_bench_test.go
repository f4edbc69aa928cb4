package dynamostore

// Benchmarks of the store's CPU-only parts: serializers (gob, JSON), the
// cookie's ID codec, the storage key, and compression of large sessions
// (gzip from the standard library, which the store uses, next to zstd from
// github.com/klauspost/compress, which only these benchmarks import).

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
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

// compressor is one compression algorithm and level under comparison.
type compressor struct {
	name       string
	compress   func(dst *bytes.Buffer, src []byte) error
	decompress func(src []byte) ([]byte, error)
}

// gzipCompressor reuses one writer and one reader, as CompressedSerializer
// does through its pools.
func gzipCompressor(b *testing.B, name string, level int) compressor {
	zw, err := gzip.NewWriterLevel(io.Discard, level)
	if err != nil {
		b.Fatal(err)
	}
	var zr gzip.Reader
	return compressor{
		name: "gzip-" + name,
		compress: func(dst *bytes.Buffer, src []byte) error {
			zw.Reset(dst)
			if _, err := zw.Write(src); err != nil {
				return err
			}
			return zw.Close()
		},
		decompress: func(src []byte) ([]byte, error) {
			if err := zr.Reset(bytes.NewReader(src)); err != nil {
				return nil, err
			}
			var out bytes.Buffer
			out.Grow(4 * len(src))
			_, err := io.Copy(&out, &zr)
			return out.Bytes(), err
		},
	}
}

// zstdCompressor reuses one encoder and decoder, as zstd is meant to be
// used (EncodeAll and DecodeAll are safe for concurrent use).
func zstdCompressor(b *testing.B, level zstd.EncoderLevel) compressor {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(1))
	if err != nil {
		b.Fatal(err)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = enc.Close(); dec.Close() })
	return compressor{
		name: "zstd-" + level.String(),
		compress: func(dst *bytes.Buffer, src []byte) error {
			dst.Write(enc.EncodeAll(src, dst.AvailableBuffer()))
			return nil
		},
		decompress: func(src []byte) ([]byte, error) { return dec.DecodeAll(src, nil) },
	}
}

// BenchmarkCompression compares gzip and zstd levels on 10 KB and 100 KB
// sessions (gob), reporting the compressed size, and the store's own
// CompressedSerializer (gzip, fastest level, pooled writers) end to end.
func BenchmarkCompression(b *testing.B) {
	for _, size := range []int{10 << 10, 100 << 10} {
		data, err := GobSerializer{}.Serialize(largeSession(size))
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range []compressor{
			gzipCompressor(b, "fastest", gzip.BestSpeed),
			gzipCompressor(b, "default", gzip.DefaultCompression),
			zstdCompressor(b, zstd.SpeedFastest),
			zstdCompressor(b, zstd.SpeedDefault),
		} {
			var packed bytes.Buffer
			if err := c.compress(&packed, data); err != nil {
				b.Fatal(err)
			}
			prefix := fmt.Sprintf("size=%dKB/alg=%s", size>>10, c.name)
			b.Run(prefix+"/op=compress", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(data)))
				var buf bytes.Buffer
				for range b.N {
					buf.Reset()
					if err := c.compress(&buf, data); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(packed.Len()), "bytes")
				b.ReportMetric(float64(len(data))/float64(packed.Len()), "ratio")
			})
			b.Run(prefix+"/op=decompress", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(data)))
				for range b.N {
					if _, err := c.decompress(packed.Bytes()); err != nil {
						b.Fatal(err)
					}
				}
			})
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
