package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/gorilla/mux"
	"github.com/gorilla/sessions"

	"github.com/dynamostore/dynamostore"
)

// sessionName is the name of the session and of its cookie.
const sessionName = "example_session"

// Keys of the session's Values.
const (
	keyVisits  = "visits"  // int: pages seen in this session
	keyUser    = "user"    // string: signed-in user name, absent when signed out
	keyCreated = "created" // int64: when the session started, Unix seconds
	keyCSRF    = "csrf"    // string: the token every form must echo
)

// maxUserName is the longest user name the sign-in form accepts, in runes.
const maxUserName = 32

//go:embed templates static
var assets embed.FS

// app is the example web app: its handlers and what they share.
type app struct {
	store  *dynamostore.Store
	log    *slog.Logger
	page   *template.Template
	static fs.FS
	info   storeInfo
}

// storeInfo is what the page says about where sessions are kept.
type storeInfo struct {
	Table        string
	Endpoint     string
	TouchAfter   time.Duration
	ReapInterval time.Duration
}

// newApp parses the templates and returns the app.
func newApp(store *dynamostore.Store, log *slog.Logger, info storeInfo) (*app, error) {
	page, err := template.ParseFS(assets, "templates/page.html")
	if err != nil {
		return nil, fmt.Errorf("parsing templates: %w", err)
	}
	static, err := fs.Sub(assets, "static")
	if err != nil {
		return nil, fmt.Errorf("opening static files: %w", err)
	}
	return &app{store: store, log: log, page: page, static: static, info: info}, nil
}

// routes returns the app's HTTP handler.
func (a *app) routes() http.Handler {
	r := mux.NewRouter()
	r.HandleFunc("/", a.home).Methods(http.MethodGet)
	r.HandleFunc("/signin", a.signIn).Methods(http.MethodPost)
	r.HandleFunc("/signout", a.signOut).Methods(http.MethodPost)
	r.HandleFunc("/session.json", a.sessionJSON).Methods(http.MethodGet)
	r.PathPrefix("/static/").Handler(http.StripPrefix("/static/", http.FileServerFS(a.static))).Methods(http.MethodGet)
	r.Use(securityHeaders, a.accessLog, withDeadline)
	return r
}

// requestTimeout bounds each request, and so every DynamoDB call it makes
// (the Store uses the request's context): a DynamoDB that stops answering
// turns into a 503 within it instead of holding the request.
const requestTimeout = 5 * time.Second

// withDeadline gives each request's context the deadline requestTimeout.
func withDeadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// securityHeaders forbids framing, inline scripts and cross-site form
// targets; together with the SameSite=Lax cookie and the per-session form
// token, this is the app's defence against cross-site request forgery.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// statusWriter records the status code a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// accessLog logs each request's method, path, status and duration; never
// its cookies or form values.
func (a *app) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		a.log.Info("request", "method", r.Method, "path", r.URL.Path, "status", sw.status,
			"duration", time.Since(start).Round(time.Microsecond))
	})
}

// session loads the request's session and makes sure it has a start time
// and a form token. A cookie that fails verification, or a row that cannot
// be decoded, just starts a new session; when DynamoDB cannot be read, it
// answers 503 and returns false.
func (a *app) session(w http.ResponseWriter, r *http.Request) (*sessions.Session, bool) {
	sess, err := a.store.Get(r, sessionName)
	switch {
	case err == nil:
	case dynamostore.Unavailable(err):
		a.log.Error("loading the session", "error", err)
		http.Error(w, "The session store is unavailable. Try again in a moment.", http.StatusServiceUnavailable)
		return nil, false
	default: // ErrInvalidCookie, ErrDecode: Get handed out a fresh session
		a.log.Info("ignoring an unusable session cookie", "error", err)
	}
	if err := initSession(sess); err != nil {
		a.serverError(w, err)
		return nil, false
	}
	return sess, true
}

// initSession gives a session that has none a form token and a start time.
func initSession(sess *sessions.Session) error {
	if _, ok := sess.Values[keyCSRF].(string); !ok {
		token, err := newToken()
		if err != nil {
			return err
		}
		sess.Values[keyCSRF] = token
	}
	if _, ok := sess.Values[keyCreated].(int64); !ok {
		sess.Values[keyCreated] = time.Now().Unix()
	}
	return nil
}

// newToken returns a random form token.
func newToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generating a form token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// formSession loads the session of a form post and checks the form's
// token; on a mismatch it answers 403 and returns false.
func (a *app) formSession(w http.ResponseWriter, r *http.Request) (*sessions.Session, bool) {
	sess, ok := a.session(w, r)
	if !ok {
		return nil, false
	}
	if !validToken(sess, r) {
		http.Error(w, "The form has expired. Go back, reload the page and try again.", http.StatusForbidden)
		return nil, false
	}
	return sess, true
}

// validToken reports, in constant time, whether the form's token is the
// session's.
func validToken(sess *sessions.Session, r *http.Request) bool {
	want, _ := sess.Values[keyCSRF].(string)
	got := r.PostFormValue("csrf")
	return want != "" && subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}

// pageData is what templates/page.html shows.
type pageData struct {
	User     string
	Visits   int
	Created  time.Time
	Flashes  []string
	CSRF     string
	Info     storeInfo
	MaxUser  int
	JSONPath string
}

