package dynamostore

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
)

// Defaults, as in connect-dynamodb-session.
const (
	// defaultTTL is the session lifetime when the cookie has no MaxAge.
	defaultTTL = 14 * 24 * time.Hour
	// defaultTouchAfter is how long an unchanged session goes without
	// being written again.
	defaultTouchAfter = 10 * time.Second
)

// Option configures a Store. Options are applied in order; NewStore
// validates the result.
type Option func(*settings) error

type settings struct {
	endpoint       string
	awsConfig      *aws.Config
	client         dynamoAPI
	backend        Backend
	ttl            time.Duration
	touchAfter     time.Duration
	autoCreate     bool
	table          TableOptions
	consistentRead bool
	logger         *slog.Logger
	keyPairs       [][]byte
	codecs         []securecookie.Codec
	cookie         *sessions.Options
	serializer     Serializer
	clock          func() time.Time
	reap           ReaperOptions
	locking        bool
	checkTimeout   time.Duration // the table check's; 0 means checkTimeout
}

// WithEndpoint overrides the DynamoDB endpoint of the client the Store
// builds, for DynamoDB Local for instance ("http://127.0.0.1:8000"): an
// absolute http or https URL, or NewStore fails with ErrInvalidOption; ""
// keeps the default, AWS's endpoint for the region. For an endpoint on the loopback
// interface, without WithAWSConfig, the Store uses static dummy
// credentials ("local", which DynamoDB Local accepts) unless
// AWS_ACCESS_KEY_ID is set, and region us-east-1 unless the environment
// or shared config names one. With WithAWSConfig, credentials and region
// come from that aws.Config alone.
func WithEndpoint(endpoint string) Option {
	return func(s *settings) error {
		if endpoint == "" {
			return nil
		}
		u, err := url.Parse(endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%w: endpoint %q is not an http or https URL", ErrInvalidOption, endpoint)
		}
		s.endpoint = endpoint
		return nil
	}
}

// WithAWSConfig builds the DynamoDB client from cfg instead of from the
// default configuration (config.LoadDefaultConfig: the environment and the
// shared config files). Region, credentials, retries (RetryMaxAttempts,
// Retryer) and the HTTP client all come from cfg. Default: the default
// configuration, whose retryer tries a call up to 4 times.
func WithAWSConfig(cfg aws.Config) Option {
	return func(s *settings) error { s.awsConfig = &cfg; return nil }
}

// WithClient uses a pre-configured DynamoDB client (one wrapped for
// tracing, or with its own retryer and timeouts); WithEndpoint and
// WithAWSConfig are then ignored. Default: a client built from the default
// AWS configuration, with room for 256 idle connections.
func WithClient(c *dynamodb.Client) Option {
	return func(s *settings) error {
		if c == nil {
			return fmt.Errorf("%w: WithClient(nil)", ErrInvalidOption)
		}
		s.client = c
		return nil
	}
}

// WithBackend stores sessions in b instead of DynamoDB. The table name,
// client and table options are then unused.
func WithBackend(b Backend) Option {
	return func(s *settings) error {
		if b == nil {
			return fmt.Errorf("%w: WithBackend(nil)", ErrInvalidOption)
		}
		s.backend = b
		return nil
	}
}

// WithTTL sets how long a session lives when its cookie has no MaxAge, and
// the default cookie MaxAge. It must be at least one second and at most 400
// days, the longest cookie lifetime browsers keep. Default 14 days.
func WithTTL(d time.Duration) Option {
	return func(s *settings) error {
		if d < time.Second || d > maxCookieAge*time.Second {
			return fmt.Errorf("%w: TTL %v must be from 1s to 400 days", ErrInvalidOption, d)
		}
		s.ttl = d
		return nil
	}
}

// WithTouchAfter sets how long an unchanged session goes without being
// written: within it, Save of an unchanged session makes no DynamoDB call;
// after it, Save only extends the expiry. 0 extends the expiry on every
// Save. It must be at most half the session lifetime (the default cookie
// MaxAge, or the TTL), or NewStore fails: a session then still lives at
// least half its lifetime after its last request. For a session whose own
// MaxAge is shorter, Save applies at most half that session's lifetime.
// Default 10 seconds.
func WithTouchAfter(d time.Duration) Option {
	return func(s *settings) error {
		if d < 0 {
			return fmt.Errorf("%w: negative touchAfter %v", ErrInvalidOption, d)
		}
		s.touchAfter = d
		return nil
	}
}

