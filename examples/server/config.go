package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dynamostore/dynamostore/examples/internal/ddb"
)

// Environment variables read by loadConfig. A flag given on the command line
// wins over its variable.
const (
	envAddr         = "EXAMPLE_ADDR"
	envTable        = "EXAMPLE_TABLE"
	envRegion       = "AWS_REGION"
	envEndpoint     = "DYNAMODB_ENDPOINT"
	envCreateTable  = "EXAMPLE_CREATE_TABLE"
	envReapInterval = "EXAMPLE_REAP_INTERVAL"
	envTouchAfter   = "EXAMPLE_TOUCH_AFTER"
	envKeyFile      = "EXAMPLE_KEY_FILE"
	envSessionKey   = "EXAMPLE_SESSION_KEY"
	envSecureCookie = "EXAMPLE_SECURE_COOKIE"
)

// Defaults of the settings.
const (
	defaultAddr    = "127.0.0.1:8080"
	defaultTable   = "dynamostore-example"
	defaultKeyFile = ".example-session-key"
	// defaultReapInterval and defaultTouchAfter are dynamostore's own
	// defaults for ReaperOptions.Interval and WithTouchAfter.
	defaultReapInterval = 5 * time.Minute
	defaultTouchAfter   = 10 * time.Second
	// hashKeyLen is the length of a generated cookie signing key.
	hashKeyLen = 32
)

// config is the example server's configuration.
type config struct {
	addr         string
	table        string
	region       string
	endpoint     string
	createTable  bool
	reapInterval time.Duration
	touchAfter   time.Duration
	keyFile      string
	sessionKey   string
	secureCookie bool
}

// usageHeader is printed above the flag list by -h.
const usageHeader = `usage: server [flags]

A small web app whose sessions live in DynamoDB through dynamostore: a visit
counter, sign-in and sign-out, flash messages and a JSON view of the session.

Against DynamoDB Local (scripts/run-example does all of this for you):

    server -endpoint http://127.0.0.1:8000 -create-table

Against AWS, with credentials from the usual places (environment, ~/.aws):

    server -region eu-west-1 -table my-sessions -create-table

Every flag can also be set by the environment variable named with it; the
flag wins. Flags:
`

