package compressbench

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/dynamostore/dynamostore"
	"github.com/klauspost/compress/zstd"
)

// session returns gob-encoded session values of about size bytes: a
// browsing history and preferences, text that compresses as real sessions
// do.
func session(tb testing.TB, size int) []byte {
	rng := rand.New(rand.NewPCG(uint64(size), 7))
	words := []string{"products", "search", "cart", "checkout", "account", "orders", "help",
		"shoes", "shirts", "jackets", "sale", "new", "brand", "size", "colour", "page", "sort", "ref"}
	word := func() string { return words[rng.IntN(len(words))] }
	var history []string
	for n := 0; n < size; {
		p := fmt.Sprintf("/%s/%s/%d?%s=%s&%s=%d", word(), word(), rng.IntN(100000), word(), word(), word(), rng.IntN(50))
		history = append(history, p)
		n += len(p) + 1
	}
	data, err := dynamostore.GobSerializer{}.Serialize(map[any]any{"user": "ada@example.com", "visits": 42, "history": history})
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// compressor is one compression algorithm and level under comparison.
type compressor struct {
	name       string
	compress   func(dst *bytes.Buffer, src []byte) error
	decompress func(src []byte) ([]byte, error)
}

// gzipCompressor reuses one writer and one reader, as the store's
// compressing Serializer does through its pools.
func gzipCompressor(b testing.TB, name string, level int) compressor {
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
func zstdCompressor(b testing.TB, level zstd.EncoderLevel) compressor {
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

// compressors returns the algorithms and levels compared.
func compressors(tb testing.TB) []compressor {
	return []compressor{
		gzipCompressor(tb, "fastest", gzip.BestSpeed),
		gzipCompressor(tb, "default", gzip.DefaultCompression),
		zstdCompressor(tb, zstd.SpeedFastest),
		zstdCompressor(tb, zstd.SpeedDefault),
	}
}

// TestRoundTrip checks that every compressor gives back what it was given.
func TestRoundTrip(t *testing.T) {
	data := session(t, 10<<10)
	for _, c := range compressors(t) {
		var packed bytes.Buffer
		if err := c.compress(&packed, data); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got, err := c.decompress(packed.Bytes())
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: round trip = %d bytes, %v; want the %d bytes given", c.name, len(got), err, len(data))
		}
		if packed.Len() >= len(data) {
			t.Errorf("%s: %d bytes compressed to %d", c.name, len(data), packed.Len())
		}
	}
}

// BenchmarkCompression compares gzip and zstd levels on 10 KB and 100 KB
// sessions, reporting the compressed size and ratio.
func BenchmarkCompression(b *testing.B) {
	for _, size := range []int{10 << 10, 100 << 10} {
		data := session(b, size)
		for _, c := range compressors(b) {
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
	}
}
