// Package dbtest runs tests against a real DynamoDB API: DynamoDB Local,
// dynalite, or whatever endpoint DYNAMODB_ENDPOINT names.
//
// A package that uses it calls Main from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }
//
// and its tests create throwaway tables with NewTable or TableName on a
// client from Client. Every table gets a unique name and is deleted when
// the test ends, so tests may run in parallel and share one server.
//
// The database is set up on first use, not by Main: the first call to
// Endpoint or Client checks the endpoint DYNAMODB_ENDPOINT names or, when
// it is not set, starts DynamoDB Local, once per test binary, and Main
// stops that server when the tests are done. Tests that never ask for the
// database, and a run that selects only such tests, need neither Java nor
// a server. A test that asks for it and cannot get one fails, saying why;
// it is never skipped.
//
// The package is meant for _test.go files only.
package dbtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// EndpointEnv is the environment variable that names the DynamoDB endpoint
// the tests use, e.g. http://127.0.0.1:8000.
const EndpointEnv = "DYNAMODB_ENDPOINT"

// Region is the AWS region of the clients returned by Client.
const Region = "us-east-1"

// rootModule is the module path of the repository whose scripts/ directory
// holds the dynamodb-local script.
const rootModule = "github.com/dynamostore/dynamostore"

// The database of the test binary. Main records the environment's
// endpoint; setUp, run by the first test that needs the database, fills in
// the rest. What setUp writes is read only after setUpOnce.Do returns.
var (
	inMain    atomic.Bool // Main is running the tests
	envEnd    string      // DYNAMODB_ENDPOINT when Main was called, "" if unset
	setUpOnce sync.Once
	endpoint  string       // set by setUp: the endpoint in use, no trailing slash
	setUpErr  error        // set by setUp: why there is no endpoint
	local     *localServer // set by setUp: the server it started, if any
)

// errTestsOver is the set-up error of a test binary whose tests ended
// without needing the database.
var errTestsOver = errors.New("dbtest: the tests have ended; nothing was set up")

