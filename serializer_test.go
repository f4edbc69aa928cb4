package dynamostore

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// largeSession returns a session of about size bytes of gob that
// compresses the way real session data does: a user, a browsing history
// of paths and query strings, and preferences, drawn from a small
// vocabulary by a seeded generator so every run sees the same bytes.
func largeSession(size int) map[any]any {
	rng := rand.New(rand.NewPCG(uint64(size), 7))
	words := []string{"products", "search", "cart", "checkout", "account", "orders", "help",
		"shoes", "shirts", "jackets", "sale", "new", "brand", "size", "colour", "page", "sort", "ref"}
	word := func() string { return words[rng.IntN(len(words))] }
	var history, prefs []string
	n := 0
	for n < size {
		p := fmt.Sprintf("/%s/%s/%d?%s=%s&%s=%d", word(), word(), rng.IntN(100000), word(), word(), word(), rng.IntN(50))
		history = append(history, p)
		n += len(p) + 1
		if rng.IntN(8) == 0 {
			p := fmt.Sprintf("%s.%s=%s", word(), word(), word())
			prefs = append(prefs, p)
			n += len(p) + 1
		}
	}
	return map[any]any{"user": "ada@example.com", "visits": 42, "history": history, "prefs": prefs}
}

// magicSerializer is an inner Serializer whose output begins with the gzip
// magic bytes, to check that such output is never misread.
type magicSerializer struct{}

func (magicSerializer) Serialize(values map[any]any) ([]byte, error) {
	return append(bytes.Clone(gzipMagic), fmt.Sprint(values["k"])...), nil
}

func (magicSerializer) Deserialize(data []byte, values map[any]any) error {
	rest, ok := bytes.CutPrefix(data, gzipMagic)
	if !ok {
		return fmt.Errorf("%w: no magic", ErrDecode)
	}
	values["k"] = string(rest)
	return nil
}

func TestCompressedSerializerRoundTrip(t *testing.T) {
	tests := []struct {
		name       string
		inner      Serializer
		threshold  int
		values     map[any]any
		compressed bool
	}{
		{"empty", GobSerializer{}, 0, map[any]any{}, false},
		{"gob below threshold", GobSerializer{}, 4096, referenceValues(), false},
		{"gob compressible above threshold", GobSerializer{}, 4096, largeSession(10 << 10), true},
		{"gob incompressible above threshold", GobSerializer{}, 512, map[any]any{"b": noise(2048)}, false},
		{"gob threshold zero", GobSerializer{}, 0, map[any]any{"s": strings.Repeat("abc", 100)}, true},
		{"nil inner is gob", nil, 1024, largeSession(100 << 10), true},
		{"json compressible", JSONSerializer{}, 1024, map[any]any{"s": strings.Repeat("abc ", 1000)}, true},
		{"json below threshold", JSONSerializer{}, 1024, map[any]any{"s": "abc"}, false},
		{"inner output with gzip magic", magicSerializer{}, 1 << 20, map[any]any{"k": "v"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCompressed(tt.inner, tt.threshold)
			inner := tt.inner
			if inner == nil {
				inner = GobSerializer{}
			}
			data, err := c.Serialize(tt.values)
			if err != nil {
				t.Fatal(err)
			}
			plain, err := inner.Serialize(tt.values)
			if err != nil {
				t.Fatal(err)
			}
			gotCompressed := bytes.HasPrefix(data, gzipMagic) && !bytes.Equal(data, plain)
			if gotCompressed != tt.compressed {
				t.Fatalf("compressed = %v (%d bytes, %d plain); want %v", gotCompressed, len(data), len(plain), tt.compressed)
			}
			if !tt.compressed && len(data) != len(plain) {
				t.Fatalf("uncompressed output is %d bytes; the inner serializer's is %d", len(data), len(plain))
			}
			if tt.compressed && len(tt.values) > 0 && tt.inner != (magicSerializer{}) && len(data) >= len(plain) {
				t.Fatalf("compressed output %d bytes is not smaller than %d", len(data), len(plain))
			}
			got := map[any]any{}
			if err := c.Deserialize(data, got); err != nil {
				t.Fatal(err)
			}
			want := tt.values
			if _, ok := inner.(JSONSerializer); ok {
				want = map[any]any{}
				if err := inner.Deserialize(plain, want); err != nil {
					t.Fatal(err)
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip changed the values")
			}
		})
	}
}

func TestCompressedSerializerLevels(t *testing.T) {
	for _, level := range []int{-3, 10} {
		if _, err := newCompressedSerializer(nil, 0, level); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("level %d: %v; want ErrInvalidOption", level, err)
		}
	}
	values := largeSession(100 << 10)
	sizes := map[int]int{}
	for _, level := range []int{gzip.BestSpeed, gzip.DefaultCompression, gzip.BestCompression} {
		c, err := newCompressedSerializer(GobSerializer{}, 0, level)
		if err != nil {
			t.Fatal(err)
		}
		data, err := c.Serialize(values)
		if err != nil {
			t.Fatal(err)
		}
		got := map[any]any{}
		// Any level reads any other's output.
		if err := newCompressed(nil, 0).Deserialize(data, got); err != nil || !reflect.DeepEqual(got, values) {
			t.Fatalf("level %d: round trip failed: %v", level, err)
		}
		sizes[level] = len(data)
	}
	if sizes[gzip.DefaultCompression] >= sizes[gzip.BestSpeed] {
		t.Errorf("default level %d bytes, fastest %d", sizes[gzip.DefaultCompression], sizes[gzip.BestSpeed])
	}
}

