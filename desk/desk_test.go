package desk_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"

	"newsletter/delivery"
	"newsletter/desk"
	"newsletter/edition"
	"newsletter/editors"
	"newsletter/internal/pgtest"
	"newsletter/newsroom"
	"newsletter/subscribers"
	"newsletter/templates"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const pw = "correct horse battery staple"

type fixture struct {
	t    *testing.T
	db   *sqlx.DB
	base string
}

// newFixture serves a desk over a database of its own with an admin and
// an editor.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	db := pgtest.New(t)
	accts := &editors.Store{DB: db}
	for _, a := range []struct {
		email string
		role  editors.Role
	}{{"chief@news.example", editors.Admin}, {"ed@news.example", editors.Editor}} {
		if _, err := accts.Add(context.Background(), a.email, a.role, pw); err != nil {
			t.Fatal(err)
		}
	}
	tpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	room := &newsroom.Room{DB: db, Editions: &edition.Store{DB: db}, Queue: &delivery.Queue{DB: db}, Subscribers: &subscribers.Store{DB: db},
		Render: func(ed *edition.Edition) (*templates.Rendered, error) {
			return tpl.RenderEdition(ed, templates.EditionData{BaseURL: "https://news.example.com"})
		},
		FromDomain: "news.example.com", BaseURL: "https://news.example.com"}
	room.Compose = func(ed *edition.Edition) (*delivery.Composer, error) {
		r, err := room.Render(ed)
		if err != nil {
			return nil, err
		}
		return &delivery.Composer{Rendered: r, From: &mail.Address{Name: "London Daily", Address: "daily@news.example.com"},
			UnsubscribeURL: func(uuid string) string { return "https://news.example.com/u/" + uuid }}, nil
	}
	d := &desk.Desk{DB: db, Room: room, Accounts: accts, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	srv := httptest.NewServer(d.Handler())
	t.Cleanup(srv.Close)
	return &fixture{t: t, db: db, base: srv.URL}
}

