package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go"
	"github.com/dynamostore/dynamostore"
)

func setupRevokeOwner(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
	yes := yesFlag(fs)
	return func(ctx context.Context, args []string) error {
		if len(args) != 1 {
			return usagef("revoke-owner takes one argument: the owner, or - to read it from standard input")
		}
		owner := args[0]
		if owner == "-" {
			var err error
			if owner, err = readLine(e.stdin); err != nil {
				return err
			}
		}
		if owner == "" {
			return usagef("empty owner")
		}
		table, err := e.tableName()
		if err != nil {
			return err
		}
		if err := e.confirm(ctx, "revoke-owner", *yes, fmt.Sprintf("delete every session of owner %q from table %s?", owner, table)); err != nil {
			return err
		}
		client, err := e.client(ctx)
		if err != nil {
			return err
		}
		store, err := openStore(ctx, client, table)
		if err != nil {
			return err
		}
		defer store.Close()
		n, err := store.RevokeOwner(ctx, owner)
		var api smithy.APIError
		if errors.As(err, &api) && api.ErrorCode() == "ValidationException" && strings.Contains(api.ErrorMessage(), "index") {
			return fmt.Errorf("table %s has no index %s: add it with create-table --owner-index", table, dynamostore.OwnerIndexName)
		}
		if err != nil {
			return fmt.Errorf("after deleting %d sessions: %w", n, tableError(table, err))
		}
		fmt.Fprintf(e.stdout, "deleted %d sessions\n", n)
		return nil
	}
}

// openStore returns a Store on table through client, with no reaper
// goroutine and the given options. The command line makes no cookies, but
// a Store needs a signing key all the same: it gets a throwaway one.
func openStore(ctx context.Context, client *dynamodb.Client, table string, opts ...dynamostore.Option) (*dynamostore.Store, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	base := []dynamostore.Option{
		dynamostore.WithClient(client),
		dynamostore.WithKeyPairs(key),
		dynamostore.WithCleanupInterval(0),
	}
	store, err := dynamostore.NewStore(ctx, table, append(base, opts...)...)
	if errors.Is(err, dynamostore.ErrInvalidOption) {
		return nil, usageError{err.Error()}
	}
	return store, err
}