// TestCompressedSerializerReadsPlainRows checks that turning compression on
// keeps rows written without it readable.
func TestCompressedSerializerReadsPlainRows(t *testing.T) {
	for _, inner := range []Serializer{GobSerializer{}, JSONSerializer{}} {
		t.Run(fmt.Sprintf("%T", inner), func(t *testing.T) {
			values := map[any]any{"user": "ada", "s": strings.Repeat("x", 5000)}
			plain, err := inner.Serialize(values)
			if err != nil {
				t.Fatal(err)
			}
			got := map[any]any{}
			if err := newCompressed(inner, 100).Deserialize(plain, got); err != nil {
				t.Fatal(err)
			}
			if got["user"] != "ada" || got["s"] != values["s"] {
				t.Fatalf("plain row read as %v", got)
			}
		})
	}
}

func TestCompressedSerializerRejectsBadData(t *testing.T) {
	c := newCompressed(GobSerializer{}, 0)
	c.maxSize = 1 << 16
	good, err := c.Serialize(map[any]any{"s": strings.Repeat("abc", 1000)})
	if err != nil {
		t.Fatal(err)
	}
	corrupt := bytes.Clone(good)
	corrupt[len(corrupt)-6] ^= 0xff // inside the CRC-32 trailer
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	if _, err := zw.Write(make([]byte, c.maxSize+1)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"magic only", bytes.Clone(gzipMagic)},
		{"bad header", append(bytes.Clone(gzipMagic), 0, 0, 0, 0)},
		{"truncated", good[:len(good)/2]},
		{"bad checksum", corrupt},
		{"too large when decompressed", bomb.Bytes()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			values := map[any]any{}
			if err := c.Deserialize(tt.data, values); !errors.Is(err, ErrDecode) {
				t.Fatalf("Deserialize = %v; want ErrDecode", err)
			}
		})
	}
	// The serializer still works after failures.
	values := map[any]any{}
	if err := c.Deserialize(good, values); err != nil || len(values) != 1 {
		t.Fatalf("after failures: %v, %v", values, err)
	}
}

func TestCompressedSerializerConcurrent(t *testing.T) {
	c := newCompressed(GobSerializer{}, 1024)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			values := largeSession(4096 + i*1000)
			for range 20 {
				data, err := c.Serialize(values)
				if err != nil {
					errs <- err
					return
				}
				got := map[any]any{}
				if err := c.Deserialize(data, got); err != nil {
					errs <- err
					return
				}
				if !reflect.DeepEqual(got, values) {
					errs <- fmt.Errorf("goroutine %d: values changed", i)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestCompressedSessionsInDynamoDB stores large sessions compressed and
// reports the write units each costs with and without compression.
func TestCompressedSessionsInDynamoDB(t *testing.T) {
	x := newRig(t)
	compressed := x.newStore(WithSerializer(newCompressed(nil, 4096)))
	for _, size := range []int{10 << 10, 100 << 10} {
		t.Run(fmt.Sprintf("%dKB", size>>10), func(t *testing.T) {
			values := largeSession(size)
			x.meter.Take()
			create(t, x.store, values)
			plain := x.meter.Take()
			id, c := create(t, compressed, values)
			packed := x.meter.Take()
			item := (&env{t: t, client: x.client, table: x.table}).rawItem(id)
			v, ok := item[attrValues].(*types.AttributeValueMemberB)
			if !ok || !bytes.HasPrefix(v.Value, gzipMagic) {
				t.Fatalf("stored values are not gzip")
			}
			r := request(c)
			sess, err := compressed.Get(r, benchCookie)
			if err != nil {
				t.Fatal(err)
			}
			want := maps.Clone(values)
			if !reflect.DeepEqual(sess.Values, want) {
				t.Fatal("compressed session did not load back")
			}
			if packed.WCU >= plain.WCU {
				t.Errorf("compressed write cost %g WCU, plain %g", packed.WCU, plain.WCU)
			}
			t.Logf("%d KB session: %g WCU plain, %g WCU compressed (%d bytes stored)", size>>10, plain.WCU, packed.WCU, len(v.Value))
			x.meter.Take()
			if err := save(compressed, r, sess); err != nil {
				t.Fatal(err)
			}
			if u := x.meter.Take(); u.Total() != 0 {
				t.Errorf("unchanged compressed session saved with %s", describeCalls(u))
			}
		})
	}
}
