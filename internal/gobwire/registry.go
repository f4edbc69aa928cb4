package gobwire

import (
	"bytes"
	"encoding/gob"
	"sync"
	"sync/atomic"
	"time"
)

// kind is one concrete type the fast path handles: the name gob
// registers it under and the wire type that carries it. Composite kinds
// (def not nil) are user types, whose name is the one the process
// registered them under (see registered).
type kind struct {
	name string
	wire int64
	def  *typeDef
	head []byte // a scalar kind's interface value as far as its byte count: its name and wire type
}

// scalar returns the scalar kind of that name and wire type.
func scalar(name string, wire int64) *kind {
	return &kind{name: name, wire: wire, head: appendInt(appendString(nil, name), wire)}
}

var (
	kindString  = scalar("string", wireString)
	kindBytes   = scalar("[]uint8", wireBytes)
	kindBool    = scalar("bool", wireBool)
	kindInt     = scalar("int", wireInt)
	kindInt8    = scalar("int8", wireInt)
	kindInt16   = scalar("int16", wireInt)
	kindInt32   = scalar("int32", wireInt)
	kindInt64   = scalar("int64", wireInt)
	kindUint    = scalar("uint", wireUint)
	kindUint8   = scalar("uint8", wireUint)
	kindUint16  = scalar("uint16", wireUint)
	kindUint32  = scalar("uint32", wireUint)
	kindUint64  = scalar("uint64", wireUint)
	kindFloat64 = scalar("float64", wireFloat)

	kindMapAny    = &kind{def: wireMapAny}
	kindMapString = &kind{def: wireMapString}
	kindSliceAny  = &kind{def: wireSliceAny}
	kindTime      = &kind{def: wireTime}
)

// numComposites is the number of composite kinds.
const numComposites = 4

// composites are the composite kinds, each with a sample value.
var composites = []struct {
	kind   *kind
	sample any
	name   string // the name gob.Register gives it
}{
	{kindMapAny, map[any]any{}, "map[interface {}]interface {}"},
	{kindMapString, map[string]any{}, "map[string]interface {}"},
	{kindSliceAny, []any{}, "[]interface {}"},
	{kindTime, time.Time{}, "time.Time"},
}

// scalarKind returns the scalar kind registered under name, or nil.
func scalarKind(name []byte) *kind {
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

// registry holds the names this process registered the composite kinds
// under, as far as they are known. gob.Register cannot be undone and a type
// has only one name, so a name once learned stays right, and is read
// without the lock, which only serialises learning one.
type registry struct {
	mu    sync.Mutex
	names [numComposites]atomic.Pointer[string] // by index in composites; nil while unknown
}

var names registry

// registered returns the name composite kind i is registered under, and
// false while it is not registered.
func (g *registry) registered(i int) (string, bool) {
	if n := g.names[i].Load(); n != nil {
		return *n, true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if n := g.names[i].Load(); n != nil {
		return *n, true
	}
	name, ok := registeredName(composites[i].sample)
	if ok {
		g.names[i].Store(&name)
	}
	return name, ok
}

// registeredAs reports whether composite kind i is registered under name,
// learning it from encoding/gob only when name is the one gob.Register
// gives it: a name given with gob.RegisterName is known once this process
// has encoded a value of the kind.
func (g *registry) registeredAs(i int, name []byte) bool {
	if n := g.names[i].Load(); n != nil {
		return *n == string(name)
	}
	if string(name) != composites[i].name {
		return false
	}
	n, ok := g.registered(i)
	return ok && n == string(name)
}

// lookup returns the composite kind registered under name, or -1.
func (g *registry) lookup(name []byte) int {
	for i := range composites {
		if g.registeredAs(i, name) {
			return i
		}
	}
	return -1
}

// registeredName learns from encoding/gob the name v's type is
// registered under, by encoding it inside an interface.
func registeredName(v any) (string, bool) {
	var buf bytes.Buffer
	if gob.NewEncoder(&buf).Encode([]any{v}) != nil {
		return "", false
	}
	// The definition of []any, then the value: its ID, a zero delta, the
	// length 1, then the interface value, which begins with the name.
	r := reader{b: buf.Bytes()}
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
