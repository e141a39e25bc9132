package web_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"strings"
	"testing"
	"time"

	"newsletter/edition"
	"newsletter/internal/logtest"
	"newsletter/internal/pgtest"
	"newsletter/internal/smtptest"
	"newsletter/smtpclient"
	"newsletter/subscribers"
	"newsletter/templates"
	"newsletter/web"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type fixture struct {
	srv  *httptest.Server
	subs *subscribers.Store
	eds  *edition.Store
	logs *logtest.Buffer
	smtp *smtptest.Server
	// outbox sends the confirmation emails to smtp.
	outbox *web.Outbox
	base   string // the server's URL, which is also its NEWSLETTER_BASE_URL
}

func newFixture(t testing.TB) *fixture { return newFixtureWith(t, nil) }

// newFixtureWith starts the reader pages on a database and an SMTP server
// of their own; configure, if not nil, adjusts the server before it starts.
func newFixtureWith(t testing.TB, configure func(*web.Server, *subscribers.Store)) *fixture {
	t.Helper()
	db := pgtest.New(t)
	db.SetMaxOpenConns(web.DBPoolSize)
	db.SetMaxIdleConns(web.DBPoolSize)
	tok, err := subscribers.NewTokens([]byte(strings.Repeat("s", 32)))
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{subs: &subscribers.Store{DB: db, Tokens: tok}, eds: &edition.Store{DB: db}, logs: &logtest.Buffer{}, smtp: smtptest.Start(t)}
	log := slog.New(slog.NewTextHandler(f.logs, nil))
	f.outbox = web.NewOutbox(smtpclient.Config{Host: f.smtp.Host(), Port: f.smtp.Port(), TLS: smtpclient.TLSNone, Timeout: 10 * time.Second}, log, 2, 100_000)
	t.Cleanup(func() { f.outbox.Close(context.Background()) })
	f.srv = httptest.NewUnstartedServer(nil)
	f.base = "http://" + f.srv.Listener.Addr().String()
	s := &web.Server{
		DB: db, Subscribers: f.subs, Editions: f.eds, Templates: tpl, SiteName: "London Daily",
		BaseURL: f.base, Log: log,
		Outbox: f.outbox, From: &mail.Address{Name: "London Daily", Address: "newsletter@london-daily.example"},
	}
	if configure != nil {
		configure(s, f.subs)
	}
	f.srv.Config.Handler = s.Handler()
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	return f
}

// noRedirects is a client that shows redirects instead of following them.
var noRedirects = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       10 * time.Second,
}

func (f *fixture) subscriber(t *testing.T, email string) (*subscribers.Subscriber, string) {
	t.Helper()
	s, err := f.subs.Add(context.Background(), email, "Reader", subscribers.Confirmed)
	if err != nil {
		t.Fatal(err)
	}
	return s, f.subs.Tokens.Unsubscribe(s.UUID)
}

func (f *fixture) status(t *testing.T, id int64) subscribers.Status {
	t.Helper()
	s, err := f.subs.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return s.Status
}

