// Package setup reads the configuration the framework examples share from
// the environment, so that each example shows only what is particular to
// its framework.
package setup

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"

	"github.com/dynamostore/dynamostore"
)

// Environment variables the examples read.
const (
	// TableEnv names the session table; default "sessions".
	TableEnv = "DYNAMOSTORE_TABLE"
	// HashKeyEnv holds the cookie signing key in hex: 32 or 64 random
	// bytes, e.g. from `openssl rand -hex 32`. Required.
	HashKeyEnv = "SESSION_HASH_KEY"
	// EndpointEnv, when set, points the store at another endpoint such as
	// DynamoDB Local ("http://127.0.0.1:8000").
	EndpointEnv = "DYNAMODB_ENDPOINT"
	// AddrEnv is the address to listen on; default "127.0.0.1:8080".
	AddrEnv = "ADDR"
)

// Table returns the session table name from DYNAMOSTORE_TABLE, or
// "sessions".
func Table() string {
	return orDefault(os.Getenv(TableEnv), "sessions")
}

// Addr returns the listening address from ADDR, or "127.0.0.1:8080".
func Addr() string {
	return orDefault(os.Getenv(AddrEnv), "127.0.0.1:8080")
}

// Store returns the Store the environment describes: on table Table(),
// created on demand when missing, signing cookies with the key from
// SESSION_HASH_KEY and, when DYNAMODB_ENDPOINT is set, talking to that
// endpoint. The region and credentials come from the usual AWS
// configuration (AWS_REGION, AWS_PROFILE, ...). Close it when done.
func Store(ctx context.Context) (*dynamostore.Store, error) {
	opts, err := options()
	if err != nil {
		return nil, err
	}
	opts = append(opts, dynamostore.WithAutoCreate(dynamostore.TableOptions{OnDemand: true}))
	return dynamostore.NewStore(ctx, Table(), opts...)
}

func options() ([]dynamostore.Option, error) {
	key, err := hex.DecodeString(os.Getenv(HashKeyEnv))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", HashKeyEnv, err)
	}
	if len(key) < 32 {
		return nil, fmt.Errorf("%s must hold at least 32 bytes in hex (try: openssl rand -hex 32)", HashKeyEnv)
	}
	opts := []dynamostore.Option{dynamostore.WithKeyPairs(key)}
	if ep := os.Getenv(EndpointEnv); ep != "" {
		opts = append(opts, dynamostore.WithEndpoint(ep))
	}
	return opts, nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
