// Command dynamostore manages the DynamoDB table of a dynamostore session
// store: it creates the table, reports its state, runs a reaper pass,
// deletes single sessions and revokes every session of an owner, so that
// operators need not write a program.
//
// Usage:
//
//	dynamostore <command> [flags] [arguments]
//
// Commands:
//
//	create-table [table]  create the table (on-demand unless --read/--write), enable TTL, wait until ACTIVE
//	status [table]        show the table's state, billing, TTL and approximate item count
//	reap [table]          delete sessions expired more than --grace (default 5m) ago in one reaper pass
//	                      (--dry-run only counts them)
//	delete <id|cookie|->  delete one session, given its ID or its signed cookie value (asks first unless --yes)
//	revoke-owner <owner>  delete every session of one owner (needs the owner index; asks first unless --yes)
//
// Every command takes -h, and these flags:
//
//	--table NAME       the session table (default $DYNAMOSTORE_TABLE; create-table,
//	                   status and reap also take it as their argument)
//	--profile NAME     AWS shared configuration profile (default $AWS_PROFILE)
//	--region NAME      AWS region (default $AWS_REGION or the profile's)
//	--endpoint URL     DynamoDB endpoint, e.g. http://127.0.0.1:8000 for DynamoDB Local
//	--timeout DURATION give up after this long (default: no limit)
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
	args    string // the positional arguments, for the usage line
	summary string
	// setup registers the command's own flags and returns the function
	// that runs it once the flags are parsed.
	setup func(fs *flag.FlagSet, env *env) func(ctx context.Context, args []string) error
}

var commands = []command{
	{"create-table", "[table]", "create the table (on-demand unless --read/--write), enable TTL, wait until ACTIVE", setupCreateTable},
	{"status", "[table]", "show the table's state, billing, TTL and approximate item count", setupStatus},
	{"reap", "[table]", "delete sessions expired more than --grace (default 5m) ago in one reaper pass (--dry-run only counts them)", setupReap},
	{"delete", "<session-id|cookie-value|->", "delete one session, given its ID or its signed cookie value (asks first unless --yes)", setupDelete},
	{"revoke-owner", "<owner|->", "delete every session of one owner (see Store.SetOwner; needs the owner index; asks first unless --yes)", setupRevokeOwner},
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
	return runWith(ctx, args, &env{stdin: bufio.NewReader(stdin), stdinTerminal: isTerminal(stdin), stdout: stdout, stderr: stderr})
}

// runWith is run with the standard streams in e, and whether standard
// input is a terminal, which tests set as they need.
func runWith(ctx context.Context, args []string, e *env) int {
	stdout, stderr := e.stdout, e.stderr
	if len(args) == 0 {
		mainUsage(stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help", "help":
		mainUsage(stdout)
		return exitOK
	}
	var cmd *command
	for i := range commands {
		if commands[i].name == name {
			cmd = &commands[i]
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "dynamostore: unknown command %q (run dynamostore -h for the list)\n", name)
		return exitUsage
	}

	fs := flag.NewFlagSet("dynamostore "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	e.register(fs)
	exec := cmd.setup(fs, e)
	// The flag package would print the whole usage on any mistake; errors
	// are one line here, and the usage is for -h.
	fs.Usage = func() {}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, "usage: %s\n\n%s.\n\nflags:\n", strings.TrimSpace("dynamostore "+cmd.name+" [flags] "+cmd.args), capitalize(cmd.summary))
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return exitOK
		}
		fmt.Fprintf(stderr, "dynamostore %s: %s (run dynamostore %s -h for help)\n", name, oneLine(err), name)
		return exitUsage
	}
	if e.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.timeout)
		defer cancel()
	}
	if err := exec(ctx, fs.Args()); err != nil {
		fmt.Fprintf(stderr, "dynamostore %s: %s\n", name, oneLine(err))
		var ue usageError
		if errors.As(err, &ue) {
			return exitUsage
		}
		return exitFail
	}
	return exitOK
}

func mainUsage(w io.Writer) {
	fmt.Fprint(w, `usage: dynamostore <command> [flags] [arguments]

Manages the DynamoDB table of a dynamostore session store.

commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Every command takes -h for its flags, and --table, --profile, --region,
--endpoint and --timeout. AWS configuration is read from the usual
environment variables and shared files. Exit status: 0 success, 1 failure,
2 bad command line.
`)
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

	table    string
	profile  string
	region   string
	endpoint string
	timeout  time.Duration
}

func (e *env) register(fs *flag.FlagSet) {
	fs.StringVar(&e.table, "table", os.Getenv("DYNAMOSTORE_TABLE"), "the session `table` (default $DYNAMOSTORE_TABLE)")
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

// tableArg returns the table of a command whose only argument is an
// optional table name, which overrides --table and DYNAMOSTORE_TABLE.
func (e *env) tableArg(cmd string, args []string) (string, error) {
	switch len(args) {
	case 0:
		return e.tableName()
	case 1:
		return args[0], nil
	default:
		return "", usagef("%s takes at most one argument, the table, got %d", cmd, len(args))
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