func body(t testing.TB, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A mailbox provider's one-click POST (RFC 8058 section 3.1): the exact
// body, no cookie; answered 200 with no redirect, effective at once.
func TestOneClickPost(t *testing.T) {
	f := newFixture(t)
	var tokens []string
	for _, enc := range []string{"urlencoded", "multipart"} {
		t.Run(enc, func(t *testing.T) {
			sub, tok := f.subscriber(t, enc+"@example.com")
			tokens = append(tokens, tok)
			var req *http.Request
			if enc == "urlencoded" {
				req, _ = http.NewRequest("POST", f.srv.URL+"/u/"+tok, strings.NewReader("List-Unsubscribe=One-Click"))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			} else {
				var b bytes.Buffer
				mw := multipart.NewWriter(&b)
				mw.WriteField("List-Unsubscribe", "One-Click")
				mw.Close()
				req, _ = http.NewRequest("POST", f.srv.URL+"/u/"+tok, &b)
				req.Header.Set("Content-Type", mw.FormDataContentType())
			}
			resp, err := noRedirects.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			text := body(t, resp)
			if resp.StatusCode != 200 || resp.Header.Get("Location") != "" || resp.Header.Get("Set-Cookie") != "" {
				t.Fatalf("one-click POST: %d, Location %q, Set-Cookie %q; want a plain 200", resp.StatusCode, resp.Header.Get("Location"), resp.Header.Get("Set-Cookie"))
			}
			if !strings.Contains(text, "You are unsubscribed") {
				t.Fatalf("page: %.300s", text)
			}
			if st := f.status(t, sub.ID); st != subscribers.Unsubscribed {
				t.Fatalf("status %s after one-click, want unsubscribed", st)
			}
			// Again: still 200, still unsubscribed (a provider may retry).
			resp, _ = noRedirects.Do(mustReq(t, "POST", f.srv.URL+"/u/"+tok, "List-Unsubscribe=One-Click"))
			if resp.StatusCode != 200 {
				t.Fatalf("second one-click: %d", resp.StatusCode)
			}
			resp.Body.Close()
		})
	}
	for _, tok := range tokens {
		if strings.Contains(f.logs.String(), tok) || strings.Contains(f.logs.String(), "@example.com") {
			t.Fatalf("the logs hold a token or an address:\n%s", f.logs.String())
		}
	}
	if !strings.Contains(f.logs.String(), "subscriber=") {
		t.Fatal("the unsubscribe is not logged by subscriber id")
	}
}

func mustReq(t *testing.T, method, url, form string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	if form != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return req
}

// A link scanner's GET shows the page and changes nothing; the page's
// button posts the one-click body to the same URL.
func TestGetChangesNothing(t *testing.T) {
	f := newFixture(t)
	sub, tok := f.subscriber(t, "ada@example.com")
	for range 3 {
		resp, err := noRedirects.Get(f.srv.URL + "/u/" + tok)
		if err != nil {
			t.Fatal(err)
		}
		page := body(t, resp)
		if resp.StatusCode != 200 {
			t.Fatalf("GET: %d", resp.StatusCode)
		}
		for _, want := range []string{`method="post"`, `name="List-Unsubscribe"`, `value="One-Click"`, `action="/u/` + tok + `"`} {
			if !strings.Contains(page, want) {
				t.Fatalf("page lacks %s: %.500s", want, page)
			}
		}
		if strings.Contains(page, "ada@example.com") {
			t.Fatal("the page shows the whole address to whoever holds the link")
		}
	}
	if st := f.status(t, sub.ID); st != subscribers.Confirmed {
		t.Fatalf("status %s after GETs, want confirmed", st)
	}
}

func TestBadTokensAndBodies(t *testing.T) {
	f := newFixture(t)
	sub, tok := f.subscriber(t, "ada@example.com")
	tampered := []byte(tok)
	tampered[5] ^= 2
	for _, bad := range []string{string(tampered), "unknown", strings.Repeat("A", 43), tok[:42]} {
		for _, method := range []string{"GET", "POST"} {
			resp, err := noRedirects.Do(mustReq(t, method, f.srv.URL+"/u/"+bad, "List-Unsubscribe=One-Click"))
			if err != nil {
				t.Fatal(err)
			}
			page := body(t, resp)
			if resp.StatusCode != 404 || !strings.Contains(page, "not valid") {
				t.Errorf("%s of token %q: %d, want 404 'not valid'", method, bad, resp.StatusCode)
			}
		}
	}
	// A POST without the one-click body does nothing.
	resp, _ := noRedirects.Do(mustReq(t, "POST", f.srv.URL+"/u/"+tok, "something=else"))
	if resp.StatusCode != 400 {
		t.Errorf("POST without List-Unsubscribe=One-Click: %d, want 400", resp.StatusCode)
	}
	resp.Body.Close()
	if st := f.status(t, sub.ID); st != subscribers.Confirmed {
		t.Fatalf("status %s after bad requests, want confirmed", st)
	}
}

func TestHealth(t *testing.T) {
	f := newFixture(t)
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(f.srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		if b := body(t, resp); resp.StatusCode != 200 || b != "ok\n" {
			t.Errorf("%s: %d %q", p, resp.StatusCode, b)
		}
	}
}

func TestWebEditionOnlyOnceSent(t *testing.T) {
	f := newFixture(t)
	data, err := readSeed()
	if err != nil {
		t.Fatal(err)
	}
	ed, format, err := edition.Parse(data, edition.ParseOptions{SiteURL: "https://london-daily.example"})
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := f.eds.Save(context.Background(), ed, format)
	if err != nil {
		t.Fatal(err)
	}
	resp, _ := http.Get(f.srv.URL + "/editions/2025-11-13")
	if resp.StatusCode != 404 {
		t.Fatalf("unsent edition: %d, want 404", resp.StatusCode)
	}
	resp.Body.Close()
	if err := edition.MarkSendStarted(context.Background(), f.eds.DB, id, 0, ""); err != nil {
		t.Fatal(err)
	}
	resp, _ = http.Get(f.srv.URL + "/editions/2025-11-13")
	page := body(t, resp)
	if resp.StatusCode != 200 || !strings.Contains(page, "Russia and Belarus hold military drills") || !strings.Contains(page, "UK Bonds Rally") {
		t.Fatalf("web edition: %d %.300s", resp.StatusCode, page)
	}
	if strings.Contains(page, "/u/") {
		t.Fatal("the web edition carries an unsubscribe link: it must hold nothing personal")
	}
	resp, _ = http.Get(f.srv.URL + "/editions")
	if page := body(t, resp); !strings.Contains(page, "2025-11-13") {
		t.Fatalf("archive lacks the edition: %.300s", page)
	}
	for _, p := range []string{"/editions/2030-01-01", "/editions/yesterday"} {
		resp, _ = http.Get(f.srv.URL + p)
		if resp.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", p, resp.StatusCode)
		}
		resp.Body.Close()
	}
}
