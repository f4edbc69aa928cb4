package gobwire

import (
	"bytes"
	"slices"
)

// Canonical reports whether data is a canonical encoding (see the package
// documentation) that Decode reads. Equal values have only one canonical
// encoding, so two canonical encodings that differ hold different values.
// It allocates nothing.
func Canonical(data []byte) bool {
	d := decoder{strict: true}
	return d.stream(data, nil)
}

// Canonicalize returns the canonical encoding of the one value the gob
// stream data holds, whatever its types and whichever program wrote it. It
// reads data as encoding/gob's decoder does, type definitions inside the
// value included, and fails with ErrUnsupported for valid streams it
// cannot rewrite (maps with two keys of the same form), ErrTooDeep for
// values nested too deeply, and ErrCorrupt for corrupt ones.
func Canonicalize(data []byte) ([]byte, error) {
	p := canonParser{rest: reader{b: data}, types: map[int64]*typeDef{}}
	top, err := p.parse()
	if err != nil {
		return nil, err
	}
	for _, t := range p.types {
		for _, c := range t.components(nil) {
			if c > wireInterface && p.types[c] == nil {
				return nil, ErrCorrupt // a definition refers to no type
			}
		}
	}
	w := canonWriter{types: p.types, renum: map[int64]int64{}, next: wireFirstUser}
	w.walk(top)
	size := w.size(top)
	var out []byte
	for i, old := range w.order {
		out = appendDef(out, wireFirstUser+int64(i), p.types[old], w.newID)
	}
	out = slices.Grow(out, uintLen(uint64(size))+size)
	out = appendUint(out, uint64(size))
	return w.emit(out, top), nil
}

// canonSeq is a parsed value, or part of one, as a sequence of what it
// writes.
type canonSeq struct {
	parts []canonPart
	size  int // when sized: the bytes it writes
	sized bool
}

// canonPart is one part of a canonSeq: bytes written as they are, a type
// ID (renumbered), an interface's value (written after its byte count), or
// a map's entries (written after their count, sorted).
type canonPart struct {
	raw  []byte
	id   int64
	sub  *canonSeq
	ents []canonEntry
	kind uint8
}

const (
	partRaw = iota
	partID
	partIface
	partMap
)

type canonEntry struct {
	key, val *canonSeq
	form     []byte // the sort form of key
}

// addRaw appends b, which extends the last part when it follows it in the
// input.
func (s *canonSeq) addRaw(b []byte) {
	if len(b) == 0 {
		return
	}
	if n := len(s.parts); n > 0 {
		last := &s.parts[n-1]
		if last.kind == partRaw && len(last.raw) < cap(last.raw) && &last.raw[:len(last.raw)+1][len(last.raw)] == &b[0] {
			last.raw = last.raw[:len(last.raw)+len(b)]
			return
		}
	}
	s.parts = append(s.parts, canonPart{raw: b})
}

// sortCanonEntries sorts a map's entries by their keys' sort forms. It
// reports false when two keys have the same form: the same key twice, of
// which a decoder keeps the last, or NaNs, which have no order.
func sortCanonEntries(ents []canonEntry) bool {
	for i := range ents {
		ents[i].form = canonForm(nil, ents[i].key)
	}
	slices.SortFunc(ents, func(a, b canonEntry) int { return bytes.Compare(a.form, b.form) })
	for i := 1; i < len(ents); i++ {
		if bytes.Equal(ents[i-1].form, ents[i].form) {
			return false
		}
	}
	return true
}

// canonForm appends the sort form of s: what it writes with every user
// type ID as 0 and no interface byte counts.
func canonForm(b []byte, s *canonSeq) []byte {
	for _, part := range s.parts {
		switch part.kind {
		case partRaw:
			b = append(b, part.raw...)
		case partID:
			if part.id >= wireFirstUser {
				b = append(b, 0x00)
			} else {
				b = appendInt(b, part.id)
			}
		case partIface:
			b = canonForm(b, part.sub)
		case partMap:
			b = appendUint(b, uint64(len(part.ents)))
			for _, e := range part.ents {
				b = canonForm(b, e.key)
				b = canonForm(b, e.val)
			}
		}
	}
	return b
}

// keyForm splits a scalar key as appendIface writes it into the two
// parts of its sort form: its name and wire type, then what follows the
// byte count.
func keyForm(key []byte) (head, tail []byte) {
	r := reader{b: key}
	n, _ := r.uint()
	r.skip(n)
	r.int()
	head = key[:len(key)-len(r.b)]
	r.uint()
	return head, r.b
}

// compareForms compares the sort forms a1+a2 and b1+b2.
func compareForms(a1, a2, b1, b2 []byte) int {
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

// canonWriter numbers a parsed value's types and writes it.
type canonWriter struct {
	types map[int64]*typeDef
	renum map[int64]int64 // new IDs by old
	order []int64         // old IDs in the order of the new
	next  int64
}

func (w *canonWriter) newID(old int64) int64 {
	if old < wireFirstUser {
		return old
	}
	return w.renum[old]
}

// assign gives old the next ID, and then its components theirs, unless it
// has one.
func (w *canonWriter) assign(old int64) {
	if old < wireFirstUser {
		return
	}
	if _, ok := w.renum[old]; ok {
		return
	}
	w.renum[old] = w.next
	w.next++
	w.order = append(w.order, old)
	for _, c := range w.types[old].components(nil) {
		w.assign(c)
	}
}

// walk numbers the types of s in the order s writes them.
func (w *canonWriter) walk(s *canonSeq) {
	for _, part := range s.parts {
		switch part.kind {
		case partID:
			w.assign(part.id)
		case partIface:
			w.walk(part.sub)
		case partMap:
			for _, e := range part.ents {
				w.walk(e.key)
				w.walk(e.val)
			}
		}
	}
}

// size returns the number of bytes s writes.
func (w *canonWriter) size(s *canonSeq) int {
	if s.sized {
		return s.size
	}
	n := 0
	for _, part := range s.parts {
		switch part.kind {
		case partRaw:
			n += len(part.raw)
		case partID:
			n += uintLen(intBits(w.newID(part.id)))
		case partIface:
			m := w.size(part.sub)
			n += uintLen(uint64(m)) + m
		case partMap:
			n += uintLen(uint64(len(part.ents)))
			for _, e := range part.ents {
				n += w.size(e.key) + w.size(e.val)
			}
		}
	}
	s.size, s.sized = n, true
	return n
}

// emit appends what s writes.
func (w *canonWriter) emit(b []byte, s *canonSeq) []byte {
	for _, part := range s.parts {
		switch part.kind {
		case partRaw:
			b = append(b, part.raw...)
		case partID:
			b = appendInt(b, w.newID(part.id))
		case partIface:
			b = appendUint(b, uint64(w.size(part.sub)))
			b = w.emit(b, part.sub)
		case partMap:
			b = appendUint(b, uint64(len(part.ents)))
			for _, e := range part.ents {
				b = w.emit(b, e.key)
				b = w.emit(b, e.val)
			}
		}
	}
	return b
}
