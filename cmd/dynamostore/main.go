// Command dynamostore manages the DynamoDB table of a dynamostore session
// store: it creates the table, reports its state, runs a reaper pass,
// deletes single sessions, revokes every session of an owner and makes
// cookie keys, so that operators need not write a program.
//
// Usage:
//
//	dynamostore <command> --table name [flags] [arguments]
//
// Commands:
//
//	create-table  create the table (on-demand unless --read or --write is given), enable TTL, wait until ACTIVE
//	status        show the table's state, billing, TTL and approximate item count
//	reap          delete sessions that expired more than --grace (default 5m) ago, in one reaper pass
//	              (--dry-run only counts them)
//	delete        delete one session, given its ID or its signed cookie value (asks first unless --yes)
//	revoke-owner  delete every session of one owner (needs the owner index; asks first unless --yes)
//	keygen        print new random cookie keys for WithKeyPairs, in hex
//
// Every command but keygen names the table the same way, with --table
// (default $DYNAMOSTORE_TABLE), and takes these flags:
//
//	--table name       the session table (default $DYNAMOSTORE_TABLE)
//	--profile profile  AWS shared configuration profile (default $AWS_PROFILE)
//	--region region    AWS region (default $AWS_REGION or the profile's)
//	--endpoint URL     DynamoDB endpoint, e.g. http://127.0.0.1:8000 for DynamoDB Local
//	--timeout duration give up after this long (default: no limit)
//
// Flags may come before or after the arguments; -- ends the flags, so
// write it before an argument that begins with -. dynamostore <command> -h
// (or dynamostore help <command>) lists a command's flags; docs/CLI.md has
// them all.
//
// AWS configuration is read the usual way: environment variables
// (AWS_ACCESS_KEY_ID, AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL_DYNAMODB,
// ...), then the shared config and credentials files, then the instance or
// task role. When an endpoint is given and no credentials are configured,
// static dummy credentials are used, which DynamoDB Local accepts.
//
// delete and revoke-owner ask for confirmation on the terminal before they
// delete anything, unless --yes is given. When standard input is not a
// terminal they never ask, and refuse to run without --yes.
//
// reap shows its progress on standard error: a bar when standard error is
// a terminal, otherwise a line every --progress-interval, except with
// --json, which shows progress only on a terminal. Standard output carries
// only the result.
//
// The exit status is 0 on success, 1 when the operation failed (delete
// found no such session, a confirmation was declined) and 2 when the
// command line was wrong. Errors are one line on standard error.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/logging"
)

// Exit statuses.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command is one subcommand.
type command struct {
	name    string
	args    string // the positional arguments, for the usage line; "" for none
	summary string
	// aws is whether the command works on a table: it takes --table and
	// the flags that reach AWS (see env.register).
	aws bool
	// details is more help, shown after the summary by -h.
	details string
	// setup registers the command's own flags and returns the function
	// that runs it once the flags are parsed.
	setup func(fs *flag.FlagSet, env *env) func(ctx context.Context, args []string) error
}

var commands = []command{
	{name: "create-table", aws: true, setup: setupCreateTable,
		summary: "create the table (on-demand unless --read or --write is given), enable TTL, wait until ACTIVE"},
	{name: "status", aws: true, setup: setupStatus,
		summary: "show the table's state, billing, TTL and approximate item count"},
	{name: "reap", aws: true, setup: setupReap, details: reapDetails,
		summary: "delete sessions that expired more than --grace (default 5m) ago, in one reaper pass (--dry-run only counts them)"},
	{name: "delete", args: "<session-id|cookie-value|->", aws: true, setup: setupDelete,
		summary: "delete one session, given its ID or its signed cookie value (asks first unless --yes)"},
	{name: "revoke-owner", args: "<owner|->", aws: true, setup: setupRevokeOwner,
		summary: "delete every session of one owner (see Store.SetOwner; needs the owner index; asks first unless --yes)"},
	{name: "keygen", setup: setupKeygen, details: keygenDetails,
		summary: "print new random cookie keys for WithKeyPairs, in hex"},
}

// lookup returns the command called name, or nil.
func lookup(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

// usageError is a mistake on the command line: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...)}
}

// run runs the command line args (without the program name) and returns the
// exit status. It is main without the process: tests call it directly.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runWith(ctx, args, &env{
		stdin:          bufio.NewReader(stdin),
		stdinTerminal:  isTerminal(stdin),
		stdout:         stdout,
		stderr:         stderr,
		stderrTerminal: isTerminal(stderr),
	})
}

