package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/examples/frameworks/internal/apptest"
	"github.com/dynamostore/dynamostore/internal/dbtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

func TestSignInFlow(t *testing.T) {
	env := apptest.New(t)
	router := newRouter(env.Store)
	env.Flow(t, router, sessionName)

	w := httptest.NewRecorder()
	router.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/debug/sessions", nil))
	var st dynamostore.Stats
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
		t.Fatalf("/debug/sessions: %v: %s", err, w.Body)
	}
	// Two sign-ins (the second regenerates: a create and a delete) and a
	// sign-out.
	if st.Creates != 2 || st.Deletes != 2 || st.Loads == 0 || st.InvalidCookies != 1 {
		t.Fatalf("/debug/sessions = %+v, want 2 creates, 2 deletes, some loads, 1 invalid cookie", st)
	}
}
