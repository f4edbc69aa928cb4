package dynamostore

import (
	"bytes"
	"slices"
)

// gobCanonicalize returns the canonical encoding (see gobwire.go) of the
// one value the gob stream data holds, whatever its types and whichever
// program wrote it. It reads data as encoding/gob's decoder does, type
// definitions inside the value included, and fails with errGobUnsupported
// for valid streams it cannot rewrite (see there), errGobTooDeep for values
// nested too deeply, and an error wrapping ErrDecode for corrupt ones.
func gobCanonicalize(data []byte) ([]byte, error) {
	p := canonParser{rest: gobReader{b: data}, types: map[int64]*gobWire{}}
	top, err := p.parse()
	if err != nil {
		return nil, err
	}
	for _, t := range p.types {
		for _, c := range t.components(nil) {
			if c > wireInterface && p.types[c] == nil {
				return nil, errGobCorrupt // a definition refers to no type
			}
		}
	}
	w := canonWriter{types: p.types, renum: map[int64]int64{}, next: wireFirstUser}
	w.walk(top)
	size := w.size(top)
	var out []byte
	for i, old := range w.order {
		out = appendGobDef(out, wireFirstUser+int64(i), p.types[old], w.newID)
	}
	out = slices.Grow(out, gobUintLen(uint64(size))+size)
	out = appendGobUint(out, uint64(size))
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

// canonParser reads a gob stream message by message, as encoding/gob's
// decoder does.
type canonParser struct {
	msg   gobReader // the rest of the current message
	rest  gobReader // the messages after it
	types map[int64]*gobWire
	depth int
}

// nextMessage moves to the next message.
func (p *canonParser) nextMessage() error {
	n, ok := p.rest.uint()
	if !ok {
		return errGobCorrupt
	}
	b, ok := p.rest.take(n)
	if !ok || n == 0 {
		return errGobCorrupt
	}
	p.msg = gobReader{b: b}
	return nil
}

// define reads the definition of id.
func (p *canonParser) define(id int64) error {
	if id < wireFirstUser || id > 1<<31-1 || p.types[id] != nil {
		return errGobCorrupt
	}
	w := new(gobWire)
	if !readGobDef(&p.msg, w) {
		return errGobCorrupt
	}
	p.types[id] = w
	return nil
}

// parse reads the stream's definitions and its one value.
func (p *canonParser) parse() (*canonSeq, error) {
	var id int64
	for {
		if err := p.nextMessage(); err != nil {
			return nil, err
		}
		var ok bool
		if id, ok = p.msg.int(); !ok {
			return nil, errGobCorrupt
		}
		if id >= 0 {
			break
		}
		if err := p.define(-id); err != nil {
			return nil, err
		}
		if len(p.msg.b) != 0 {
			return nil, errGobCorrupt
		}
	}
	top := &canonSeq{}
	if err := p.typed(top, id); err != nil {
		return nil, err
	}
	if len(p.msg.b) != 0 || len(p.rest.b) != 0 {
		return nil, errGobCorrupt
	}
	return top, nil
}

// typed reads a value of type id as it follows its type ID, at the top of
// the stream or inside an interface: a struct as it is, anything else as
// a singleton after a zero delta.
func (p *canonParser) typed(s *canonSeq, id int64) error {
	if err := p.known(id); err != nil {
		return err
	}
	s.parts = append(s.parts, canonPart{kind: partID, id: id})
	if w := p.types[id]; w == nil || w.field != wireStructT {
		start := p.msg.b
		if !p.msg.bytes(0x00) {
			return errGobCorrupt
		}
		s.addRaw(start[:1])
	}
	return p.value(s, id)
}

// known checks that a value of type id can be read.
func (p *canonParser) known(id int64) error {
	if (id >= wireBool && id <= wireComplex) || p.types[id] != nil {
		return nil
	}
	return errGobCorrupt
}

// uint reads an unsigned integer, which s writes as it is.
func (p *canonParser) uint(s *canonSeq) (uint64, error) {
	start := p.msg.b
	u, ok := p.msg.uint()
	if !ok {
		return 0, errGobCorrupt
	}
	s.addRaw(start[:len(start)-len(p.msg.b)])
	return u, nil
}

// bytes reads a length and that many bytes, which s writes as they are.
func (p *canonParser) bytes(s *canonSeq) (int, error) {
	n, err := p.uint(s)
	if err != nil {
		return 0, err
	}
	b, ok := p.msg.take(n)
	if !ok {
		return 0, errGobCorrupt
	}
	s.addRaw(b)
	return len(b), nil
}

// count reads the count of a map, slice or array: each of its elements
// takes a byte at least.
func (p *canonParser) count(s *canonSeq) (uint64, error) {
	var n uint64
	var err error
	if s == nil {
		var ok bool
		if n, ok = p.msg.uint(); !ok {
			err = errGobCorrupt
		}
	} else {
		n, err = p.uint(s)
	}
	if err == nil && n > uint64(len(p.msg.b)+len(p.rest.b)) {
		err = errGobCorrupt
	}
	return n, err
}

// value reads a value of type id into s.
func (p *canonParser) value(s *canonSeq, id int64) error {
	switch id {
	case wireBool, wireInt, wireUint, wireFloat:
		_, err := p.uint(s)
		return err
	case wireComplex:
		if _, err := p.uint(s); err != nil {
			return err
		}
		_, err := p.uint(s)
		return err
	case wireBytes, wireString:
		_, err := p.bytes(s)
		return err
	case wireInterface:
		return p.iface(s)
	}
	w := p.types[id]
	if w == nil {
		return errGobCorrupt
	}
	p.depth++
	if p.depth > gobMaxDepth {
		return errGobTooDeep
	}
	defer func() { p.depth-- }()
	switch w.field {
	case wireArrayT, wireSliceT:
		n, err := p.count(s)
		if err != nil {
			return err
		}
		if w.field == wireArrayT && n != uint64(w.length) {
			return errGobCorrupt
		}
		for range n {
			if err := p.value(s, w.elem); err != nil {
				return err
			}
		}
		return nil
	case wireMapT:
		n, err := p.count(nil)
		if err != nil {
			return err
		}
		part := canonPart{kind: partMap}
		for range n {
			e := canonEntry{key: &canonSeq{}, val: &canonSeq{}}
			if err := p.value(e.key, w.key); err != nil {
				return err
			}
			if err := p.value(e.val, w.elem); err != nil {
				return err
			}
			part.ents = append(part.ents, e)
		}
		if !sortCanonEntries(part.ents) {
			return errGobUnsupported
		}
		s.parts = append(s.parts, part)
		return nil
	case wireStructT:
		field := uint64(0)
		for {
			d, err := p.uint(s)
			if err != nil {
				return err
			}
			if d == 0 {
				return nil
			}
			field += d
			if field > uint64(len(w.fields)) {
				return errGobCorrupt
			}
			if err := p.value(s, w.fields[field-1].id); err != nil {
				return err
			}
		}
	default: // GobEncoder, BinaryMarshaler, TextMarshaler: bytes
		_, err := p.bytes(s)
		return err
	}
}

// iface reads an interface value: the concrete type's name, any type
// definitions (inside the message, or as messages of their own), the type
// ID, the byte count, which is written anew, and the value.
func (p *canonParser) iface(s *canonSeq) error {
	n, err := p.bytes(s)
	if err != nil || n == 0 {
		return err // a nil interface is its empty name
	}
	var id int64
	for {
		if len(p.msg.b) == 0 {
			if err := p.nextMessage(); err != nil {
				return err
			}
		}
		var ok bool
		if id, ok = p.msg.int(); !ok {
			return errGobCorrupt
		}
		if id >= 0 {
			break
		}
		if err := p.define(-id); err != nil {
			return err
		}
		if len(p.msg.b) > 0 {
			p.msg.uint() // the length of the message that follows inline
		}
	}
	if _, ok := p.msg.uint(); !ok { // the byte count
		return errGobCorrupt
	}
	sub := &canonSeq{}
	if err := p.typed(sub, id); err != nil {
		return err
	}
	// typed wrote the ID at the head of sub; it goes before the count.
	s.parts = append(s.parts, sub.parts[0], canonPart{kind: partIface, sub: sub})
	sub.parts = sub.parts[1:]
	return nil
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
				b = appendGobInt(b, part.id)
			}
		case partIface:
			b = canonForm(b, part.sub)
		case partMap:
			b = appendGobUint(b, uint64(len(part.ents)))
			for _, e := range part.ents {
				b = canonForm(b, e.key)
				b = canonForm(b, e.val)
			}
		}
	}
	return b
}

// canonWriter numbers a parsed value's types and writes it.
type canonWriter struct {
	types map[int64]*gobWire
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
			n += gobUintLen(gobIntBits(w.newID(part.id)))
		case partIface:
			m := w.size(part.sub)
			n += gobUintLen(uint64(m)) + m
		case partMap:
			n += gobUintLen(uint64(len(part.ents)))
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
			b = appendGobInt(b, w.newID(part.id))
		case partIface:
			b = appendGobUint(b, uint64(w.size(part.sub)))
			b = w.emit(b, part.sub)
		case partMap:
			b = appendGobUint(b, uint64(len(part.ents)))
			for _, e := range part.ents {
				b = w.emit(b, e.key)
				b = w.emit(b, e.val)
			}
		}
	}
	return b
}
