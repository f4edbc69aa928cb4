package dynamostore

import (
	"bytes"
	"math"
	"math/bits"
	"strings"
	"time"
)

// gobFastDecode decodes data into values when it is a stream the fast path
// reads, and reports whether it was; when it was not, values is unchanged.
// The fast path reads sessions of the kinds gobFastEncode writes, with
// every type defined before the value (as canonical encodings and
// encoding/gob's own encoding of sessions of basic types have them), and
// leaves the rest to encoding/gob.
func gobFastDecode(data []byte, values map[any]any) bool {
	empty := len(values) == 0
	if !empty {
		// Check the whole stream before storing anything, so that a stream
		// given up halfway leaves the values there were as they were.
		scan := gobDecoder{}
		if !scan.stream(data, nil) {
			return false
		}
	}
	// Without values to keep, one pass builds the values, and a stream
	// given up halfway leaves values empty again.
	d := gobDecoder{build: true, size: len(data)}
	if !d.stream(data, values) {
		if empty {
			clear(values)
		}
		return false
	}
	return true
}

// gobCanonical reports whether data is a canonical encoding (see
// gobwire.go) that the fast path reads. Equal values have only one
// canonical encoding, so two canonical encodings that differ hold different
// values. It allocates nothing.
func gobCanonical(data []byte) bool {
	d := gobDecoder{strict: true}
	return d.stream(data, nil)
}

// gobDecoder reads one stream, checking it (and, when strict, that it is
// canonical) and, when build is set, making its values.
type gobDecoder struct {
	r      gobReader
	build  bool
	strict bool
	ids    [gobNumComposites]int64 // the ID each composite kind is defined under, or 0
	used   int64                   // strict: how many user IDs the value has used
	depth  int
	size   int             // the stream's length, which bounds its strings'
	strs   strings.Builder // the strings built, sharing their allocation
}

// stream reads the definitions and the value message of data into values.
func (d *gobDecoder) stream(data []byte, values map[any]any) bool {
	d.r = gobReader{b: data}
	defined := int64(0)
	for {
		start := d.r.b
		n, ok := d.r.uint()
		if !ok {
			return false
		}
		msg, ok := d.r.take(n)
		if !ok {
			return false
		}
		m := gobReader{b: msg}
		id, ok := m.int()
		if !ok {
			return false
		}
		if id >= 0 {
			// The value message, which must be the last.
			if len(d.r.b) != 0 || id < wireFirstUser || id != d.ids[0] || !m.bytes(0x00) {
				return false
			}
			d.r = m
			if d.strict && !d.use(id) {
				return false
			}
			break
		}
		id = -id
		if id < wireFirstUser || (d.strict && id != wireFirstUser+defined) {
			return false
		}
		var wire gobWire
		w := &wire
		if !readGobDef(&m, w) || len(m.b) != 0 {
			return false
		}
		i := gobCompositeOf(w)
		if i < 0 || d.ids[i] != 0 {
			return false
		}
		if d.strict {
			var def [32]byte
			if !bytes.Equal(start[:len(start)-len(d.r.b)], appendGobDef(def[:0], id, w, gobSame)) {
				return false
			}
		}
		for _, other := range d.ids {
			if other == id {
				return false
			}
		}
		d.ids[i] = id
		defined++
	}
	if !d.mapAny(values) || len(d.r.b) != 0 {
		return false
	}
	return !d.strict || d.used == defined
}

// gobCompositeOf returns the index in gobComposites of the kind w defines,
// or -1.
func gobCompositeOf(w *gobWire) int {
	for i, c := range gobComposites {
		k := c.kind.def
		if w.field == k.field && w.name == k.name && w.elem == k.elem && w.key == k.key && w.length == 0 && len(w.fields) == 0 {
			return i
		}
	}
	return -1
}

// use notes a use of the user type id, which in a canonical encoding is
// either one used before or the next one.
func (d *gobDecoder) use(id int64) bool {
	switch {
	case id < wireFirstUser+d.used:
		return true
	case id == wireFirstUser+d.used:
		d.used++
		return true
	}
	return false
}