// runWith is run with the standard streams in e, and whether standard
// input and standard error are terminals, which tests set as they need.
func runWith(ctx context.Context, args []string, e *env) int {
	stdout, stderr := e.stdout, e.stderr
	if len(args) == 0 {
		mainUsage(stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help":
		mainUsage(stdout)
		return exitOK
	case "help":
		if len(args) == 1 {
			mainUsage(stdout)
			return exitOK
		}
		// help <command> is <command> -h.
		name, args = args[1], []string{args[1], "-h"}
	}
	cmd := lookup(name)
	if cmd == nil && strings.HasPrefix(name, "-") {
		fmt.Fprintf(stderr, "dynamostore: %s before the command: the command comes first, as in dynamostore status --table name (run dynamostore -h for the list)\n", name)
		return exitUsage
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "dynamostore: unknown command %q (run dynamostore -h for the list)\n", name)
		return exitUsage
	}

	fs, exec := cmd.flagSet(e)
	pos, err := parseArgs(fs, args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			cmd.usage(stdout, fs)
			return exitOK
		}
		msg := oneLine(err)
		if cmd.args != "" && strings.HasPrefix(msg, "flag provided but not defined") {
			msg += " (write -- before an argument that begins with -)"
		}
		fmt.Fprintf(stderr, "dynamostore %s: %s (run dynamostore %s -h for help)\n", name, msg, name)
		return exitUsage
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "table" {
			e.tableGiven = true
		}
	})
	if e.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.timeout)
		defer cancel()
	}
	if err := exec(ctx, pos); err != nil {
		fmt.Fprintf(stderr, "dynamostore %s: %s\n", name, oneLine(err))
		var ue usageError
		if errors.As(err, &ue) {
			return exitUsage
		}
		return exitFail
	}
	return exitOK
}

// flagSet returns the command's flag set, with the flags every command on
// a table takes, and the function that runs the command.
func (c *command) flagSet(e *env) (*flag.FlagSet, func(context.Context, []string) error) {
	fs := flag.NewFlagSet("dynamostore "+c.name, flag.ContinueOnError)
	// The flag package would print the whole usage on any mistake; errors
	// are one line here, and the usage is for -h.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if c.aws {
		e.register(fs)
	}
	return fs, c.setup(fs, e)
}

// parseArgs parses the command line args of a command with fs and returns
// its positional arguments. Unlike fs.Parse, which stops at the first
// argument that is not a flag, it takes flags anywhere: before, between
// and after the positional arguments. "--" ends the flags; everything
// after it is an argument, even what begins with "-". A lone "-" is an
// argument (standard input).
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimPrefix(a[1:], "-")
		if name == "" || strings.ContainsRune(name, '=') {
			continue // the value is in a, or fs.Parse reports the bad syntax
		}
		f := fs.Lookup(name)
		if f == nil {
			continue // fs.Parse reports the unknown flag (or -h)
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			continue
		}
		// The value is the next argument, whatever it looks like, as for
		// fs.Parse; without one, fs.Parse reports that it is missing.
		if i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	if err := fs.Parse(flags); err != nil {
		return nil, err
	}
	// Every element of flags is a flag or the value of one, so fs.Parse
	// consumed them all.
	return append(fs.Args(), pos...), nil
}

// wrapWidth is the width help text is wrapped to.
const wrapWidth = 76

// wrap fills text, a paragraph, to lines of at most wrapWidth columns,
// the first one starting with first and the others with indent.
func wrap(text, first, indent string) string {
	var b strings.Builder
	line := first
	empty := true
	for _, word := range strings.Fields(text) {
		if !empty && len(line)+1+len(word) > wrapWidth {
			b.WriteString(line + "\n")
			line, empty = indent, true
		}
		if !empty {
			line += " "
		}
		line += word
		empty = false
	}
	b.WriteString(line + "\n")
	return b.String()
}

// commonFlags are the names of the flags env.register defines.
func commonFlags() map[string]bool {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	new(env).register(fs)
	names := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { names[f.Name] = true })
	return names
}

