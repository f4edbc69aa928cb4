package dynamostore

import (
	"bytes"
	"math"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"time"
)

// gobFastEncode writes the canonical gob encoding (see gobwire.go) of
// values that hold only the kinds the fast path knows: strings, byte
// slices, booleans, integers, float64s, nil, time.Time, and []any,
// map[string]any and map[any]any of those, nested to any depth up to
// gobMaxDepth; map keys must be strings, booleans or numbers. It reports
// false, having done nothing, for anything else, and an error wrapping
// ErrEncode for values nested too deeply. Its work is linear in the size of
// the encoding: every byte is written once to a scratch buffer and copied
// once to the result.
func gobFastEncode(values map[any]any) ([]byte, bool, error) {
	return gobFastEncodeReusing(values, nil)
}

// gobFastEncodeReusing is gobFastEncode that returns reuse itself, without
// allocating, when the encoding is the same bytes: a loaded session saved
// unchanged costs no copy of its encoding.
func gobFastEncodeReusing(values map[any]any, reuse []byte) ([]byte, bool, error) {
	e := gobEncoders.Get().(*gobEncoder)
	defer func() {
		clear(e.ents[:cap(e.ents)]) // the pool keeps no session values alive
		gobEncoders.Put(e)
	}()
	e.reset()
	ok, err := e.topMap(values)
	if !ok || err != nil {
		return nil, false, err
	}
	return e.assemble(reuse), true, nil
}

// gobEncoder is the scratch space of one fast encoding. The value message
// is written to buf without the byte counts that precede interface values
// (and the message), whose sizes are only known once written: each is a
// hole, filled in by assemble.
type gobEncoder struct {
	buf   []byte
	holes []gobHole
	open  []int // the holes being written, innermost last
	ids   [gobNumComposites]int64
	next  int64 // the next type ID to give
	types []*gobWire
	ents  []gobMapEntry // entries of the maps being written
	forms []byte        // their keys' sort forms
	depth int
}

// gobHole is a byte count to insert at pos in buf: n bytes follow it, of
// which inner are the counts of holes inside it.
type gobHole struct{ pos, n, inner int }

// gobMapEntry is one entry of a map being written, and its key's sort form
// in forms.
type gobMapEntry struct {
	skey            string
	key, val        any
	formStart, form int
}

var gobEncoders = sync.Pool{New: func() any { return new(gobEncoder) }}

func (e *gobEncoder) reset() {
	e.buf, e.holes, e.open, e.types = e.buf[:0], e.holes[:0], e.open[:0], e.types[:0]
	e.ents, e.forms = e.ents[:0], e.forms[:0]
	e.ids = [gobNumComposites]int64{}
	e.next, e.depth = wireFirstUser, 0
}

// typeID returns the ID of composite kind i, giving it the next one when
// this is its first use.
func (e *gobEncoder) typeID(i int) int64 {
	if e.ids[i] == 0 {
		e.ids[i] = e.next
		e.next++
		e.types = append(e.types, gobComposites[i].kind.def)
	}
	return e.ids[i]
}

// topMap writes the value message of values.
func (e *gobEncoder) topMap(values map[any]any) (bool, error) {
	e.openHole()
	e.buf = appendGobInt(e.buf, e.typeID(0))
	e.buf = append(e.buf, 0x00)
	ok, err := e.mapAny(values)
	e.closeHole()
	return ok, err
}

func (e *gobEncoder) openHole() {
	e.open = append(e.open, len(e.holes))
	e.holes = append(e.holes, gobHole{pos: len(e.buf)})
}

func (e *gobEncoder) closeHole() {
	i := e.open[len(e.open)-1]
	e.open = e.open[:len(e.open)-1]
	h := &e.holes[i]
	h.n = len(e.buf) - h.pos + h.inner
	if len(e.open) > 0 {
		e.holes[e.open[len(e.open)-1]].inner += h.inner + gobUintLen(uint64(h.n))
	}
}

