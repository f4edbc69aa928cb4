package dynamostore

import (
	"bytes"
	"encoding/gob"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/dynamostore/dynamostore/internal/gobwire"
)

// plainGob is encoding/gob alone: what another program, or a release of
// this store before canonical encodings, writes.
type plainGob struct{ GobSerializer }

func (plainGob) Serialize(values map[any]any) ([]byte, error) {
	var buf bytes.Buffer
	err := gob.NewEncoder(&buf).Encode(values)
	return buf.Bytes(), err
}

// TestSaveWritesChangesThatCompareEqual changes a value in a way
// reflect.DeepEqual cannot see (0.0 to -0.0, one NaN to another), on and off
// the gob fast path: the change must be written, and load back.
func TestSaveWritesChangesThatCompareEqual(t *testing.T) {
	negZero := math.Copysign(0, -1)
	nan1, nan2 := math.Float64frombits(0x7ff8000000000001), math.Float64frombits(0x7ff8000000000002)
	for _, c := range []struct {
		name     string
		before   map[any]any
		key      string
		from, to float64
	}{
		{"0.0 to -0.0", map[any]any{"f": 0.0}, "f", 0.0, negZero},
		{"0.0 to -0.0 off the fast path", map[any]any{"f": 0.0, "roles": []string{"admin"}}, "f", 0.0, negZero},
		{"NaN payload off the fast path", map[any]any{"f": nan1, "roles": []string{"admin"}}, "f", nan1, nan2},
	} {
		t.Run(c.name, func(t *testing.T) {
			x := newRig(t)
			_, cookie := create(t, x.store, c.before)
			r := request(cookie)
			sess, err := x.store.Get(r, benchCookie)
			if err != nil {
				t.Fatal(err)
			}
			sess.Values[c.key] = c.to
			x.meter.Take()
			if err := save(x.store, r, sess); err != nil {
				t.Fatal(err)
			}
			if u := x.meter.Take(); u.Calls["UpdateItem"] != 1 {
				t.Fatalf("the change made %s; want an UpdateItem", describeCalls(u))
			}
			again, err := x.newStore().Get(request(cookie), benchCookie)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := again.Values[c.key].(float64)
			if math.Float64bits(got) != math.Float64bits(c.to) {
				t.Errorf("loaded %v (bits %x), want bits %x", got, math.Float64bits(got), math.Float64bits(c.to))
			}
		})
	}
}

// TestUnchangedRowWrittenByEncodingGobCostsNoWrite loads rows that
// encoding/gob wrote (entries in random order, type IDs of another
// process) and saves them unchanged: no write within touchAfter.
func TestUnchangedRowWrittenByEncodingGobCostsNoWrite(t *testing.T) {
	for name, values := range map[string]map[any]any{
		"flash and time": flashAndTime(),
		"nested maps":    {"m": map[string]any{"a": 1, "b": map[string]any{"c": []any{"d", map[any]any{1: 2, "x": nil}}}}},
		"struct":         structSession(),
		"map of ints":    {"m": map[string]int{"a": 1, "b": 2, "c": 3, "d": 4}, "at": time.Unix(9, 0).UTC()},
	} {
		t.Run(name, func(t *testing.T) {
			x := newRig(t)
			_, cookie := create(t, x.newStore(WithSerializer(plainGob{})), values)
			for i := range 3 {
				r := request(cookie)
				sess, err := x.store.Get(r, benchCookie)
				if err != nil {
					t.Fatal(err)
				}
				x.meter.Take()
				if err := save(x.store, r, sess); err != nil {
					t.Fatal(err)
				}
				if u := x.meter.Take(); u.Total() != 0 {
					t.Fatalf("round %d: the unchanged save made %s; want none", i, describeCalls(u))
				}
			}
		})
	}
}

// TestSaveRefusesDeeplyNestedValues: values nested deeper than the limit
// are refused with ErrEncode, before any call.
func TestSaveRefusesDeeplyNestedValues(t *testing.T) {
	x := newRig(t)
	r := request()
	sess, err := x.store.New(r, benchCookie)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range nested(gobwire.MaxDepth + 1) {
		sess.Values[k] = v
	}
	if err := save(x.store, r, sess); !errors.Is(err, ErrEncode) {
		t.Fatalf("Save = %v, want ErrEncode", err)
	}
	if u := x.meter.Take(); u.Total() != 0 {
		t.Errorf("the refused save made %s", describeCalls(u))
	}
}
