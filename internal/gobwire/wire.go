package gobwire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

// This file holds what the fast path (encode.go, decode.go) and the
// canonical rewriter (canon.go, parse.go) share: type IDs, type
// definitions, and integers and strings as gob writes them.

// Type IDs that encoding/gob predefines for basic types.
const (
	wireBool      = 1
	wireInt       = 2
	wireUint      = 3
	wireFloat     = 4
	wireBytes     = 5
	wireString    = 6
	wireComplex   = 7
	wireInterface = 8
	wireFirstUser = 64 // the first ID gob gives a type it defines
)

// MaxDepth is how deeply values may nest (maps, slices, arrays, structs
// and interfaces inside each other) for Encode and Canonicalize to take
// them; deeper values are refused with ErrTooDeep, so that no session
// costs more than linear work in its size.
const MaxDepth = 1024

var (
	// ErrUnsupported says Canonicalize cannot rewrite a valid stream: one
	// holding a map with two keys of the same form.
	ErrUnsupported = errors.New("gob: stream not rewritten")

	// ErrTooDeep refuses values nested more than MaxDepth deep.
	ErrTooDeep = fmt.Errorf("values nested more than %d deep", MaxDepth)

	// ErrCorrupt says a stream is not valid gob.
	ErrCorrupt = errors.New("gob: corrupt stream")
)

// typeDef is a type definition as gob sends it: which field of gob's
// wireType holds it, and the fields of that definition.
type typeDef struct {
	field  uint64 // 1 ArrayT, 2 SliceT, 3 StructT, 4 MapT, 5 GobEncoderT, 6 BinaryMarshalerT, 7 TextMarshalerT
	name   string // CommonType.Name
	elem   int64  // ArrayT, SliceT, MapT: the type of the elements
	key    int64  // MapT: the type of the keys
	length int64  // ArrayT: the number of elements
	fields []fieldDef
}

// fieldDef is a field of a struct definition.
type fieldDef struct {
	name string
	id   int64
}

const (
	wireArrayT  = 1
	wireSliceT  = 2
	wireStructT = 3
	wireMapT    = 4
	wireGobEncT = 5
	wireTextT   = 7
)

// components returns the types a definition refers to, in the order gob
// sends them.
func (w *typeDef) components(ids []int64) []int64 {
	switch w.field {
	case wireArrayT, wireSliceT:
		return append(ids, w.elem)
	case wireMapT:
		return append(ids, w.key, w.elem)
	case wireStructT:
		for _, f := range w.fields {
			ids = append(ids, f.id)
		}
	}
	return ids
}

// appendDef appends the type-definition message (with its length) that
// defines id as w, writing every type w refers to as renum gives it.
func appendDef(b []byte, id int64, w *typeDef, renum func(int64) int64) []byte {
	var scratch [64]byte
	msg := appendInt(scratch[:0], -id)
	msg = appendUint(msg, w.field) // the definition's field of wireType
	msg = appendUint(msg, 1)       // its CommonType, field 1
	msg = appendNameID(msg, w.name, id)
	switch w.field {
	case wireArrayT:
		msg = appendUint(msg, 1)
		msg = appendInt(msg, renum(w.elem))
		if w.length != 0 {
			msg = appendUint(msg, 1)
			msg = appendInt(msg, w.length)
		}
	case wireSliceT:
		msg = appendUint(msg, 1)
		msg = appendInt(msg, renum(w.elem))
	case wireMapT:
		msg = appendUint(msg, 1)
		msg = appendInt(msg, renum(w.key))
		msg = appendUint(msg, 1)
		msg = appendInt(msg, renum(w.elem))
	case wireStructT:
		if len(w.fields) > 0 {
			msg = appendUint(msg, 1)
			msg = appendUint(msg, uint64(len(w.fields)))
			for _, f := range w.fields {
				msg = appendNameID(msg, f.name, renum(f.id))
			}
		}
	}
	msg = append(msg, 0x00, 0x00) // the ends of the definition and of wireType
	b = appendUint(b, uint64(len(msg)))
	return append(b, msg...)
}

