package gobwire

import (
	"bytes"
	"math"
	"math/bits"
)

// scalarParts returns the kind of a scalar v and its wire encoding: u
// for a number or a bool, s or bs for a string or byte slice. It reports
// false for other types, and for nil.
func scalarParts(v any) (k *kind, u uint64, s string, bs []byte, ok bool) {
	switch v := v.(type) {
	case string:
		return kindString, 0, v, nil, true
	case []byte:
		return kindBytes, 0, "", v, true
	case bool:
		if v {
			u = 1
		}
		return kindBool, u, "", nil, true
	case int:
		return kindInt, intBits(int64(v)), "", nil, true
	case int8:
		return kindInt8, intBits(int64(v)), "", nil, true
	case int16:
		return kindInt16, intBits(int64(v)), "", nil, true
	case int32:
		return kindInt32, intBits(int64(v)), "", nil, true
	case int64:
		return kindInt64, intBits(v), "", nil, true
	case uint:
		return kindUint, uint64(v), "", nil, true
	case uint8:
		return kindUint8, uint64(v), "", nil, true
	case uint16:
		return kindUint16, uint64(v), "", nil, true
	case uint32:
		return kindUint32, uint64(v), "", nil, true
	case uint64:
		return kindUint64, v, "", nil, true
	case float64:
		return kindFloat64, bits.ReverseBytes64(math.Float64bits(v)), "", nil, true
	}
	return nil, 0, "", nil, false
}

// rawScalar is a scalar as gob writes it: the bytes of a string or byte
// slice, or else the number in its unsigned wire form (a bool as 0 or 1, a
// signed integer in gob's unsigned form, a float byte-reversed).
type rawScalar struct {
	u uint64
	b []byte
}

// scalar reads a value of kind k without allocating, checking that the
// number fits k.
func (r *reader) scalar(k *kind) (rawScalar, bool) {
	switch k.wire {
	case wireString, wireBytes:
		b, ok := r.string0()
		return rawScalar{b: b}, ok
	}
	u, ok := r.uint()
	if !ok {
		return rawScalar{}, false
	}
	i := intFromBits(u)
	switch k {
	case kindBool:
		ok = u <= 1
	case kindInt8:
		ok = i == int64(int8(i))
	case kindInt16:
		ok = i == int64(int16(i))
	case kindInt32:
		ok = i == int64(int32(i))
	case kindUint8:
		ok = u == uint64(uint8(u))
	case kindUint16:
		ok = u == uint64(uint16(u))
	case kindUint32:
		ok = u == uint64(uint32(u))
	}
	return rawScalar{u: u}, ok
}

// box makes the Go value of a scalar kind other than string from what
// scalar read.
func (k *kind) box(u uint64, b []byte) any {
	i := intFromBits(u)
	switch k {
	case kindBytes:
		if len(b) == 0 {
			return []byte(nil)
		}
		return bytes.Clone(b)
	case kindBool:
		return u == 1
	case kindFloat64:
		return math.Float64frombits(bits.ReverseBytes64(u))
	case kindInt:
		return int(i)
	case kindInt8:
		return int8(i)
	case kindInt16:
		return int16(i)
	case kindInt32:
		return int32(i)
	case kindInt64:
		return i
	case kindUint:
		return uint(u)
	case kindUint8:
		return uint8(u)
	case kindUint16:
		return uint16(u)
	case kindUint32:
		return uint32(u)
	default: // kindUint64
		return u
	}
}
