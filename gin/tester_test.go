package dynamogin_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	dynamogin "github.com/dynamostore/dynamostore/gin"
	"github.com/dynamostore/dynamostore/internal/dbtest"
	"github.com/gin-contrib/sessions"
	"github.com/gin-contrib/sessions/tester"
	"github.com/gin-gonic/gin"
	gsessions "github.com/gorilla/sessions"
)

// checkedStore is a Store whose every load and save error is reported,
// for gin-contrib's tester, whose handlers ignore Save's error (and
// gin-contrib/sessions only logs a load's). Its Get registers the sessions
// under the checkedStore itself, so that a session's Save, which calls the
// store it was registered with, comes through it.
type checkedStore struct {
	*dynamogin.Store
	report func(format string, args ...any)
	saves  atomic.Int64
}

func (s *checkedStore) Get(r *http.Request, name string) (*gsessions.Session, error) {
	return gsessions.GetRegistry(r).Get(s, name)
}

func (s *checkedStore) New(r *http.Request, name string) (*gsessions.Session, error) {
	sess, err := s.Store.New(r, name)
	if err != nil {
		s.report("loading session %q: %v", name, err)
	}
	return sess, err
}

func (s *checkedStore) Save(r *http.Request, w http.ResponseWriter, sess *gsessions.Session) error {
	s.saves.Add(1)
	err := s.Store.Save(r, w, sess)
	if err != nil {
		s.report("saving session %q: %v", sess.Name(), err)
	}
	return err
}

// newCheckedStore returns a checkedStore on a fresh table that reports to
// report, and at the end of the test checks that sessions were saved
// through it and that the Store counted no error.
func newCheckedStore(t *testing.T, report func(string, ...any)) *checkedStore {
	t.Helper()
	client := dbtest.Client(t)
	return &checkedStore{Store: testStore(t, client, dbtest.NewTable(t, client)), report: report}
}

// testerStore is the tester's store factory.
func testerStore(t *testing.T) sessions.Store {
	s := newCheckedStore(t, t.Errorf)
	t.Cleanup(func() {
		st := s.Stats()
		if s.saves.Load() == 0 || st.Creates == 0 {
			t.Errorf("no session was saved through the Store (saves %d, creates %d)", s.saves.Load(), st.Creates)
		}
		if n := st.InvalidCookies + st.DecodeErrors + st.EncodeErrors + st.TooLarge + st.BackendErrors + st.Conflicts; n != 0 {
			t.Errorf("the Store counted %d errors: %+v", n, st)
		}
	})
	return s
}

// gin-contrib/sessions' own tests of a backend, which every official gin
// backend runs.

func TestTesterGetSet(t *testing.T)    { tester.GetSet(t, testerStore) }
func TestTesterDeleteKey(t *testing.T) { tester.DeleteKey(t, testerStore) }
func TestTesterFlashes(t *testing.T)   { tester.Flashes(t, testerStore) }
func TestTesterClear(t *testing.T)     { tester.Clear(t, testerStore) }
func TestTesterOptions(t *testing.T)   { tester.Options(t, testerStore) }
func TestTesterMany(t *testing.T)      { tester.Many(t, testerStore) }

// TestCheckedStoreReports: a Save error in a handler that ignores it, as
// the tester's do, reaches the report.
func TestCheckedStoreReports(t *testing.T) {
	var reports []string
	s := newCheckedStore(t, func(format string, args ...any) {
		reports = append(reports, fmt.Sprintf(format, args...))
	})
	r := gin.New()
	r.Use(sessions.Sessions("s", s))
	r.GET("/", func(c *gin.Context) {
		session := sessions.Default(c)
		session.Set("f", func() {}) // gob cannot encode it: ErrEncode
		_ = session.Save()
	})
	r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if len(reports) != 1 || s.saves.Load() != 1 {
		t.Fatalf("reports %q after %d saves, want the one Save error", reports, s.saves.Load())
	}
}
