package dynamostore

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"math"
	"math/bits"
	"slices"
	"strings"
	"sync"
)

// This file reads and writes the gob encoding of the commonest sessions
// directly: a map[any]any whose keys and values are strings, byte slices,
// booleans, integers, float64s or (values only) nil. encoding/gob builds
// its decoding machinery afresh for every stream, which costs a loaded
// session about 200 allocations; this path costs a handful. It produces and
// accepts only what encoding/gob itself writes and reads the same way, and
// gives up on anything else (other types, unusual but valid encodings,
// corrupt data), in which case GobSerializer hands the work to encoding/gob.
// The wire format is the one documented in encoding/gob.

// Type IDs that encoding/gob predefines for basic types.
const (
	wireBool      = 1
	wireInt       = 2
	wireUint      = 3
	wireFloat     = 4
	wireBytes     = 5
	wireString    = 6
	wireInterface = 8
	wireFirstUser = 64 // the first ID gob gives a type it defines
)

// gobKind is one concrete type the fast path handles: the name gob
// registers it under and the wire type that carries it.
type gobKind struct {
	name string
	wire int64
}

var (
	kindString  = gobKind{"string", wireString}
	kindBytes   = gobKind{"[]uint8", wireBytes}
	kindBool    = gobKind{"bool", wireBool}
	kindInt     = gobKind{"int", wireInt}
	kindInt8    = gobKind{"int8", wireInt}
	kindInt16   = gobKind{"int16", wireInt}
	kindInt32   = gobKind{"int32", wireInt}
	kindInt64   = gobKind{"int64", wireInt}
	kindUint    = gobKind{"uint", wireUint}
	kindUint8   = gobKind{"uint8", wireUint}
	kindUint16  = gobKind{"uint16", wireUint}
	kindUint32  = gobKind{"uint32", wireUint}
	kindUint64  = gobKind{"uint64", wireUint}
	kindFloat64 = gobKind{"float64", wireFloat}
)

// gobKinds finds a kind by its registered name.
var gobKinds = func() map[string]gobKind {
	m := make(map[string]gobKind)
	for _, k := range []gobKind{kindString, kindBytes, kindBool, kindInt, kindInt8, kindInt16,
		kindInt32, kindInt64, kindUint, kindUint8, kindUint16, kindUint32, kindUint64, kindFloat64} {
		m[k.name] = k
	}
	return m
}()

// gobMapType is how encoding/gob, in this process, introduces the type
// map[any]any at the start of a stream: the type-definition message and
// the type ID it defines. It is learned from encoding/gob itself, so that
// the fast path writes exactly what gob would.
var gobMapType = sync.OnceValues(func() (def []byte, id int64) {
	var buf bytes.Buffer
	if gob.NewEncoder(&buf).Encode(map[any]any{}) != nil {
		return nil, 0
	}
	r := gobReader{b: buf.Bytes()}
	n, ok := r.uint()
	if !ok || n > uint64(len(r.b)) {
		return nil, 0
	}
	msg := gobReader{b: r.b[:n]}
	id, ok = gobDefinesMap(&msg)
	if !ok {
		return nil, 0
	}
	return buf.Bytes()[:len(buf.Bytes())-len(r.b)+int(n)], id
})

// gobDefinesMap reads a type-definition message (after its length) and
// returns the ID it defines, if it defines map[any]any exactly as
// encoding/gob does and nothing else.
func gobDefinesMap(r *gobReader) (int64, bool) {
	neg, ok := r.int()
	if !ok || neg > -wireFirstUser || neg < -math.MaxInt32 {
		return 0, false
	}
	// wireType{MapT: &mapType{CommonType{Id: id}, Key: interface, Elem: interface}}
	if !r.bytes(0x04, 0x01, 0x02) {
		return 0, false
	}
	id, ok := r.int()
	if !ok || id != -neg || !r.bytes(0x00, 0x01, 2*wireInterface, 0x01, 2*wireInterface, 0x00, 0x00) || len(r.b) != 0 {
		return 0, false
	}
	return id, true
}

// gobReader reads the parts of a gob stream from a byte slice.
type gobReader struct{ b []byte }

