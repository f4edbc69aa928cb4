package dynamostore

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// The infrastructure definitions in docs/infrastructure must name the
// attributes, the lease key and the DynamoDB actions the code uses. These
// tests read them as text (YAML and HCL through regular expressions) and
// compare.

const infraDir = "docs/infrastructure/"

// policies are the IAM policies the docs define: for each, its JSON file,
// its CloudFormation resource and its Terraform resource, and the actions
// it must allow.
var policies = []struct {
	json, cfn, tf string
	actions       []string
}{
	{"iam-store.json", "SessionStorePolicy", "session_store",
		[]string{"DeleteItem", "DescribeTable", "DescribeTimeToLive", "GetItem", "PutItem", "UpdateItem"}},
	{"iam-reaper.json", "SessionReaperPolicy", "session_reaper",
		[]string{"BatchWriteItem", "DeleteItem", "Scan", "UpdateItem"}},
	{"iam-cli.json", "SessionCLIPolicy", "session_cli",
		[]string{"BatchWriteItem", "CreateTable", "DeleteItem", "DescribeTable", "DescribeTimeToLive", "Query", "Scan", "UpdateItem", "UpdateTable", "UpdateTimeToLive"}},
}

func readDoc(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(infraDir + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// stringList is an IAM value that may be one string or a list of them.
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*l = []string{one}
		return nil
	}
	return json.Unmarshal(b, (*[]string)(l))
}

type iamPolicy struct {
	Version   string
	Statement []struct {
		Sid       string
		Effect    string
		Action    stringList
		Resource  stringList
		Condition map[string]map[string]stringList
	}
}

// sortedSet returns the distinct strings of l in order.
func sortedSet(l []string) []string {
	l = slices.Clone(l)
	sort.Strings(l)
	return slices.Compact(l)
}

// dynamoActions returns the distinct DynamoDB action names ("GetItem") in
// text, found as "dynamodb:GetItem".
func dynamoActions(text string) []string {
	var names []string
	for _, m := range regexp.MustCompile(`dynamodb:([A-Za-z]+)\b`).FindAllStringSubmatch(text, -1) {
		if m[1] != "LeadingKeys" {
			names = append(names, m[1])
		}
	}
	return sortedSet(names)
}

// apiMethods returns the method names of the interfaces the library calls
// DynamoDB through.
func apiMethods() map[string]bool {
	m := map[string]bool{}
	for _, it := range []reflect.Type{reflect.TypeFor[dynamoAPI](), reflect.TypeFor[tableAPI]()} {
		for i := range it.NumMethod() {
			m[it.Method(i).Name] = true
		}
	}
	return m
}

func TestDocsIAMPolicies(t *testing.T) {
	methods := apiMethods()
	for _, p := range policies {
		t.Run(p.json, func(t *testing.T) {
			var doc iamPolicy
			if err := json.Unmarshal([]byte(readDoc(t, p.json)), &doc); err != nil {
				t.Fatalf("%s is not valid JSON: %v", p.json, err)
			}
			if doc.Version != "2012-10-17" {
				t.Errorf("Version %q, want 2012-10-17", doc.Version)
			}
			var actions []string
			for _, st := range doc.Statement {
				if st.Effect != "Allow" {
					t.Errorf("statement %s: Effect %q, want Allow", st.Sid, st.Effect)
				}
				for _, a := range st.Action {
					name, ok := strings.CutPrefix(a, "dynamodb:")
					if !ok || !methods[name] {
						t.Errorf("statement %s: action %q is not a DynamoDB call the library makes", st.Sid, a)
					}
					actions = append(actions, name)
				}
				for _, r := range st.Resource {
					index := strings.HasSuffix(r, ":table/sessions/index/"+ownerIndexName)
					if !strings.HasSuffix(r, ":table/sessions") && !index {
						t.Errorf("statement %s: resource %q is neither the table nor its owner index", st.Sid, r)
					}
					if index && !slices.Equal(st.Action, []string{"dynamodb:Query"}) {
						t.Errorf("statement %s: allows %q on the owner index, want Query alone", st.Sid, st.Action)
					}
				}
				if lk, ok := st.Condition["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"]; ok {
					if !slices.Equal(lk, []string{leaseKey}) {
						t.Errorf("statement %s: LeadingKeys %q, want the lease key %q", st.Sid, lk, leaseKey)
					}
					if !slices.Equal(st.Action, []string{"dynamodb:UpdateItem"}) {
						t.Errorf("statement %s: the lease statement allows %q, want UpdateItem alone", st.Sid, st.Action)
					}
				}
			}
			if got := sortedSet(actions); !slices.Equal(got, p.actions) {
				t.Errorf("actions %q, want %q", got, p.actions)
			}
		})
	}
}

