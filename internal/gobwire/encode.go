package gobwire

import (
	"bytes"
	"slices"
	"strings"
	"sync"
	"time"
)

// Encode writes the canonical encoding (see the package documentation) of
// values that hold only the kinds the fast path knows: strings, byte
// slices, booleans, integers, float64s, nil, time.Time, and []any,
// map[string]any and map[any]any of those, nested to any depth up to
// MaxDepth; map keys must be strings, booleans or numbers. It reports
// false, having done nothing, for anything else (and for values of a
// composite kind not registered with encoding/gob), and ErrTooDeep for
// values nested too deeply. It returns reuse itself, without allocating,
// when the encoding is the same bytes: a loaded session saved unchanged
// costs no copy of its encoding. Its work is linear in the size of the
// encoding: every byte is written once to a scratch buffer and copied once
// to the result.
func Encode(values map[any]any, reuse []byte) ([]byte, bool, error) {
	e := encoders.Get().(*encoder)
	defer func() {
		clear(e.ents[:cap(e.ents)]) // the pool keeps no session values alive
		encoders.Put(e)
	}()
	e.reset()
	ok, err := e.topMap(values)
	if !ok || err != nil {
		return nil, false, err
	}
	return e.assemble(reuse), true, nil
}

// encoder is the scratch space of one fast encoding. The value message
// is written to buf without the byte counts that precede interface values
// (and the message), whose sizes are only known once written: each is a
// hole, filled in by assemble.
type encoder struct {
	buf   []byte
	holes []hole
	open  []int // the holes being written, innermost last
	ids   [numComposites]int64
	next  int64 // the next type ID to give
	types []*typeDef
	ents  []mapEntry // entries of the maps being written
	forms []byte     // their keys' sort forms
	depth int
}

// hole is a byte count to insert at pos in buf: n bytes follow it, of
// which inner are the counts of holes inside it.
type hole struct{ pos, n, inner int }

// mapEntry is one entry of a map being written, and its key's sort form
// in forms.
type mapEntry struct {
	skey            string
	key, val        any
	formStart, form int
}

var encoders = sync.Pool{New: func() any { return new(encoder) }}

func (e *encoder) reset() {
	e.buf, e.holes, e.open, e.types = e.buf[:0], e.holes[:0], e.open[:0], e.types[:0]
	e.ents, e.forms = e.ents[:0], e.forms[:0]
	e.ids = [numComposites]int64{}
	e.next, e.depth = wireFirstUser, 0
}

// typeID returns the ID of composite kind i, giving it the next one when
// this is its first use.
func (e *encoder) typeID(i int) int64 {
	if e.ids[i] == 0 {
		e.ids[i] = e.next
		e.next++
		e.types = append(e.types, composites[i].kind.def)
	}
	return e.ids[i]
}

// topMap writes the value message of values.
func (e *encoder) topMap(values map[any]any) (bool, error) {
	e.openHole()
	e.buf = appendInt(e.buf, e.typeID(0))
	e.buf = append(e.buf, 0x00)
	ok, err := e.mapAny(values)
	e.closeHole()
	return ok, err
}

func (e *encoder) openHole() {
	e.open = append(e.open, len(e.holes))
	e.holes = append(e.holes, hole{pos: len(e.buf)})
}

func (e *encoder) closeHole() {
	i := e.open[len(e.open)-1]
	e.open = e.open[:len(e.open)-1]
	h := &e.holes[i]
	h.n = len(e.buf) - h.pos + h.inner
	if len(e.open) > 0 {
		e.holes[e.open[len(e.open)-1]].inner += h.inner + uintLen(uint64(h.n))
	}
}

// assemble returns the definitions, then the value message with its holes
// filled: reuse, when that is what it holds.
func (e *encoder) assemble(reuse []byte) []byte {
	var defs [4 * 16]byte
	d := defs[:0]
	for i, w := range e.types {
		d = appendDef(d, wireFirstUser+int64(i), w, identity)
	}
	size := len(d) + len(e.buf)
	for _, h := range e.holes {
		size += uintLen(uint64(h.n))
	}
	if size == len(reuse) && e.equal(reuse, d) {
		return reuse
	}
	out := make([]byte, 0, size)
	out = append(out, d...)
	last := 0
	for _, h := range e.holes {
		out = append(out, e.buf[last:h.pos]...)
		out = appendUint(out, uint64(h.n))
		last = h.pos
	}
	return append(out, e.buf[last:]...)
}

// equal reports whether b holds defs, then the value message with its
// holes filled.
func (e *encoder) equal(b, defs []byte) bool {
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
		count := appendUint(n[:0], uint64(h.n))
		if !bytes.HasPrefix(b, count) {
			return false
		}
		b = b[len(count):]
		last = h.pos
	}
	return bytes.Equal(b, e.buf[last:])
}