// loadConfig parses args, falling back to the variables getenv returns. It
// returns flag.ErrHelp after printing the usage for -h.
func loadConfig(args []string, getenv func(string) string, output io.Writer) (config, error) {
	var cfg config
	flags := flag.NewFlagSet("server", flag.ContinueOnError)
	flags.SetOutput(output)
	flags.Usage = func() {
		fmt.Fprint(output, usageHeader)
		flags.PrintDefaults()
	}
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	envBool := func(name string, def bool) (bool, error) {
		v := getenv(name)
		if v == "" {
			return def, nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, fmt.Errorf("%s=%q: want true or false", name, v)
		}
		return b, nil
	}
	envDuration := func(name string, def time.Duration) (time.Duration, error) {
		v := getenv(name)
		if v == "" {
			return def, nil
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			return 0, fmt.Errorf("%s=%q: want a duration such as 30s or 5m", name, v)
		}
		return d, nil
	}

	createTable, err := envBool(envCreateTable, false)
	if err != nil {
		return cfg, err
	}
	secureCookie, err := envBool(envSecureCookie, false)
	if err != nil {
		return cfg, err
	}
	reapInterval, err := envDuration(envReapInterval, defaultReapInterval)
	if err != nil {
		return cfg, err
	}
	touchAfter, err := envDuration(envTouchAfter, defaultTouchAfter)
	if err != nil {
		return cfg, err
	}

	flags.StringVar(&cfg.addr, "addr", env(envAddr, defaultAddr),
		"address to listen on ($"+envAddr+")")
	flags.StringVar(&cfg.table, "table", env(envTable, defaultTable),
		"DynamoDB table that holds the sessions ($"+envTable+")")
	flags.StringVar(&cfg.region, "region", getenv(envRegion),
		"AWS region; with -endpoint it defaults to "+ddb.LocalRegion+" ($"+envRegion+")")
	flags.StringVar(&cfg.endpoint, "endpoint", getenv(envEndpoint),
		"DynamoDB endpoint, e.g. http://127.0.0.1:8000 for DynamoDB Local; empty means AWS ($"+envEndpoint+")")
	flags.BoolVar(&cfg.createTable, "create-table", createTable,
		"create the table (and enable TTL on it) when it does not exist ($"+envCreateTable+")")
	flags.DurationVar(&cfg.reapInterval, "reap-interval", reapInterval,
		"how often expired sessions are deleted; 0 leaves it to DynamoDB's TTL ($"+envReapInterval+")")
	flags.DurationVar(&cfg.touchAfter, "touch-after", touchAfter,
		"how long an unchanged session goes without a write; 0 writes on every request ($"+envTouchAfter+")")
	flags.StringVar(&cfg.keyFile, "key-file", env(envKeyFile, defaultKeyFile),
		"file holding the cookie signing key in hex; created with a random key when missing ($"+envKeyFile+");\n"+
			"$"+envSessionKey+" (hex or base64, at least 32 bytes) is used instead when set")
	flags.BoolVar(&cfg.secureCookie, "secure-cookie", secureCookie,
		"mark the session cookie Secure (set it when the app is served over HTTPS) ($"+envSecureCookie+")")
	cfg.sessionKey = getenv(envSessionKey)

	if err := flags.Parse(args); err != nil {
		return cfg, err
	}
	if flags.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q (see -h)", flags.Arg(0))
	}
	if cfg.reapInterval != 0 && cfg.reapInterval < time.Second {
		return cfg, fmt.Errorf("-reap-interval %v: want 0 (off) or at least 1s", cfg.reapInterval)
	}
	if cfg.touchAfter < 0 {
		return cfg, fmt.Errorf("-touch-after %v: must not be negative", cfg.touchAfter)
	}
	if cfg.sessionKey == "" && cfg.keyFile == "" {
		return cfg, fmt.Errorf("no cookie signing key: give -key-file or set %s", envSessionKey)
	}
	return cfg, nil
}

// loadKey returns the cookie signing key: from $EXAMPLE_SESSION_KEY (hex or
// base64) when set, else from the key file, which is created with a fresh
// random key when it does not exist yet, so that sessions survive a restart.
func loadKey(cfg config, log *slog.Logger) ([]byte, error) {
	if cfg.sessionKey != "" {
		key, err := decodeKey(cfg.sessionKey)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", envSessionKey, err)
		}
		return key, nil
	}
	data, err := os.ReadFile(cfg.keyFile)
	switch {
	case err == nil:
		key, err := decodeKey(string(data))
		if err != nil {
			return nil, fmt.Errorf("key file %s: %w", cfg.keyFile, err)
		}
		return key, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("reading key file: %w", err)
	}
	key := make([]byte, hashKeyLen)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generating a cookie signing key: %w", err)
	}
	if dir := filepath.Dir(cfg.keyFile); dir != "." {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("creating key file directory: %w", err)
		}
	}
	// O_EXCL: when two servers start at once, the second one reads the
	// first one's key instead of replacing it.
	f, err := os.OpenFile(cfg.keyFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return loadKey(cfg, log)
	}
	if err != nil {
		return nil, fmt.Errorf("creating key file: %w", err)
	}
	_, err = f.WriteString(hex.EncodeToString(key) + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("writing key file: %w", err)
	}
	log.Info("generated a new cookie signing key", "file", cfg.keyFile)
	return key, nil
}

// decodeKey reads a key written in hex or base64 (standard or URL-safe,
// padded or not). It must be at least 32 bytes long.
func decodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	key, err := hex.DecodeString(s)
	if err != nil {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if key, err = enc.DecodeString(s); err == nil {
				break
			}
		}
	}
	if err != nil {
		return nil, errors.New("not hex or base64")
	}
	if len(key) < hashKeyLen {
		return nil, fmt.Errorf("key is %d bytes; want at least %d", len(key), hashKeyLen)
	}
	return key, nil
}
