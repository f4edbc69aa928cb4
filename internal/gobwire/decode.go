package gobwire

import (
	"bytes"
	"strings"
	"time"
)

// Decode decodes data into values when it is a stream the fast path
// reads, and reports whether it was; when it was not, values is unchanged.
// The fast path reads sessions of the kinds Encode writes, with every type
// defined before the value (as canonical encodings and encoding/gob's own
// encoding of sessions of basic types have them), and leaves the rest to
// encoding/gob.
func Decode(data []byte, values map[any]any) bool {
	empty := len(values) == 0
	if !empty {
		// Check the whole stream before storing anything, so that a stream
		// given up halfway leaves the values there were as they were.
		scan := decoder{}
		if !scan.stream(data, nil) {
			return false
		}
	}
	// Without values to keep, one pass builds the values, and a stream
	// given up halfway leaves values empty again.
	d := decoder{build: true, size: len(data)}
	if !d.stream(data, values) {
		if empty {
			clear(values)
		}
		return false
	}
	return true
}

// decoder reads one stream, checking it (and, when strict, that it is
// canonical) and, when build is set, making its values.
type decoder struct {
	r      reader
	build  bool
	strict bool
	ids    [numComposites]int64 // the ID each composite kind is defined under, or 0
	used   int64                // strict: how many user IDs the value has used
	depth  int
	size   int              // the stream's length, which bounds its strings'
	strs   strings.Builder  // the strings built, sharing their allocation
	shared [16]sharedString // short strings read, by a hash of their bytes
}

// stream reads the definitions and the value message of data into values.
func (d *decoder) stream(data []byte, values map[any]any) bool {
	defined, ok := d.defs(data)
	if !ok || !d.mapAny(values) || len(d.r.b) != 0 {
		return false
	}
	return !d.strict || d.used == defined
}

// defs reads the definitions of data, and leaves d.r reading the top
// map of its value message. It returns how many types were defined.
func (d *decoder) defs(data []byte) (int64, bool) {
	d.r = reader{b: data}
	defined := int64(0)
	for {
		start := d.r.b
		n, ok := d.r.uint()
		if !ok {
			return 0, false
		}
		msg, ok := d.r.take(n)
		if !ok {
			return 0, false
		}
		m := reader{b: msg}
		id, ok := m.int()
		if !ok {
			return 0, false
		}
		if id >= 0 {
			// The value message, which must be the last.
			if len(d.r.b) != 0 || id < wireFirstUser || id != d.ids[0] || !m.bytes(0x00) {
				return 0, false
			}
			d.r = m
			if d.strict && !d.use(id) {
				return 0, false
			}
			break
		}
		id = -id
		if id < wireFirstUser || (d.strict && id != wireFirstUser+defined) {
			return 0, false
		}
		var wire typeDef
		w := &wire
		if !readDef(&m, w) || len(m.b) != 0 {
			return 0, false
		}
		i := compositeOf(w)
		if i < 0 || d.ids[i] != 0 {
			return 0, false
		}
		if d.strict {
			var def [32]byte
			if !bytes.Equal(start[:len(start)-len(d.r.b)], appendDef(def[:0], id, w, identity)) {
				return 0, false
			}
		}
		for _, other := range d.ids {
			if other == id {
				return 0, false
			}
		}
		d.ids[i] = id
		defined++
	}
	return defined, true
}

// compositeOf returns the index in composites of the kind w defines,
// or -1.
func compositeOf(w *typeDef) int {
	for i, c := range composites {
		k := c.kind.def
		if w.field == k.field && w.name == k.name && w.elem == k.elem && w.key == k.key && w.length == 0 && len(w.fields) == 0 {
			return i
		}
	}
	return -1
}

