package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynamostore/dynamostore/internal/dbtest"
	"github.com/dynamostore/dynamostore/internal/tableschema"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

func noEnv(string) string { return "" }

var passLine = regexp.MustCompile(`pass: scanned (\d+), deleted (\d+), kept (\d+) refreshed; \d+ pages over (\d+) segments`)

// TestReap runs the example as a one-off job and checks the table
// afterwards: every expired session gone, every live one kept.
func TestReap(t *testing.T) {
	dbtest.RequireTTL(t) // -create-table enables TTL
	tests := []struct {
		name     string
		flags    []string
		segments int
	}{
		{"defaults", nil, 1},
		{"segments and small pages", []string{"-segments", "3", "-page-size", "7"}, 3},
		{"batch deletes, rate capped", []string{"-batch", "-write-rate", "1000", "-read-rate", "1000"}, 1},
		{"with the lease", []string{"-lease", "-lease-duration", "5s"}, 1},
	}
	const expired, live = 40, 15
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := dbtest.Client(t)
			table := dbtest.TableName(t, client)
			args := append([]string{"-endpoint", dbtest.Endpoint(t), "-table", table, "-create-table",
				"-seed", strconv.Itoa(expired), "-seed-live", strconv.Itoa(live), "-lease=false"}, tt.flags...)
			var out strings.Builder
			if err := run(t.Context(), args, noEnv, &out, io.Discard); err != nil {
				t.Fatalf("run: %v\n%s", err, out.String())
			}
			t.Log(out.String())
			m := passLine.FindStringSubmatch(out.String())
			if m == nil {
				t.Fatalf("no pass statistics in the output:\n%s", out.String())
			}
			deleted, _ := strconv.Atoi(m[2])
			kept, _ := strconv.Atoi(m[3])
			segments, _ := strconv.Atoi(m[4])
			// DynamoDB Local's own TTL sweep may take a few expired rows
			// first; the reaper gets the rest.
			if deleted+kept > expired || deleted < expired/2 {
				t.Errorf("the pass deleted %d and kept %d of %d expired sessions", deleted, kept, expired)
			}
			if segments != tt.segments {
				t.Errorf("the pass used %d segments, want %d", segments, tt.segments)
			}

			// Left in the table: the live sessions, and the lease item
			// when the lease is on.
			now := time.Now().Unix()
			liveRows := 0
			p := dynamodb.NewScanPaginator(client, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
			for p.HasMorePages() {
				page, err := p.NextPage(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				for _, item := range page.Items {
					exp, ok := item[tableschema.ExpiresAttr].(*types.AttributeValueMemberN)
					if !ok {
						continue // the lease item
					}
					n, err := strconv.ParseInt(exp.Value, 10, 64)
					if err != nil {
						t.Fatal(err)
					}
					if n <= now {
						t.Errorf("an expired session is still in the table")
					} else {
						liveRows++
					}
				}
			}
			if liveRows != live {
				t.Errorf("%d live sessions left, want %d", liveRows, live)
			}
		})
	}
}

// TestReapEvery runs the example as a service: a first pass right away,
// then one every interval or so, until its context ends.
func TestReapEvery(t *testing.T) {
	dbtest.RequireTTL(t) // -create-table enables TTL
	client := dbtest.Client(t)
	args := []string{"-endpoint", dbtest.Endpoint(t), "-table", dbtest.TableName(t, client), "-create-table",
		"-seed", "5", "-seed-live", "0", "-lease=false", "-once=false", "-interval", "1s"}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := passWriter{passes: make(chan string, 1)}
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, args, noEnv, out, io.Discard) }()
	for i := range 2 {
		select {
		case line := <-out.passes:
			if !passLine.MatchString(line) {
				t.Fatalf("pass %d: %q, want its statistics", i+1, line)
			}
		case err := <-errc:
			t.Fatalf("run returned %v before pass %d", err, i+1)
		case <-time.After(time.Minute):
			t.Fatalf("no pass %d within a minute", i+1)
		}
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("run after cancel = %v, want nil", err)
	}
}

// passWriter stands in for stdout and sends the lines about passes to
// passes, dropping those nobody waits for.
type passWriter struct{ passes chan string }

func (w passWriter) Write(p []byte) (int, error) {
	if line := string(p); strings.HasPrefix(line, "pass") {
		select {
		case w.passes <- line:
		default:
		}
	}
	return len(p), nil
}

func TestFlags(t *testing.T) {
	dbtest.RequireTTL(t) // -create-table enables TTL
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"-segments", "0"}, "segments"},
		{[]string{"-read-rate", "-1"}, "rate"},
		{[]string{"-page-size", "-1"}, "page size"},
		{[]string{"-lease-duration", "10ms"}, "lease duration"},
		{[]string{"-seed", "-1"}, "-seed"},
		{[]string{"-once=false", "-interval", "500ms"}, "-interval"},
		{[]string{"-once=false", "-interval", "1s", "-read-rate", "-1"}, "rate"},
		{[]string{"extra"}, "unexpected argument"},
	}
	for _, tt := range tests {
		args := append([]string{"-endpoint", dbtest.Endpoint(t), "-create-table", "-seed", "0", "-seed-live", "0",
			"-table", dbtest.TableName(t, dbtest.Client(t))}, tt.args...)
		err := run(t.Context(), args, noEnv, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("run %q = %v, want an error mentioning %q", tt.args, err, tt.wantErr)
		}
	}

	var help strings.Builder
	if err := run(t.Context(), []string{"-h"}, noEnv, io.Discard, &help); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("run -h = %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"-segments", "-read-rate", "-page-size", "-batch", "-lease", "-interval", "-once"} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("help lacks %s", want)
		}
	}
}