// WithAutoCreate makes NewStore create the table when it is missing and
// enable TTL on it, through EnsureTable with opts (provisioned 5/5 read and
// write units unless opts says otherwise). An existing table the store
// cannot use (see EnsureTable) makes NewStore fail with an error wrapping
// ErrInvalidOption. Default: off, and NewStore only checks the table (see
// NewStore).
func WithAutoCreate(opts TableOptions) Option {
	return func(s *settings) error {
		if opts.ReadCapacity < 0 || opts.WriteCapacity < 0 || opts.WaitTimeout < 0 {
			return fmt.Errorf("%w: negative table capacity or wait timeout", ErrInvalidOption)
		}
		s.autoCreate = true
		s.table = opts
		return nil
	}
}

// WithConsistentRead chooses strongly consistent reads (true, the default)
// or eventually consistent ones, which cost half the read units but may
// miss a write made a moment earlier through another instance.
func WithConsistentRead(consistent bool) Option {
	return func(s *settings) error { s.consistentRead = consistent; return nil }
}

// WithLogger sends the Store's error and debug logs to l. The Store never
// logs session IDs, cookies or values. Default: no logging.
func WithLogger(l *slog.Logger) Option {
	return func(s *settings) error {
		if l == nil {
			return fmt.Errorf("%w: WithLogger(nil)", ErrInvalidOption)
		}
		s.logger = l
		return nil
	}
}

// WithKeyPairs sets the securecookie keys that sign (and, with a block key,
// encrypt) the session cookie, as pairs of hash key and block key (nil for
// no encryption), as in sessions.NewCookieStore. The first pair signs; all
// pairs verify, so new keys go first and retired ones after them. Every
// hash key must be at least 32 random bytes and every block key 16, 24 or
// 32 bytes, or NewStore fails with ErrInvalidOption; make them with
// `openssl rand -hex 32` (or `dynamostore keygen`) and decode the hex.
// Either this or WithCodecs is required.
func WithKeyPairs(keyPairs ...[]byte) Option {
	return func(s *settings) error {
		if len(keyPairs) == 0 {
			return fmt.Errorf("%w: WithKeyPairs needs at least a hash key", ErrInvalidOption)
		}
		s.keyPairs = keyPairs
		return nil
	}
}

// WithCodecs signs the session cookie with the given securecookie codecs
// instead of codecs made from key pairs: the first signs, all verify. Each
// must be able to sign (not nil, with its keys), or NewStore fails with
// ErrInvalidOption. NewStore sets the MaxAge of each
// *securecookie.SecureCookie among them (to 400 days plus touchAfter: the
// Store checks a cookie's age against its row itself), so give the Store
// codecs of its own, not ones that sign other cookies too.
func WithCodecs(codecs ...securecookie.Codec) Option {
	return func(s *settings) error {
		if len(codecs) == 0 {
			return fmt.Errorf("%w: WithCodecs needs at least one codec", ErrInvalidOption)
		}
		s.codecs = codecs
		return nil
	}
}

// WithCookieOptions sets the default cookie options of new sessions.
// Default: Path "/", HttpOnly, SameSite Lax, MaxAge the TTL in seconds. A
// MaxAge over 400 days (the longest cookie lifetime browsers keep) is an
// error.
func WithCookieOptions(o sessions.Options) Option {
	return func(s *settings) error { s.cookie = &o; return nil }
}

// WithSerializer sets how session Values are encoded. Default
// GobSerializer.
func WithSerializer(sz Serializer) Option {
	return func(s *settings) error {
		if sz == nil {
			return fmt.Errorf("%w: WithSerializer(nil)", ErrInvalidOption)
		}
		s.serializer = sz
		return nil
	}
}

// WithOptimisticLocking keeps a version number on each session (attribute
// "ver") and makes Save of changed values fail with ErrConflict when
// another request wrote the session since this one loaded it, so no update
// is lost silently. Default off: the last writer wins, though a deleted
// session is never brought back either way. The check needs Save to be
// given the request the session was loaded with. With the DynamoDB
// backend, Regenerate deletes the old row only at the version loaded
// (ErrConflict otherwise); a Backend of your own, or one wrapping the
// DynamoDB backend, has its old row deleted whatever its version.
func WithOptimisticLocking(on bool) Option {
	return func(s *settings) error { s.locking = on; return nil }
}