// home counts the visit and shows the page, with any flash messages, which
// are then gone.
func (a *app) home(w http.ResponseWriter, r *http.Request) {
	sess, ok := a.session(w, r)
	if !ok {
		return
	}
	visits, _ := sess.Values[keyVisits].(int)
	visits++
	sess.Values[keyVisits] = visits
	var flashes []string
	for _, f := range sess.Flashes() {
		if s, ok := f.(string); ok {
			flashes = append(flashes, s)
		}
	}
	if err := sess.Save(r, w); err != nil {
		a.saveFailed(w, r, err)
		return
	}
	user, _ := sess.Values[keyUser].(string)
	created, _ := sess.Values[keyCreated].(int64)
	data := pageData{
		User:     user,
		Visits:   visits,
		Created:  time.Unix(created, 0).UTC(),
		Flashes:  flashes,
		CSRF:     sess.Values[keyCSRF].(string),
		Info:     a.info,
		MaxUser:  maxUserName,
		JSONPath: "/session.json",
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := a.page.Execute(w, data); err != nil {
		a.log.Error("rendering the page", "error", err)
	}
}

// signIn signs the user in under the posted name. It gives the session a
// new ID (Store.Regenerate) so that an ID planted before sign-in is worth
// nothing, and a new form token.
func (a *app) signIn(w http.ResponseWriter, r *http.Request) {
	sess, ok := a.formSession(w, r)
	if !ok {
		return
	}
	name := r.PostFormValue("username")
	if msg := checkUserName(name); msg != "" {
		sess.AddFlash(msg)
		if err := sess.Save(r, w); err != nil {
			a.saveFailed(w, r, err)
			return
		}
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	token, err := newToken()
	if err != nil {
		a.serverError(w, err)
		return
	}
	sess.Values[keyUser] = name
	sess.Values[keyCSRF] = token
	sess.AddFlash("Signed in as " + name + ". Your session got a new ID; the old row is gone from the table.")
	if err := a.store.Regenerate(r, w, sess); err != nil {
		a.saveFailed(w, r, err)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// checkUserName returns why name cannot be used, or "" when it can.
func checkUserName(name string) string {
	n := utf8.RuneCountInString(name)
	if n == 0 || n > maxUserName {
		return fmt.Sprintf("Choose a user name of 1 to %d characters.", maxUserName)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return "A user name may hold only letters, digits, dots, dashes and underscores."
		}
	}
	return ""
}

// signOut deletes the session's row and cookie (Store.Delete), then starts
// a fresh session to carry the "signed out" message.
func (a *app) signOut(w http.ResponseWriter, r *http.Request) {
	sess, ok := a.formSession(w, r)
	if !ok {
		return
	}
	if err := a.store.Delete(r, w, sess); err != nil {
		a.saveFailed(w, r, err)
		return
	}
	// Delete left the session empty, without an ID and with an expired
	// cookie; saving it again with the default options writes a new row
	// under a new ID.
	opts := *a.store.Options
	sess.Options = &opts
	sess.IsNew = true
	if err := initSession(sess); err != nil {
		a.serverError(w, err)
		return
	}
	sess.AddFlash("Signed out. Your session's row was deleted from the table.")
	if err := sess.Save(r, w); err != nil {
		a.saveFailed(w, r, err)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// sessionState is the JSON view of a session. It holds nothing secret: no
// session ID, no cookie, no form token.
type sessionState struct {
	// Stored is false when the request has no live session.
	Stored         bool       `json:"stored"`
	SignedIn       bool       `json:"signed_in"`
	User           string     `json:"user,omitempty"`
	Visits         int        `json:"visits"`
	Created        *time.Time `json:"created,omitempty"`
	PendingFlashes int        `json:"pending_flashes"`
	Table          string     `json:"table"`
}

// sessionJSON shows the session's non-secret state. It neither counts a
// visit nor writes the session.
func (a *app) sessionJSON(w http.ResponseWriter, r *http.Request) {
	sess, ok := a.session(w, r)
	if !ok {
		return
	}
	st := sessionState{Stored: !sess.IsNew, Table: a.info.Table}
	if !sess.IsNew {
		st.User, _ = sess.Values[keyUser].(string)
		st.SignedIn = st.User != ""
		st.Visits, _ = sess.Values[keyVisits].(int)
		if created, ok := sess.Values[keyCreated].(int64); ok {
			t := time.Unix(created, 0).UTC()
			st.Created = &t
		}
		if f, ok := sess.Values["_flash"].([]any); ok {
			st.PendingFlashes = len(f)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(st); err != nil {
		a.log.Error("writing JSON", "error", err)
	}
}

// saveFailed answers a request whose session could not be written. A
// session deleted meanwhile (signed out in another tab) just starts over.
func (a *app) saveFailed(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, dynamostore.ErrSessionGone) {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	a.log.Error("saving the session", "error", err)
	http.Error(w, "The session could not be saved. Try again in a moment.", http.StatusServiceUnavailable)
}

// serverError answers 500 and logs err.
func (a *app) serverError(w http.ResponseWriter, err error) {
	a.log.Error("internal error", "error", err)
	http.Error(w, "Internal server error", http.StatusInternalServerError)
}
