package dynamostore

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynamostore/dynamostore/internal/dbtest"
	"github.com/gorilla/securecookie"
)

// TestOldSignatureWithCodecs: withCodecs with plain securecookie codecs: a
// cookie signed long ago.
func TestOldSignatureWithCodecs(t *testing.T) {
	client := dbtest.Client(t)
	table := dbtest.NewTable(t, client)
	codec := securecookie.New(testHashKey, testBlockKey).SetSerializer(securecookie.NopEncoder{})
	s, err := NewStore(context.Background(), table, withAPI(client), WithCodecs(codec),
		withCleanupInterval(0), WithTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, sess := saveNew(t, s, "s", map[any]any{"user": "ada"})
	old := &http.Cookie{Name: "s", Value: signedAt(t, testHashKey, testBlockKey, "s", sess.ID, time.Now().Add(-300*24*time.Hour))}
	got, err := s.New(request(old), "s")
	if err == nil && !got.IsNew {
		t.Fatalf("WithCodecs, TTL 1h: a cookie signed 300 days ago loads the session (%v)", got.Values)
	}
}

// TestOldSignatureRowWithoutModified: a row without `mod` (written by
// another program) and a cookie signed 300 days ago while the Store's
// lifetime is an hour.
func TestOldSignatureRowWithoutModified(t *testing.T) {
	e := newEnv(t, WithTTL(time.Hour))
	id, err := newID()
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.client.PutItem(context.Background(), &dynamodb.PutItemInput{
		TableName: aws.String(e.table),
		Item: map[string]types.AttributeValue{
			attrID:      &types.AttributeValueMemberS{Value: storageKey(id)},
			attrExpires: &types.AttributeValueMemberN{Value: strconv.FormatInt(e.clock.Now().Add(30*time.Minute).Unix(), 10)},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	old := &http.Cookie{Name: "s", Value: signedAt(t, testHashKey, testBlockKey, "s", id, time.Now().Add(-300*24*time.Hour))}
	_, got, err := e.load("s", old)
	if err == nil && !got.IsNew {
		t.Fatalf("row without mod: a cookie signed 300 days ago loads (store lifetime 1h)")
	}
}

// TestSignatureAgeInWholeSeconds: the signing time is whole seconds; with
// touchAfter 0 a cookie whose timestamp is exactly the lifetime ago (true
// age within the lifetime) is refused while its row lives.
func TestSignatureAgeInWholeSeconds(t *testing.T) {
	e := newEnv(t, WithTouchAfter(0), WithTTL(time.Minute))
	c := e.save("s", map[any]any{"n": 1})
	_, sess, _ := e.load("s", c)
	at := time.Unix(time.Now().Unix()-60, 0) // true signing time in [at, at+1s): age <= 60s
	v := &http.Cookie{Name: "s", Value: signedAt(t, testHashKey, testBlockKey, "s", sess.ID, at)}
	if _, got, err := e.load("s", v); err != nil || got.IsNew {
		t.Errorf("cookie with a true age <= the 60 s lifetime, row live: %v", err)
	}
}

// TestMaxAgeEdges: maxAge edges.
func TestMaxAgeEdges(t *testing.T) {
	for _, age := range []int{maxCookieAge, maxCookieAge + 1, math.MaxInt, math.MaxInt32} {
		e := newEnv(t)
		e.store.MaxAge(age)
		c := e.save("s", map[any]any{"n": 1})
		if c.MaxAge != maxCookieAge || !c.Expires.After(time.Now().Add(399*24*time.Hour)) {
			t.Errorf("Store.MaxAge(%d): cookie MaxAge %d expires %v", age, c.MaxAge, c.Expires)
		}
		r, sess, err := e.load("s", c)
		if err != nil || sess.IsNew {
			t.Fatalf("Store.MaxAge(%d): %v", age, err)
		}
		e.clock.Advance(time.Minute)
		w := httptest.NewRecorder()
		if err := sess.Save(r, w); err != nil {
			t.Fatalf("Store.MaxAge(%d): unchanged save %v", age, err)
		}
		if got := e.calls.take(); got["UpdateItem"] != 1 {
			t.Errorf("Store.MaxAge(%d): unchanged Save a minute later made %v; want the expiry extended", age, got)
		}
	}
	for _, age := range []int{math.MinInt, -1 << 40} {
		e := newEnv(t)
		c := e.save("s", map[any]any{"n": 1})
		r, sess, _ := e.load("s", c)
		sess.Options.MaxAge = age
		w := httptest.NewRecorder()
		if err := sess.Save(r, w); err != nil {
			t.Fatal(err)
		}
		if _, s2, _ := e.load("s", c); !s2.IsNew {
			t.Errorf("MaxAge %d did not delete", age)
		}
		if oc := cookieOf(w, "s"); oc == nil || oc.MaxAge >= 0 {
			t.Errorf("MaxAge %d: cookie %v", age, oc)
		}
	}
	// TTL 1s with the default touchAfter of 10 s.
	client := dbtest.Client(t)
	table := dbtest.NewTable(t, client)
	if _, err := NewStore(context.Background(), table, withAPI(client), WithKeyPairs(testHashKey), withCleanupInterval(0), WithTTL(time.Second)); !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "TTL") {
		t.Errorf("WithTTL(1s) with the default touchAfter = %v; want ErrInvalidOption naming the TTL", err)
	}
	// touchAfter exactly half.
	if _, err := NewStore(context.Background(), table, withAPI(client), WithKeyPairs(testHashKey), withCleanupInterval(0), WithTTL(20*time.Second), WithTouchAfter(10*time.Second)); err != nil {
		t.Errorf("touchAfter == TTL/2 refused: %v", err)
	}
}

// TestRememberMeUnchangedCostsNoWrite: a remember-me session (MaxAge set
// after each Get, as gorilla apps do) is written on every request inside
// touchAfter.
func TestRememberMeUnchangedCostsNoWrite(t *testing.T) {
	e := newEnv(t, WithTTL(time.Hour))
	r := request()
	sess, _ := e.store.Get(r, "s")
	sess.Options.MaxAge = 30 * 24 * 3600
	sess.Values["u"] = "ada"
	w := httptest.NewRecorder()
	if err := sess.Save(r, w); err != nil {
		t.Fatal(err)
	}
	c := cookieOf(w, "s")
	e.calls.take()
	r, sess, _ = e.load("s", c)
	sess.Options.MaxAge = 30 * 24 * 3600
	if err := sess.Save(r, httptest.NewRecorder()); err != nil {
		t.Fatal(err)
	}
	if got := e.calls.take(); got["UpdateItem"] != 0 {
		t.Errorf("unchanged remember-me session inside touchAfter: calls %v", got)
	}
}
