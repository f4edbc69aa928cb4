package dynamostore

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/dynamostore/dynamostore/internal/tableschema"
	"github.com/gorilla/securecookie"
)

// idBytes is the number of random bytes in a session ID: 256 bits.
const idBytes = 32

// idLen is the length of a session ID as it travels in a cookie: idBytes in
// unpadded URL-safe base64.
var idLen = base64.RawURLEncoding.EncodedLen(idBytes)

// Serializer turns a session's Values into bytes and back. The Store's
// default is GobSerializer; JSONSerializer is the other implementation this
// package provides. Implementations must be safe for concurrent use.
type Serializer interface {
	// Serialize encodes values. It returns an error wrapping ErrEncode when
	// a value cannot be encoded.
	Serialize(values map[any]any) ([]byte, error)
	// Deserialize decodes data into values, which is empty and non-nil. It
	// returns an error wrapping ErrDecode when data is not valid.
	Deserialize(data []byte, values map[any]any) error
}

// canonicalSerializer is a Serializer that can tell that two encodings
// which differ in their bytes hold the same values. The Store uses it to
// see an unchanged session whose stored row another process, release or
// program wrote. It must say true only when the values are the same down
// to their bits (0.0 and -0.0 differ, and NaNs by their payloads): saying
// false wrongly costs a write of an unchanged session, saying true wrongly
// loses a change.
type canonicalSerializer interface {
	// sameValues reports whether data, which the Serializer wrote, holds
	// the values stored holds.
	sameValues(data, stored []byte) bool
}

// GobSerializer encodes Values with encoding/gob, as gorilla/sessions' own
// stores do. Custom types stored in Values must be registered with
// gob.Register. It is the Store's default Serializer.
type GobSerializer struct{}

// Serialize implements Serializer. An empty map encodes to no bytes. Equal
// values encode to the same bytes in every process, whatever it registered
// or encoded before, so that an unchanged session is seen as unchanged
// whichever process wrote it; the bytes are plain encoding/gob. Values
// nested more than 1024 deep are refused. When a value cannot be encoded,
// the error names its key.
func (g GobSerializer) Serialize(values map[any]any) ([]byte, error) {
	return g.serializeReusing(values, nil)
}

// reusingSerializer is a Serializer that can return the stored encoding
// itself, without a copy, when values encode to the same bytes.
type reusingSerializer interface {
	serializeReusing(values map[any]any, stored []byte) ([]byte, error)
}

// serializeReusing implements reusingSerializer.
func (GobSerializer) serializeReusing(values map[any]any, stored []byte) ([]byte, error) {
	if len(values) == 0 {
		return nil, nil
	}
	if data, ok, err := gobFastEncodeReusing(values, stored); err != nil || ok {
		return data, err
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(values); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrEncode, describeEncodeFailure(values, err))
	}
	data, err := gobCanonicalize(buf.Bytes())
	switch {
	case errors.Is(err, errGobUnsupported):
		return buf.Bytes(), nil // valid, though not canonical
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrEncode, err)
	}
	return data, nil
}

// Deserialize implements Serializer. It never panics on hostile input.
func (GobSerializer) Deserialize(data []byte, values map[any]any) (err error) {
	if len(data) == 0 {
		return nil
	}
	defer func() {
		// encoding/gob guards against most malformed input itself; this
		// keeps a decoder bug from taking the process down with a bad row.
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: gob: %v", ErrDecode, p)
		}
	}()
	if gobFastDecode(data, values) {
		return nil
	}
	return gobDecode(data, values)
}

// sameValues implements canonicalSerializer: data is canonical, so stored
// holds the same values when its canonical encoding is data. A canonical
// stored row that differs holds other values, and needs no rewriting.
func (GobSerializer) sameValues(data, stored []byte) bool {
	if gobCanonical(stored) {
		return false
	}
	canon, err := gobCanonicalize(stored)
	return err == nil && bytes.Equal(canon, data)
}

// gobDecode decodes data into values with encoding/gob.
func gobDecode(data []byte, values map[any]any) error {
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&values); err != nil {
		return fmt.Errorf("%w: gob: %w", ErrDecode, err)
	}
	return nil
}

// describeEncodeFailure finds which key of values gob cannot encode, so that
// the error a user sees names it. It is only called on the failure path.
func describeEncodeFailure(values map[any]any, err error) string {
	keys := make([]string, 0, len(values))
	for k, v := range values {
		var buf bytes.Buffer
		one := map[any]any{k: v}
		if gob.NewEncoder(&buf).Encode(one) != nil {
			keys = append(keys, fmt.Sprintf("%v (%T)", k, v))
		}
	}
	if len(keys) == 0 {
		return fmt.Sprintf("gob: %v", err)
	}
	sort.Strings(keys)
	return fmt.Sprintf("cannot encode value of key %v: %v", keys, err)
}