// section returns the part of text from the line that matches start up to
// the next line that matches next, or the end.
func section(t *testing.T, text string, start, next *regexp.Regexp) string {
	t.Helper()
	loc := start.FindStringIndex(text)
	if loc == nil {
		t.Fatalf("no %s", start)
	}
	rest := text[loc[1]:]
	if end := next.FindStringIndex(rest); end != nil {
		rest = rest[:end[0]]
	}
	return rest
}

func TestDocsCloudFormation(t *testing.T) {
	text := readDoc(t, "cloudformation.yaml")
	topResource := regexp.MustCompile(`(?m)^  [A-Za-z]+:\s*$|^[A-Z][A-Za-z]*:`)

	table := section(t, text, regexp.MustCompile(`(?m)^  SessionTable:\s*$`), topResource)
	wants := []struct{ re, want string }{
		{`Type:\s*(\S+)`, "AWS::DynamoDB::Table"},
		{`BillingMode:\s*(\S+)`, "PAY_PER_REQUEST"},
		{`AttributeDefinitions:\s*\n\s*-\s*AttributeName:\s*(\S+)`, attrID},
		{`AttributeType:\s*(\S+)`, "S"},
		{`KeySchema:\s*\n\s*-\s*AttributeName:\s*(\S+)`, attrID},
		{`KeyType:\s*(\S+)`, "HASH"},
		{`TimeToLiveSpecification:\s*\n\s*AttributeName:\s*(\S+)`, attrExpires},
		{`Enabled:\s*(\S+)`, "true"},
	}
	for _, w := range wants {
		m := regexp.MustCompile(w.re).FindStringSubmatch(table)
		if m == nil || m[1] != w.want {
			t.Errorf("SessionTable: %s: got %q, want %q", w.re, m, w.want)
		}
	}
	if n := len(regexp.MustCompile(`AttributeName:`).FindAllString(table, -1)); n != 3 {
		t.Errorf("SessionTable names %d attributes, want 3 (definition, key, TTL)", n)
	}

	for _, p := range policies {
		sec := section(t, text, regexp.MustCompile(`(?m)^  `+p.cfn+`:\s*$`), topResource)
		if got := dynamoActions(sec); !slices.Equal(got, p.actions) {
			t.Errorf("%s allows %q, want %q as in %s", p.cfn, got, p.actions, p.json)
		}
		checkLease(t, p.cfn, sec, slices.Contains(p.actions, "Scan"))
		checkIndex(t, p.cfn, sec, slices.Contains(p.actions, "Query"))
	}
}

func TestDocsTerraform(t *testing.T) {
	text := readDoc(t, "main.tf")
	topBlock := regexp.MustCompile(`(?m)^(resource|output|variable|data) `)

	table := section(t, text, regexp.MustCompile(`(?m)^resource "aws_dynamodb_table" "sessions" \{`), topBlock)
	wants := []struct{ re, want string }{
		{`billing_mode\s*=\s*"([^"]*)"`, "PAY_PER_REQUEST"},
		{`hash_key\s*=\s*"([^"]*)"`, attrID},
		{`attribute\s*\{\s*name\s*=\s*"([^"]*)"`, attrID},
		{`attribute\s*\{\s*name\s*=\s*"[^"]*"\s*type\s*=\s*"([^"]*)"`, "S"},
		{`ttl\s*\{\s*attribute_name\s*=\s*"([^"]*)"`, attrExpires},
		{`ttl\s*\{\s*attribute_name\s*=\s*"[^"]*"\s*enabled\s*=\s*(\w+)`, "true"},
	}
	for _, w := range wants {
		m := regexp.MustCompile(w.re).FindStringSubmatch(table)
		if m == nil || m[1] != w.want {
			t.Errorf("aws_dynamodb_table: %s: got %q, want %q", w.re, m, w.want)
		}
	}
	if n := len(regexp.MustCompile(`attribute\s*\{`).FindAllString(table, -1)); n != 1 {
		t.Errorf("aws_dynamodb_table defines %d attributes, want the key alone", n)
	}
	if regexp.MustCompile(`range_key`).MatchString(table) {
		t.Errorf("aws_dynamodb_table has a range key; the store's key is %q alone", attrID)
	}

	for _, p := range policies {
		sec := section(t, text, regexp.MustCompile(`(?m)^resource "aws_iam_policy" "`+p.tf+`" \{`), topBlock)
		if got := dynamoActions(sec); !slices.Equal(got, p.actions) {
			t.Errorf("aws_iam_policy.%s allows %q, want %q as in %s", p.tf, got, p.actions, p.json)
		}
		checkLease(t, p.tf, sec, slices.Contains(p.actions, "Scan"))
		checkIndex(t, p.tf, sec, slices.Contains(p.actions, "Query"))
	}
}

