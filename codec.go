package dynamostore

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/dynamostore/dynamostore/internal/tableschema"
	"github.com/gorilla/securecookie"
)

// idBytes is the number of random bytes in a session ID: 256 bits.
const idBytes = 32

// idLen is the length of a session ID as it travels in a cookie: idBytes in
// unpadded URL-safe base64.
var idLen = base64.RawURLEncoding.EncodedLen(idBytes)

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

// minHashKey is the shortest hash (signing) key accepted: 32 bytes, the
// size of the HMAC-SHA256 securecookie signs with.
const minHashKey = 32

// newIDCodec builds the codecs from securecookie key pairs. The IDs travel as
// raw bytes (securecookie.NopEncoder), which keeps cookies short.
func newIDCodec(keyPairs [][]byte, codecs []securecookie.Codec, touchAfter time.Duration) (*idCodec, error) {
	c := &idCodec{codecs: codecs, touchAfter: int(touchAfter / time.Second)}
	if len(codecs) > 0 {
		c.timestamped = true
		for i, codec := range codecs {
			if err := checkCodec(codec); err != nil {
				return nil, fmt.Errorf("%w: codec %d of WithCodecs %w", ErrInvalidOption, i+1, err)
			}
			if _, ok := codec.(*securecookie.SecureCookie); !ok {
				c.timestamped = false
			}
		}
		return c, nil
	}
	if len(keyPairs) == 0 {
		return nil, fmt.Errorf("%w: no securecookie key pairs given", ErrInvalidOption)
	}
	for i := 0; i < len(keyPairs); i += 2 {
		if n := len(keyPairs[i]); n < minHashKey {
			return nil, fmt.Errorf("%w: hash key %d is %d bytes; it must be at least %d random bytes (`openssl rand -hex 32`, or `dynamostore keygen`)", ErrInvalidOption, i/2+1, n, minHashKey)
		}
	}
	for i := 1; i < len(keyPairs); i += 2 {
		if n := len(keyPairs[i]); keyPairs[i] != nil && n != 16 && n != 24 && n != 32 {
			return nil, fmt.Errorf("%w: block key %d is %d bytes; it must be 16, 24 or 32 (AES-128, -192 or -256), or nil for no encryption", ErrInvalidOption, i/2+1, n)
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

// checkCodec makes sure a codec given to WithCodecs can sign a value: it
// is not nil, and it has the keys it needs (securecookie keeps a key
// error for every later call). A value it refuses for its length only
// (MaxLength) is no error here.
func checkCodec(codec securecookie.Codec) (err error) {
	if sc, ok := codec.(*securecookie.SecureCookie); codec == nil || ok && sc == nil {
		return errors.New("is nil")
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panics: %v", p)
		}
	}()
	_, err = codec.Encode("dynamostore", []byte("check"))
	var sce securecookie.Error
	if errors.As(err, &sce) && sce.IsUsage() {
		return fmt.Errorf("cannot sign: %w", err)
	}
	return nil
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
		return "", fmt.Errorf("%w: signing the session cookie: %w", ErrEncode, err)
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
