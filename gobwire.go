package dynamostore

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// This file holds what the gob fast path (gobencode.go, gobdecode.go) and
// the canonical rewriter (gobcanon.go) share: the parts of the gob wire
// format documented in encoding/gob, and the types the fast path knows.
//
// A session's canonical gob encoding is plain encoding/gob that any Go
// program decodes, written so that equal values always give the same bytes,
// in every process, whatever that process encoded or registered before:
//
//   - every type definition comes first, one message each, before the one
//     value message; no definition is written inside the value;
//   - user type IDs are numbered from 64 in the order the value first uses
//     them, reading it front to back, a type's own components (in field
//     order) numbered right after it;
//   - map entries are in increasing order of their keys' sort form: the key
//     as gob writes it, with every user type ID written as 0 and no
//     interface byte counts (a map whose keys do not all have different
//     forms, NaNs, has no canonical encoding);
//   - definitions of maps, slices, arrays and structs carry no name;
//   - everything else is as encoding/gob writes it.

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

// gobMaxDepth is how deeply values may nest (maps, slices, arrays, structs
// and interfaces inside each other) for the Store to encode them; deeper
// values are refused with an error wrapping ErrEncode, so that no session
// costs more than linear work in its size.
const gobMaxDepth = 1024

// errGobUnsupported says the canonical rewriter cannot rewrite a valid
// stream: one holding a map with two keys of the same form.
var errGobUnsupported = errors.New("gob: stream not rewritten")

// errGobTooDeep refuses values nested more than gobMaxDepth deep.
var errGobTooDeep = fmt.Errorf("%w: values nested more than %d deep", ErrEncode, gobMaxDepth)

// gobWire is a type definition as gob sends it: which field of gob's
// wireType holds it, and the fields of that definition.
type gobWire struct {
	field  uint64 // 1 ArrayT, 2 SliceT, 3 StructT, 4 MapT, 5 GobEncoderT, 6 BinaryMarshalerT, 7 TextMarshalerT
	name   string // CommonType.Name
	elem   int64  // ArrayT, SliceT, MapT: the type of the elements
	key    int64  // MapT: the type of the keys
	length int64  // ArrayT: the number of elements
	fields []gobWireField
}