// checkLease checks that a policy that reaps limits UpdateItem to the
// lease item, and that one that does not reap does not mention it.
func checkLease(t *testing.T, name, text string, reaps bool) {
	t.Helper()
	mentions := strings.Contains(text, "dynamodb:LeadingKeys")
	switch {
	case reaps && (!mentions || !strings.Contains(text, `"`+leaseKey+`"`)):
		t.Errorf("%s does not limit the reaper's UpdateItem to the lease item %q", name, leaseKey)
	case !reaps && mentions:
		t.Errorf("%s has a lease condition but does not reap", name)
	}
}

// checkIndex checks that a policy that queries names the owner index.
func checkIndex(t *testing.T, name, text string, queries bool) {
	t.Helper()
	if queries != strings.Contains(text, "/index/"+ownerIndexName) {
		t.Errorf("%s: Query allowed %v, but the owner index %q named %v", name, queries, ownerIndexName, !queries)
	}
}

// TestDocsSnippets checks the table definitions shown in the guides
// (docs/*.md): the YAML and HCL snippets name the key and TTL attributes
// the library uses.
func TestDocsSnippets(t *testing.T) {
	files, err := filepath.Glob("docs/*.md")
	if err != nil || len(files) == 0 {
		t.Fatalf("no guides in docs/: %v", err)
	}
	block := regexp.MustCompile("(?s)```(yaml|hcl)\n(.*?)```")
	checks := []struct {
		re   *regexp.Regexp
		want []string // the values allowed
	}{
		{regexp.MustCompile(`AttributeName:\s*(\S+)`), []string{attrID, attrExpires}},
		{regexp.MustCompile(`KeySchema:\s*\n\s*-\s*AttributeName:\s*(\S+)`), []string{attrID}},
		{regexp.MustCompile(`TimeToLiveSpecification:\s*\n\s*AttributeName:\s*(\S+)`), []string{attrExpires}},
		{regexp.MustCompile(`hash_key\s*=\s*"([^"]*)"`), []string{attrID}},
		{regexp.MustCompile(`attribute\s*\{\s*name\s*=\s*"([^"]*)"`), []string{attrID}},
		{regexp.MustCompile(`attribute_name\s*=\s*"([^"]*)"`), []string{attrExpires}},
	}
	snippets := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range block.FindAllStringSubmatch(string(b), -1) {
			snippets++
			for _, c := range checks {
				for _, v := range c.re.FindAllStringSubmatch(m[2], -1) {
					if !slices.Contains(c.want, v[1]) {
						t.Errorf("%s: a %s snippet has %q, want one of %q", f, m[1], v[0], c.want)
					}
				}
			}
		}
	}
	if snippets == 0 {
		t.Errorf("no YAML or HCL snippet found in docs/*.md")
	}
}

// snippetDocs are the documents whose Go snippets TestDocsGoSnippets
// compiles.
var snippetDocs = []string{
	"README.md",
	"docs/MIGRATION.md",
	"docs/MULTI_REGION.md",
	"docs/OBSERVABILITY.md",
	"docs/EXPIRY.md",
	"docs/EXAMPLE.md",
	"docs/FRAMEWORKS.md",
	"docs/CLI.md",
}