// identity is the identity renumbering.
func identity(id int64) int64 { return id }

// enter counts one level of nesting.
func (e *encoder) enter() error {
	e.depth++
	if e.depth > MaxDepth {
		return ErrTooDeep
	}
	return nil
}

// mapAny writes a map[any]any's count and entries, in the order of their
// keys' sort forms.
func (e *encoder) mapAny(m map[any]any) (bool, error) {
	if err := e.enter(); err != nil {
		return false, err
	}
	first := len(e.ents)
	for k, v := range m {
		start := len(e.forms)
		var ok bool
		if e.forms, ok = appendScalarForm(e.forms, k); !ok {
			return false, nil
		}
		e.ents = append(e.ents, mapEntry{key: k, val: v, formStart: start, form: len(e.forms)})
	}
	if !e.sortEntries(first) {
		return false, nil
	}
	e.buf = appendUint(e.buf, uint64(len(m)))
	for i := first; i < len(e.ents); i++ {
		var ok bool
		e.buf, ok = appendIface(e.buf, e.ents[i].key, true)
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
func (e *encoder) mapString(m map[string]any) (bool, error) {
	if err := e.enter(); err != nil {
		return false, err
	}
	first := len(e.ents)
	for k, v := range m {
		e.ents = append(e.ents, mapEntry{skey: k, val: v})
	}
	// A string key's sort form is its gob encoding, length first; the keys
	// of a map differ.
	slices.SortFunc(e.ents[first:], func(a, b mapEntry) int { return compareStrings(a.skey, b.skey) })
	e.buf = appendUint(e.buf, uint64(len(m)))
	for i := first; i < len(e.ents); i++ {
		e.buf = appendString(e.buf, e.ents[i].skey)
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
func (e *encoder) sortEntries(first int) bool {
	ents := e.ents[first:]
	form := func(x mapEntry) []byte { return e.forms[x.formStart:x.form] }
	slices.SortFunc(ents, func(a, b mapEntry) int { return bytes.Compare(form(a), form(b)) })
	for i := 1; i < len(ents); i++ {
		if bytes.Equal(form(ents[i-1]), form(ents[i])) {
			return false
		}
	}
	return true
}

// compareStrings compares the gob encodings of a and b.
func compareStrings(a, b string) int {
	if len(a) != len(b) {
		var na, nb [9]byte
		return bytes.Compare(appendUint(na[:0], uint64(len(a))), appendUint(nb[:0], uint64(len(b))))
	}
	return strings.Compare(a, b)
}

// iface writes v as an interface value.
func (e *encoder) iface(v any) (bool, error) {
	i := compositeIndex(v)
	if i < 0 {
		var ok bool
		e.buf, ok = appendIface(e.buf, v, false)
		return ok, nil
	}
	name, ok := names.registered(i)
	if !ok {
		return false, nil
	}
	e.buf = appendString(e.buf, name)
	e.buf = appendInt(e.buf, e.typeID(i))
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
			e.buf = appendUint(e.buf, uint64(len(tb)))
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
func (e *encoder) slice(s []any) (bool, error) {
	if err := e.enter(); err != nil {
		return false, err
	}
	e.buf = appendUint(e.buf, uint64(len(s)))
	for _, v := range s {
		if ok, err := e.iface(v); !ok || err != nil {
			return ok, err
		}
	}
	e.depth--
	return true, nil
}

// appendIface appends a scalar or nil v as an interface value: its
// type's name, its wire type, its size, and the value as a singleton. A
// key may not be nil or a byte slice.
func appendIface(b []byte, v any, key bool) ([]byte, bool) {
	if v == nil {
		return append(b, 0x00), !key
	}
	k, u, s, bs, ok := scalarParts(v)
	if !ok || (key && k == kindBytes) {
		return b, false
	}
	b = append(b, k.head...)
	if k == kindString || k == kindBytes {
		n := uint64(len(s) + len(bs)) // one of them is empty
		b = appendUint(b, 1+uint64(uintLen(n))+n)
		b = append(b, 0x00)
		b = appendUint(b, n)
		b = append(b, s...)
		return append(b, bs...), true
	}
	b = appendUint(b, uint64(1+uintLen(u)))
	b = append(b, 0x00)
	return appendUint(b, u), true
}

// appendScalarForm appends the sort form of a map key v: as
// appendIface writes it, without the byte count.
func appendScalarForm(b []byte, v any) ([]byte, bool) {
	k, u, s, _, ok := scalarParts(v)
	if !ok || k == kindBytes {
		return b, false
	}
	b = append(b, k.head...)
	b = append(b, 0x00)
	if k == kindString {
		return appendString(b, s), true
	}
	return appendUint(b, u), true
}
