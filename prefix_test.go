package dynamostore

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynamostore/dynamostore/internal/dbtest"
	"github.com/gorilla/sessions"
)

// TestKeyPrefixes: three Stores share one table, two with a key prefix and
// one without. Each loads, reaps and revokes only its own rows, whatever
// the others hold, and a cookie of one never loads a session of another,
// even signed with the same key.
func TestKeyPrefixes(t *testing.T) {
	dbtest.RequireTTL(t) // the table is created with EnsureTable
	client := dbtest.Client(t)
	table := dbtest.TableName(t, client)
	if err := EnsureTable(context.Background(), client, table, TableOptions{OnDemand: true, OwnerIndex: true}); err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	type tenant struct {
		prefix string
		store  *Store
		live   *http.Cookie
	}
	var tenants []*tenant
	for _, prefix := range []string{"app1#", "app2#", ""} {
		b, err := NewDynamoDBBackend(client, table, DynamoDBOptions{KeyPrefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		s := newTestStore(t, table, client, clock, WithBackend(b), withReaperGrace(0))
		tenants = append(tenants, &tenant{prefix: prefix, store: s})
	}
	// Each tenant: one live session owned by "ada", one that expires.
	for _, tn := range tenants {
		r := request()
		sess, _ := tn.store.New(r, "s")
		sess.Values["tenant"] = tn.prefix
		tn.store.SetOwner(r, sess, "ada")
		tn.live = cookieOf(saveThrough(t, r, sess), "s")
		short := request()
		gone, _ := tn.store.New(short, "s")
		gone.Options.MaxAge = 60
		gone.Values["short"] = true
		saveThrough(t, short, gone)
	}
	rows := scanIDs(t, client, table)
	for _, tn := range tenants {
		n := 0
		for _, id := range rows {
			if tn.prefix != "" && strings.HasPrefix(id, tn.prefix) || tn.prefix == "" && !strings.Contains(id, "#") {
				n++
			}
		}
		if n != 2 {
			t.Errorf("prefix %q: %d rows, want 2 (rows %v)", tn.prefix, n, rows)
		}
	}
	// Cookies load only on their own Store.
	for _, tn := range tenants {
		for _, other := range tenants {
			_, err := other.store.Get(request(tn.live), "s")
			sess, _ := other.store.New(request(tn.live), "s")
			if own := other == tn; own == sess.IsNew || err != nil {
				t.Errorf("cookie of %q on the store of %q: new %v, %v", tn.prefix, other.prefix, sess.IsNew, err)
			}
		}
	}
	// Reaping: each Store deletes its own expired row only.
	clock.Advance(2 * time.Minute)
	for i, tn := range tenants {
		st, err := tn.store.Reap(context.Background())
		if err != nil || st.Deleted != 1 {
			t.Fatalf("reap of %q: %+v, %v; want 1 deleted", tn.prefix, st, err)
		}
		if left := len(scanIDs(t, client, table)); left != len(rows)-(i+1) {
			t.Fatalf("after the reap of %q: %d rows left, want %d", tn.prefix, left, len(rows)-(i+1))
		}
	}
	// Revoking "ada" on one Store leaves the others' sessions of "ada".
	n, err := tenants[0].store.RevokeOwner(context.Background(), "ada")
	if err != nil || n != 1 {
		t.Fatalf("RevokeOwner on %q = %d, %v; want 1", tenants[0].prefix, n, err)
	}
	for i, tn := range tenants {
		sess, _ := tn.store.New(request(tn.live), "s")
		if revoked := i == 0; sess.IsNew != revoked {
			t.Errorf("prefix %q after the revoke on %q: new %v", tn.prefix, tenants[0].prefix, sess.IsNew)
		}
	}
}

func TestKeyPrefixValidated(t *testing.T) {
	client := dbtest.Client(t)
	for _, p := range []string{"app1", "app#1", strings.Repeat("a", 255) + "#", "\xff#"} {
		if _, err := NewDynamoDBBackend(client, "sessions", DynamoDBOptions{KeyPrefix: p}); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("KeyPrefix %q = %v; want ErrInvalidOption", p, err)
		}
	}
	for _, p := range []string{"", "app1#", "staging#eu#"} {
		if _, err := NewDynamoDBBackend(client, "sessions", DynamoDBOptions{KeyPrefix: p}); err != nil {
			t.Errorf("KeyPrefix %q = %v", p, err)
		}
	}
}

// saveThrough saves sess, loaded from r, and returns the response.
func saveThrough(t *testing.T, r *http.Request, sess *sessions.Session) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	if err := sess.Save(r, w); err != nil {
		t.Fatal(err)
	}
	return w
}

// scanIDs returns the partition keys of every item of table.
func scanIDs(t *testing.T, c *dynamodb.Client, table string) []string {
	t.Helper()
	var ids []string
	p := dynamodb.NewScanPaginator(c, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, item := range page.Items {
			if id, ok := item[attrID].(*types.AttributeValueMemberS); ok && !strings.HasPrefix(id.Value, "lease#") && !strings.Contains(id.Value, "#lease#") {
				ids = append(ids, id.Value)
			}
		}
	}
	return ids
}
