package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynamostore/dynamostore/internal/dbtest"
	"github.com/dynamostore/dynamostore/internal/tableschema"
)

// TestParseArgs: flags may come before, between and after the positional
// arguments; "--" ends them; a lone "-" is an argument.
func TestParseArgs(t *testing.T) {
	tests := []struct {
		name string
		args []string
		pos  []string
		vals string // table, yes, name, read after parsing
		err  string // in the error, when parsing fails
	}{
		{"flags first", []string{"--table", "t", "--yes", "a"}, []string{"a"}, "t true session 0", ""},
		{"flags last", []string{"a", "--table", "t", "--yes"}, []string{"a"}, "t true session 0", ""},
		{"interleaved", []string{"--yes", "a", "-table", "t", "b", "--read", "3"}, []string{"a", "b"}, "t true session 3", ""},
		{"= forms", []string{"a", "--table=t", "-yes=true", "--read=-1"}, []string{"a"}, "t true session -1", ""},
		{"value that looks like a flag", []string{"--name", "-x", "a", "--read", "-2"}, []string{"a"}, " false -x -2", ""},
		{"value --", []string{"--name", "--", "a"}, []string{"a"}, " false -- 0", ""},
		{"-- ends the flags", []string{"--yes", "--", "-a", "--table", "t"}, []string{"-a", "--table", "t"}, " true session 0", ""},
		{"lone -", []string{"-", "--yes"}, []string{"-"}, " true session 0", ""},
		{"bool then argument", []string{"--yes", "false"}, []string{"false"}, " true session 0", ""},
		{"unknown flag after the argument", []string{"a", "--fast"}, nil, "", "flag provided but not defined: -fast"},
		{"missing value", []string{"a", "--table"}, nil, "", "flag needs an argument: -table"},
		{"bad value", []string{"--read", "many", "a"}, nil, "", `invalid value "many" for flag -read`},
		{"help after the argument", []string{"a", "-h"}, nil, "", flag.ErrHelp.Error()},
		{"bad syntax", []string{"---x"}, nil, "", "bad flag syntax: ---x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(new(strings.Builder))
			table := fs.String("table", "", "")
			yes := fs.Bool("yes", false, "")
			name := fs.String("name", "session", "")
			read := fs.Int("read", 0, "")
			pos, err := parseArgs(fs, tt.args)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprintf("%s %v %s %d", *table, *yes, *name, *read); got != tt.vals || !slices.Equal(pos, tt.pos) {
				t.Fatalf("flags %q, arguments %q; want %q, %q", got, pos, tt.vals, tt.pos)
			}
		})
	}
}

// expand replaces, in an argument order, "T" by table, "@aws" by the flags
// that point at the test database and "ARG" by arg.
func expand(t *testing.T, order []string, table, arg string) []string {
	var out []string
	for _, a := range order {
		switch a {
		case "T":
			out = append(out, table)
		case "ARG":
			out = append(out, arg)
		case "@aws":
			out = append(out, "--endpoint", dbtest.Endpoint(t), "--region", dbtest.Region)
		default:
			if name, ok := strings.CutSuffix(a, "=T"); ok {
				a = name + "=" + table
			}
			out = append(out, a)
		}
	}
	return out
}