// enter counts one level of nesting.
func (d *gobDecoder) enter() bool {
	d.depth++
	return d.depth <= gobMaxDepth
}

// count reads the number of a map's entries or a slice's elements, each
// of which takes at least min bytes.
func (d *gobDecoder) count(min uint64) (int, bool) {
	n, ok := d.r.uint()
	if !ok || n > uint64(len(d.r.b))/min {
		return 0, false
	}
	return int(n), true
}

// mapAny reads a map[any]any's count and entries into m when building.
func (d *gobDecoder) mapAny(m map[any]any) bool {
	if !d.enter() {
		return false
	}
	n, ok := d.count(2)
	if !ok {
		return false
	}
	var prevHead, prevTail []byte
	for range n {
		start := d.r.b
		k, ok := d.iface(true)
		if !ok {
			return false
		}
		if d.strict {
			head, tail := gobKeyForm(start[:len(start)-len(d.r.b)])
			if prevHead != nil && gobCompareForms(prevHead, prevTail, head, tail) >= 0 {
				return false
			}
			prevHead, prevTail = head, tail
		}
		v, ok := d.iface(false)
		if !ok {
			return false
		}
		if d.build {
			m[k] = v
		}
	}
	d.depth--
	return true
}

// gobKeyForm splits a scalar key as appendGobIface writes it into the two
// parts of its sort form: its name and wire type, then what follows the
// byte count.
func gobKeyForm(key []byte) (head, tail []byte) {
	r := gobReader{b: key}
	n, _ := r.uint()
	r.skip(n)
	r.int()
	head = key[:len(key)-len(r.b)]
	r.uint()
	return head, r.b
}

// gobCompareForms compares the sort forms a1+a2 and b1+b2.
func gobCompareForms(a1, a2, b1, b2 []byte) int {
	for len(a1)+len(a2) > 0 && len(b1)+len(b2) > 0 {
		if len(a1) == 0 {
			a1, a2 = a2, nil
		}
		if len(b1) == 0 {
			b1, b2 = b2, nil
		}
		n := min(len(a1), len(b1))
		if c := bytes.Compare(a1[:n], b1[:n]); c != 0 {
			return c
		}
		a1, b1 = a1[n:], b1[n:]
	}
	return (len(a1) + len(a2)) - (len(b1) + len(b2))
}

// mapString reads a map[string]any's count and entries.
func (d *gobDecoder) mapString() (map[string]any, bool) {
	if !d.enter() {
		return nil, false
	}
	n, ok := d.count(2)
	if !ok {
		return nil, false
	}
	var m map[string]any
	if d.build {
		m = make(map[string]any, n)
	}
	var prev []byte
	for range n {
		start := d.r.b
		k, ok := d.r.scalar(kindString)
		if !ok {
			return nil, false
		}
		if d.strict {
			form := start[:len(start)-len(d.r.b)]
			if prev != nil && bytes.Compare(prev, form) >= 0 {
				return nil, false
			}
			prev = form
		}
		v, ok := d.iface(false)
		if !ok {
			return nil, false
		}
		if d.build {
			m[d.str(k.b)] = v
		}
	}
	d.depth--
	return m, true
}

// slice reads a []any's count and elements.
func (d *gobDecoder) slice() ([]any, bool) {
	if !d.enter() {
		return nil, false
	}
	n, ok := d.count(1)
	if !ok {
		return nil, false
	}
	var s []any
	if d.build && n > 0 {
		s = make([]any, n)
	}
	for i := range n {
		v, ok := d.iface(false)
		if !ok {
			return nil, false
		}
		if d.build {
			s[i] = v
		}
	}
	d.depth--
	return s, true
}