// client is a browser-like client: cookies kept, redirects not followed.
func (f *fixture) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (f *fixture) do(c *http.Client, method, path string, form url.Values) (int, string, http.Header) {
	f.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, f.base+path, body)
	if err != nil {
		f.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// signIn signs c in and returns the CSRF token of its session.
func (f *fixture) signIn(c *http.Client, email string) string {
	f.t.Helper()
	code, _, hd := f.do(c, "POST", "/desk/signin", url.Values{"email": {email}, "password": {pw}})
	if code != http.StatusSeeOther || hd.Get("Location") != "/desk/editions" {
		f.t.Fatalf("sign in as %s: %d %v", email, code, hd)
	}
	code, page, _ := f.do(c, "GET", "/desk/editions", nil)
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if code != 200 || m == nil {
		f.t.Fatalf("editions page: %d\n%s", code, page)
	}
	return m[1]
}

// state is what a refused request must leave as it was, the audit record
// aside.
func (f *fixture) state() string {
	f.t.Helper()
	var s string
	err := f.db.Get(&s, `SELECT concat_ws(' ', (SELECT count(*) FROM editions), (SELECT count(*) FROM desk_sessions),
		(SELECT count(*) FROM editors), (SELECT count(*) FROM deliveries))`)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func (f *fixture) audit(action string) int {
	var n int
	f.db.Get(&n, `SELECT count(*) FROM audit_log WHERE action = $1`, action)
	return n
}

func TestSignIn(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	// Without a session, the desk sends the browser to sign in.
	for _, p := range []string{"/desk", "/desk/", "/desk/editions", "/desk/audit"} {
		code, _, hd := f.do(c, "GET", p, nil)
		if code != http.StatusSeeOther || !strings.HasPrefix(hd.Get("Location"), "/desk") {
			t.Fatalf("GET %s without a session: %d %s", p, code, hd.Get("Location"))
		}
	}
	if code, _, hd := f.do(c, "GET", "/desk/editions", nil); hd.Get("Location") != "/desk/signin" {
		t.Fatalf("GET /desk/editions: %d to %q", code, hd.Get("Location"))
	}
	code, page, hd := f.do(c, "GET", "/desk/signin", nil)
	if code != 200 || !strings.Contains(page, `type="password"`) || !strings.Contains(hd.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("sign-in page: %d %v", code, hd)
	}

	// A wrong password and an unknown account get the same answer, and
	// change nothing but the audit record.
	before := f.state()
	c1, wrong, _ := f.do(c, "POST", "/desk/signin", url.Values{"email": {"chief@news.example"}, "password": {pw + "!"}})
	c2, unknown, _ := f.do(c, "POST", "/desk/signin", url.Values{"email": {"nobody@news.example"}, "password": {pw}})
	unknown = strings.Replace(unknown, "nobody@news.example", "chief@news.example", 1) // the form keeps what was typed
	if c1 != http.StatusUnauthorized || c2 != c1 || wrong != unknown || !strings.Contains(wrong, "Unknown account or wrong password") {
		t.Fatalf("wrong password %d, unknown account %d:\n%s\n----\n%s", c1, c2, wrong, unknown)
	}
	if f.state() != before || f.audit("sign-in-failed") != 2 || f.audit("sign-in") != 0 {
		t.Fatalf("failed sign-ins: state %s -> %s, audit %d", before, f.state(), f.audit("sign-in-failed"))
	}
	// Five failures for an account: the right password is refused too,
	// for a while.
	for range 4 {
		f.do(c, "POST", "/desk/signin", url.Values{"email": {"chief@news.example"}, "password": {"guess guess guess"}})
	}
	if code, _, _ := f.do(c, "POST", "/desk/signin", url.Values{"email": {"CHIEF@news.example"}, "password": {pw}}); code != http.StatusTooManyRequests {
		t.Fatalf("sign-in after 5 failures: %d, want 429", code)
	}

	// The editor signs in; the session cookie is as it should be.
	ed := f.client()
	code, _, hd = f.do(ed, "POST", "/desk/signin", url.Values{"email": {"ed@news.example"}, "password": {pw}})
	ck := hd.Get("Set-Cookie")
	if code != http.StatusSeeOther || !strings.Contains(ck, "HttpOnly") || !strings.Contains(ck, "SameSite=Lax") || !strings.Contains(ck, "Path=/desk") {
		t.Fatalf("sign-in: %d, cookie %q", code, ck)
	}
	var stored []byte
	f.db.Get(&stored, `SELECT id_hash FROM desk_sessions`)
	if value := strings.TrimPrefix(strings.Split(ck, ";")[0], "nl_desk="); len(stored) != 32 || strings.Contains(string(stored), value) {
		t.Fatalf("the session id is stored as it is, or not at all: %x", stored)
	}
	if f.audit("sign-in") != 1 {
		t.Fatal("the sign-in is not in the audit record")
	}
	csrf := f.signIn(ed, "ed@news.example")
	// An editor on an admin page.
	for _, p := range []string{"/desk/subscribers", "/desk/editors", "/desk/audit"} {
		if code, _, _ := f.do(ed, "GET", p, nil); code != http.StatusForbidden {
			t.Fatalf("an editor on %s: %d, want 403", p, code)
		}
	}
	if code, _, _ := f.do(ed, "POST", "/desk/subscribers/unsubscribe", url.Values{"csrf": {csrf}, "email": {"a@example.com"}}); code != http.StatusForbidden {
		t.Fatalf("an editor unsubscribing: %d", code)
	}

	// A form without its token, or with another's, changes nothing.
	typed := url.Values{"source": {"form"}, "date": {"2025-11-13"}, "site": {"London Daily"}, "lead_title": {"A headline"}, "paragraphs": {"One.\n\nTwo."}}
	before = f.state()
	auditBefore := f.audit("import")
	for _, tok := range []string{"", "x" + csrf[1:], strings.Repeat("A", len(csrf))} {
		form := url.Values{}
		for k, v := range typed {
			form[k] = v
		}
		if tok != "" {
			form.Set("csrf", tok)
		}
		if code, _, _ := f.do(ed, "POST", "/desk/editions", form); code != http.StatusForbidden {
			t.Fatalf("import with token %q: %d, want 403", tok, code)
		}
	}
	if f.state() != before || f.audit("import") != auditBefore {
		t.Fatalf("a refused form changed something: %s -> %s", before, f.state())
	}
	typed.Set("csrf", csrf)
	if code, body, hd := f.do(ed, "POST", "/desk/editions", typed); code != http.StatusSeeOther || hd.Get("Location") != "/desk/editions/2025-11-13?done=imported" {
		t.Fatalf("import with the token: %d %s\n%s", code, hd.Get("Location"), body)
	}

	// Sign-out ends the session on the server: the old cookie is refused.
	old := ed.Jar.Cookies(mustURL(t, f.base+"/desk/"))
	if code, _, _ := f.do(ed, "POST", "/desk/signout", url.Values{"csrf": {csrf}}); code != http.StatusSeeOther {
		t.Fatalf("sign out: %d", code)
	}
	replay := f.client()
	replay.Jar.SetCookies(mustURL(t, f.base+"/desk/"), old)
	if code, _, hd := f.do(replay, "GET", "/desk/editions", nil); code != http.StatusSeeOther || hd.Get("Location") != "/desk/signin" {
		t.Fatalf("the cookie of an ended session: %d %s", code, hd.Get("Location"))
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// A session past its absolute expiry, or idle too long, is refused.
func TestSessionExpiry(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	f.signIn(c, "chief@news.example")
	if code, _, _ := f.do(c, "GET", "/desk/audit", nil); code != 200 {
		t.Fatalf("an admin on the audit page: %d", code)
	}
	f.db.MustExec(`UPDATE desk_sessions SET expires_at = now() - interval '1 second'`)
	if code, _, hd := f.do(c, "GET", "/desk/editions", nil); code != http.StatusSeeOther || hd.Get("Location") != "/desk/signin" {
		t.Fatalf("an expired session: %d %s", code, hd.Get("Location"))
	}
	c = f.client()
	f.signIn(c, "chief@news.example")
	f.db.MustExec(`UPDATE desk_sessions SET last_seen_at = now() - interval '31 minutes'`)
	if code, _, _ := f.do(c, "GET", "/desk/editions", nil); code != http.StatusSeeOther {
		t.Fatalf("an idle session: %d", code)
	}
}