// notCompiled, as the last non-blank line before a ```go fence, leaves the
// snippet out: code of the API before a change, or that needs a module this
// one does not require. The comment should say why.
const notCompiled = "<!-- not compiled"

// snippetImports are the packages a snippet that is not a whole file may use
// without importing them, by the name it uses them under.
var snippetImports = map[string]string{
	"aws":          "github.com/aws/aws-sdk-go-v2/aws",
	"awshttp":      "github.com/aws/aws-sdk-go-v2/aws/transport/http",
	"base64":       "encoding/base64",
	"config":       "github.com/aws/aws-sdk-go-v2/config",
	"context":      "context",
	"credentials":  "github.com/aws/aws-sdk-go-v2/credentials",
	"dynamodb":     "github.com/aws/aws-sdk-go-v2/service/dynamodb",
	"dynamostore":  "github.com/dynamostore/dynamostore",
	"errors":       "errors",
	"expvar":       "expvar",
	"fmt":          "fmt",
	"gzip":         "compress/gzip",
	"hex":          "encoding/hex",
	"http":         "net/http",
	"log":          "log",
	"os":           "os",
	"retry":        "github.com/aws/aws-sdk-go-v2/aws/retry",
	"securecookie": "github.com/gorilla/securecookie",
	"sessions":     "github.com/gorilla/sessions",
	"sha256":       "crypto/sha256",
	"sync":         "sync",
	"slog":         "log/slog",
	"time":         "time",
	"types":        "github.com/aws/aws-sdk-go-v2/service/dynamodb/types",
}

// snippetVars are the variables a snippet that is not a whole file may use
// without declaring them, as a reader of the document would have them.
const snippetVars = `
var (
	ctx               = context.Background()
	hashKey, blockKey []byte
	cfg               aws.Config
	client            *dynamodb.Client
	store             *dynamostore.Store
	oldStore          sessions.Store
	w                 http.ResponseWriter
	r                 *http.Request
	sessionID, owner  string
)
`

// goSnippet is one ```go block of a document.
type goSnippet struct {
	doc  string
	line int // of the first line of code
	code string
}

// goSnippets returns the ```go blocks of the document, but those marked
// notCompiled.
func goSnippets(t *testing.T, doc string) []goSnippet {
	t.Helper()
	b, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	var snippets []goSnippet
	prev := "" // the last non-blank line outside a block
	for i := 0; i < len(lines); i++ {
		fence := strings.TrimSpace(lines[i])
		if fence != "```go" {
			if fence != "" {
				prev = fence
			}
			continue
		}
		indent := lines[i][:strings.Index(lines[i], "```")]
		start := i + 1
		var code []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			code = append(code, strings.TrimPrefix(lines[i], indent))
		}
		if !strings.HasPrefix(prev, notCompiled) {
			snippets = append(snippets, goSnippet{doc, start + 1, strings.Join(code, "\n")})
		}
		prev = ""
	}
	return snippets
}

// snippetFiles parses a snippet into the files of a package to type-check:
// a whole file (one that starts with a package clause) as it is; otherwise
// declarations, or failing that statements wrapped in a function, in a file
// that imports snippetImports, next to one that declares snippetVars.
func snippetFiles(fset *token.FileSet, s goSnippet) ([]*ast.File, error) {
	pos := fmt.Sprintf("//line %s:%d\n", s.doc, s.line)
	if strings.HasPrefix(strings.TrimSpace(s.code), "package ") {
		f, err := parser.ParseFile(fset, "snippet.go", pos+s.code, 0)
		return []*ast.File{f}, err
	}
	var imports strings.Builder
	imports.WriteString("package snippet\n\nimport (\n")
	for _, name := range slices.Sorted(maps.Keys(snippetImports)) {
		fmt.Fprintf(&imports, "\t%s %q\n", name, snippetImports[name])
	}
	imports.WriteString(")\n\n")
	vars, err := parser.ParseFile(fset, "snippet_vars.go", imports.String()+snippetVars, 0)
	if err != nil {
		return nil, err
	}
	f, err := parser.ParseFile(fset, "snippet.go", imports.String()+pos+s.code+"\n", 0)
	if err != nil {
		f, err = parser.ParseFile(fset, "snippet.go", imports.String()+"func _() {\n"+pos+s.code+"\n}\n", 0)
	}
	return []*ast.File{vars, f}, err
}