// uint reads an unsigned integer in its shortest encoding.
func (r *gobReader) uint() (uint64, bool) {
	if len(r.b) == 0 {
		return 0, false
	}
	c := r.b[0]
	if c < 0x80 {
		r.b = r.b[1:]
		return uint64(c), true
	}
	n := int(-int8(c))
	if n < 1 || n > 8 || len(r.b) < 1+n || r.b[1] == 0 {
		return 0, false
	}
	var x uint64
	for _, c := range r.b[1 : 1+n] {
		x = x<<8 | uint64(c)
	}
	if x < 0x80 {
		return 0, false
	}
	r.b = r.b[1+n:]
	return x, true
}

// int reads a signed integer.
func (r *gobReader) int() (int64, bool) {
	u, ok := r.uint()
	return gobIntFromBits(u), ok
}

// bytes consumes want, if the input starts with it.
func (r *gobReader) bytes(want ...byte) bool {
	if !bytes.HasPrefix(r.b, want) {
		return false
	}
	r.b = r.b[len(want):]
	return true
}

// take returns the next n bytes.
func (r *gobReader) take(n uint64) ([]byte, bool) {
	if n > uint64(len(r.b)) {
		return nil, false
	}
	b := r.b[:n]
	r.b = r.b[n:]
	return b, true
}

// iface reads an interface value; key says it is a map key, which may be
// neither nil nor a byte slice. Strings are cut from strs (see box).
func (r *gobReader) iface(key bool, strs *strings.Builder) (any, bool) {
	kind, u, b, ok := r.scalarIface(key)
	if !ok || kind.name == "" {
		return nil, ok
	}
	return kind.box(u, b, strs), true
}

// scalarIface reads an interface value as scalar reads it; a nil value
// has a kind with no name.
func (r *gobReader) scalarIface(key bool) (kind gobKind, u uint64, b []byte, ok bool) {
	n, ok := r.uint()
	if !ok {
		return kind, 0, nil, false
	}
	name, ok := r.take(n)
	if !ok {
		return kind, 0, nil, false
	}
	if len(name) == 0 {
		return kind, 0, nil, !key
	}
	kind, ok = gobKinds[string(name)]
	if !ok || (key && kind == kindBytes) {
		return kind, 0, nil, false
	}
	if wire, ok := r.int(); !ok || wire != kind.wire {
		return kind, 0, nil, false
	}
	size, ok := r.uint()
	if !ok || size > uint64(len(r.b)) {
		return kind, 0, nil, false
	}
	// The value is a singleton: a zero field delta, then the value, which
	// must fill the size given exactly.
	val := gobReader{b: r.b[:size]}
	r.b = r.b[size:]
	if !val.bytes(0x00) {
		return kind, 0, nil, false
	}
	u, b, ok = val.scalar(kind)
	return kind, u, b, ok && len(val.b) == 0
}

// scalar reads a value of kind without allocating: the bytes of a string
// or byte slice, or else the number as gob writes it (a bool as 0 or 1, a
// signed integer in gob's unsigned form, a float byte-reversed). It checks
// that the number fits kind.
func (r *gobReader) scalar(kind gobKind) (u uint64, b []byte, ok bool) {
	switch kind.wire {
	case wireString, wireBytes:
		n, ok := r.uint()
		if !ok {
			return 0, nil, false
		}
		b, ok := r.take(n)
		return 0, b, ok
	}
	u, ok = r.uint()
	if !ok {
		return 0, nil, false
	}
	i := gobIntFromBits(u)
	switch kind {
	case kindBool:
		ok = u <= 1
	case kindInt8:
		ok = i == int64(int8(i))
	case kindInt16:
		ok = i == int64(int16(i))
	case kindInt32:
		ok = i == int64(int32(i))
	case kindUint8:
		ok = u == uint64(uint8(u))
	case kindUint16:
		ok = u == uint64(uint16(u))
	case kindUint32:
		ok = u == uint64(uint32(u))
	}
	return u, nil, ok
}

