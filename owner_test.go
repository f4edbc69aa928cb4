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
	"github.com/aws/smithy-go"
	"github.com/dynamostore/dynamostore/internal/dbtest"
)

// ownerEnv is an env whose table has the owner index.
func ownerEnv(t *testing.T, opts ...Option) *env {
	t.Helper()
	dbtest.RequireTTL(t) // the table is created with EnsureTable
	e := &env{t: t, calls: &callCounter{}, clock: newFakeClock()}
	e.client = dbtest.Client(t, e.calls.option)
	e.table = dbtest.TableName(t, e.client)
	base := []Option{withAPI(e.client), WithKeyPairs(testHashKey), withCleanupInterval(0), withClock(e.clock.Now),
		WithAutoCreate(TableOptions{OnDemand: true, OwnerIndex: true})}
	s, err := NewStore(context.Background(), e.table, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	e.store = s
	return e
}

// storedOwner returns the owner attribute of the session's stored row, or nil.
func (e *env) storedOwner(id string) types.AttributeValue {
	e.t.Helper()
	return e.rawItem(id)[attrOwner]
}

// signIn creates a session owned by user and returns its cookie.
func (e *env) signIn(user string) *http.Cookie {
	e.t.Helper()
	r := request()
	sess, _ := e.store.Get(r, "s")
	sess.Values["user"] = user
	e.store.SetOwner(r, sess, user)
	w := httptest.NewRecorder()
	if err := sess.Save(r, w); err != nil {
		e.t.Fatal(err)
	}
	return cookieOf(w, "s")
}

func TestRevokeOwner(t *testing.T) {
	e := ownerEnv(t)
	ada := []*http.Cookie{e.signIn("ada"), e.signIn("ada"), e.signIn("ada")}
	bob := e.signIn("bob")
	// An existing session that becomes owned at sign-in, then regenerated.
	c := e.save("s", map[any]any{"cart": 1})
	r, sess, _ := e.load("s", c)
	e.store.SetOwner(r, sess, "ada")
	w := httptest.NewRecorder()
	if err := e.store.Regenerate(r, w, sess); err != nil {
		t.Fatal(err)
	}
	ada = append(ada, cookieOf(w, "s"))
	// A later unchanged save keeps the owner.
	e.clock.Advance(time.Minute)
	r, sess, _ = e.load("s", ada[0])
	if err := sess.Save(r, httptest.NewRecorder()); err != nil {
		t.Fatal(err)
	}

	n, err := e.store.RevokeOwner(context.Background(), "ada")
	if err != nil || n != len(ada) {
		t.Fatalf("RevokeOwner = %d, %v; want %d", n, err, len(ada))
	}
	for i, c := range ada {
		if _, s, _ := e.load("s", c); !s.IsNew {
			t.Fatalf("ada's session %d still loads", i)
		}
	}
	if _, s, _ := e.load("s", bob); s.IsNew || s.Values["user"] != "bob" {
		t.Fatal("another owner's session was revoked")
	}
	// No session has the empty owner (SetOwner "" clears it), and a
	// runtime argument is never an invalid option.
	if n, err := e.store.RevokeOwner(context.Background(), ""); n != 0 || err != nil {
		t.Fatalf("RevokeOwner(\"\") = %d, %v; want 0, nil", n, err)
	}
}

func TestRevokeOwnerUnsupported(t *testing.T) {
	s, err := NewStore(context.Background(), "", WithBackend(newMapBackend()), WithKeyPairs(testHashKey), withCleanupInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.RevokeOwner(context.Background(), "ada"); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("RevokeOwner on a map backend = %v; want ErrUnsupported", err)
	}
}

// TestRevokeOwnerWithoutIndex: on a table without the owner index, the
// DynamoDB backend cannot find sessions by owner: ErrUnsupported, with the
// SDK's error and the fix in the message.
func TestRevokeOwnerWithoutIndex(t *testing.T) {
	e := newEnv(t) // dbtest's table has no owner index
	e.save("s", map[any]any{"user": "ada"})
	n, err := e.store.RevokeOwner(context.Background(), "ada")
	var api smithy.APIError
	if n != 0 || !errors.Is(err, ErrUnsupported) || !errors.As(err, &api) || !strings.Contains(err.Error(), "OwnerIndex") {
		t.Fatalf("RevokeOwner without the index = %d, %v; want ErrUnsupported wrapping the SDK's error", n, err)
	}
}

func TestEnsureTableAddsOwnerIndex(t *testing.T) {
	dbtest.RequireTTL(t)
	for _, onDemand := range []bool{true, false} {
		client := dbtest.Client(t)
		table := dbtest.TableName(t, client)
		ctx := context.Background()
		if err := EnsureTable(ctx, client, table, TableOptions{OnDemand: onDemand}); err != nil {
			t.Fatal(err)
		}
		if err := EnsureTable(ctx, client, table, TableOptions{OnDemand: onDemand, OwnerIndex: true}); err != nil {
			t.Fatalf("adding the owner index (on demand %v): %v", onDemand, err)
		}
		d, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Table.GlobalSecondaryIndexes) != 1 || aws.ToString(d.Table.GlobalSecondaryIndexes[0].IndexName) != ownerIndexName ||
			d.Table.GlobalSecondaryIndexes[0].Projection.ProjectionType != types.ProjectionTypeKeysOnly {
			t.Fatalf("indexes %+v", d.Table.GlobalSecondaryIndexes)
		}
	}
}

// TestOwnersNotUTF8: an owner with bytes that are not part of UTF-8 is
// stored as the SDK sends it, each such byte U+FFFD, so that RevokeOwner
// of the same owner finds its sessions, and one of another owner that
// differs in how many such bytes it has does not.
func TestOwnersNotUTF8(t *testing.T) {
	e := ownerEnv(t)
	latin1 := "j\xfc\xdfen" // a run of two bytes that are not UTF-8
	c := e.signIn(latin1)
	e.signIn("u\xff\xfe")
	e.signIn("u\xff")
	if n, err := e.store.RevokeOwner(context.Background(), latin1); err != nil || n != 1 {
		t.Errorf("RevokeOwner(%q) = %d, %v; want 1", latin1, n, err)
	}
	if got, _ := e.store.New(request(c), "s"); !got.IsNew {
		t.Error("the revoked session still loads")
	}
	if n, err := e.store.RevokeOwner(context.Background(), "u\xff"); err != nil || n != 1 {
		t.Errorf(`RevokeOwner("u\xff") = %d, %v; want 1, the other owner's session kept`, n, err)
	}
}