// assemble returns the definitions, then the value message with its holes
// filled: reuse, when that is what it holds.
func (e *gobEncoder) assemble(reuse []byte) []byte {
	var defs [4 * 16]byte
	d := defs[:0]
	for i, w := range e.types {
		d = appendGobDef(d, wireFirstUser+int64(i), w, gobSame)
	}
	size := len(d) + len(e.buf)
	for _, h := range e.holes {
		size += gobUintLen(uint64(h.n))
	}
	if size == len(reuse) && e.equal(reuse, d) {
		return reuse
	}
	out := make([]byte, 0, size)
	out = append(out, d...)
	last := 0
	for _, h := range e.holes {
		out = append(out, e.buf[last:h.pos]...)
		out = appendGobUint(out, uint64(h.n))
		last = h.pos
	}
	return append(out, e.buf[last:]...)
}

// equal reports whether b holds defs, then the value message with its
// holes filled.
func (e *gobEncoder) equal(b, defs []byte) bool {
	if !bytes.HasPrefix(b, defs) {
		return false
	}
	b = b[len(defs):]
	last := 0
	var n [10]byte
	for _, h := range e.holes {
		seg := e.buf[last:h.pos]
		if !bytes.HasPrefix(b, seg) {
			return false
		}
		b = b[len(seg):]
		count := appendGobUint(n[:0], uint64(h.n))
		if !bytes.HasPrefix(b, count) {
			return false
		}
		b = b[len(count):]
		last = h.pos
	}
	return bytes.Equal(b, e.buf[last:])
}

// gobSame is the identity renumbering.
func gobSame(id int64) int64 { return id }

// enter counts one level of nesting.
func (e *gobEncoder) enter() error {
	e.depth++
	if e.depth > gobMaxDepth {
		return errGobTooDeep
	}
	return nil
}

// mapAny writes a map[any]any's count and entries, in the order of their
// keys' sort forms.
func (e *gobEncoder) mapAny(m map[any]any) (bool, error) {
	if err := e.enter(); err != nil {
		return false, err
	}
	first := len(e.ents)
	for k, v := range m {
		start := len(e.forms)
		var ok bool
		if e.forms, ok = appendGobScalarForm(e.forms, k); !ok {
			return false, nil
		}
		e.ents = append(e.ents, gobMapEntry{key: k, val: v, formStart: start, form: len(e.forms)})
	}
	if !e.sortEntries(first) {
		return false, nil
	}
	e.buf = appendGobUint(e.buf, uint64(len(m)))
	for i := first; i < len(e.ents); i++ {
		var ok bool
		e.buf, ok = appendGobIface(e.buf, e.ents[i].key, true)
		if !ok {
			return false, nil
		}
		if ok, err := e.iface(e.ents[i].val); !ok || err != nil {
			return ok, err
		}
	}
	e.ents = e.ents[:first]
	e.depth--
	return true, nil
}

// mapString writes a map[string]any's count and entries.
func (e *gobEncoder) mapString(m map[string]any) (bool, error) {
	if err := e.enter(); err != nil {
		return false, err
	}
	first := len(e.ents)
	for k, v := range m {
		e.ents = append(e.ents, gobMapEntry{skey: k, val: v})
	}
	// A string key's sort form is its gob encoding, length first; the keys
	// of a map differ.
	slices.SortFunc(e.ents[first:], func(a, b gobMapEntry) int { return gobCompareStrings(a.skey, b.skey) })
	e.buf = appendGobUint(e.buf, uint64(len(m)))
	for i := first; i < len(e.ents); i++ {
		e.buf = appendGobString(e.buf, e.ents[i].skey)
		if ok, err := e.iface(e.ents[i].val); !ok || err != nil {
			return ok, err
		}
	}
	e.ents = e.ents[:first]
	e.depth--
	return true, nil
}

// sortEntries sorts the entries from first on by their keys' forms, and
// reports false when two are equal (NaN keys), which have no order.
func (e *gobEncoder) sortEntries(first int) bool {
	ents := e.ents[first:]
	form := func(x gobMapEntry) []byte { return e.forms[x.formStart:x.form] }
	slices.SortFunc(ents, func(a, b gobMapEntry) int { return bytes.Compare(form(a), form(b)) })
	for i := 1; i < len(ents); i++ {
		if bytes.Equal(form(ents[i-1]), form(ents[i])) {
			return false
		}
	}
	return true
}

// gobCompareStrings compares the gob encodings of a and b.
func gobCompareStrings(a, b string) int {
	if len(a) != len(b) {
		var na, nb [9]byte
		return bytes.Compare(appendGobUint(na[:0], uint64(len(a))), appendGobUint(nb[:0], uint64(len(b))))
	}
	return strings.Compare(a, b)
}