// gobWireField is a field of a struct definition.
type gobWireField struct {
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
func (w *gobWire) components(ids []int64) []int64 {
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

// appendGobDef appends the type-definition message (with its length) that
// defines id as w, writing every type w refers to as renum gives it.
func appendGobDef(b []byte, id int64, w *gobWire, renum func(int64) int64) []byte {
	var scratch [64]byte
	msg := appendGobInt(scratch[:0], -id)
	msg = appendGobUint(msg, w.field) // the definition's field of wireType
	msg = appendGobUint(msg, 1)       // its CommonType, field 1
	msg = appendGobNameID(msg, w.name, id)
	switch w.field {
	case wireArrayT:
		msg = appendGobUint(msg, 1)
		msg = appendGobInt(msg, renum(w.elem))
		if w.length != 0 {
			msg = appendGobUint(msg, 1)
			msg = appendGobInt(msg, w.length)
		}
	case wireSliceT:
		msg = appendGobUint(msg, 1)
		msg = appendGobInt(msg, renum(w.elem))
	case wireMapT:
		msg = appendGobUint(msg, 1)
		msg = appendGobInt(msg, renum(w.key))
		msg = appendGobUint(msg, 1)
		msg = appendGobInt(msg, renum(w.elem))
	case wireStructT:
		if len(w.fields) > 0 {
			msg = appendGobUint(msg, 1)
			msg = appendGobUint(msg, uint64(len(w.fields)))
			for _, f := range w.fields {
				msg = appendGobNameID(msg, f.name, renum(f.id))
			}
		}
	}
	msg = append(msg, 0x00, 0x00) // the ends of the definition and of wireType
	b = appendGobUint(b, uint64(len(msg)))
	return append(b, msg...)
}

// appendGobNameID appends a struct of a name (field 1, left out when
// empty) and an ID (field 2): a CommonType, or a struct's field.
func appendGobNameID(b []byte, name string, id int64) []byte {
	last := uint64(0)
	if name != "" {
		b = appendGobUint(b, 1)
		b = appendGobString(b, name)
		last = 1
	}
	b = appendGobUint(b, 2-last)
	b = appendGobInt(b, id)
	return append(b, 0x00)
}

// readGobDef reads a wireType (after the ID it defines) into w.
func readGobDef(r *gobReader, w *gobWire) bool {
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
			w.fields = make([]gobWireField, n)
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
	wireMapAny    = &gobWire{field: wireMapT, key: wireInterface, elem: wireInterface}
	wireMapString = &gobWire{field: wireMapT, key: wireString, elem: wireInterface}
	wireSliceAny  = &gobWire{field: wireSliceT, elem: wireInterface}
	wireTime      = &gobWire{field: wireGobEncT, name: "Time"}
)

// gobKind is one concrete type the fast path handles: the name gob
// registers it under and the wire type that carries it. Composite kinds
// (def not nil) are user types, whose name is the one the process
// registered them under (see registered).
type gobKind struct {
	name string
	wire int64
	def  *gobWire
}

var (
	kindString  = &gobKind{name: "string", wire: wireString}
	kindBytes   = &gobKind{name: "[]uint8", wire: wireBytes}
	kindBool    = &gobKind{name: "bool", wire: wireBool}
	kindInt     = &gobKind{name: "int", wire: wireInt}
	kindInt8    = &gobKind{name: "int8", wire: wireInt}
	kindInt16   = &gobKind{name: "int16", wire: wireInt}
	kindInt32   = &gobKind{name: "int32", wire: wireInt}
	kindInt64   = &gobKind{name: "int64", wire: wireInt}
	kindUint    = &gobKind{name: "uint", wire: wireUint}
	kindUint8   = &gobKind{name: "uint8", wire: wireUint}
	kindUint16  = &gobKind{name: "uint16", wire: wireUint}
	kindUint32  = &gobKind{name: "uint32", wire: wireUint}
	kindUint64  = &gobKind{name: "uint64", wire: wireUint}
	kindFloat64 = &gobKind{name: "float64", wire: wireFloat}

	kindMapAny    = &gobKind{def: wireMapAny}
	kindMapString = &gobKind{def: wireMapString}
	kindSliceAny  = &gobKind{def: wireSliceAny}
	kindTime      = &gobKind{def: wireTime}
)

// gobNumComposites is the number of composite kinds.
const gobNumComposites = 4

// gobComposites are the composite kinds, each with a sample value.
var gobComposites = []struct {
	kind   *gobKind
	sample any
	name   string // the name gob.Register gives it
}{
	{kindMapAny, map[any]any{}, "map[interface {}]interface {}"},
	{kindMapString, map[string]any{}, "map[string]interface {}"},
	{kindSliceAny, []any{}, "[]interface {}"},
	{kindTime, time.Time{}, "time.Time"},
}

// gobScalarKind returns the scalar kind registered under name, or nil.
func gobScalarKind(name []byte) *gobKind {
	switch string(name) {
	case "string":
		return kindString
	case "[]uint8":
		return kindBytes
	case "bool":
		return kindBool
	case "int":
		return kindInt
	case "int8":
		return kindInt8
	case "int16":
		return kindInt16
	case "int32":
		return kindInt32
	case "int64":
		return kindInt64
	case "uint":
		return kindUint
	case "uint8":
		return kindUint8
	case "uint16":
		return kindUint16
	case "uint32":
		return kindUint32
	case "uint64":
		return kindUint64
	case "float64":
		return kindFloat64
	}
	return nil
}

// gobRegistry holds the names this process registered the composite kinds
// under, as far as they are known. gob.Register cannot be undone and a type
// has only one name, so a name once learned stays right, and is read
// without the lock, which only serialises learning one.
type gobRegistry struct {
	mu    sync.Mutex
	names [gobNumComposites]atomic.Pointer[string] // by index in gobComposites; nil while unknown
}

var gobNames gobRegistry

// registered returns the name composite kind i is registered under, and
// false while it is not registered.
func (g *gobRegistry) registered(i int) (string, bool) {
	if n := g.names[i].Load(); n != nil {
		return *n, true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if n := g.names[i].Load(); n != nil {
		return *n, true
	}
	name, ok := gobRegisteredName(gobComposites[i].sample)
	if ok {
		g.names[i].Store(&name)
	}
	return name, ok
}

// registeredAs reports whether composite kind i is registered under name,
// learning it from encoding/gob only when name is the one gob.Register
// gives it: a name given with gob.RegisterName is known once this process
// has encoded a value of the kind.
func (g *gobRegistry) registeredAs(i int, name []byte) bool {
	if n := g.names[i].Load(); n != nil {
		return *n == string(name)
	}
	if string(name) != gobComposites[i].name {
		return false
	}
	n, ok := g.registered(i)
	return ok && n == string(name)
}

// lookup returns the composite kind registered under name, or -1.
func (g *gobRegistry) lookup(name []byte) int {
	for i := range gobComposites {
		if g.registeredAs(i, name) {
			return i
		}
	}
	return -1
}

// gobRegisteredName learns from encoding/gob the name v's type is
// registered under, by encoding it inside an interface.
func gobRegisteredName(v any) (string, bool) {
	var buf bytes.Buffer
	if gob.NewEncoder(&buf).Encode([]any{v}) != nil {
		return "", false
	}
	// The definition of []any, then the value: its ID, a zero delta, the
	// length 1, then the interface value, which begins with the name.
	r := gobReader{b: buf.Bytes()}
	n, ok := r.uint()
	if !ok || r.skip(n) != nil {
		return "", false
	}
	if _, ok := r.uint(); !ok { // the message length
		return "", false
	}
	if _, ok := r.int(); !ok || !r.bytes(0x00, 0x01) {
		return "", false
	}
	name, ok := r.string()
	return name, ok && name != ""
}

// gobReader reads the parts of a gob stream from a byte slice.
type gobReader struct{ b []byte }

// uint reads an unsigned integer in its shortest encoding.
func (r *gobReader) uint() (uint64, bool) {
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
func (r *gobReader) int() (int64, bool) {
	u, ok := r.uint()
	return gobIntFromBits(u), ok
}

// typeID reads a type ID into id.
func (r *gobReader) typeID(id *int64) bool {
	v, ok := r.int()
	*id = v
	return ok && v > 0 && v <= 1<<31-1
}

// bytes consumes want, if the input starts with it.
func (r *gobReader) bytes(want ...byte) bool {
	if !bytes.HasPrefix(r.b, want) {
		return false
	}
	r.b = r.b[len(want):]
	return true
}

// take returns the next n bytes.
func (r *gobReader) take(n uint64) ([]byte, bool) {
	if n > uint64(len(r.b)) {
		return nil, false
	}
	b := r.b[:n]
	r.b = r.b[n:]
	return b, true
}

// skip drops the next n bytes.
func (r *gobReader) skip(n uint64) error {
	if _, ok := r.take(n); !ok {
		return errGobCorrupt
	}
	return nil
}

// string reads a length and that many bytes.
func (r *gobReader) string() (string, bool) {
	n, ok := r.uint()
	if !ok {
		return "", false
	}
	b, ok := r.take(n)
	return string(b), ok
}

// fields reads the fields of a struct as gob writes them, each a delta
// from the last field's number and the field, until a zero delta; field
// reads one field and reports whether it could.
func (r *gobReader) fields(field func(f uint64) bool) bool {
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

var errGobCorrupt = fmt.Errorf("%w: gob: corrupt stream", ErrDecode)

// gobIntBits is the unsigned form in which gob writes a signed integer.
func gobIntBits(i int64) uint64 {
	if i < 0 {
		return uint64(^i)<<1 | 1
	}
	return uint64(i) << 1
}

// gobIntFromBits is the signed integer gob writes as u (gobIntBits undone).
func gobIntFromBits(u uint64) int64 {
	if u&1 != 0 {
		return int64(^(u >> 1))
	}
	return int64(u >> 1)
}

// appendGobInt appends a signed integer.
func appendGobInt(b []byte, i int64) []byte { return appendGobUint(b, gobIntBits(i)) }

// appendGobString appends a length and the bytes of s.
func appendGobString(b []byte, s string) []byte {
	return append(appendGobUint(b, uint64(len(s))), s...)
}

// appendGobUint appends an unsigned integer in its shortest encoding.
func appendGobUint(b []byte, u uint64) []byte {
	if u < 0x80 {
		return append(b, byte(u))
	}
	n := gobUintLen(u) - 1
	b = append(b, byte(-n))
	var be [8]byte
	binary.BigEndian.PutUint64(be[:], u)
	return append(b, be[8-n:]...)
}

// gobUintLen is the length of u's encoding.
func gobUintLen(u uint64) int {
	if u < 0x80 {
		return 1
	}
	return 1 + (bits.Len64(u)+7)/8
}