// Main runs the package's tests and returns the exit code for os.Exit.
// It sets up nothing itself: the first test that needs the database (see
// Endpoint) does, once for the whole test binary.
//
// When DYNAMODB_ENDPOINT is set as Main is called, that endpoint is used,
// once it answers. Otherwise the first test that needs it starts an
// in-memory DynamoDB Local with
//
//	<repo>/scripts/dynamodb-local start --state-dir <temporary directory>
//
// where <repo> is found by walking up from the working directory to the
// go.mod of module github.com/dynamostore/dynamostore, and sets
// DYNAMODB_ENDPOINT to it. After m.Run, Main stops the server if one was
// started, and fails the run if stopping it fails. The server is also
// stopped if the test binary dies without cleaning up.
//
// When no endpoint can be set up, every test that needs one fails with the
// reason and how to start a server by hand: the tests fail rather than
// being skipped.
func Main(m *testing.M) int {
	envEnd = os.Getenv(EndpointEnv)
	inMain.Store(true)
	code := m.Run()

	// Wait for a set-up still under way, or make sure none starts now.
	setUpOnce.Do(func() { setUpErr = errTestsOver })
	if local != nil {
		if err := local.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "dbtest: stopping DynamoDB Local: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

const howToStart = `Start DynamoDB Local and point the tests at it:

	endpoint=$(scripts/dynamodb-local start | tail -1)
	export DYNAMODB_ENDPOINT=$endpoint

(scripts/dynamodb-local stop stops it again.)
`

// setUp finds or starts the database for the test binary. It runs once,
// under setUpOnce.
func setUp() {
	if envEnd != "" {
		if err := checkReachable(envEnd); err != nil {
			setUpErr = fmt.Errorf("dbtest: %s=%s does not answer: %w\n%s", EndpointEnv, envEnd, err, howToStart)
			return
		}
		endpoint = strings.TrimRight(envEnd, "/")
		return
	}
	srv, err := startLocal()
	if err != nil {
		setUpErr = fmt.Errorf("dbtest: %s is not set and DynamoDB Local could not be started: %w\n%s", EndpointEnv, err, howToStart)
		return
	}
	if err := os.Setenv(EndpointEnv, srv.endpoint); err != nil {
		setUpErr = fmt.Errorf("dbtest: setting %s: %w", EndpointEnv, errors.Join(err, srv.stop()))
		return
	}
	endpoint, local = srv.endpoint, srv
}

// Endpoint returns the DynamoDB endpoint of the test binary, setting it up
// on the first call as Main describes; concurrent callers wait for that
// set-up, and later ones get its outcome. It fails the test, with the
// reason, when there is no endpoint. Without Main it sets nothing up and
// returns DYNAMODB_ENDPOINT as it is.
//
// When it starts DynamoDB Local, it sets DYNAMODB_ENDPOINT to it for code
// that reads the environment (child processes, say), which therefore sees
// the variable only once a test has called Endpoint or Client.
func Endpoint(tb testing.TB) string {
	tb.Helper()
	if !inMain.Load() {
		ep := os.Getenv(EndpointEnv)
		if ep == "" {
			tb.Fatalf("dbtest: no DynamoDB endpoint: call dbtest.Main from TestMain or set %s", EndpointEnv)
		}
		return ep
	}
	setUpOnce.Do(setUp)
	if setUpErr != nil {
		tb.Fatal(setUpErr)
	}
	return endpoint
}

// Start is Endpoint for code that has no testing.TB, such as runnable
// examples: it returns the endpoint, setting it up on the first call (and
// so setting DYNAMODB_ENDPOINT), or the reason there is none.
func Start() (string, error) {
	if !inMain.Load() {
		if ep := os.Getenv(EndpointEnv); ep != "" {
			return ep, nil
		}
		return "", fmt.Errorf("dbtest: no DynamoDB endpoint: call dbtest.Main from TestMain or set %s", EndpointEnv)
	}
	setUpOnce.Do(setUp)
	return endpoint, setUpErr
}

// Client returns a DynamoDB client for Endpoint (so it sets the database
// up on first use, and fails the test when there is none), in region
// us-east-1 with the static credentials "local"/"local", with optFns
// applied last.
func Client(tb testing.TB, optFns ...func(*dynamodb.Options)) *dynamodb.Client {
	tb.Helper()
	opts := dynamodb.Options{
		Region:       Region,
		Credentials:  credentials.NewStaticCredentialsProvider("local", "local", ""),
		BaseEndpoint: aws.String(Endpoint(tb)),
	}
	return dynamodb.New(opts, optFns...)
}

// NewTable creates a table with a unique name derived from tb.Name(), a
// string partition key "id" and on-demand billing, waits until it is
// ACTIVE, and returns its name. The table is deleted when the test ends.
func NewTable(tb testing.TB, c *dynamodb.Client) string {
	tb.Helper()
	name := TableName(tb, c)
	ctx, cancel := context.WithTimeout(tb.Context(), 2*time.Minute)
	defer cancel()
	_, err := c.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: aws.String(name),
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("id"), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("id"), KeyType: types.KeyTypeHash},
		},
		BillingMode: types.BillingModePayPerRequest,
	})
	if err != nil {
		tb.Fatalf("dbtest: creating table %s: %v", name, err)
	}
	if err := waitActive(ctx, c, name); err != nil {
		tb.Fatalf("dbtest: waiting for table %s: %v", name, err)
	}
	return name
}

// CreateTable creates a table as in describes it, under a unique name
// derived from tb.Name() (in.TableName is overwritten) and with on-demand
// billing unless in says otherwise, waits until it is ACTIVE, and returns
// its name; it is for tests of tables laid out otherwise than NewTable's.
// The table is deleted when the test ends.
func CreateTable(tb testing.TB, c *dynamodb.Client, in dynamodb.CreateTableInput) string {
	tb.Helper()
	name := TableName(tb, c)
	ctx, cancel := context.WithTimeout(tb.Context(), 2*time.Minute)
	defer cancel()
	in.TableName = aws.String(name)
	if in.BillingMode == "" && in.ProvisionedThroughput == nil {
		in.BillingMode = types.BillingModePayPerRequest
	}
	if _, err := c.CreateTable(ctx, &in); err != nil {
		tb.Fatalf("dbtest: creating table %s: %v", name, err)
	}
	if err := waitActive(ctx, c, name); err != nil {
		tb.Fatalf("dbtest: waiting for table %s: %v", name, err)
	}
	return name
}

// RequireTTL skips, saying why, a test that needs DynamoDB's TTL API
// (UpdateTimeToLive, which EnsureTable and table creation with TTL call)
// when the suite runs against dynalite, which does not implement it
// (scripts/test --backend dynalite sets DYNAMOSTORE_BACKEND). Against
// DynamoDB Local, which CI uses, such tests always run.
func RequireTTL(tb testing.TB) {
	tb.Helper()
	if os.Getenv("DYNAMOSTORE_BACKEND") == "dynalite" {
		tb.Skip("dynalite does not implement UpdateTimeToLive; this test runs against DynamoDB Local")
	}
}