// JSONSerializer encodes Values as a JSON object. Keys must be strings; values
// come back as JSON types (float64 for numbers, map[string]any for objects),
// so it suits sessions that hold plain data and must be readable by other
// languages.
type JSONSerializer struct{}

// Serialize implements Serializer. A key that is not a string, or a value
// encoding/json cannot encode, is an error naming the key.
func (JSONSerializer) Serialize(values map[any]any) ([]byte, error) {
	if len(values) == 0 {
		return nil, nil
	}
	m := make(map[string]any, len(values))
	for k, v := range values {
		ks, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("%w: json: key %v (%T) is not a string", ErrEncode, k, k)
		}
		m[ks] = v
	}
	data, err := json.Marshal(m)
	if err != nil {
		for k, v := range m {
			if _, e := json.Marshal(v); e != nil {
				return nil, fmt.Errorf("%w: json: cannot encode value of key %q: %w", ErrEncode, k, e)
			}
		}
		return nil, fmt.Errorf("%w: json: %w", ErrEncode, err)
	}
	return data, nil
}

// Deserialize implements Serializer.
func (JSONSerializer) Deserialize(data []byte, values map[any]any) error {
	if len(data) == 0 {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("%w: json: %w", ErrDecode, err)
	}
	for k, v := range m {
		values[k] = v
	}
	return nil
}

