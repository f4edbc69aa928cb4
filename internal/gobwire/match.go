package gobwire

import (
	"bytes"
	"sync"
	"time"
)

// Matches reports whether data holds exactly values: a stream Decode
// reads, each map's entries in canonical order, whose value has the same
// keys and elements as values, of the same types, with the same bits (0.0
// and -0.0 differ, NaNs by their payloads), nested no deeper than
// MaxDepth. Whichever process, release or program wrote data, values then
// need no writing. It only reads: it allocates nothing and writes no
// encoding, and at every level of nesting it compares the scalars before
// it descends, so that a change near the top is seen without reading the
// rest. It says false, telling nothing, for values off the fast path (see
// Encode), for map keys that are floats, and for streams it does not read.
func Matches(values map[any]any, data []byte) bool {
	if len(values) == 0 || len(data) == 0 {
		return false
	}
	m := matchers.Get().(*matcher)
	defer func() {
		clear(m.pending[:cap(m.pending)]) // the pool keeps no session values alive
		m.pending = m.pending[:0]
		matchers.Put(m)
	}()
	m.d, m.heads = decoder{}, [numComposites][]byte{}
	if _, ok := m.d.defs(data); !ok {
		return false
	}
	r := m.d.r
	return m.mapAny(&r, values, 1) && len(r.b) == 0
}

// matcher is the scratch space of one Matches.
type matcher struct {
	d       decoder // the stream's definitions
	pending []pendingValue
	heads   [numComposites][]byte // see head
	headBuf [numComposites][48]byte
}

// pendingValue is a composite value whose type matched, to be compared
// once the scalars beside it have been.
type pendingValue struct {
	want any
	b    []byte // its encoding, after the singleton's field delta
}

var matchers = sync.Pool{New: func() any { return new(matcher) }}

// mapAny matches a map[any]any's count and entries in r with want.
func (m *matcher) mapAny(r *reader, want map[any]any, depth int) bool {
	n, ok := r.uint()
	if !ok || depth > MaxDepth || n != uint64(len(want)) {
		return false
	}
	first := len(m.pending)
	var prevHead, prevTail []byte
	for range n {
		start := r.b
		name, ok := r.string0()
		k := scalarKind(name)
		if !ok || k == nil || k == kindBytes || k == kindFloat64 {
			// A float key could find its equal of the other sign.
			return false
		}
		s, ok := r.scalarIface(k)
		if !ok {
			return false
		}
		// Keys in strictly increasing order are different keys: with as
		// many as want has, each found in want, they are want's keys.
		head, tail := keyForm(start[:len(start)-len(r.b)])
		if prevHead != nil && compareForms(prevHead, prevTail, head, tail) >= 0 {
			return false
		}
		prevHead, prevTail = head, tail
		var v any
		var found bool
		if k == kindString {
			v, found = want[string(s.b)]
		} else {
			v, found = want[k.box(s.u, s.b)]
		}
		if !found || !m.value(r, v) {
			return false
		}
	}
	return m.descend(first, depth)
}

// mapString matches a map[string]any's count and entries in r with want.
func (m *matcher) mapString(r *reader, want map[string]any, depth int) bool {
	n, ok := r.uint()
	if !ok || depth > MaxDepth || n != uint64(len(want)) {
		return false
	}
	first := len(m.pending)
	var prev []byte
	for range n {
		start := r.b
		k, ok := r.string0()
		if !ok {
			return false
		}
		form := start[:len(start)-len(r.b)]
		if prev != nil && bytes.Compare(prev, form) >= 0 {
			return false
		}
		prev = form
		v, found := want[string(k)]
		if !found || !m.value(r, v) {
			return false
		}
	}
	return m.descend(first, depth)
}

// slice matches a []any's count and elements in r with want.
func (m *matcher) slice(r *reader, want []any, depth int) bool {
	n, ok := r.uint()
	if !ok || depth > MaxDepth || n != uint64(len(want)) {
		return false
	}
	first := len(m.pending)
	for _, v := range want {
		if !m.value(r, v) {
			return false
		}
	}
	return m.descend(first, depth)
}

// value matches an interface value in r with want: a scalar or nil at
// once, a composite's type, leaving its contents pending. Each kind's
// name and type ID are compared as the bytes they are written as.
func (m *matcher) value(r *reader, want any) bool {
	if want == nil {
		return r.bytes(0x00) // no name
	}
	if k, u, s, bs, ok := scalarParts(want); ok {
		if !r.bytes(k.head...) {
			return false
		}
		val, ok := r.singleton()
		if !ok {
			return false
		}
		got, ok := val.scalar(k)
		switch {
		case !ok || len(val.b) != 0:
			return false
		case k == kindString:
			return string(got.b) == s
		case k == kindBytes:
			return bytes.Equal(got.b, bs)
		}
		return got.u == u
	}
	i := compositeIndex(want)
	if i < 0 {
		return false
	}
	if head := m.head(i); head == nil || !r.bytes(head...) {
		return false
	}
	val, ok := r.singleton()
	if !ok {
		return false
	}
	m.pending = append(m.pending, pendingValue{want: want, b: val.b})
	return true
}

// head returns how an interface value of composite kind i begins in the
// stream: the name this process registered the kind under and the ID the
// stream defined it with; nil when either is missing.
func (m *matcher) head(i int) []byte {
	if m.heads[i] == nil {
		name, ok := names.registered(i)
		if !ok || m.d.ids[i] == 0 {
			return nil
		}
		m.heads[i] = appendInt(appendString(m.headBuf[i][:0], name), m.d.ids[i])
	}
	return m.heads[i]
}

// compositeIndex returns the index in composites of v's type, or -1.
func compositeIndex(v any) int {
	switch v.(type) {
	case map[any]any:
		return 0
	case map[string]any:
		return 1
	case []any:
		return 2
	case time.Time:
		return 3
	}
	return -1
}

// descend matches the composites pending from first on, which the
// container at depth holds, and drops them.
func (m *matcher) descend(first, depth int) bool {
	for j, end := first, len(m.pending); j < end; j++ {
		p := m.pending[j]
		r := reader{b: p.b}
		var ok bool
		switch want := p.want.(type) {
		case map[any]any:
			ok = m.mapAny(&r, want, depth+1)
		case map[string]any:
			ok = m.mapString(&r, want, depth+1)
		case []any:
			ok = m.slice(&r, want, depth+1)
		case time.Time:
			var b [32]byte
			got, read := r.string0()
			tb, err := want.AppendBinary(b[:0])
			ok = read && err == nil && bytes.Equal(got, tb)
		}
		if !ok || len(r.b) != 0 {
			return false
		}
	}
	m.pending = m.pending[:first]
	return true
}