// TestArgumentOrder runs every command with its flags before and after the
// table and its argument, in the documented spelling (--table) and in the
// old ones that still work (-flag, the table as the argument of
// create-table, status and reap, $DYNAMOSTORE_TABLE).
func TestArgumentOrder(t *testing.T) {
	dbtest.RequireTTL(t) // create-table enables TTL
	client := dbtest.Client(t)
	t.Setenv("DYNAMOSTORE_TABLE", "")

	// envTable marks an order that names the table in $DYNAMOSTORE_TABLE.
	const envTable = "$"
	withEnv := func(t *testing.T, order []string, table string) []string {
		if order[0] == envTable {
			t.Setenv("DYNAMOSTORE_TABLE", table)
			order = order[1:]
		}
		return order
	}

	t.Run("create-table", func(t *testing.T) {
		for _, order := range [][]string{
			{"--table", "T", "--read", "3", "--write", "4", "@aws"},
			{"@aws", "--read", "3", "--table", "T", "--write", "4"},
			{"--read", "3", "--write", "4", "@aws", "--table", "T"},
			{"-table=T", "-read=3", "-write", "4", "@aws"},
			{envTable, "--read", "3", "@aws", "--write", "4"},
			{"T", "--read", "3", "--write", "4", "@aws"},
			{"--read", "3", "@aws", "T", "--write", "4"},
		} {
			t.Run(strings.Join(order, " "), func(t *testing.T) {
				table := dbtest.TableName(t, client)
				argv := append([]string{"create-table"}, expand(t, withEnv(t, order, table), table, "")...)
				r := cli(t, "", argv...).ok(t)
				if want := fmt.Sprintf("table %s is ACTIVE, billing PROVISIONED (read 3, write 4)", table); !strings.Contains(r.stdout, want) {
					t.Fatalf("stdout %q does not contain %q", r.stdout, want)
				}
			})
		}
	})

	t.Run("status", func(t *testing.T) {
		table := dbtest.NewTable(t, client)
		for _, order := range [][]string{
			{"--table", "T", "--json", "@aws"},
			{"--json", "--table", "T", "@aws"},
			{"@aws", "--json", "--table", "T"},
			{envTable, "@aws", "--json"},
			{"T", "--json", "@aws"},
			{"--json", "@aws", "T"},
			{"--table", "T", "T", "--json", "@aws"}, // the same table twice
		} {
			t.Run(strings.Join(order, " "), func(t *testing.T) {
				argv := append([]string{"status"}, expand(t, withEnv(t, order, table), table, "")...)
				r := cli(t, "", argv...).ok(t)
				var st tableStatus
				if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.Table != table || !st.Usable {
					t.Fatalf("status --json: %v, %+v; want the usable table %s\n%s", err, st, table, r.stdout)
				}
			})
		}
	})

	t.Run("reap", func(t *testing.T) {
		table := dbtest.NewTable(t, client)
		seed(t, client, table, 4, 2)
		for _, order := range [][]string{
			{"--table", "T", "--dry-run", "--json", "@aws"},
			{"--dry-run", "--json", "@aws", "--table", "T"},
			{"--json", "--table", "T", "--dry-run", "@aws"},
			{envTable, "--dry-run", "@aws", "--json"},
			{"T", "--dry-run", "--json", "@aws"},
			{"--dry-run", "T", "--json", "@aws"},
		} {
			t.Run(strings.Join(order, " "), func(t *testing.T) {
				argv := append([]string{"reap"}, expand(t, withEnv(t, order, table), table, "")...)
				r := cli(t, "", argv...).ok(t)
				var rep reapReport
				if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.Table != table || !rep.DryRun || rep.Expired != 4 {
					t.Fatalf("reap --dry-run --json: %v, %+v; want 4 expired in %s\n%s", err, rep, table, r.stdout)
				}
			})
		}
	})

	t.Run("delete", func(t *testing.T) {
		table := dbtest.NewTable(t, client)
		for _, order := range [][]string{
			{"--table", "T", "--yes", "@aws", "ARG"},
			{"ARG", "--table", "T", "--yes", "@aws"},
			{"--yes", "ARG", "@aws", "--table", "T"},
			{"--table", "T", "@aws", "--yes", "--", "ARG"},
			{envTable, "ARG", "--yes", "@aws"},
			{"-", "--yes", "--table", "T", "@aws"}, // the ID on standard input
		} {
			t.Run(strings.Join(order, " "), func(t *testing.T) {
				id := storedID(t, client, table)
				stdin := ""
				if order[0] == "-" {
					stdin = id + "\n"
				}
				argv := append([]string{"delete"}, expand(t, withEnv(t, order, table), table, id)...)
				r := cli(t, stdin, argv...).ok(t)
				key := tableschema.StorageKey(id)
				if !strings.Contains(r.stdout, "deleted the session stored under id="+key) || keysIn(t, client, table)[key] {
					t.Fatalf("delete printed %q; the session is still there: %v", r.stdout, keysIn(t, client, table)[key])
				}
			})
		}
		// After --, --table is an argument too.
		id := storedID(t, client, table)
		cli(t, "", append([]string{"delete", "--yes"}, expand(t, []string{"@aws", "--", "ARG", "--table", "T"}, table, id)...)...).
			fails(t, exitUsage, "delete takes one argument, got 3")
	})

	t.Run("revoke-owner", func(t *testing.T) {
		table := dbtest.TableName(t, client)
		cli(t, "", args([]string{"create-table", "--owner-index"}, on(t, table))...).ok(t)
		store := testStore(t, client, table, make([]byte, 32))
		for i, order := range [][]string{
			{"--table", "T", "--yes", "@aws", "ARG"},
			{"ARG", "--yes", "--table", "T", "@aws"},
			{"--yes", "ARG", "@aws", "--table", "T"},
			{envTable, "@aws", "ARG", "--yes"},
			{"-", "--table", "T", "--yes", "@aws"}, // the owner on standard input
		} {
			t.Run(strings.Join(order, " "), func(t *testing.T) {
				owner := fmt.Sprintf("owner-%d", i)
				req := httptest.NewRequest(http.MethodGet, "/", nil)
				sess, _ := store.New(req, "sid")
				sess.Values["n"] = 1
				store.SetOwner(req, sess, owner)
				if err := sess.Save(req, httptest.NewRecorder()); err != nil {
					t.Fatal(err)
				}
				stdin := ""
				if order[0] == "-" {
					stdin = owner + "\n"
				}
				argv := append([]string{"revoke-owner"}, expand(t, withEnv(t, order, table), table, owner)...)
				if r := cli(t, stdin, argv...).ok(t); r.stdout != "deleted 1 session\n" {
					t.Fatalf("revoke-owner printed %q, want 1 session deleted", r.stdout)
				}
			})
		}
	})

	t.Run("keygen", func(t *testing.T) {
		for _, order := range [][]string{{"--block"}, {"-block"}, {"--block=true"}} {
			t.Run(strings.Join(order, " "), func(t *testing.T) {
				r := cli(t, "", append([]string{"keygen"}, order...)...).ok(t)
				if n := strings.Count(r.stdout, "\n"); n != 2 {
					t.Fatalf("keygen %s printed %d lines, want 2:\n%s", strings.Join(order, " "), n, r.stdout)
				}
			})
		}
	})
}