// str returns the string b, cut from the session's shared strings: they
// are written to a buffer of the stream's size or 4 KiB, whichever is
// less, then to buffers twice as large, up to the stream's size.
func (d *gobDecoder) str(b []byte) string {
	if d.strs.Cap()-d.strs.Len() < len(b) {
		next := min(max(2*d.strs.Cap(), 4<<10), d.size)
		d.strs = strings.Builder{}
		d.strs.Grow(max(next, len(b)))
	}
	start := d.strs.Len()
	d.strs.Write(b)
	return d.strs.String()[start:]
}

// gorillaFlashKey is the key gorilla/sessions keeps flashes under by
// default; boxedFlashKey is it as an interface value, which a session with
// flashes then holds without allocating.
const gorillaFlashKey = "_flash"

var boxedFlashKey any = gorillaFlashKey

// iface reads an interface value; key says it is a map key, which must be
// a string, a boolean or a number.
func (d *gobDecoder) iface(key bool) (any, bool) {
	name, ok := d.r.string0()
	if !ok {
		return nil, false
	}
	if len(name) == 0 {
		return nil, !key
	}
	if kind := gobScalarKind(name); kind != nil {
		if key && kind == kindBytes {
			return nil, false
		}
		if wire, ok := d.r.int(); !ok || wire != kind.wire {
			return nil, false
		}
		val, ok := d.value()
		if !ok || !val.bytes(0x00) {
			return nil, false
		}
		s, ok := val.scalar(kind)
		if !ok || len(val.b) != 0 {
			return nil, false
		}
		if !d.build {
			return nil, true
		}
		if kind == kindString {
			if string(s.b) == gorillaFlashKey {
				return boxedFlashKey, true
			}
			return d.str(s.b), true
		}
		return kind.box(s.u, s.b), true
	}
	if key {
		return nil, false
	}
	i := gobNames.lookup(name)
	if i < 0 {
		return nil, false
	}
	if id, ok := d.r.int(); !ok || id != d.ids[i] || (d.strict && !d.use(id)) {
		return nil, false
	}
	val, ok := d.value()
	if !ok || !val.bytes(0x00) {
		return nil, false
	}
	outer := d.r
	d.r = val
	var v any
	switch i {
	case 0:
		var m map[any]any
		n, _ := (&gobReader{b: d.r.b}).uint()
		if d.build {
			m = make(map[any]any, min(n, uint64(len(d.r.b))))
		}
		ok = d.mapAny(m)
		v = m
	case 1:
		v, ok = d.mapString()
	case 2:
		v, ok = d.slice()
	case 3:
		var b []byte
		if b, ok = d.r.string0(); ok {
			var t time.Time
			ok = t.UnmarshalBinary(b) == nil
			if d.build {
				v = t
			}
		}
	}
	ok = ok && len(d.r.b) == 0
	d.r = outer
	return v, ok
}

// value reads an interface value's byte count and returns a reader of
// that many bytes.
func (d *gobDecoder) value() (gobReader, bool) {
	n, ok := d.r.uint()
	if !ok {
		return gobReader{}, false
	}
	b, ok := d.r.take(n)
	return gobReader{b: b}, ok
}

// string0 reads a length and that many bytes, without copying them.
func (r *gobReader) string0() ([]byte, bool) {
	n, ok := r.uint()
	if !ok {
		return nil, false
	}
	return r.take(n)
}

// gobScalar is a scalar as gob writes it: the bytes of a string or byte
// slice, or else the number in its unsigned wire form (a bool as 0 or 1, a
// signed integer in gob's unsigned form, a float byte-reversed).
type gobScalar struct {
	u uint64
	b []byte
}

// scalar reads a value of kind without allocating, checking that the
// number fits kind.
func (r *gobReader) scalar(kind *gobKind) (gobScalar, bool) {
	switch kind.wire {
	case wireString, wireBytes:
		b, ok := r.string0()
		return gobScalar{b: b}, ok
	}
	u, ok := r.uint()
	if !ok {
		return gobScalar{}, false
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
	return gobScalar{u: u}, ok
}

// box makes the Go value of a scalar kind other than string from what
// scalar read.
func (kind *gobKind) box(u uint64, b []byte) any {
	i := gobIntFromBits(u)
	switch kind {
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