// use notes a use of the user type id, which in a canonical encoding is
// either one used before or the next one.
func (d *decoder) use(id int64) bool {
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
func (d *decoder) enter() bool {
	d.depth++
	return d.depth <= MaxDepth
}

// count reads the number of a map's entries or a slice's elements, each
// of which takes at least min bytes.
func (d *decoder) count(min uint64) (int, bool) {
	n, ok := d.r.uint()
	if !ok || n > uint64(len(d.r.b))/min {
		return 0, false
	}
	return int(n), true
}

// mapAny reads a map[any]any's count and entries into m when building.
func (d *decoder) mapAny(m map[any]any) bool {
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
			head, tail := keyForm(start[:len(start)-len(d.r.b)])
			if prevHead != nil && compareForms(prevHead, prevTail, head, tail) >= 0 {
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

// mapString reads a map[string]any's count and entries.
func (d *decoder) mapString() (map[string]any, bool) {
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
			m[d.key(k.b)] = v
		}
	}
	d.depth--
	return m, true
}

// slice reads a []any's count and elements.
func (d *decoder) slice() ([]any, bool) {
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
// are written to a buffer of the stream's size or 512 bytes, whichever is
// less, then to buffers twice as large, up to the stream's size.
func (d *decoder) str(b []byte) string {
	if d.strs.Cap()-d.strs.Len() < len(b) {
		next := min(max(2*d.strs.Cap(), 512), d.size)
		d.strs = strings.Builder{}
		d.strs.Grow(max(next, len(b)))
	}
	start := d.strs.Len()
	d.strs.Write(b)
	return d.strs.String()[start:]
}

// sharedString is a short string a stream holds ("" for none), and the
// interface value holding it once one was asked for.
type sharedString struct {
	s string
	v any
}

// maxShared is the length up to which equal strings of one stream share
// their bytes and their interface value.
const maxShared = 32

// share returns the slot of the table of short strings that holds b, when
// b is short: read there first, or again.
func (d *decoder) share(b []byte) *sharedString {
	if len(b) == 0 || len(b) > maxShared {
		return nil
	}
	slot := &d.shared[(len(b)+int(b[0])+int(b[len(b)-1]))%len(d.shared)]
	if slot.s != string(b) { // b is not empty: an empty slot holds no b
		*slot = sharedString{s: d.str(b)}
	}
	return slot
}

// key returns the string b, which a map key holds. Keys repeat in the
// maps of a session (a list of records, a tree): a short one is copied
// once.
func (d *decoder) key(b []byte) string {
	if slot := d.share(b); slot != nil {
		return slot.s
	}
	return d.str(b)
}

// boxString returns the string b as an interface value. Short strings
// that repeat in a session (a currency, a role, a state in each of a list
// of maps) share one: an interface value is never changed, and boxing a
// string costs an allocation.
func (d *decoder) boxString(b []byte) any {
	if string(b) == gorillaFlashKey {
		return boxedFlashKey
	}
	slot := d.share(b)
	if slot == nil {
		return d.str(b)
	}
	if slot.v == nil {
		slot.v = slot.s
	}
	return slot.v
}

// gorillaFlashKey is the key gorilla/sessions keeps flashes under by
// default; boxedFlashKey is it as an interface value, which a session with
// flashes then holds without allocating.
const gorillaFlashKey = "_flash"

var boxedFlashKey any = gorillaFlashKey

// iface reads an interface value; key says it is a map key, which must be
// a string, a boolean or a number.
func (d *decoder) iface(key bool) (any, bool) {
	name, ok := d.r.string0()
	if !ok {
		return nil, false
	}
	if len(name) == 0 {
		return nil, !key
	}
	if k := scalarKind(name); k != nil {
		if key && k == kindBytes {
			return nil, false
		}
		s, ok := d.r.scalarIface(k)
		if !ok {
			return nil, false
		}
		if !d.build {
			return nil, true
		}
		if k == kindString {
			return d.boxString(s.b), true
		}
		return k.box(s.u, s.b), true
	}
	if key {
		return nil, false
	}
	i := names.lookup(name)
	if i < 0 {
		return nil, false
	}
	if id, ok := d.r.int(); !ok || id != d.ids[i] || (d.strict && !d.use(id)) {
		return nil, false
	}
	val, ok := d.r.singleton()
	if !ok {
		return nil, false
	}
	outer := d.r
	d.r = val
	var v any
	switch i {
	case 0:
		var m map[any]any
		n, _ := (&reader{b: d.r.b}).uint()
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
			if ok && d.strict {
				// time.Time reads forms it never writes (nanoseconds
				// of a second or more): a canonical stream holds the
				// one it writes.
				var enc [32]byte
				tb, err := t.AppendBinary(enc[:0])
				ok = err == nil && bytes.Equal(tb, b)
			}
			if d.build {
				v = t
			}
		}
	}
	ok = ok && len(d.r.b) == 0
	d.r = outer
	return v, ok
}

// singleton reads the rest of an interface value after its type: its
// byte count, and a reader of the value those bytes hold, as a singleton
// (its zero field delta read).
func (r *reader) singleton() (reader, bool) {
	n, ok := r.uint()
	if !ok {
		return reader{}, false
	}
	b, ok := r.take(n)
	if !ok || len(b) == 0 || b[0] != 0x00 {
		return reader{}, false
	}
	return reader{b: b[1:]}, true
}

// scalarIface reads the rest of an interface value of scalar kind k after
// its name: the wire type, the byte count and the value.
func (r *reader) scalarIface(k *kind) (rawScalar, bool) {
	if wire, ok := r.int(); !ok || wire != k.wire {
		return rawScalar{}, false
	}
	val, ok := r.singleton()
	if !ok {
		return rawScalar{}, false
	}
	s, ok := val.scalar(k)
	return s, ok && len(val.b) == 0
}