// appendNameID appends a struct of a name (field 1, left out when
// empty) and an ID (field 2): a CommonType, or a struct's field.
func appendNameID(b []byte, name string, id int64) []byte {
	last := uint64(0)
	if name != "" {
		b = appendUint(b, 1)
		b = appendString(b, name)
		last = 1
	}
	b = appendUint(b, 2-last)
	b = appendInt(b, id)
	return append(b, 0x00)
}

// readDef reads a wireType (after the ID it defines) into w.
func readDef(r *reader, w *typeDef) bool {
	field, ok := r.uint()
	if !ok || field < wireArrayT || field > wireTextT {
		return false
	}
	w.field = field
	var id int64
	ok = r.fields(func(f uint64) bool {
		switch {
		case f == 1: // CommonType
			return r.fields(func(f uint64) bool {
				switch f {
				case 1:
					s, ok := r.string0()
					if string(s) == wireTime.name {
						w.name = wireTime.name // without allocating
					} else {
						w.name = string(s)
					}
					return ok
				case 2:
					var ok bool
					id, ok = r.int()
					return ok
				}
				return false
			})
		case f == 2 && (field == wireArrayT || field == wireSliceT):
			return r.typeID(&w.elem)
		case f == 3 && field == wireArrayT:
			var ok bool
			w.length, ok = r.int()
			return ok && w.length >= 0
		case f == 2 && field == wireMapT:
			return r.typeID(&w.key)
		case f == 3 && field == wireMapT:
			return r.typeID(&w.elem)
		case f == 2 && field == wireStructT:
			n, ok := r.uint()
			if !ok || n > uint64(len(r.b)) {
				return false
			}
			w.fields = make([]fieldDef, n)
			for i := range w.fields {
				fld := &w.fields[i]
				if !r.fields(func(f uint64) bool {
					switch f {
					case 1:
						s, ok := r.string()
						fld.name = s
						return ok
					case 2:
						return r.typeID(&fld.id)
					}
					return false
				}) || fld.id == 0 {
					return false
				}
			}
			return true
		}
		return false
	})
	// The ID inside need not be the one defined: encoding/gob writes
	// another for a pointer to a type with its own encoding, and its
	// decoder goes by the message's.
	if !ok || !r.bytes(0x00) || id == 0 { // the end of wireType
		return false
	}
	if field <= wireMapT {
		// encoding/gob names an unnamed type (a map, slice, array or
		// struct literal) when it first meets it as a struct field, and
		// not otherwise, so whether it has a name depends on the process's
		// history; no decoder uses the name of these.
		w.name = ""
	}
	switch field {
	case wireArrayT, wireSliceT:
		ok = w.elem != 0
	case wireMapT:
		ok = w.key != 0 && w.elem != 0
	}
	return ok
}

// Definitions of the composite types the fast path writes.
var (
	wireMapAny    = &typeDef{field: wireMapT, key: wireInterface, elem: wireInterface}
	wireMapString = &typeDef{field: wireMapT, key: wireString, elem: wireInterface}
	wireSliceAny  = &typeDef{field: wireSliceT, elem: wireInterface}
	wireTime      = &typeDef{field: wireGobEncT, name: "Time"}
)

// intBits is the unsigned form in which gob writes a signed integer.
func intBits(i int64) uint64 {
	if i < 0 {
		return uint64(^i)<<1 | 1
	}
	return uint64(i) << 1
}

// intFromBits is the signed integer gob writes as u (intBits undone).
func intFromBits(u uint64) int64 {
	if u&1 != 0 {
		return int64(^(u >> 1))
	}
	return int64(u >> 1)
}

// appendInt appends a signed integer.
func appendInt(b []byte, i int64) []byte { return appendUint(b, intBits(i)) }

// appendString appends a length and the bytes of s.
func appendString(b []byte, s string) []byte {
	return append(appendUint(b, uint64(len(s))), s...)
}

// appendUint appends an unsigned integer in its shortest encoding.
func appendUint(b []byte, u uint64) []byte {
	if u < 0x80 {
		return append(b, byte(u))
	}
	n := uintLen(u) - 1
	b = append(b, byte(-n))
	var be [8]byte
	binary.BigEndian.PutUint64(be[:], u)
	return append(b, be[8-n:]...)
}

// uintLen is the length of u's encoding.
func uintLen(u uint64) int {
	if u < 0x80 {
		return 1
	}
	return 1 + (bits.Len64(u)+7)/8
}