// iface writes v as an interface value.
func (e *gobEncoder) iface(v any) (bool, error) {
	var i int
	switch v.(type) {
	case map[any]any:
		i = 0
	case map[string]any:
		i = 1
	case []any:
		i = 2
	case time.Time:
		i = 3
	default:
		var ok bool
		e.buf, ok = appendGobIface(e.buf, v, false)
		return ok, nil
	}
	name, ok := gobNames.registered(i)
	if !ok {
		return false, nil
	}
	e.buf = appendGobString(e.buf, name)
	e.buf = appendGobInt(e.buf, e.typeID(i))
	e.openHole()
	e.buf = append(e.buf, 0x00)
	var err error
	switch v := v.(type) {
	case map[any]any:
		ok, err = e.mapAny(v)
	case map[string]any:
		ok, err = e.mapString(v)
	case []any:
		ok, err = e.slice(v)
	case time.Time:
		var b [32]byte
		tb, terr := v.AppendBinary(b[:0])
		if ok = terr == nil; ok {
			e.buf = appendGobUint(e.buf, uint64(len(tb)))
			e.buf = append(e.buf, tb...)
		}
	}
	if !ok || err != nil {
		return ok, err
	}
	e.closeHole()
	return true, nil
}

// slice writes a []any's count and elements.
func (e *gobEncoder) slice(s []any) (bool, error) {
	if err := e.enter(); err != nil {
		return false, err
	}
	e.buf = appendGobUint(e.buf, uint64(len(s)))
	for _, v := range s {
		if ok, err := e.iface(v); !ok || err != nil {
			return ok, err
		}
	}
	e.depth--
	return true, nil
}

// gobScalarParts returns the kind of a scalar v and its wire encoding: u
// for a number or a bool, s or bs for a string or byte slice. It reports
// false for other types, and for nil.
func gobScalarParts(v any) (kind *gobKind, u uint64, s string, bs []byte, ok bool) {
	switch v := v.(type) {
	case string:
		return kindString, 0, v, nil, true
	case []byte:
		return kindBytes, 0, "", v, true
	case bool:
		if v {
			u = 1
		}
		return kindBool, u, "", nil, true
	case int:
		return kindInt, gobIntBits(int64(v)), "", nil, true
	case int8:
		return kindInt8, gobIntBits(int64(v)), "", nil, true
	case int16:
		return kindInt16, gobIntBits(int64(v)), "", nil, true
	case int32:
		return kindInt32, gobIntBits(int64(v)), "", nil, true
	case int64:
		return kindInt64, gobIntBits(v), "", nil, true
	case uint:
		return kindUint, uint64(v), "", nil, true
	case uint8:
		return kindUint8, uint64(v), "", nil, true
	case uint16:
		return kindUint16, uint64(v), "", nil, true
	case uint32:
		return kindUint32, uint64(v), "", nil, true
	case uint64:
		return kindUint64, v, "", nil, true
	case float64:
		return kindFloat64, bits.ReverseBytes64(math.Float64bits(v)), "", nil, true
	}
	return nil, 0, "", nil, false
}

// appendGobIface appends a scalar or nil v as an interface value: its
// type's name, its wire type, its size, and the value as a singleton. A
// key may not be nil or a byte slice.
func appendGobIface(b []byte, v any, key bool) ([]byte, bool) {
	if v == nil {
		return append(b, 0x00), !key
	}
	kind, u, s, bs, ok := gobScalarParts(v)
	if !ok || (key && kind == kindBytes) {
		return b, false
	}
	b = appendGobString(b, kind.name)
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

// appendGobScalarForm appends the sort form of a map key v: as
// appendGobIface writes it, without the byte count.
func appendGobScalarForm(b []byte, v any) ([]byte, bool) {
	kind, u, s, _, ok := gobScalarParts(v)
	if !ok || kind == kindBytes {
		return b, false
	}
	b = appendGobString(b, kind.name)
	b = appendGobInt(b, kind.wire)
	b = append(b, 0x00)
	if kind == kindString {
		return appendGobString(b, s), true
	}
	return appendGobUint(b, u), true
}