// box makes the Go value of kind from what scalar read. A string is
// appended to strs and cut from it, so that the strings of a session share
// one allocation: strs must have been grown to hold them all.
func (kind gobKind) box(u uint64, b []byte, strs *strings.Builder) any {
	i := gobIntFromBits(u)
	switch kind {
	case kindString:
		start := strs.Len()
		strs.Write(b)
		return strs.String()[start:]
	case kindBytes:
		if len(b) == 0 {
			return []byte(nil)
		}
		return bytes.Clone(b)
	case kindBool:
		return u == 1
	case kindFloat64:
		return math.Float64frombits(bits.ReverseBytes64(u))
	case kindInt:
		return int(i)
	case kindInt8:
		return int8(i)
	case kindInt16:
		return int16(i)
	case kindInt32:
		return int32(i)
	case kindInt64:
		return i
	case kindUint:
		return uint(u)
	case kindUint8:
		return uint8(u)
	case kindUint16:
		return uint16(u)
	case kindUint32:
		return uint32(u)
	default: // kindUint64
		return u
	}
}

// gobMapEntries checks data's framing as the fast path reads it, and returns
// a reader at the first map entry and the number of entries.
func gobMapEntries(data []byte) (gobReader, uint64, bool) {
	r := gobReader{b: data}
	n, ok := r.uint()
	if !ok {
		return r, 0, false
	}
	def, ok := r.take(n)
	if !ok {
		return r, 0, false
	}
	id, ok := gobDefinesMap(&gobReader{b: def})
	if !ok {
		return r, 0, false
	}
	if n, ok = r.uint(); !ok || n != uint64(len(r.b)) {
		return r, 0, false // the value must be the one remaining message
	}
	if got, ok := r.int(); !ok || got != id || !r.bytes(0x00) {
		return r, 0, false
	}
	count, ok := r.uint()
	if !ok || count > uint64(len(r.b))/2 { // an entry takes at least 2 bytes
		return r, 0, false
	}
	return r, count, true
}

// gobCanonical reports whether data is a session as gobFastEncode writes
// it: one the fast path reads, with its entries in strictly increasing
// order of their encoded keys. Equal values have only one canonical
// encoding, so two canonical encodings that differ hold different values.
// It allocates nothing.
func gobCanonical(data []byte) bool {
	r, count, ok := gobMapEntries(data)
	if !ok {
		return false
	}
	var prev []byte
	for range count {
		start := r.b
		if _, _, _, ok := r.scalarIface(true); !ok {
			return false
		}
		key := start[:len(start)-len(r.b)]
		if prev != nil && bytes.Compare(prev, key) >= 0 {
			return false
		}
		prev = key
		if _, _, _, ok := r.scalarIface(false); !ok {
			return false
		}
	}
	return len(r.b) == 0
}

// gobFastDecode decodes data into values when it is a stream the fast path
// reads, and reports whether it was; when it was not, values is unchanged.
func gobFastDecode(data []byte, values map[any]any) bool {
	r, count, ok := gobMapEntries(data)
	if !ok {
		return false
	}
	// Check every entry, and total the bytes of the strings, before
	// storing any, so that a stream given up halfway leaves values as it
	// was.
	scan, strBytes := r, 0
	for i := range 2 * count {
		kind, _, b, ok := scan.scalarIface(i%2 == 0)
		if !ok {
			return false
		}
		if kind == kindString {
			strBytes += len(b)
		}
	}
	if len(scan.b) != 0 {
		return false
	}
	var strs strings.Builder
	strs.Grow(strBytes)
	for range count {
		k, _ := r.iface(true, &strs)
		v, _ := r.iface(false, &strs)
		values[k] = v
	}
	return true
}

// gobEntry locates one encoded map entry in a buffer.
type gobEntry struct{ start, keyEnd, end int }

// gobEncodeState is the scratch space of one fast encoding.
type gobEncodeState struct {
	buf     []byte
	entries []gobEntry
}

var gobEncodeStates = sync.Pool{New: func() any { return new(gobEncodeState) }}