// printFlags lists the flags of fs for which include is true, as
// fs.PrintDefaults would but with the "--name" spelling the help uses
// throughout.
func printFlags(w io.Writer, fs *flag.FlagSet, include func(name string) bool) {
	fs.VisitAll(func(f *flag.Flag) {
		if !include(f.Name) {
			return
		}
		placeholder, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if placeholder != "" {
			line += " " + placeholder
		}
		fmt.Fprintln(w, line)
		if !isZeroValue(f) {
			if g, ok := f.Value.(flag.Getter); ok {
				if _, isString := g.Get().(string); isString {
					usage += fmt.Sprintf(" (default %q)", f.DefValue)
				} else {
					usage += fmt.Sprintf(" (default %s)", f.DefValue)
				}
			}
		}
		indent := strings.Repeat(" ", 8)
		fmt.Fprint(w, wrap(strings.ReplaceAll(usage, "\n", " "), indent, indent))
	})
}

// isZeroValue reports whether the default of f is the zero value of its
// type, which the flag listing does not show.
func isZeroValue(f *flag.Flag) bool {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return f.DefValue == ""
	}
	switch v := g.Get().(type) {
	case string:
		return f.DefValue == ""
	case bool, int, int64, uint, uint64, float64, time.Duration:
		zero := fmt.Sprint(reflect.Zero(reflect.TypeOf(v)).Interface())
		return f.DefValue == zero
	}
	return false
}

// usage writes the help of c, whose flags are fs.
func (c *command) usage(w io.Writer, fs *flag.FlagSet) {
	line := "dynamostore " + c.name
	if c.aws {
		line += " --table name"
	}
	line += " [flags]"
	if c.args != "" {
		line += " " + c.args
	}
	fmt.Fprintf(w, "usage: %s\n\n", line)
	fmt.Fprint(w, wrap(capitalize(c.summary)+".", "", ""))
	for _, p := range strings.Split(strings.TrimSpace(c.details), "\n\n") {
		if p != "" {
			fmt.Fprint(w, "\n"+wrap(p, "", ""))
		}
	}
	if c.aws || c.args != "" {
		fmt.Fprint(w, "\n")
	}
	if c.aws {
		fmt.Fprint(w, wrap("The table is --table, or $DYNAMOSTORE_TABLE when that is not given.", "", ""))
	}
	if c.args != "" {
		fmt.Fprint(w, wrap("Flags may come before or after the argument; -- ends the flags, so write it before an argument that begins with -.", "", ""))
	}
	common := commonFlags()
	own := false
	fs.VisitAll(func(f *flag.Flag) { own = own || !common[f.Name] })
	if own {
		fmt.Fprint(w, "\nflags:\n")
		printFlags(w, fs, func(name string) bool { return !common[name] })
	}
	if c.aws {
		fmt.Fprint(w, "\nflags of every command on a table:\n")
		printFlags(w, fs, func(name string) bool { return common[name] })
	}
}