// TableName returns a fresh unique table name derived from tb.Name(),
// without creating the table; it is meant for tests of code that creates
// tables. If a table of that name exists when the test ends, it is deleted.
func TableName(tb testing.TB, c *dynamodb.Client) string {
	tb.Helper()
	name := uniqueName(tb.Name())
	tb.Cleanup(func() {
		if err := deleteTable(c, name); err != nil {
			tb.Errorf("dbtest: deleting table %s: %v", name, err)
		}
	})
	return name
}

// maxNameLen is DynamoDB's limit on table name length.
const maxNameLen = 255

// uniqueName turns a test name into a valid table name ([a-zA-Z0-9_.-],
// 3 to 255 characters) with a random suffix.
func uniqueName(testName string) string {
	var b strings.Builder
	for _, r := range testName {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '.', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		panic(err) // crypto/rand.Read does not fail on supported platforms
	}
	suffix := "-" + hex.EncodeToString(rnd[:])
	prefix := b.String()
	if prefix == "" {
		prefix = "dbtest"
	}
	if len(prefix) > maxNameLen-len(suffix) {
		prefix = prefix[:maxNameLen-len(suffix)]
	}
	return prefix + suffix
}

func waitActive(ctx context.Context, c *dynamodb.Client, name string) error {
	w := dynamodb.NewTableExistsWaiter(c, func(o *dynamodb.TableExistsWaiterOptions) {
		// The defaults (20s to 120s between polls) suit the real service;
		// local servers take milliseconds.
		o.MinDelay = 50 * time.Millisecond
		o.MaxDelay = time.Second
	})
	return w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, 2*time.Minute)
}

// deleteTable deletes the table if it exists. A table that is still being
// created or updated is waited for first.
func deleteTable(c *dynamodb.Client, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		_, err := c.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(name)})
		var notFound *types.ResourceNotFoundException
		var inUse *types.ResourceInUseException
		switch {
		case err == nil, errors.As(err, &notFound):
			return nil
		case !errors.As(err, &inUse):
			return err
		}
		// The table is CREATING, UPDATING or already DELETING: poll until
		// DeleteTable can succeed or the table is gone.
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// checkReachable reports whether anything answers HTTP at ep; any status
// code counts.
func checkReachable(ep string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

type localServer struct {
	script   string
	stateDir string
	endpoint string
}

// startLocal starts DynamoDB Local through the repository's script, in a
// private state directory so that concurrently running test binaries each
// get their own server.
func startLocal() (*localServer, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	script := filepath.Join(root, "scripts", "dynamodb-local")
	if _, err := os.Stat(script); err != nil {
		return nil, err
	}
	stateDir, err := os.MkdirTemp("", "dbtest-dynamodb-local-")
	if err != nil {
		return nil, err
	}
	srv := &localServer{script: script, stateDir: stateDir}
	// A cold start downloads DynamoDB Local first, hence the long timeout.
	out, err := srv.run(10*time.Minute, "start", "--state-dir", stateDir,
		"--watch-pid", strconv.Itoa(os.Getpid()))
	if err != nil {
		_ = srv.stop()
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	ep := strings.TrimSpace(lines[len(lines)-1])
	if !strings.HasPrefix(ep, "http://") {
		_ = srv.stop()
		return nil, fmt.Errorf("%s start printed %q, want an endpoint URL", script, out)
	}
	srv.endpoint = ep
	return srv, nil
}

// run runs the script with args and returns its standard output.
func (s *localServer) run(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{s.script}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %v\n%s", s.script, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

func (s *localServer) stop() error {
	_, err := s.run(time.Minute, "stop", "--state-dir", s.stateDir)
	if rmErr := os.RemoveAll(s.stateDir); err == nil {
		err = rmErr
	}
	return err
}

// repoRoot walks up from the working directory to the directory whose
// go.mod declares rootModule.
func repoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && modulePath(data) == rootModule {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod for module %s in %s or any parent directory", rootModule, wd)
		}
		dir = parent
	}
}

// modulePath returns the path on the module line of a go.mod file.
func modulePath(gomod []byte) string {
	for _, line := range strings.Split(string(gomod), "\n") {
		line = strings.TrimSpace(line)
		rest, ok := strings.CutPrefix(line, "module")
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '\t') {
			continue
		}
		rest = strings.TrimSpace(rest)
		if i := strings.Index(rest, "//"); i >= 0 {
			rest = strings.TrimSpace(rest[:i])
		}
		if unq, err := strconv.Unquote(rest); err == nil {
			return unq
		}
		return rest
	}
	return ""
}