// storedID stores a session row in table under a new session ID that does
// not begin with "-" (so that it can stand anywhere on a command line) and
// returns the ID.
func storedID(t *testing.T, client *dynamodb.Client, table string) string {
	t.Helper()
	var id string
	for id == "" || id[0] == '-' {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		id = base64.RawURLEncoding.EncodeToString(b)
	}
	_, err := client.PutItem(t.Context(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: map[string]types.AttributeValue{
		tableschema.KeyAttr:     &types.AttributeValueMemberS{Value: tableschema.StorageKey(id)},
		tableschema.ExpiresAttr: &types.AttributeValueMemberN{Value: "4102444800"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

var (
	// flagToken is a flag named the way the help names them, --name.
	flagToken = regexp.MustCompile(`(?:^|[^\w-])--([a-z][a-z0-9-]*)`)
	// singleDash is a flag named -name, which the help does not use.
	singleDash = regexp.MustCompile(`(?:^|[\s(\[,;"'])-([a-z][a-z0-9-]*)`)
	// wordRE is a word that may be a command name.
	wordRE = regexp.MustCompile(`[a-z][a-z-]*[a-z]`)
)

// flagsOf returns the names of the flags command name takes, "" for the
// flags every command on a table takes.
func flagsOf(name string) map[string]bool {
	if name == "" {
		return commonFlags()
	}
	fs, _ := lookup(name).flagSet(new(env))
	names := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { names[f.Name] = true })
	return names
}

// checkFlagNames fails the test for every flag that text, help of command
// cmd ("" for none in particular), names but no command has: each --name
// must be a flag of cmd, a flag every command on a table takes, or a flag
// of a command named in the same paragraph. It also fails it for flags
// spelled -name: the help spells them all --name (-h aside).
func checkFlagNames(t *testing.T, where, cmd, text string) {
	t.Helper()
	named := 0
	for _, para := range strings.Split(text, "\n\n") {
		allowed := flagsOf("")
		if cmd != "" {
			for f := range flagsOf(cmd) {
				allowed[f] = true
			}
		}
		for _, w := range wordRE.FindAllString(para, -1) {
			if lookup(w) != nil {
				for f := range flagsOf(w) {
					allowed[f] = true
				}
			}
		}
		for _, m := range flagToken.FindAllStringSubmatch(para, -1) {
			named++
			if !allowed[m[1]] {
				t.Errorf("%s names --%s, which is no flag of %q or of a command in its paragraph:\n%s", where, m[1], cmd, para)
			}
		}
		for _, line := range strings.Split(para, "\n") {
			if strings.Contains(line, "openssl") || strings.Contains(line, "go test") {
				continue // the flags of other programs
			}
			for _, m := range singleDash.FindAllStringSubmatch(line, -1) {
				if m[1] != "h" {
					t.Errorf("%s spells a flag -%s; the help spells flags --%s:\n%s", where, m[1], m[1], line)
				}
			}
		}
	}
	if named == 0 {
		t.Errorf("%s names no flag at all", where)
	}
}

// TestHelp: every command's help is the same however asked for, lists
// every flag the command has under its real name, and names no flag that
// does not exist, nor one in another spelling.
func TestHelp(t *testing.T) {
	t.Setenv("DYNAMOSTORE_TABLE", "")
	mainHelp := cli(t, "", "-h").ok(t).stdout
	for _, asked := range [][]string{{"--help"}, {"-help"}, {"help"}} {
		if r := cli(t, "", asked...).ok(t); r.stdout != mainHelp {
			t.Errorf("dynamostore %s differs from dynamostore -h:\n%s", asked[0], r.stdout)
		}
	}
	checkFlagNames(t, "dynamostore -h", "", mainHelp)
	for _, c := range commands {
		if !strings.Contains(mainHelp, "\n  "+c.name+" ") {
			t.Errorf("dynamostore -h does not list %s:\n%s", c.name, mainHelp)
		}
	}
	for f := range flagsOf("") {
		if !strings.Contains(mainHelp, "\n  --"+f+" ") {
			t.Errorf("dynamostore -h does not list --%s", f)
		}
	}

	for _, c := range commands {
		t.Run(c.name, func(t *testing.T) {
			help := cli(t, "", c.name, "-h").ok(t).stdout
			asked := [][]string{{c.name, "--help"}, {"help", c.name}, {c.name, "-help"}}
			if c.aws {
				asked = append(asked, []string{c.name, "--table", "t", "-h"})
			}
			for _, asked := range asked {
				if r := cli(t, "", asked...).ok(t); r.stdout != help {
					t.Errorf("dynamostore %s differs from dynamostore %s -h:\n%s", strings.Join(asked, " "), c.name, r.stdout)
				}
			}
			usage := "usage: dynamostore " + c.name
			if c.aws {
				usage += " --table name"
			}
			if !strings.HasPrefix(help, usage+" [flags]") {
				t.Errorf("help does not begin with %q:\n%s", usage, help)
			}
			fs, _ := c.flagSet(new(env))
			fs.VisitAll(func(f *flag.Flag) {
				placeholder, _ := flag.UnquoteUsage(f)
				if !strings.Contains(help, strings.TrimSpace("\n  --"+f.Name+" "+placeholder)+"\n") {
					t.Errorf("help does not list --%s %s:\n%s", f.Name, placeholder, help)
				}
			})
			if c.aws != strings.Contains(help, "\n  --table name\n") {
				t.Errorf("help lists --table: %v, want %v", !c.aws, c.aws)
			}
			checkFlagNames(t, c.name+" -h", c.name, help)
			for _, line := range strings.Split(help, "\n") {
				if len(line) > wrapWidth {
					t.Errorf("help line wider than %d columns: %q", wrapWidth, line)
				}
			}
		})
	}
}

// TestDocFlags: the package documentation names only real flags, spelled
// as the help spells them.
func TestDocFlags(t *testing.T) {
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	doc, _, _ := strings.Cut(string(src), "package main")
	var lines []string
	for _, l := range strings.Split(doc, "\n") {
		l = strings.TrimPrefix(strings.TrimPrefix(l, "//"), " ")
		lines = append(lines, strings.TrimPrefix(l, "\t"))
	}
	checkFlagNames(t, "main.go's package documentation", "", strings.Join(lines, "\n"))
}

var updateDocs = flag.Bool("update", false, "rewrite the help blocks of docs/CLI.md from the help")

// cliDoc is the document of the command line, whose help blocks are the
// help of the commands.
const cliDoc = "../../docs/CLI.md"

// helpBlock is a help block of cliDoc: the command line, then the help it
// prints.
var helpBlock = regexp.MustCompile("(?s)<!-- help: dynamostore ([^>]*?) -->\n```text\n(.*?)```\n")

// TestCLIDoc: docs/CLI.md shows the help as the commands print it, the
// main one and every command's, and names only real flags. go test
// -run TestCLIDoc -update rewrites its help blocks.
func TestCLIDoc(t *testing.T) {
	t.Setenv("DYNAMOSTORE_TABLE", "")
	b, err := os.ReadFile(cliDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	seen := map[string]bool{}
	updated := helpBlock.ReplaceAllStringFunc(doc, func(block string) string {
		m := helpBlock.FindStringSubmatch(block)
		argv := strings.Fields(m[1])
		seen[argv[0]] = true
		help := cli(t, "", argv...).ok(t).stdout
		if help != m[2] && !*updateDocs {
			t.Errorf("%s: the help of dynamostore %s differs from what it prints; run go test ./cmd/dynamostore -run TestCLIDoc -update\nprints:\n%s", cliDoc, m[1], help)
		}
		return strings.Replace(block, "```text\n"+m[2], "```text\n"+help, 1)
	})
	for _, want := range append([]string{"-h"}, func() (names []string) {
		for _, c := range commands {
			names = append(names, c.name)
		}
		return names
	}()...) {
		if !seen[want] {
			t.Errorf("%s has no help block for dynamostore %s", cliDoc, want)
		}
	}
	if *updateDocs && updated != doc {
		if err := os.WriteFile(cliDoc, []byte(updated), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	checkFlagNames(t, cliDoc, "", helpBlock.ReplaceAllString(doc, ""))
}

// hexKey is a key as keygen and openssl rand -hex 32 print it.
var hexKey = regexp.MustCompile(`^[0-9a-f]{64}$`)

// TestKeygen: keygen prints 32-byte keys from crypto/rand in lowercase
// hex, one a line, the hash key and with --block the block key, different
// every time; a store takes them and delete reads them from files.
func TestKeygen(t *testing.T) {
	tests := []struct {
		name  string
		flags []string
		keys  int
	}{
		{"hash key", nil, 1},
		{"hash and block key", []string{"--block"}, 2},
		{"no block key", []string{"--block=false"}, 1},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 5 {
				r := cli(t, "", append([]string{"keygen"}, tt.flags...)...).ok(t)
				if !strings.HasSuffix(r.stdout, "\n") {
					t.Fatalf("output %q does not end its last line", r.stdout)
				}
				lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
				if len(lines) != tt.keys {
					t.Fatalf("printed %d lines, want %d:\n%s", len(lines), tt.keys, r.stdout)
				}
				for _, line := range lines {
					if !hexKey.MatchString(line) {
						t.Fatalf("key %q is not 64 lowercase hex digits", line)
					}
					if key, err := hex.DecodeString(line); err != nil || len(key) != keyLen {
						t.Fatalf("key %q decodes to %d bytes (%v), want %d", line, len(key), err, keyLen)
					}
					if seen[line] {
						t.Fatalf("key %s printed twice", line)
					}
					seen[line] = true
				}
			}
		})
	}

	t.Run("keys work", func(t *testing.T) {
		lines := strings.Fields(cli(t, "", "keygen", "--block").ok(t).stdout)
		hashKey, _ := hex.DecodeString(lines[0])
		blockKey, _ := hex.DecodeString(lines[1])
		dir := t.TempDir()
		hashFile, blockFile := filepath.Join(dir, "hash.key"), filepath.Join(dir, "block.key")
		for file, line := range map[string]string{hashFile: lines[0], blockFile: lines[1]} {
			if err := os.WriteFile(file, []byte(line+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		client := dbtest.Client(t)
		table := dbtest.NewTable(t, client)
		id, cookie := session(t, client, table, hashKey, blockKey)
		r := cli(t, "", args([]string{"delete", cookie, "--yes", "--name", "sid", "--hash-key-file", hashFile, "--block-key-file", blockFile}, on(t, table))...).ok(t)
		if !strings.Contains(r.stdout, "deleted the session stored under id="+tableschema.StorageKey(id)) {
			t.Fatalf("delete with the keygen keys printed %q", r.stdout)
		}
	})
}

// frame is one state the progress display showed.
type frame struct {
	pct, scanned, items int64
	exact               bool // items is exact, not an estimate (~)
}

var frameRE = regexp.MustCompile(`(\d+)%  scanned (\d+) of (~?)(\d+)`)

// frames parses the states that out, progress written with the estimate,
// shows.
func frames(t *testing.T, out string) []frame {
	t.Helper()
	var fs []frame
	for _, m := range frameRE.FindAllStringSubmatch(out, -1) {
		n := func(s string) int64 {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		fs = append(fs, frame{n(m[1]), n(m[2]), n(m[4]), m[3] == ""})
	}
	return fs
}

// checkFrames fails the test unless the frames never estimate fewer items
// than were scanned, stay below 100% until the end, and end at 100% of
// what was scanned.
func checkFrames(t *testing.T, fs []frame, scanned int64) {
	t.Helper()
	if len(fs) == 0 {
		t.Fatal("no progress shown")
	}
	for i, f := range fs {
		last := i == len(fs)-1
		switch {
		case f.items < f.scanned:
			t.Errorf("frame %d: scanned %d of ~%d: the estimate fell below what was scanned", i, f.scanned, f.items)
		case !last && (f.pct > 99 || f.exact):
			t.Errorf("frame %d of %d: %+v: 100%% or exact before the end", i, len(fs), f)
		case !last && f.pct != min(f.scanned*100/f.items, 99):
			t.Errorf("frame %d: %d%% for %d of %d", i, f.pct, f.scanned, f.items)
		case last && (f.pct != 100 || !f.exact || f.scanned != scanned || f.items != scanned):
			t.Errorf("last frame %+v, want 100%% of the %d scanned", f, scanned)
		}
	}
}

// TestProgressEstimate: the estimate, DynamoDB's approximate item count,
// never falls below what was scanned, whether the count is low (the lease
// row is in no count), high (rows deleted since) or unknown, and the
// display ends at 100% when the pass ends.
func TestProgressEstimate(t *testing.T) {
	tests := []struct {
		name  string
		total int64
		pages []int64
	}{
		{"right", 40, []int64{10, 10, 10, 10}},
		{"one short, as with the lease row", 35, []int64{10, 10, 10, 6}},
		{"far too low", 5, []int64{10, 10, 3}},
		{"too high", 100, []int64{10, 10}},
		{"unknown", 0, []int64{10, 10}},
		{"empty table", 0, []int64{0}},
	}
	for _, tt := range tests {
		for _, tty := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, terminal %v", tt.name, tty), func(t *testing.T) {
				var out strings.Builder
				p := &progress{w: &out, tty: tty, total: tt.total}
				var scanned int64
				for _, n := range tt.pages {
					p.add(n, 1, 1)
					scanned += n
				}
				p.finish(true)
				fs := frames(t, out.String())
				if want := len(tt.pages) + 1; tt.total > 0 && len(fs) != want {
					t.Fatalf("%d frames, want %d:\n%q", len(fs), want, out.String())
				}
				checkFrames(t, fs, scanned)
				end := fmt.Sprintf("\r[%s] 100%%  scanned %d of %d, expired %d, deleted %d\x1b[K\n", strings.Repeat("#", barWidth), scanned, scanned, len(tt.pages), len(tt.pages))
				if tty && !strings.HasSuffix(out.String(), end) {
					t.Fatalf("the bar does not end full, at 100%%, on its own line: %q", out.String())
				}
			})
		}
	}
}

// TestReapProgress: reap's standard output carries only the result (with
// --json, only the JSON document); progress goes to standard error, a bar
// when it is a terminal, lines otherwise but not with --json; and it ends
// at 100% of what was scanned, never estimating less.
func TestReapProgress(t *testing.T) {
	tests := []struct {
		name     string
		json     bool
		terminal bool // standard error is a terminal
		dryRun   bool
	}{
		{"json, terminal", true, true, false},
		{"json, terminal, dry run", true, true, true},
		{"json, no terminal", true, false, false},
		{"text, terminal", false, true, false},
		{"text, no terminal", false, false, false},
		{"text, no terminal, dry run", false, false, true},
	}
	const expired, live = 25, 10
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := dbtest.Client(t)
			table := dbtest.NewTable(t, client)
			seed(t, client, table, expired, live)
			argv := args([]string{"reap", "--page-size", "10", "--progress-interval", "0"}, on(t, table))
			if tt.json {
				argv = append(argv, "--json")
			}
			if tt.dryRun {
				argv = append(argv, "--dry-run")
			}
			r := terminals(t, false, tt.terminal, "", argv...)
			if r.code != exitOK {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}

			var scanned int64
			if tt.json {
				var rep reapReport
				dec := json.NewDecoder(strings.NewReader(r.stdout))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&rep); err != nil {
					t.Fatalf("stdout is not a JSON document: %v\n%q", err, r.stdout)
				}
				if _, err := dec.Token(); !errors.Is(err, io.EOF) {
					t.Fatalf("stdout holds more than one JSON document: %q", r.stdout)
				}
				if rep.Expired != expired || rep.DryRun != tt.dryRun {
					t.Fatalf("reported %+v, want %d expired", rep, expired)
				}
				scanned = int64(rep.Scanned)
			} else {
				if strings.Contains(r.stdout, "progress") || strings.Contains(r.stdout, "\r") || strings.Contains(r.stdout, "%") {
					t.Fatalf("progress on stdout:\n%q", r.stdout)
				}
				m := regexp.MustCompile(`(?m)^scanned: +(\d+)$`).FindStringSubmatch(r.stdout)
				if m == nil {
					t.Fatalf("no scanned count in the report:\n%s", r.stdout)
				}
				scanned, _ = strconv.ParseInt(m[1], 10, 64)
			}
			if scanned < expired+live {
				t.Fatalf("scanned %d, want at least %d", scanned, expired+live)
			}

			switch {
			case tt.json && !tt.terminal:
				if r.stderr != "" {
					t.Fatalf("reap --json wrote %q to a standard error that is no terminal", r.stderr)
				}
				return
			case tt.terminal:
				if !strings.HasPrefix(r.stderr, "\r[") || !strings.HasSuffix(r.stderr, "\x1b[K\n") || strings.Count(r.stderr, "\n") != 1 {
					t.Fatalf("stderr %q is not a bar redrawn in place and ended once", r.stderr)
				}
				if !strings.Contains(r.stderr, "["+strings.Repeat("#", barWidth)+"] 100%") {
					t.Fatalf("the bar does not end full: %q", r.stderr)
				}
			default:
				r.okProgress(t)
				// Pages of 10 and a line after each: more than 3 lines.
				if n := strings.Count(r.stderr, "\n"); n < 4 {
					t.Fatalf("%d progress lines, want at least 4:\n%s", n, r.stderr)
				}
			}
			checkFrames(t, frames(t, r.stderr), scanned)
		})
	}
}