// exportData returns the export data files of paths and their
// dependencies, by import path, as the go command builds them.
func exportData(t *testing.T, paths []string) map[string]string {
	t.Helper()
	args := append([]string{"list", "-export", "-deps", "-f", "{{if .Export}}{{.ImportPath}}={{.Export}}{{end}}"}, paths...)
	cmd := exec.Command("go", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -export: %v\n%s", err, stderr.String())
	}
	files := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if path, file, ok := strings.Cut(line, "="); ok {
			files[path] = file
		}
	}
	return files
}

// TestDocsGoSnippets type-checks the Go snippets of the documents against
// this module's packages, as the compiler would, so that none shows an
// option, a type or a signature the package does not have. Snippets that
// are not whole files may leave variables and imports unused.
func TestDocsGoSnippets(t *testing.T) {
	fset := token.NewFileSet()
	type pkg struct {
		s     goSnippet
		files []*ast.File
	}
	var pkgs []pkg
	paths := map[string]bool{}
	for _, doc := range snippetDocs {
		snippets := goSnippets(t, doc)
		if len(snippets) == 0 && (doc == "README.md" || doc == "docs/MIGRATION.md") {
			t.Errorf("%s: no Go snippet to compile", doc)
		}
		for _, s := range snippets {
			files, err := snippetFiles(fset, s)
			if err != nil {
				t.Errorf("%v", err)
				continue
			}
			for _, f := range files {
				for _, imp := range f.Imports {
					paths[strings.Trim(imp.Path.Value, `"`)] = true
				}
			}
			pkgs = append(pkgs, pkg{s, files})
		}
	}
	if t.Failed() {
		return
	}
	exports := exportData(t, slices.Sorted(maps.Keys(paths)))
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		file, ok := exports[path]
		if !ok {
			return nil, fmt.Errorf("no export data for %q (is it required by go.mod?)", path)
		}
		return os.Open(file)
	})
	for _, p := range pkgs {
		whole := len(p.files) == 1
		conf := types.Config{
			Importer: imp,
			Error: func(err error) {
				te, ok := err.(types.Error)
				if ok && !whole && te.Soft && strings.Contains(te.Msg, "and not used") {
					return
				}
				t.Errorf("snippet at %s:%d: %v", p.s.doc, p.s.line, err)
			},
		}
		_, _ = conf.Check("snippet", fset, p.files, nil)
	}
}

// readmeSection returns the part of README.md from the heading line
// heading up to the next heading of the same or a higher level.
func readmeSection(t *testing.T, heading string) string {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	level := strings.SplitN(heading, " ", 2)[0]
	next := regexp.MustCompile(`(?m)^#{1,` + fmt.Sprint(len(level)) + `} `)
	return section(t, string(b), regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(heading)+`\s*$`), next)
}

// tableNames returns the names in backquotes in the first column of the
// Markdown table rows of text.
func tableNames(text string) []string {
	var names []string
	name := regexp.MustCompile("`([A-Za-z][A-Za-z.]*)")
	for _, line := range strings.Split(text, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 3 || !strings.HasPrefix(strings.TrimSpace(line), "|") {
			continue
		}
		for _, m := range name.FindAllStringSubmatch(cells[1], -1) {
			names = append(names, m[1])
		}
	}
	return sortedSet(names)
}

// exportedOptions returns the names of the package's functions that
// return an Option.
func exportedOptions(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var names []string
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !fn.Name.IsExported() || fn.Type.Results == nil || len(fn.Type.Results.List) != 1 {
				continue
			}
			if id, ok := fn.Type.Results.List[0].Type.(*ast.Ident); ok && id.Name == "Option" {
				names = append(names, fn.Name.Name)
			}
		}
	}
	return sortedSet(names)
}

// exportedFields returns the names of the exported fields of T.
func exportedFields[T any]() []string {
	var names []string
	for _, f := range reflect.VisibleFields(reflect.TypeFor[T]()) {
		if f.IsExported() {
			names = append(names, f.Name)
		}
	}
	return sortedSet(names)
}

