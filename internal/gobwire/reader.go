package gobwire

import "bytes"

// reader reads the parts of a gob stream from a byte slice.
type reader struct{ b []byte }

// uint reads an unsigned integer in its shortest encoding.
func (r *reader) uint() (uint64, bool) {
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
func (r *reader) int() (int64, bool) {
	u, ok := r.uint()
	return intFromBits(u), ok
}

// typeID reads a type ID into id.
func (r *reader) typeID(id *int64) bool {
	v, ok := r.int()
	*id = v
	return ok && v > 0 && v <= 1<<31-1
}

// bytes consumes want, if the input starts with it.
func (r *reader) bytes(want ...byte) bool {
	if !bytes.HasPrefix(r.b, want) {
		return false
	}
	r.b = r.b[len(want):]
	return true
}

// take returns the next n bytes.
func (r *reader) take(n uint64) ([]byte, bool) {
	if n > uint64(len(r.b)) {
		return nil, false
	}
	b := r.b[:n]
	r.b = r.b[n:]
	return b, true
}

// skip drops the next n bytes.
func (r *reader) skip(n uint64) error {
	if _, ok := r.take(n); !ok {
		return ErrCorrupt
	}
	return nil
}

// string reads a length and that many bytes.
func (r *reader) string() (string, bool) {
	n, ok := r.uint()
	if !ok {
		return "", false
	}
	b, ok := r.take(n)
	return string(b), ok
}

// string0 reads a length and that many bytes, without copying them.
func (r *reader) string0() ([]byte, bool) {
	n, ok := r.uint()
	if !ok {
		return nil, false
	}
	return r.take(n)
}

// fields reads the fields of a struct as gob writes them, each a delta
// from the last field's number and the field, until a zero delta; field
// reads one field and reports whether it could.
func (r *reader) fields(field func(f uint64) bool) bool {
	f := uint64(0)
	for {
		d, ok := r.uint()
		if !ok || d > 1<<16 {
			return false
		}
		if d == 0 {
			return true
		}
		f += d
		if !field(f) {
			return false
		}
	}
}