// NewStore returns a Store on the named DynamoDB table. It validates every
// option and returns an error wrapping ErrInvalidOption when one is wrong.
//
// Unless WithBackend is given, it then checks the table with one
// DescribeTable: a table that does not exist in the region, has another
// key schema, or that the credentials cannot reach (none found, or
// refused) makes NewStore fail with an error that names the cause and the
// fix, wrapping ErrInvalidOption. With the reaper off, one
// DescribeTimeToLive more logs a warning when the table's TTL is off too.
// A check that cannot be made (no permission to describe the table;
// DynamoDB throttling, failing or not answering within 5 seconds) is logged
// as a warning and the Store starts unchecked, so that an app can start,
// and answer 503, while DynamoDB is away. With WithAutoCreate, EnsureTable's
// creation and checks take the place of that check.
//
// ctx bounds the construction only: loading the AWS configuration, the
// check and, with WithAutoCreate, creating the table. Unless
// ReaperOptions.Interval is negative, the Store runs a reaper goroutine
// until Close.
func NewStore(ctx context.Context, table string, opts ...Option) (*Store, error) {
	cfg := settings{
		ttl:            defaultTTL,
		touchAfter:     defaultTouchAfter,
		consistentRead: true,
		serializer:     GobSerializer{},
		clock:          time.Now,
	}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	codec, err := newIDCodec(cfg.keyPairs, cfg.codecs, cfg.touchAfter)
	if err != nil {
		return nil, err
	}
	cookie := sessions.Options{Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: int(cfg.ttl / time.Second)}
	if cfg.cookie != nil {
		cookie = *cfg.cookie
	}
	if err := validateAges(cookie.MaxAge, cfg.ttl, cfg.touchAfter); err != nil {
		return nil, err
	}
	// Every option is checked before the first call to DynamoDB.
	if cfg.backend == nil {
		if cfg.backend, err = defaultBackend(ctx, table, &cfg); err != nil {
			return nil, err
		}
	} else if cfg.autoCreate {
		return nil, fmt.Errorf("%w: WithAutoCreate does not apply to a custom Backend", ErrInvalidOption)
	}
	s := &Store{
		Options:    &cookie,
		backend:    cfg.backend,
		codec:      codec,
		serializer: cfg.serializer,
		ttl:        cfg.ttl,
		touchAfter: cfg.touchAfter,
		locking:    cfg.locking,
		skew:       cfg.reap.grace(),
		log:        cfg.logger,
		now:        cfg.clock,
	}
	s.MaxAge(cookie.MaxAge)
	s.reaper = startReaper(s, cfg.reap)
	return s, nil
}

// validateAges checks the default cookie MaxAge and the TTL against each
// other and against touchAfter: a touchAfter longer than half the session
// lifetime would let an active session expire between two writes.
func validateAges(maxAge int, ttl, touchAfter time.Duration) error {
	if maxAge > maxCookieAge {
		return fmt.Errorf("%w: cookie MaxAge %ds is over 400 days, the longest cookie lifetime browsers keep", ErrInvalidOption, maxAge)
	}
	for _, age := range []struct {
		name string
		d    time.Duration
	}{{"TTL", ttl}, {"cookie MaxAge", lifetime(maxAge, ttl)}} {
		if touchAfter > age.d/2 {
			return fmt.Errorf("%w: touchAfter %v must be at most half the %s %v, or an active session can expire between writes", ErrInvalidOption, touchAfter, age.name, age.d)
		}
	}
	return nil
}

// WithReaper configures the reaper that deletes expired rows: how often the
// Store's goroutine runs a pass, and how each pass (the goroutine's, Reap's,
// or a Backend's Reap called directly) scans and deletes. See
// ReaperOptions; the zero value is the default. It is validated by
// NewStore. A later WithReaper replaces the options of an earlier one as a
// whole.
func WithReaper(o ReaperOptions) Option {
	return func(s *settings) error {
		if err := o.validate(); err != nil {
			return err
		}
		s.reap.apply(o)
		return nil
	}
}

// withClock sets the Store's source of the current time, for tests.
func withClock(now func() time.Time) Option {
	return func(s *settings) error {
		if now == nil {
			return fmt.Errorf("%w: nil clock", ErrInvalidOption)
		}
		s.clock = now
		return nil
	}
}

// withAPI makes the Store's DynamoDB backend use c, a client or a fake, for
// tests.
func withAPI(c dynamoAPI) Option {
	return func(s *settings) error { s.client = c; return nil }
}