// TestReadmeOptions checks the README's tables of options: every Option
// the package exports, every field of ReaperOptions and TableOptions, and
// nothing else; and every option of connect-dynamodb-session, whose
// counterparts the tables give.
func TestReadmeOptions(t *testing.T) {
	options := readmeSection(t, "## Options")
	var listed []string
	for _, n := range tableNames(options[:strings.Index(options, "\n### ")]) {
		if strings.HasPrefix(n, "With") {
			listed = append(listed, n)
		}
	}
	if want := exportedOptions(t); !slices.Equal(listed, want) {
		t.Errorf("README's options table lists %q; the package's options are %q", listed, want)
	}
	for _, c := range []struct {
		heading string
		fields  []string
	}{
		{"### ReaperOptions", exportedFields[ReaperOptions]()},
		{"### TableOptions", exportedFields[TableOptions]()},
	} {
		if got := tableNames(readmeSection(t, c.heading)); !slices.Equal(got, c.fields) {
			t.Errorf("README's %s table lists %q; the fields are %q", c.heading, got, c.fields)
		}
	}
	// The options of connect-dynamodb-session, as its README lists them.
	for _, node := range []string{"tableName", "region", "endpoint", "awsClient", "client", "ttl",
		"cleanupInterval", "touchAfter", "autoCreate", "readCapacity", "writeCapacity",
		"consistentRead", "err", "log"} {
		if !strings.Contains(options, "`"+node+"`") {
			t.Errorf("README's options do not say what connect-dynamodb-session's %s becomes", node)
		}
	}
}

// TestOneGoVersion: every module of the repository names the same Go
// version, and the README, docs/EXAMPLE.md and scripts/run-example give
// that one.
func TestOneGoVersion(t *testing.T) {
	root, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	directive := regexp.MustCompile(`(?m)^go (\d+\.\d+)(\.\d+)?$`)
	m := directive.FindSubmatch(root)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	want := string(m[1])
	err = filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "artifacts" || d.Name() == "testdata" || d.Name() == "node_modules") && path != "." {
			return filepath.SkipDir
		}
		if d.Name() != "go.mod" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		switch m := directive.FindSubmatch(b); {
		case m == nil:
			t.Errorf("%s has no go directive", path)
		case string(m[1]) != want:
			t.Errorf("%s: go %s, want go %s as in go.mod", path, m[1], want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range []struct{ file, pattern string }{
		{"README.md", `Go (\d+\.\d+) or later`},
		{"docs/EXAMPLE.md", `Go \((\d+\.\d+) or newer\)`},
		{"scripts/run-example", `go (\d+\.\d+) or newer`},
		{"CHANGELOG.md", "the one in `go.mod`: Go (\\d+\\.\\d+)"},
	} {
		b, err := os.ReadFile(doc.file)
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(doc.pattern).FindSubmatch(b)
		switch {
		case m == nil:
			t.Errorf("%s does not say which Go it needs (%s)", doc.file, doc.pattern)
		case string(m[1]) != want:
			t.Errorf("%s says Go %s; go.mod says %s", doc.file, m[1], want)
		}
	}
}

// TestDocsPrefixPolicy: the policy that confines an app to its key prefix
// allows the Store's item calls only under a LeadingKeys condition on a
// prefix ending with '#', and the table check's calls.
func TestDocsPrefixPolicy(t *testing.T) {
	var doc struct {
		Statement []struct {
			Sid       string
			Action    stringList
			Condition map[string]map[string]stringList
		}
	}
	if err := json.Unmarshal([]byte(readDoc(t, "iam-store-prefix.json")), &doc); err != nil {
		t.Fatal(err)
	}
	var items, check bool
	for _, st := range doc.Statement {
		actions := slices.Sorted(slices.Values(st.Action))
		switch {
		case slices.Equal(actions, []string{"dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}):
			keys := st.Condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
			if len(keys) != 1 || !strings.HasSuffix(keys[0], "#*") {
				t.Errorf("%s: LeadingKeys %v, want one prefix ending with #*", st.Sid, keys)
			}
			items = true
		case slices.Equal(actions, []string{"dynamodb:DescribeTable", "dynamodb:DescribeTimeToLive"}):
			check = true
		default:
			t.Errorf("%s: unexpected actions %v", st.Sid, actions)
		}
	}
	if !items || !check {
		t.Errorf("policy lacks the item statement (%v) or the table check (%v)", items, check)
	}
}
