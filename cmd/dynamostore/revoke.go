package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/aws/smithy-go"
	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/internal/tableschema"
)

func setupRevokeOwner(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
	yes := yesFlag(fs)
	return func(ctx context.Context, args []string) error {
		if len(args) != 1 {
			return usagef("revoke-owner takes one argument, got %d: the owner, or - to read it from standard input (the table is --table)", len(args))
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
		backend, err := dynamostore.NewDynamoDBBackend(client, table, dynamostore.DynamoDBOptions{})
		if err != nil {
			return usageIfInvalid(err)
		}
		n, err := backend.DeleteOwner(ctx, owner)
		var api smithy.APIError
		if errors.As(err, &api) && api.ErrorCode() == "ValidationException" && strings.Contains(api.ErrorMessage(), "index") {
			return fmt.Errorf("table %s has no index %s: add it with create-table --owner-index", table, tableschema.OwnerIndex)
		}
		if err != nil {
			return fmt.Errorf("after deleting %d sessions: %w", n, tableError(table, err))
		}
		plural := "s"
		if n == 1 {
			plural = ""
		}
		fmt.Fprintf(e.stdout, "deleted %d session%s\n", n, plural)
		return nil
	}
}

// usageIfInvalid turns an error wrapping dynamostore.ErrInvalidOption (an
// invalid table name, say) into a usage error, exit status 2.
func usageIfInvalid(err error) error {
	if errors.Is(err, dynamostore.ErrInvalidOption) {
		return usagef("%v", err)
	}
	return err
}
