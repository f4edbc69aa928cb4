package dynamostore

import (
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"
	"maps"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/dynamostore/dynamostore/internal/gobwire"
)

// GobSerializer's own tests; its fast path and canonical rewriting are
// tested in internal/gobwire.

// gobPoint is a user type, off the gob fast path.
type gobPoint struct {
	X, Y int
	Tags map[string]int
	Any  any
}

func init() {
	// Types the tests store that encoding/gob only sends once registered.
	// gorilla/sessions registers []any itself.
	gob.Register(time.Time{})
	gob.Register(map[string]int{})
	gob.Register(map[string]any{})
	gob.Register(map[any]any{})
	gob.Register(gobPoint{})
	gob.Register([]string{})
}

// nested returns a map[string]any nested depth deep, each level holding a
// few values besides the next level.
func nested(depth int) map[any]any {
	var inner any = "bottom"
	for i := range depth - 1 {
		inner = map[string]any{"level": i, "name": "n", "next": inner}
	}
	return map[any]any{"tree": inner}
}

// flashAndTime is a typical signed-in session: a user, a sign-in time and
// a flash message.
func flashAndTime() map[any]any {
	return map[any]any{
		"user": "ada@example.com", "visits": 42, "blob": noise(1024),
		"signed_in": time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC), "_flash": []any{"Welcome back"},
	}
}

// structSession is a session holding a user struct, off the fast path.
func structSession() map[any]any {
	return map[any]any{"p": gobPoint{X: 1, Tags: map[string]int{"z": 1, "a": 2}, Any: map[string]any{"q": 1, "r": []any{time.Unix(3, 0).UTC()}}}}
}

// stdGobEncode and stdGobDecode are encoding/gob alone.
func stdGobEncode(t testing.TB, values map[any]any) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(values); err != nil {
		t.Fatalf("encoding/gob: %v", err)
	}
	return buf.Bytes()
}

func stdGobDecode(data []byte) (map[any]any, error) {
	values := map[any]any{}
	err := gob.NewDecoder(bytes.NewReader(data)).Decode(&values)
	return values, err
}

// TestGobSlowPath: values off the fast path are written as the canonical
// rewriting of encoding/gob's encoding, or as encoding/gob wrote them when
// they have no canonical encoding (NaN keys), and read back.
func TestGobSlowPath(t *testing.T) {
	for _, c := range []struct {
		name      string
		values    map[any]any
		canonical bool
	}{
		{"struct", structSession(), true},
		{"nan keys", map[any]any{"x": map[any]any{math.NaN(): "a", math.NaN(): "b"}}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			data, err := GobSerializer{}.Serialize(c.values)
			if err != nil {
				t.Fatal(err)
			}
			std := stdGobEncode(t, c.values)
			canon, err := gobwire.Canonicalize(std)
			if c.canonical && (err != nil || !bytes.Equal(data, canon)) {
				t.Errorf("Serialize differs from the canonical rewriting of encoding/gob's encoding (%v)", err)
			}
			if !c.canonical && !errors.Is(err, gobwire.ErrUnsupported) {
				t.Errorf("Canonicalize = %v, want ErrUnsupported", err)
			}
			got := map[any]any{}
			if err := (GobSerializer{}).Deserialize(data, got); err != nil {
				t.Fatal(err)
			}
			// NaN keys print in any order: only their maps' sizes compare.
			want, _ := stdGobDecode(std)
			if len(got) != len(want) || c.canonical && fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) {
				t.Errorf("round trip gave %#v, want %#v", got, want)
			}
		})
	}
}