// newID returns a fresh session ID: 256 bits from crypto/rand in unpadded
// URL-safe base64.
func newID() (string, error) {
	var b [idBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("dynamostore: generating session ID: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// validID reports whether id has the length and alphabet of an ID made by
// newID. It is checked before any DynamoDB call.
func validID[T string | []byte](id T) bool {
	if len(id) != idLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// storageKey returns the table key of a session ID (see
// tableschema.StorageKey).
func storageKey(id string) string { return tableschema.StorageKey(id) }

// idAndKey returns the session ID in raw and its storage key, made in one
// allocation.
func idAndKey(raw []byte) (id, key string) {
	var buf [128]byte
	both := string(tableschema.AppendStorageKey(append(buf[:0], raw...), raw))
	return both[:len(raw)], both[len(raw):]
}

// idCodec signs session IDs into cookie values and verifies them, through
// securecookie codecs (several for key rotation: the first signs, all
// verify).
type idCodec struct {
	codecs []securecookie.Codec
	// recent verifies with the first key pair only, and refuses values
	// signed more than touchAfter ago: such a value is as good as a fresh
	// signature, so Save sends it back rather than signing the ID again.
	// It is nil when the codecs were given rather than made from key
	// pairs, or when touchAfter is under a second.
	recent *securecookie.SecureCookie
	// recentAge is the MaxAge of recent, in seconds.
	recentAge int
	// touchAfter is the Store's touch interval in whole seconds.
	touchAfter int
	// timestamped says every codec is a *securecookie.SecureCookie, whose
	// values carry their signing time.
	timestamped bool
}

// newIDCodec builds the codecs from securecookie key pairs. The IDs travel as
// raw bytes (securecookie.NopEncoder), which keeps cookies short.
func newIDCodec(keyPairs [][]byte, codecs []securecookie.Codec, touchAfter time.Duration) (*idCodec, error) {
	c := &idCodec{codecs: codecs, touchAfter: int(touchAfter / time.Second)}
	if len(codecs) > 0 {
		c.timestamped = true
		for _, codec := range codecs {
			if _, ok := codec.(*securecookie.SecureCookie); !ok {
				c.timestamped = false
			}
		}
		return c, nil
	}
	if len(keyPairs) == 0 {
		return nil, fmt.Errorf("%w: no securecookie key pairs given", ErrInvalidOption)
	}
	if len(keyPairs[0]) == 0 {
		return nil, fmt.Errorf("%w: the first hash key is empty", ErrInvalidOption)
	}
	for i := 1; i < len(keyPairs); i += 2 {
		if n := len(keyPairs[i]); n != 0 && n != 16 && n != 24 && n != 32 {
			return nil, fmt.Errorf("%w: block key %d is %d bytes; it must be 16, 24 or 32", ErrInvalidOption, i/2+1, n)
		}
	}
	c.codecs = rawIDCodecs(keyPairs...)
	c.timestamped = true
	if c.touchAfter > 0 {
		c.recent = rawIDCodecs(keyPairs[:min(2, len(keyPairs))]...)[0].(*securecookie.SecureCookie)
	}
	c.setMaxAge(int(defaultTTL / time.Second))
	return c, nil
}

// rawIDCodecs returns securecookie codecs of the key pairs that carry the
// ID as raw bytes.
func rawIDCodecs(keyPairs ...[]byte) []securecookie.Codec {
	codecs := securecookie.CodecsFromPairs(keyPairs...)
	for _, codec := range codecs {
		codec.(*securecookie.SecureCookie).SetSerializer(securecookie.NopEncoder{})
	}
	return codecs
}

// setMaxAge sets the default session lifetime, in seconds, that recent
// values are measured against. The codecs themselves refuse only values
// older than any cookie the Store can have issued (maxCookieAge, plus
// touchAfter for a reused signature): a session's own MaxAge may be longer
// than the default, and the Store checks a value's age against its row (see
// Store.New). An age of 0 turns the age check off, and with it the reuse of
// recent values.
func (c *idCodec) setMaxAge(seconds int) {
	limit := 0
	if seconds > 0 {
		limit = maxCookieAge + c.touchAfter
		if !c.timestamped {
			// The Store cannot read the signing time of such codecs'
			// values, so it cannot check it against the row: they keep
			// the default lifetime.
			limit = seconds
		}
	}
	for _, codec := range c.codecs {
		if sc, ok := codec.(*securecookie.SecureCookie); ok {
			sc.MaxAge(limit)
		}
	}
	if c.recent != nil {
		if seconds <= 0 {
			c.recent = nil
			return
		}
		c.recentAge = min(seconds, c.touchAfter)
		c.recent.MaxAge(c.recentAge)
	}
}

// signedAt returns when a value that decode verified was signed, in Unix
// seconds. ok is false when a codec is not a *securecookie.SecureCookie, as
// its values need not carry securecookie's timestamp.
func (c *idCodec) signedAt(value string) (signed int64, ok bool) {
	if !c.timestamped {
		return 0, false
	}
	return signingTime(value)
}

// encode signs id for the cookie called name.
func (c *idCodec) encode(name, id string) (string, error) {
	v, err := securecookie.EncodeMulti(name, []byte(id), c.codecs...)
	if err != nil {
		return "", fmt.Errorf("dynamostore: signing session cookie: %w", err)
	}
	return v, nil
}

// maxCookieValue bounds the cookie value decode will look at. A signed ID is
// about 120 bytes, an encrypted one about 200; anything far longer is hostile.
const maxCookieValue = 1024

// decode verifies a cookie value and returns the session ID it carries, its
// storage key, and whether the value was signed with the first key pair
// within the touch interval (see recent). Any failure wraps
// ErrInvalidCookie, and the securecookie error when there is one.
func (c *idCodec) decode(name, value string) (id, key string, recent bool, err error) {
	if len(value) > maxCookieValue {
		return "", "", false, fmt.Errorf("%w: value is %d bytes", ErrInvalidCookie, len(value))
	}
	var raw []byte
	if c.recent != nil && signedWithin(value, c.recentAge, time.Now()) && c.recent.Decode(name, value, &raw) == nil {
		recent = true
	} else if err := securecookie.DecodeMulti(name, value, &raw, c.codecs...); err != nil {
		return "", "", false, fmt.Errorf("%w: %w", ErrInvalidCookie, err)
	}
	if !validID(raw) {
		return "", "", false, fmt.Errorf("%w: malformed session ID", ErrInvalidCookie)
	}
	id, key = idAndKey(raw)
	return id, key, recent, nil
}

// signedWithin reports whether the cookie value says it was signed within
// the last seconds before now. It reads the timestamp securecookie puts at
// the start of a value (the base64 of "<Unix seconds>|…") without checking
// anything: it only spares a value that is not recent a verification by
// the codec of recent values, which would refuse it. Verifying is left to
// the codecs, and a value it cannot read counts as not recent.
func signedWithin(value string, seconds int, now time.Time) bool {
	signed, ok := signingTime(value)
	return ok && signed >= now.Unix()-int64(seconds)
}

// signingTime returns the signing time, in Unix seconds, that a securecookie
// value carries at its start (the base64 of "<Unix seconds>|…"). It checks
// nothing: the time can be trusted only once the value has been verified,
// as the signature covers it. ok is false when the value does not start
// with a timestamp.
func signingTime(value string) (signed int64, ok bool) {
	const prefix = 16 // base64 of 12 bytes: a 10- or 11-digit timestamp and its '|'
	if len(value) < prefix {
		return 0, false
	}
	var buf [12]byte
	n, err := base64.URLEncoding.Decode(buf[:], []byte(value[:prefix]))
	if err != nil {
		return 0, false
	}
	for i, c := range buf[:n] {
		switch {
		case c == '|' && i > 0:
			return signed, true
		case '0' <= c && c <= '9':
			signed = signed*10 + int64(c-'0')
		default:
			return 0, false
		}
	}
	return 0, false
}
