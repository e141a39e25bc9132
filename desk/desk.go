// Package desk is the editors' desk under /desk: pages in the browser for
// what an editor does each morning (bring in the edition, preview, test,
// send, watch, pause, resume) and what an admin looks after (subscribers,
// editors, the audit record). It is the second door onto package newsroom,
// beside the JSON API: every change is a newsroom.Room method called with
// the signed-in editor as the actor, so both doors follow the same rules.
package desk

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"newsletter/editors"
	"newsletter/newsroom"
)

// Prefix is where the desk is mounted.
const Prefix = "/desk"

// Desk serves the desk. Set the fields, then call Handler.
type Desk struct {
	DB       *sqlx.DB
	Room     *newsroom.Room
	Accounts *editors.Store
	// BaseURL is NEWSLETTER_BASE_URL: https there makes the cookie Secure.
	BaseURL string
	Log     *slog.Logger
	// IdleTimeout and Lifetime bound a session (zero: the defaults).
	IdleTimeout, Lifetime time.Duration
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// handler is a page or an action of a signed-in editor.
type handler func(d *Desk, w http.ResponseWriter, r *http.Request, s *session) error

// route is one page or action: its pattern (net/http's syntax, under
// Prefix) and whether only an admin may use it.
type route struct {
	pattern string
	admin   bool
	handle  handler
}

var routes = []route{
	{pattern: "GET /{$}", handle: func(d *Desk, w http.ResponseWriter, r *http.Request, _ *session) error {
		http.Redirect(w, r, Prefix+"/editions", http.StatusSeeOther)
		return nil
	}},
	{pattern: "POST /signout", handle: (*Desk).signOut},
	{pattern: "GET /editions", handle: (*Desk).editionsPage},
	{pattern: "POST /editions", handle: (*Desk).importEdition},
	{pattern: "GET /editions/{date}", handle: (*Desk).editionPage},
	{pattern: "GET /editions/{date}/preview", handle: (*Desk).previewFrame},
	{pattern: "POST /editions/{date}/test", handle: (*Desk).testSend},
	{pattern: "GET /editions/{date}/send", handle: (*Desk).confirmSend},
	{pattern: "POST /editions/{date}/send", handle: (*Desk).send},
	{pattern: "POST /editions/{date}/pause", handle: (*Desk).pause},
	{pattern: "POST /editions/{date}/resume", handle: (*Desk).resume},
	{pattern: "POST /editions/{date}/edit", handle: (*Desk).edit},
	{pattern: "POST /editions/{date}/schedule", handle: (*Desk).schedule},
	{pattern: "POST /editions/{date}/cancel", handle: (*Desk).cancel},
	{pattern: "GET /editions/{date}/status", handle: (*Desk).status},
	{pattern: "GET /editions/{date}/undelivered.csv", handle: (*Desk).undeliveredCSV},
	{pattern: "GET /subscribers", admin: true, handle: (*Desk).subscribersPage},
	{pattern: "POST /subscribers/unsubscribe", admin: true, handle: (*Desk).unsubscribe},
	{pattern: "GET /editors", admin: true, handle: (*Desk).editorsPage},
	{pattern: "GET /audit", admin: true, handle: (*Desk).auditPage},
}

// Handler routes the desk; mount it at Prefix and Prefix+"/".
func (d *Desk) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Prefix, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Prefix+"/", http.StatusSeeOther)
	})
	mux.HandleFunc("GET "+Prefix+"/signin", d.signInPage)
	mux.HandleFunc("POST "+Prefix+"/signin", d.signIn)
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET "+Prefix+"/static/", http.StripPrefix(Prefix+"/static/", http.FileServerFS(static)))
	for _, rt := range routes {
		mux.HandleFunc(strings.Replace(rt.pattern, " ", " "+Prefix, 1), d.serve(rt))
	}
	return headers(mux)
}

// csp is the desk's Content-Security-Policy: its own script and styles
// only, nothing inline, frames only of its own previews.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-src 'self'; " +
	"frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"

// headers sets what every desk answer carries; the preview frame replaces
// the policy with its own.
func headers(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

// origin refuses POSTs a browser marks as cross-site before any token is
// looked at (Sec-Fetch-Site, or an Origin not this host's).
var origin = http.NewCrossOriginProtection()

// serve finds the session, checks the role and, on a POST, the form's
// CSRF token, then runs the route.
func (d *Desk) serve(rt route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := d.session(r)
		if errors.Is(err, errNoSession) {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, Prefix+"/signin", http.StatusSeeOther)
				return
			}
			d.errorPage(w, r, nil, http.StatusUnauthorized, "Your session has ended: sign in again.")
			return
		}
		if err != nil {
			d.fail(w, r, s, err)
			return
		}
		if rt.admin && s.account.Role != editors.Admin {
			d.errorPage(w, r, s, http.StatusForbidden, "This page is for admins; your account is an editor's.")
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
			if !d.formOK(w, r, s) {
				return
			}
		}
		if err := rt.handle(d, w, r, s); err != nil {
			d.fail(w, r, s, err)
		}
	}
}

// maxForm bounds a form's body: the largest is an uploaded edition.
const maxForm = 8 << 20

// formOK parses the form and checks it came from one of the session's
// pages; it answers 403 when not.
func (d *Desk) formOK(w http.ResponseWriter, r *http.Request, s *session) bool {
	var err error
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		err = r.ParseMultipartForm(1 << 20)
	} else {
		err = r.ParseForm()
	}
	if err != nil {
		d.errorPage(w, r, s, http.StatusBadRequest, "The form could not be read: "+err.Error())
		return false
	}
	if origin.Check(r) != nil || !s.checkCSRF(r) {
		d.errorPage(w, r, s, http.StatusForbidden, "This form is out of date or did not come from the desk: reload the page and try again.")
		return false
	}
	return true
}

// actor is the signed-in editor acting through the desk.
func actor(r *http.Request, s *session) newsroom.Actor {
	return newsroom.Actor{Name: s.account.Email, Role: s.account.Role, Via: "desk", IP: clientIP(r)}
}

// clientIP is the peer's address (no proxy is trusted for the desk yet).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	return host
}

func (d *Desk) secure() bool { return strings.HasPrefix(d.BaseURL, "https://") }

// page is what every template gets.
type page struct {
	Title   string
	Session *session
	CSRF    string
	Notice  string
	Data    any
}

func (p page) Admin() bool { return p.Session != nil && p.Session.account.Role == editors.Admin }

func (p page) Email() string {
	if p.Session == nil {
		return ""
	}
	return p.Session.account.Email
}

var pages = map[string]*template.Template{}

func init() {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	for _, n := range names {
		if n == "templates/layout.html" {
			continue
		}
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		pages[name] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n))
	}
}

// render writes the page with status.
func (d *Desk) render(w http.ResponseWriter, status int, name string, p page) {
	if p.Session != nil {
		p.CSRF = p.Session.csrf()
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := pages[name].Execute(w, p); err != nil && !errors.Is(err, context.Canceled) {
		d.Log.Error("desk: render", "page", name, "err", err)
	}
}

func (d *Desk) errorPage(w http.ResponseWriter, r *http.Request, s *session, status int, msg string) {
	d.render(w, status, "error", page{Title: http.StatusText(status), Session: s, Data: msg})
}