func mainUsage(w io.Writer) {
	fmt.Fprint(w, `usage: dynamostore <command> --table name [flags] [arguments]

Manages the DynamoDB table of a dynamostore session store.

commands:
`)
	for _, c := range commands {
		fmt.Fprint(w, wrap(c.summary, fmt.Sprintf("  %-13s ", c.name), strings.Repeat(" ", 16)))
	}
	fmt.Fprint(w, "\n")
	fmt.Fprint(w, wrap("Every command but keygen works on one table, named by --table (or $DYNAMOSTORE_TABLE when that is not given), and takes these flags:", "", ""))
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	new(env).register(fs)
	printFlags(w, fs, func(string) bool { return true })
	fmt.Fprint(w, "\n")
	for i, p := range []string{
		"Flags may come before or after the arguments; -- ends the flags, so write it before an argument that begins with -. Run dynamostore <command> -h (or dynamostore help <command>) for the command's own flags.",
		"AWS configuration is read from the usual environment variables and shared files. Exit status: 0 success, 1 failure, 2 bad command line.",
	} {
		if i > 0 {
			fmt.Fprint(w, "\n")
		}
		fmt.Fprint(w, wrap(p, "", ""))
	}
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// oneLine flattens an error message onto a single line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// env holds the flags every command takes and builds the DynamoDB client
// from them.
type env struct {
	// stdin is read through one buffer, so that an argument read from it
	// and the answer to a confirmation that follows are both there.
	stdin          *bufio.Reader
	stdinTerminal  bool // whether standard input is a terminal, where someone can confirm
	stdout, stderr io.Writer
	stderrTerminal bool // whether standard error is a terminal, where reap draws its bar

	table      string
	tableGiven bool // --table was on the command line, not only in $DYNAMOSTORE_TABLE
	profile    string
	region     string
	endpoint   string
	timeout    time.Duration
}

func (e *env) register(fs *flag.FlagSet) {
	fs.StringVar(&e.table, "table", os.Getenv("DYNAMOSTORE_TABLE"), "the `name` of the session table ($DYNAMOSTORE_TABLE when not given)")
	fs.StringVar(&e.profile, "profile", "", "AWS shared configuration `profile` (default $AWS_PROFILE)")
	fs.StringVar(&e.region, "region", "", "AWS `region` (default $AWS_REGION or the profile's)")
	fs.StringVar(&e.endpoint, "endpoint", "", "DynamoDB endpoint `URL`, e.g. http://127.0.0.1:8000 for DynamoDB Local\n(default $AWS_ENDPOINT_URL_DYNAMODB, $AWS_ENDPOINT_URL or AWS's)")
	fs.DurationVar(&e.timeout, "timeout", 0, "give up after this `duration`, e.g. 10m (default: no limit)")
}

// tableName returns the --table flag, or a usage error when it is missing.
func (e *env) tableName() (string, error) {
	if e.table == "" {
		return "", usagef("no table: use --table or set DYNAMOSTORE_TABLE")
	}
	return e.table, nil
}

// tableOnly returns the table of a command that takes no argument. For
// compatibility with earlier versions, which took the table as the
// argument of create-table, status and reap, it accepts one argument, the
// table, as long as it does not contradict --table.
func (e *env) tableOnly(cmd string, args []string) (string, error) {
	switch {
	case len(args) == 0:
		return e.tableName()
	case len(args) == 1 && (!e.tableGiven || args[0] == e.table):
		return args[0], nil
	case len(args) == 1:
		return "", usagef("two tables, --table %s and the argument %s: give the table once, with --table", e.table, args[0])
	default:
		return "", usagef("%s takes no arguments (the table is --table), got %d: %q", cmd, len(args), args)
	}
}

// awsConfig loads the AWS configuration the flags and environment
// describe. With an endpoint and no credentials anywhere, it uses static
// dummy credentials, which DynamoDB Local accepts; it then also skips the
// instance metadata service, which a machine running DynamoDB Local
// usually lacks and which would make the lookup slow.
func (e *env) awsConfig(ctx context.Context) (aws.Config, error) {
	custom := e.endpoint != "" || os.Getenv("AWS_ENDPOINT_URL_DYNAMODB") != "" || os.Getenv("AWS_ENDPOINT_URL") != ""
	var opts []func(*config.LoadOptions) error
	if e.profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(e.profile))
	}
	if e.region != "" {
		opts = append(opts, config.WithRegion(e.region))
	}
	if custom {
		opts = append(opts, config.WithEC2IMDSClientEnableState(imds.ClientDisabled))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading AWS configuration: %w", err)
	}
	// The command reports every error itself, on one line; the SDK's own
	// log lines would only interleave with it.
	cfg.Logger = logging.Nop{}
	if !custom {
		if cfg.Region == "" {
			return aws.Config{}, usagef("no AWS region: use --region or set AWS_REGION")
		}
		return cfg, nil
	}
	if cfg.Region == "" {
		// A local endpoint ignores the region, but requests are signed
		// with one.
		cfg.Region = "us-east-1"
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		cfg.Credentials = credentials.NewStaticCredentialsProvider("local", "local", "")
	}
	return cfg, nil
}

// client returns a DynamoDB client for the flags and environment, with
// optFns applied last.
func (e *env) client(ctx context.Context, optFns ...func(*dynamodb.Options)) (*dynamodb.Client, error) {
	cfg, err := e.awsConfig(ctx)
	if err != nil {
		return nil, err
	}
	if e.endpoint != "" {
		optFns = append([]func(*dynamodb.Options){func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(e.endpoint) }}, optFns...)
	}
	return dynamodb.NewFromConfig(cfg, optFns...), nil
}

// tableError turns DynamoDB's answer for a missing table into a short
// message.
func tableError(table string, err error) error {
	var nf *types.ResourceNotFoundException
	if errors.As(err, &nf) {
		return fmt.Errorf("table %s not found (check --table, --region and --endpoint)", table)
	}
	return err
}
