package dynamostore

import (
	"bytes"
	"compress/gzip"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/dynamostore/dynamostore/internal/gobwire"
)

// Serializer turns a session's Values into bytes and back. The Store's
// default is GobSerializer; JSONSerializer is the other implementation this
// package provides. Implementations must be safe for concurrent use.
type Serializer interface {
	// Serialize encodes values. It returns an error wrapping ErrEncode when
	// a value cannot be encoded.
	Serialize(values map[any]any) ([]byte, error)
	// Deserialize decodes data into values, which is empty and non-nil. It
	// returns an error wrapping ErrDecode when data is not valid.
	Deserialize(data []byte, values map[any]any) error
}

// canonicalSerializer is a Serializer that can tell that two encodings
// which differ in their bytes hold the same values. The Store uses it to
// see an unchanged session whose stored row another process, release or
// program wrote. It must say true only when the values are the same down
// to their bits (0.0 and -0.0 differ, and NaNs by their payloads): saying
// false wrongly costs a write of an unchanged session, saying true wrongly
// loses a change.
type canonicalSerializer interface {
	// sameValues reports whether data, which the Serializer wrote, holds
	// the values stored holds.
	sameValues(data, stored []byte) bool
}

// GobSerializer encodes Values with encoding/gob, as gorilla/sessions' own
// stores do. Custom types stored in Values must be registered with
// gob.Register. It is the Store's default Serializer.
type GobSerializer struct{}

// Serialize implements Serializer. An empty map encodes to no bytes. Equal
// values encode to the same bytes in every process, whatever it registered
// or encoded before, so that an unchanged session is seen as unchanged
// whichever process wrote it; the bytes are plain encoding/gob. Values
// nested more than 1024 deep are refused. When a value cannot be encoded,
// the error names its key.
func (g GobSerializer) Serialize(values map[any]any) ([]byte, error) {
	return g.serializeReusing(values, nil)
}

// reusingSerializer is a Serializer that can return the stored encoding
// itself, neither encoding values again nor copying, when it holds exactly
// values.
type reusingSerializer interface {
	serializeReusing(values map[any]any, stored []byte) ([]byte, error)
}

// serializeReusing implements reusingSerializer. Values on the fast path
// are compared with stored as they are (gobwire.Matches), which costs less
// than encoding them, and sees a change beside a deep tree without reading
// the tree; any others are encoded and compared.
func (GobSerializer) serializeReusing(values map[any]any, stored []byte) ([]byte, error) {
	if len(values) == 0 {
		return nil, nil
	}
	if gobwire.Matches(values, stored) {
		return stored, nil
	}
	data, ok, err := gobwire.Encode(values, stored)
	if err != nil {
		return nil, gobError(err)
	}
	if ok {
		return data, nil
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(values); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrEncode, describeEncodeFailure(values, err))
	}
	data, err = gobwire.Canonicalize(buf.Bytes())
	switch {
	case errors.Is(err, gobwire.ErrUnsupported):
		return buf.Bytes(), nil // valid, though not canonical
	case err != nil:
		// What encoding/gob just wrote cannot be rewritten (nested too
		// deeply, say): an encoding failure, whatever gobwire calls it.
		return nil, fmt.Errorf("%w: %w", ErrEncode, err)
	}
	return data, nil
}

// Deserialize implements Serializer. It never panics on hostile input.
func (GobSerializer) Deserialize(data []byte, values map[any]any) (err error) {
	if len(data) == 0 {
		return nil
	}
	defer func() {
		// encoding/gob guards against most malformed input itself; this
		// keeps a decoder bug from taking the process down with a bad row.
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: gob: %v", ErrDecode, p)
		}
	}()
	if gobwire.Decode(data, values) {
		return nil
	}
	return gobDecode(data, values)
}

// sameValues implements canonicalSerializer: data is canonical, so stored
// holds the same values when its canonical encoding is data. A canonical
// stored row that differs holds other values, and needs no rewriting.
func (GobSerializer) sameValues(data, stored []byte) (same bool) {
	defer func() {
		// As in Deserialize: a rewriter bug on a bad row costs a write,
		// never the process.
		if recover() != nil {
			same = false
		}
	}()
	if gobwire.Canonical(stored) {
		return false
	}
	canon, err := gobwire.Canonicalize(stored)
	return err == nil && bytes.Equal(canon, data)
}

// gobError wraps an error of package gobwire in the sentinel it stands
// for: ErrDecode for a corrupt stream, ErrEncode for values nested too
// deeply.
func gobError(err error) error {
	if errors.Is(err, gobwire.ErrCorrupt) {
		return fmt.Errorf("%w: %w", ErrDecode, err)
	}
	return fmt.Errorf("%w: %w", ErrEncode, err)
}

// gobDecode decodes data into values with encoding/gob.
func gobDecode(data []byte, values map[any]any) error {
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&values); err != nil {
		return fmt.Errorf("%w: gob: %w", ErrDecode, err)
	}
	return nil
}

// describeEncodeFailure finds which key of values gob cannot encode, so that
// the error a user sees names it. It is only called on the failure path.
func describeEncodeFailure(values map[any]any, err error) string {
	keys := make([]string, 0, len(values))
	for k, v := range values {
		var buf bytes.Buffer
		one := map[any]any{k: v}
		if gob.NewEncoder(&buf).Encode(one) != nil {
			keys = append(keys, fmt.Sprintf("%v (%T)", k, v))
		}
	}
	if len(keys) == 0 {
		return fmt.Sprintf("gob: %v", err)
	}
	sort.Strings(keys)
	return fmt.Sprintf("cannot encode value of key %v: %v", keys, err)
}

// JSONSerializer encodes Values as a JSON object. Keys must be strings; values
// come back as JSON types (float64 for numbers, map[string]any for objects),
// so it suits sessions that hold plain data and must be readable by other
// languages.
type JSONSerializer struct{}

// Serialize implements Serializer. A key that is not a string, or a value
// encoding/json cannot encode, is an error naming the key.
func (JSONSerializer) Serialize(values map[any]any) ([]byte, error) {
	if len(values) == 0 {
		return nil, nil
	}
	m := make(map[string]any, len(values))
	for k, v := range values {
		ks, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("%w: json: key %v (%T) is not a string", ErrEncode, k, k)
		}
		m[ks] = v
	}
	data, err := json.Marshal(m)
	if err != nil {
		for k, v := range m {
			if _, e := json.Marshal(v); e != nil {
				return nil, fmt.Errorf("%w: json: cannot encode value of key %q: %w", ErrEncode, k, e)
			}
		}
		return nil, fmt.Errorf("%w: json: %w", ErrEncode, err)
	}
	return data, nil
}

// Deserialize implements Serializer.
func (JSONSerializer) Deserialize(data []byte, values map[any]any) error {
	if len(data) == 0 {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("%w: json: %w", ErrDecode, err)
	}
	for k, v := range m {
		values[k] = v
	}
	return nil
}

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
