package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynamostore/dynamostore/internal/tableschema"
	"github.com/gorilla/securecookie"
)

// Environment variables that hold the cookie keys, as the key files would.
const (
	hashKeyEnv  = "DYNAMOSTORE_HASH_KEY"
	blockKeyEnv = "DYNAMOSTORE_BLOCK_KEY"
)

// deleteFlags are the flags of the delete command.
type deleteFlags struct {
	isKey        bool
	cookieName   string
	hashKeyFile  string
	blockKeyFile string
	keyEncoding  string
}

func setupDelete(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
	var f deleteFlags
	fs.BoolVar(&f.isKey, "key", false, "the argument is a storage key (the table's \"id\" attribute) rather than a session ID")
	fs.StringVar(&f.cookieName, "name", "session", "the `name` of the session cookie, which its signature covers")
	fs.StringVar(&f.hashKeyFile, "hash-key-file", "", "`file` holding the cookie hash key, to verify a cookie value (default $"+hashKeyEnv+")")
	fs.StringVar(&f.blockKeyFile, "block-key-file", "", "`file` holding the cookie block key, for encrypted cookies (default $"+blockKeyEnv+")")
	fs.StringVar(&f.keyEncoding, "key-encoding", "hex", "the `encoding` of the key files and variables: hex (as dynamostore keygen prints), base64 or raw")
	yes := yesFlag(fs)
	return func(ctx context.Context, args []string) error {
		if len(args) != 1 {
			return usagef("delete takes one argument, got %d: a session ID, a cookie value, or - to read it from standard input (the table is --table; write -- before an argument that begins with -)", len(args))
		}
		arg := args[0]
		if arg == "-" {
			var err error
			if arg, err = readLine(e.stdin); err != nil {
				return err
			}
		}
		table, err := e.tableName()
		if err != nil {
			return err
		}
		key, err := storageKeyOf(arg, &f)
		if err != nil {
			return err
		}
		if err := e.confirm(ctx, "delete", *yes, fmt.Sprintf("delete the session stored under %s=%s from table %s?", tableschema.KeyAttr, key, table)); err != nil {
			return err
		}
		client, err := e.client(ctx)
		if err != nil {
			return err
		}
		_, err = client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
			TableName:                aws.String(table),
			Key:                      map[string]types.AttributeValue{tableschema.KeyAttr: &types.AttributeValueMemberS{Value: key}},
			ConditionExpression:      aws.String("attribute_exists(#id)"),
			ExpressionAttributeNames: map[string]string{"#id": tableschema.KeyAttr},
		})
		var gone *types.ConditionalCheckFailedException
		switch {
		case errors.As(err, &gone):
			return fmt.Errorf("no session stored under %s=%s in table %s (already deleted, or never saved)", tableschema.KeyAttr, key, table)
		case err != nil:
			return tableError(table, err)
		}
		fmt.Fprintf(e.stdout, "deleted the session stored under %s=%s\n", tableschema.KeyAttr, key)
		return nil
	}
}

// readLine reads the next line of r, for an argument too sensitive for
// the command line or the answer to a confirmation.
func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading standard input: %w", err)
	}
	return strings.TrimSpace(line), nil
}

// sessionIDLen is the length of a session ID and of a storage key: 32
// bytes in unpadded URL-safe base64.
var sessionIDLen = base64.RawURLEncoding.EncodedLen(32)

// isBase64Key reports whether s looks like a session ID or a storage key.
func isBase64Key(s string) bool {
	if len(s) != sessionIDLen {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == 32
}

// storageKeyOf returns the storage key that arg designates: arg itself
// with --key, the key of arg when it is a session ID, or the key of the ID
// that arg carries when it is a signed cookie value.
func storageKeyOf(arg string, f *deleteFlags) (string, error) {
	switch {
	case arg == "":
		return "", usagef("empty argument")
	case f.isKey:
		if !isBase64Key(arg) {
			return "", usagef("%q is not a storage key: 43 characters of unpadded base64url", arg)
		}
		return arg, nil
	case isBase64Key(arg):
		return tableschema.StorageKey(arg), nil
	}
	id, err := decodeCookie(arg, f)
	if err != nil {
		return "", err
	}
	return tableschema.StorageKey(id), nil
}

// decodeCookie verifies a cookie value with the configured keys and returns
// the session ID it carries. The cookie's age is not checked: an old
// session may be deleted as well as a young one.
func decodeCookie(value string, f *deleteFlags) (string, error) {
	hashKey, err := loadKey(f.hashKeyFile, hashKeyEnv, f.keyEncoding)
	if err != nil {
		return "", err
	}
	if hashKey == nil {
		return "", usagef("the argument is not a session ID, and a cookie value needs the hash key: use --hash-key-file or set %s", hashKeyEnv)
	}
	blockKey, err := loadKey(f.blockKeyFile, blockKeyEnv, f.keyEncoding)
	if err != nil {
		return "", err
	}
	codec := securecookie.New(hashKey, blockKey)
	codec.SetSerializer(securecookie.NopEncoder{})
	codec.MaxAge(0)
	codec.MaxLength(0)
	var raw []byte
	if err := codec.Decode(f.cookieName, value, &raw); err != nil {
		return "", fmt.Errorf("the cookie value does not verify as cookie %q with these keys (check --name, the keys and --key-encoding): %w", f.cookieName, err)
	}
	if !isBase64Key(string(raw)) {
		return "", errors.New("the cookie verifies but does not carry a dynamostore session ID")
	}
	return string(raw), nil
}

// loadKey reads a key from file or, without one, from the environment
// variable env, and decodes it. It returns nil when neither is set.
func loadKey(file, env, encoding string) ([]byte, error) {
	var data []byte
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("reading key: %w", err)
		}
		data = b
	case os.Getenv(env) != "":
		data = []byte(os.Getenv(env))
	default:
		return nil, nil
	}
	var key []byte
	var err error
	switch encoding {
	case "raw":
		key = data
	case "hex":
		key, err = hex.DecodeString(strings.TrimSpace(string(data)))
	case "base64":
		s := strings.TrimRight(strings.TrimSpace(string(data)), "=")
		if key, err = base64.RawStdEncoding.DecodeString(s); err != nil {
			key, err = base64.RawURLEncoding.DecodeString(s)
		}
	default:
		return nil, usagef("--key-encoding must be hex, base64 or raw, not %q", encoding)
	}
	if err != nil || len(key) == 0 {
		// Never echo the key material itself.
		where := env
		if file != "" {
			where = file
		}
		return nil, usagef("the key in %s is not valid %s", where, encoding)
	}
	return key, nil
}
