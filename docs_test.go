package dynamostore

import (
	"encoding/json"
	"os"
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
		[]string{"DeleteItem", "GetItem", "PutItem", "UpdateItem"}},
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
