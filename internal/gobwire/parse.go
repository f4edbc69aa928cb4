package gobwire

// canonParser reads a gob stream message by message, as encoding/gob's
// decoder does.
type canonParser struct {
	msg   reader // the rest of the current message
	rest  reader // the messages after it
	types map[int64]*typeDef
	depth int
}

// nextMessage moves to the next message.
func (p *canonParser) nextMessage() error {
	n, ok := p.rest.uint()
	if !ok {
		return ErrCorrupt
	}
	b, ok := p.rest.take(n)
	if !ok || n == 0 {
		return ErrCorrupt
	}
	p.msg = reader{b: b}
	return nil
}

// define reads the definition of id.
func (p *canonParser) define(id int64) error {
	if id < wireFirstUser || id > 1<<31-1 || p.types[id] != nil {
		return ErrCorrupt
	}
	w := new(typeDef)
	if !readDef(&p.msg, w) {
		return ErrCorrupt
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
			return nil, ErrCorrupt
		}
		if id >= 0 {
			break
		}
		if err := p.define(-id); err != nil {
			return nil, err
		}
		if len(p.msg.b) != 0 {
			return nil, ErrCorrupt
		}
	}
	top := &canonSeq{}
	if err := p.typed(top, id); err != nil {
		return nil, err
	}
	if len(p.msg.b) != 0 || len(p.rest.b) != 0 {
		return nil, ErrCorrupt
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
			return ErrCorrupt
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
	return ErrCorrupt
}

// uint reads an unsigned integer, which s writes as it is.
func (p *canonParser) uint(s *canonSeq) (uint64, error) {
	start := p.msg.b
	u, ok := p.msg.uint()
	if !ok {
		return 0, ErrCorrupt
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
		return 0, ErrCorrupt
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
			err = ErrCorrupt
		}
	} else {
		n, err = p.uint(s)
	}
	if err == nil && n > uint64(len(p.msg.b)+len(p.rest.b)) {
		err = ErrCorrupt
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
		return ErrCorrupt
	}
	switch w.field {
	case wireArrayT, wireSliceT, wireMapT, wireStructT:
		// Only these nest (a time.Time is no level, as in Encode and
		// Decode).
		p.depth++
		if p.depth > MaxDepth {
			return ErrTooDeep
		}
		defer func() { p.depth-- }()
	}
	switch w.field {
	case wireArrayT, wireSliceT:
		n, err := p.count(s)
		if err != nil {
			return err
		}
		if w.field == wireArrayT && n != uint64(w.length) {
			return ErrCorrupt
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
			return ErrUnsupported
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
			if d > uint64(len(w.fields))-field {
				return ErrCorrupt
			}
			field += d
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
			return ErrCorrupt
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
		return ErrCorrupt
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
