package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"strings"
)

// keyLen is the length in bytes of the keys keygen makes: a hash key of
// 32 bytes, the least the store takes, and a block key of 32 bytes, which
// selects AES-256.
const keyLen = 32

// keygenDetails is the help of keygen after its summary.
const keygenDetails = `The first line is a new 32-byte hash key, which signs the session cookie. With --block, a second line holds a new 32-byte block key, which also encrypts it (AES-256). Both come from crypto/rand, written in hex as 64 characters. Decode each line with hex.DecodeString and pass the keys as dynamostore.WithKeyPairs(hashKey, blockKey).

A file holding one such line is what examples/server reads as its key file, and what the delete command reads from --hash-key-file and --block-key-file (hex is its default --key-encoding). Keys are secrets: create such files private, e.g. (umask 077; dynamostore keygen > hash.key).

openssl rand -hex 32 prints a key of the same form, and is an alternative to this command.`

func setupKeygen(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
	block := fs.Bool("block", false, "also print a block (encryption) key, on a second line after the hash (signing) key")
	return func(_ context.Context, args []string) error {
		if len(args) > 0 {
			return usagef("keygen takes no arguments, got %q", args)
		}
		n := 1
		if *block {
			n = 2
		}
		var out strings.Builder
		for range n {
			key, err := newKey()
			if err != nil {
				return err
			}
			out.WriteString(hex.EncodeToString(key) + "\n")
		}
		_, err := io.WriteString(e.stdout, out.String())
		return err
	}
}

// newKey returns keyLen random bytes from crypto/rand.
func newKey() ([]byte, error) {
	key := make([]byte, keyLen)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("reading random bytes: %w", err)
	}
	return key, nil
}