// TestGobSameValuesSeesOnlyEqualBits: the unchanged check of a session
// written by encoding/gob (another release or program) finds it unchanged
// when its values are the same, and changed when any bit differs, where
// reflect.DeepEqual would see no change.
func TestGobSameValuesSeesOnlyEqualBits(t *testing.T) {
	negZero := math.Copysign(0, -1)
	nan1, nan2 := math.Float64frombits(0x7ff8000000000001), math.Float64frombits(0x7ff8000000000002)
	for _, c := range []struct {
		name        string
		stored, now map[any]any
		same        bool
	}{
		{"same map", map[any]any{"m": map[string]int{"a": 1, "b": 2}}, map[any]any{"m": map[string]int{"b": 2, "a": 1}}, true},
		{"same struct", structSession(), structSession(), true},
		{"0.0 to -0.0", map[any]any{"f": 0.0, "r": []string{"x"}}, map[any]any{"f": negZero, "r": []string{"x"}}, false},
		{"0.0 to -0.0, fast path", map[any]any{"f": 0.0}, map[any]any{"f": negZero}, false},
		{"float32 0 to -0", map[any]any{"f": float32(0)}, map[any]any{"f": float32(negZero)}, false},
		{"NaN payload", map[any]any{"f": nan1, "r": []string{"x"}}, map[any]any{"f": nan2, "r": []string{"x"}}, false},
		{"nested -0.0", map[any]any{"m": map[string]any{"f": 0.0}}, map[any]any{"m": map[string]any{"f": negZero}}, false},
		{"nil to empty slice", map[any]any{"s": []string(nil), "t": time.Unix(0, 0).UTC()}, map[any]any{"s": []string{}, "t": time.Unix(0, 0).UTC()}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			stored := stdGobEncode(t, c.stored)
			data, err := GobSerializer{}.Serialize(c.now)
			if err != nil {
				t.Fatal(err)
			}
			same := bytes.Equal(data, stored) || GobSerializer{}.sameValues(data, stored)
			if same != c.same {
				t.Errorf("same values = %v, want %v", same, c.same)
			}
		})
	}
}

func TestGobRefusesDeepNesting(t *testing.T) {
	for _, c := range []struct {
		name   string
		values map[any]any
		ok     bool
	}{
		{"fast path, 1024 deep", nested(1024), true},
		{"fast path, 1025 deep", nested(1025), false},
		{"slices, 2000 deep", map[any]any{"s": deepSlice(2000)}, false},
		{"slow path, 1025 deep", map[any]any{"p": deepPoint(1100)}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := GobSerializer{}.Serialize(c.values)
			if c.ok && err != nil {
				t.Fatal(err)
			}
			if !c.ok && !errors.Is(err, ErrEncode) {
				t.Fatalf("Serialize = %v, want ErrEncode", err)
			}
		})
	}
}

func deepSlice(depth int) any {
	var v any = 1
	for range depth {
		v = []any{v}
	}
	return v
}

func deepPoint(depth int) any {
	var v any = 1
	for range depth {
		v = gobPoint{X: 1, Any: v}
	}
	return v
}

// TestGobReusesTheStoredEncoding: saving a loaded session unchanged
// returns the stored bytes themselves, allocating nothing, and any change
// gives new bytes.
func TestGobReusesTheStoredEncoding(t *testing.T) {
	for name, values := range map[string]map[any]any{
		"reference":      referenceValues(),
		"flash and time": flashAndTime(),
		"depth 100":      nested(100),
		"large":          {"blob": bytes.Repeat([]byte{0xfe}, 100<<10), "text": strings.Repeat("x", 70000)},
	} {
		t.Run(name, func(t *testing.T) {
			stored, err := GobSerializer{}.Serialize(values)
			if err != nil {
				t.Fatal(err)
			}
			got, err := GobSerializer{}.serializeReusing(values, stored)
			if err != nil || &got[0] != &stored[0] || len(got) != len(stored) {
				t.Fatalf("unchanged values did not reuse the stored encoding (%v)", err)
			}
			if n := testing.AllocsPerRun(20, func() { _, _ = GobSerializer{}.serializeReusing(values, stored) }); n != 0 && !raceEnabled {
				t.Errorf("an unchanged encoding allocated %v times", n)
			}
			changed := maps.Clone(values)
			changed["extra"] = 1
			got, err = GobSerializer{}.serializeReusing(changed, stored)
			if err != nil || bytes.Equal(got, stored) {
				t.Fatalf("changed values gave the stored encoding (%v)", err)
			}
			if want, _ := (GobSerializer{}).Serialize(changed); !bytes.Equal(got, want) {
				t.Error("serializeReusing of changed values differs from Serialize")
			}
		})
	}
}
