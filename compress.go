package dynamostore

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"sync"
)

// maxDecompressedSize bounds how large a compressed session may grow when
// it is decompressed, so a hostile or corrupt row cannot exhaust memory:
// 16 MiB, forty times DynamoDB's item limit.
const maxDecompressedSize = 16 << 20

// gzipMagic is how every gzip stream begins (RFC 1952: ID1, ID2).
var gzipMagic = []byte{0x1f, 0x8b}

// compressedSerializer is the Serializer NewCompressedSerializer returns.
type compressedSerializer struct {
	inner     Serializer
	threshold int
	level     int
	maxSize   int       // maxDecompressedSize, but for tests
	writers   sync.Pool // *gzip.Writer
	readers   sync.Pool // *gzip.Reader
}

// NewCompressedSerializer returns a Serializer that wraps inner
// (GobSerializer when nil) and gzip-compresses its output when it is
// threshold bytes or more, so that large sessions cost fewer write units
// and stay under DynamoDB's item limit; a threshold of 0 or less compresses
// every non-empty value. A threshold of a few kilobytes suits most
// applications: below 1 KB a write costs 1 WCU whatever its size. Output
// below the threshold, or that does not shrink, is stored exactly as inner
// made it, so a table written without compression stays readable after it
// is turned on; rows written compressed cannot be read by a Store without
// it. Use it with WithSerializer. It is safe for concurrent use.
//
// level is the gzip level: 0 for gzip.BestSpeed (1), about as fast as
// zstd's fastest level on session data, or any level compress/gzip accepts
// from gzip.HuffmanOnly (-2) and gzip.DefaultCompression (-1) to
// gzip.BestCompression (9). On a 100 KB session the default level stores
// about a fifth fewer bytes than the fastest for about four times the CPU
// (see BENCHMARKS.md). Any other level is an error wrapping
// ErrInvalidOption.
//
// Compressed data is a standard gzip stream. Rows are told apart by the
// gzip magic bytes (0x1f 0x8b), which neither GobSerializer nor
// JSONSerializer output can begin with; inner output that does begin with
// them is always compressed, so reading is never ambiguous. Decompressed
// data is limited to 16 MiB, so a hostile or corrupt row cannot exhaust
// memory.
func NewCompressedSerializer(inner Serializer, threshold, level int) (Serializer, error) {
	return newCompressedSerializer(inner, threshold, level)
}

func newCompressedSerializer(inner Serializer, threshold, level int) (*compressedSerializer, error) {
	if level == 0 {
		level = gzip.BestSpeed
	}
	if level < gzip.HuffmanOnly || level > gzip.BestCompression {
		return nil, fmt.Errorf("%w: gzip level %d is not between %d and %d", ErrInvalidOption, level, gzip.HuffmanOnly, gzip.BestCompression)
	}
	if inner == nil {
		inner = GobSerializer{}
	}
	return &compressedSerializer{inner: inner, threshold: threshold, level: level, maxSize: maxDecompressedSize}, nil
}

// Serialize implements Serializer: it serializes values with the inner
// Serializer and compresses the result when it is long enough and shrinks.
func (c *compressedSerializer) Serialize(values map[any]any) ([]byte, error) {
	data, err := c.inner.Serialize(values)
	if err != nil || len(data) == 0 {
		return data, err
	}
	magic := bytes.HasPrefix(data, gzipMagic)
	if len(data) < c.threshold && !magic {
		return data, nil
	}
	var buf bytes.Buffer
	buf.Grow(len(data) / 2)
	zw, _ := c.writers.Get().(*gzip.Writer)
	if zw == nil {
		// The constructor checked the level, so this cannot fail.
		zw, _ = gzip.NewWriterLevel(&buf, c.level)
	} else {
		zw.Reset(&buf)
	}
	_, err = zw.Write(data)
	if err == nil {
		err = zw.Close()
	}
	zw.Reset(io.Discard)
	c.writers.Put(zw)
	if err != nil {
		return nil, fmt.Errorf("%w: gzip: %w", ErrEncode, err)
	}
	if buf.Len() >= len(data) && !magic {
		return data, nil
	}
	return buf.Bytes(), nil
}

// Deserialize implements Serializer: gzip data is decompressed (to at most
// maxDecompressedSize bytes) before the inner Serializer decodes it; other
// data goes to the inner Serializer as it is.
func (c *compressedSerializer) Deserialize(data []byte, values map[any]any) error {
	if !bytes.HasPrefix(data, gzipMagic) {
		return c.inner.Deserialize(data, values)
	}
	plain, err := c.decompress(data)
	if err != nil {
		return err
	}
	return c.inner.Deserialize(plain, values)
}

// decompress gunzips data, refusing output over c.maxSize bytes.
func (c *compressedSerializer) decompress(data []byte) ([]byte, error) {
	src := bytes.NewReader(data)
	zr, _ := c.readers.Get().(*gzip.Reader)
	var err error
	if zr == nil {
		zr, err = gzip.NewReader(src)
	} else {
		err = zr.Reset(src)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: gzip: %w", ErrDecode, err)
	}
	defer c.readers.Put(zr)
	zr.Multistream(false)
	var out bytes.Buffer
	out.Grow(min(4*len(data), c.maxSize))
	n, err := io.Copy(&out, io.LimitReader(zr, int64(c.maxSize)+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: gzip: %w", ErrDecode, err)
	case n > int64(c.maxSize):
		return nil, fmt.Errorf("%w: gzip: decompresses to more than %d bytes", ErrDecode, c.maxSize)
	}
	if err := zr.Close(); err != nil {
		return nil, fmt.Errorf("%w: gzip: %w", ErrDecode, err)
	}
	return out.Bytes(), nil
}

// sameValues implements canonicalSerializer: it compares what the two
// encodings hold once decompressed, with the inner Serializer's
// sameValues when it has one.
func (c *compressedSerializer) sameValues(data, stored []byte) bool {
	plain := func(b []byte) ([]byte, bool) {
		if !bytes.HasPrefix(b, gzipMagic) {
			return b, true
		}
		out, err := c.decompress(b)
		return out, err == nil
	}
	d, ok := plain(data)
	if !ok {
		return false
	}
	st, ok := plain(stored)
	if !ok {
		return false
	}
	if bytes.Equal(d, st) {
		return true
	}
	inner, ok := c.inner.(canonicalSerializer)
	return ok && inner.sameValues(d, st)
}