// gobFastEncode encodes values the way encoding/gob does, with the entries
// in the order of their encoded keys so that the same values always give
// the same bytes. It reports false, having done nothing, when a key or
// value is of a type the fast path does not write.
func gobFastEncode(values map[any]any) ([]byte, bool) {
	def, id := gobMapType()
	if def == nil {
		return nil, false
	}
	st := gobEncodeStates.Get().(*gobEncodeState)
	defer gobEncodeStates.Put(st)
	st.buf, st.entries = st.buf[:0], st.entries[:0]
	for k, v := range values {
		e := gobEntry{start: len(st.buf)}
		var ok bool
		if st.buf, ok = appendGobIface(st.buf, k, true); !ok {
			return nil, false
		}
		e.keyEnd = len(st.buf)
		if st.buf, ok = appendGobIface(st.buf, v, false); !ok {
			return nil, false
		}
		e.end = len(st.buf)
		st.entries = append(st.entries, e)
	}
	slices.SortFunc(st.entries, func(a, b gobEntry) int {
		return bytes.Compare(st.buf[a.start:a.keyEnd], st.buf[b.start:b.keyEnd])
	})
	// The value message: map type ID, singleton delta, entry count, entries.
	var head [24]byte
	body := appendGobInt(head[:0], id)
	body = append(body, 0x00)
	body = appendGobUint(body, uint64(len(st.entries)))
	size := len(body) + len(st.buf)
	out := make([]byte, 0, len(def)+9+size)
	out = append(out, def...)
	out = appendGobUint(out, uint64(size))
	out = append(out, body...)
	for _, e := range st.entries {
		out = append(out, st.buf[e.start:e.end]...)
	}
	return out, true
}

// appendGobIface appends v as an interface value: its type's name, its
// wire type, its size, and the value as a singleton.
func appendGobIface(b []byte, v any, key bool) ([]byte, bool) {
	var kind gobKind
	var u uint64  // the value's wire encoding when it is a number or a bool
	var s string  // the value when it is a string
	var bs []byte // the value when it is a byte slice
	switch v := v.(type) {
	case nil:
		return append(b, 0x00), !key
	case string:
		kind, s = kindString, v
	case []byte:
		if key {
			return b, false
		}
		kind, bs = kindBytes, v
	case bool:
		kind = kindBool
		if v {
			u = 1
		}
	case int:
		kind, u = kindInt, gobIntBits(int64(v))
	case int8:
		kind, u = kindInt8, gobIntBits(int64(v))
	case int16:
		kind, u = kindInt16, gobIntBits(int64(v))
	case int32:
		kind, u = kindInt32, gobIntBits(int64(v))
	case int64:
		kind, u = kindInt64, gobIntBits(v)
	case uint:
		kind, u = kindUint, uint64(v)
	case uint8:
		kind, u = kindUint8, uint64(v)
	case uint16:
		kind, u = kindUint16, uint64(v)
	case uint32:
		kind, u = kindUint32, uint64(v)
	case uint64:
		kind, u = kindUint64, v
	case float64:
		kind, u = kindFloat64, bits.ReverseBytes64(math.Float64bits(v))
	default:
		return b, false
	}
	b = appendGobUint(b, uint64(len(kind.name)))
	b = append(b, kind.name...)
	b = appendGobInt(b, kind.wire)
	if kind == kindString || kind == kindBytes {
		n := uint64(len(s) + len(bs)) // one of them is empty
		b = appendGobUint(b, 1+uint64(gobUintLen(n))+n)
		b = append(b, 0x00)
		b = appendGobUint(b, n)
		b = append(b, s...)
		return append(b, bs...), true
	}
	b = appendGobUint(b, uint64(1+gobUintLen(u)))
	b = append(b, 0x00)
	return appendGobUint(b, u), true
}

// gobIntBits is the unsigned form in which gob writes a signed integer.
func gobIntBits(i int64) uint64 {
	if i < 0 {
		return uint64(^i)<<1 | 1
	}
	return uint64(i) << 1
}

// gobIntFromBits is the signed integer gob writes as u (gobIntBits undone).
func gobIntFromBits(u uint64) int64 {
	if u&1 != 0 {
		return int64(^(u >> 1))
	}
	return int64(u >> 1)
}

// appendGobInt appends a signed integer.
func appendGobInt(b []byte, i int64) []byte { return appendGobUint(b, gobIntBits(i)) }

// appendGobUint appends an unsigned integer in its shortest encoding.
func appendGobUint(b []byte, u uint64) []byte {
	if u < 0x80 {
		return append(b, byte(u))
	}
	n := gobUintLen(u) - 1
	b = append(b, byte(-n))
	var be [8]byte
	binary.BigEndian.PutUint64(be[:], u)
	return append(b, be[8-n:]...)
}

// gobUintLen is the length of u's encoding.
func gobUintLen(u uint64) int {
	if u < 0x80 {
		return 1
	}
	return 1 + (bits.Len64(u)+7)/8
}
