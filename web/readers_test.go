package web_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/mail"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"newsletter/internal/smtptest"
	"newsletter/subscribers"
	"newsletter/web"
)

// browser is an HTTP client with a cookie jar, as a person's browser is:
// it opens a page, then sends the page's form.
type browser struct {
	t      testing.TB
	f      *fixture
	client *http.Client
	header http.Header // added to every request
}

func (f *fixture) browser(t testing.TB) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, f: f, header: http.Header{}, client: &http.Client{
		Jar:           jar,
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (b *browser) do(method, path string, form url.Values) (int, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	u := path
	if !strings.HasPrefix(u, "http") {
		u = b.f.base + path
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range b.header {
		req.Header[k] = v
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp.StatusCode, body2(b.t, resp)
}

func body2(t testing.TB, r *http.Response) string { return body(t, r) }

func (b *browser) get(path string) (int, string) { return b.do("GET", path, nil) }

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the form token on a page.
func csrfOf(t testing.TB, page string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("the page has no CSRF field: %.400s", page)
	}
	return m[1]
}

// submit opens the page at pagePath and posts its form's token with values
// to action.
func (b *browser) submit(pagePath, action string, values url.Values) (int, string) {
	b.t.Helper()
	code, page := b.get(pagePath)
	if code != 200 {
		b.t.Fatalf("GET %s: %d", pagePath, code)
	}
	values.Set("csrf", csrfOf(b.t, page))
	return b.do("POST", action, values)
}

func (b *browser) signUp(email, name string) (int, string) {
	b.t.Helper()
	return b.submit("/subscribe", "/subscribe", url.Values{"email": {email}, "name": {name}})
}

// textPart is the decoded text/plain part of a message.
func textPart(t *testing.T, m smtptest.Message) (string, *mail.Message) {
	t.Helper()
	return partOf(t, m, "text/plain")
}

// htmlPart is the decoded text/html part of a message.
func htmlPart(t *testing.T, m smtptest.Message) string {
	t.Helper()
	s, _ := partOf(t, m, "text/html")
	return s
}

func partOf(t *testing.T, m smtptest.Message, ctype string) (string, *mail.Message) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("no %s part: %v", ctype, err)
		}
		if strings.HasPrefix(p.Header.Get("Content-Type"), ctype) {
			b, _ := io.ReadAll(p)
			return string(b), msg
		}
	}
}

var confirmLinkRE = regexp.MustCompile(`https?://\S+/confirm/[A-Za-z0-9_-]{43}`)

// confirmLink is the link in a confirmation email, as the reader sees it.
func confirmLink(t *testing.T, m smtptest.Message) string {
	t.Helper()
	text, _ := textPart(t, m)
	link := confirmLinkRE.FindString(text)
	if link == "" {
		t.Fatalf("no confirmation link in:\n%s", text)
	}
	return link
}

// drain waits for every queued confirmation email to be sent, so a test can
// count what was sent without waiting on a clock.
func (f *fixture) drain(t *testing.T) []smtptest.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.outbox.Close(ctx); err != nil {
		t.Fatalf("outbox: %v", err)
	}
	return f.smtp.Messages()
}

func (f *fixture) byEmail(t *testing.T, email string) *subscribers.Subscriber {
	t.Helper()
	s, err := f.subs.ByEmail(context.Background(), email)
	if err != nil {
		t.Fatalf("%s: %v", email, err)
	}
	return s
}

func (f *fixture) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := f.subs.DB.Get(&n, query, args...); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSignUpConfirmOverHTTP(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	b.header.Set("User-Agent", "TestBrowser/1.0")
	code, page := b.signUp("ada@example.com", "Ada Lovelace")
	if code != 200 || !strings.Contains(page, "Check your inbox") {
		t.Fatalf("sign-up: %d %.500s", code, page)
	}
	sub := f.byEmail(t, "ada@example.com")
	if sub.Status != subscribers.Pending || sub.Name != "Ada Lovelace" {
		t.Fatalf("after sign-up: %+v", sub)
	}
	msgs := f.smtp.WaitFor(t, 1, 20*time.Second)
	if len(msgs[0].To) != 1 || msgs[0].To[0] != "ada@example.com" || msgs[0].From != "newsletter@london-daily.example" {
		t.Fatalf("envelope %s -> %v", msgs[0].From, msgs[0].To)
	}
	text, hdr := textPart(t, msgs[0])
	if got := hdr.Header.Get("Subject"); got != "Confirm your subscription to London Daily" {
		t.Errorf("subject %q", got)
	}
	// One person's requested mail: not marked as bulk, which some filters
	// and auto-responders treat as list mail.
	if hdr.Header.Get("List-Unsubscribe") != "" || hdr.Header.Get("Auto-Submitted") != "auto-generated" ||
		hdr.Header.Get("Precedence") != "" || hdr.Header.Get("X-Auto-Response-Suppress") != "" {
		t.Errorf("confirmation email headers: %v", hdr.Header)
	}
	// The name is what whoever typed the address typed: the owner hasn't
	// confirmed it, so the mail greets nobody by it and has none in To.
	if !strings.Contains(text, "Hello,") || strings.Contains(text, "Ada Lovelace") || !strings.Contains(text, "7 days") {
		t.Errorf("text part:\n%s", text)
	}
	if to := hdr.Header.Get("To"); to != "<ada@example.com>" && to != "ada@example.com" {
		t.Errorf("To: %q, want the address alone", to)
	}
	link := confirmLink(t, msgs[0])
	if !strings.HasPrefix(link, f.base+"/confirm/") {
		t.Fatalf("link %s is not under the base URL %s", link, f.base)
	}
	// The GET shows the button and confirms nothing, however often.
	for range 3 {
		code, page = b.get(link)
		if code != 200 || !strings.Contains(page, "Confirm subscription") || !strings.Contains(page, "a***@example.com") || strings.Contains(page, "ada@example.com") {
			t.Fatalf("confirmation page: %d %.600s", code, page)
		}
	}
	if st := f.status(t, sub.ID); st != subscribers.Pending {
		t.Fatalf("status %s after GETs of the link, want pending", st)
	}
	// The button confirms.
	code, page = b.do("POST", link, url.Values{"csrf": {csrfOf(t, page)}})
	if code != 200 || !strings.Contains(page, "You are subscribed") {
		t.Fatalf("confirm: %d %.500s", code, page)
	}
	if st := f.status(t, sub.ID); st != subscribers.Confirmed {
		t.Fatalf("status %s after confirming, want confirmed", st)
	}
	// Single use: the link now says so, on GET and POST.
	if code, _ = b.get(link); code != 410 {
		t.Fatalf("GET of a used link: %d, want 410", code)
	}
	if code, _ = b.do("POST", link, url.Values{"csrf": {csrfOf(t, mustCSRFPage(t, b))}}); code != 410 {
		t.Fatalf("second confirm: %d, want 410", code)
	}
	// The consent record has the sign-up and the confirmation, with the
	// request's IP and user agent.
	cs, err := f.subs.Consents(context.Background(), sub.ID)
	if err != nil || len(cs) != 2 {
		t.Fatalf("consents %+v %v", cs, err)
	}
	for _, c := range cs {
		if c.Method != subscribers.MethodForm || c.IP == nil || *c.IP != "127.0.0.1" || c.UserAgent != "TestBrowser/1.0" {
			t.Errorf("consent entry %+v", c)
		}
	}
	f.noSecretsInLogs(t, link[strings.LastIndexByte(link, '/')+1:], "ada@example.com")
}

// mustCSRFPage is a form token of the browser's cookie, from the sign-up
// page.
func mustCSRFPage(t *testing.T, b *browser) string {
	t.Helper()
	_, p := b.get("/subscribe")
	return p
}

func (f *fixture) noSecretsInLogs(t *testing.T, secrets ...string) {
	t.Helper()
	logs := f.logs.String()
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Fatalf("the logs hold %q:\n%s", s, logs)
		}
	}
}

// The sign-up page and its status are the same whether the address is new,
// waiting, subscribed or gone: the form tells nobody who subscribes.
func TestSignUpRevealsNothing(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.subs.Add(ctx, "confirmed@example.com", "C", subscribers.Confirmed)
	f.subs.Add(ctx, "waiting@example.com", "W", subscribers.Pending)
	left, _ := f.subs.Add(ctx, "left@example.com", "L", subscribers.Confirmed)
	f.subs.Unsubscribe(ctx, left.ID)
	var first string
	for _, addr := range []string{"new@example.com", "confirmed@example.com", "waiting@example.com", "left@example.com"} {
		code, page := f.browser(t).signUp(addr, "")
		page = strings.ReplaceAll(page, addr, "ADDRESS")
		if code != 200 {
			t.Fatalf("%s: %d", addr, code)
		}
		if first == "" {
			first = page
		} else if page != first {
			t.Fatalf("the page for %s differs from the one for a new address:\n%s\n----\n%s", addr, page, first)
		}
	}
	msgs := f.drain(t)
	var to []string
	for _, m := range msgs {
		to = append(to, m.To...)
	}
	if got := strings.Join(sortStrings(to), " "); got != "left@example.com new@example.com waiting@example.com" {
		t.Fatalf("confirmation emails went to %s", got)
	}
	// Nothing changed for the subscribed and the departed until they press
	// the link.
	if st := f.byEmail(t, "confirmed@example.com").Status; st != subscribers.Confirmed {
		t.Errorf("confirmed became %s", st)
	}
	if st := f.byEmail(t, "left@example.com").Status; st != subscribers.Unsubscribed {
		t.Errorf("left became %s", st)
	}
}

func sortStrings(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestSignUpRefusesBadAddressesClearly(t *testing.T) {
	f := newFixture(t)
	for addr, want := range map[string]string{
		"ada@example":       "has no dot",
		"ada@@example.com":  "not an email address",
		"ada example.com":   "not an email address",
		"":                  "empty",
		"ada@exa_mple.com":  "contains",
		"ada@example..com":  "two dots in a row",
		"Ada <a@b.example>": "not an email address",
	} {
		code, page := f.browser(t).signUp(addr, "")
		if code != 400 || !strings.Contains(page, want) || !strings.Contains(page, `aria-invalid="true"`) || !strings.Contains(page, "<title>Error:") {
			t.Errorf("%q: %d, want 400 saying %q: %.300s", addr, code, want, page)
		}
	}
	if n := f.count(t, `SELECT count(*) FROM subscribers`); n != 0 {
		t.Fatalf("%d subscribers after bad sign-ups", n)
	}
}

func TestInternationalisedDomainSignUp(t *testing.T) {
	f := newFixture(t)
	if code, _ := f.browser(t).signUp("leser@Bücher.example", "Leser"); code != 200 {
		t.Fatalf("sign-up: %d", code)
	}
	if s := f.byEmail(t, "leser@bücher.example"); s.Email != "leser@bücher.example" {
		t.Fatalf("stored %q", s.Email)
	}
	msgs := f.smtp.WaitFor(t, 1, 20*time.Second)
	if msgs[0].To[0] != "leser@xn--bcher-kva.example" {
		t.Fatalf("RCPT TO %v, want the A-label form", msgs[0].To)
	}
}

func TestHoneypot(t *testing.T) {
	f := newFixture(t)
	code, page := f.browser(t).submit("/subscribe", "/subscribe", url.Values{"email": {"bot-target@example.com"}, "website": {"http://spam.example"}})
	if code != 200 || !strings.Contains(page, "Check your inbox") {
		t.Fatalf("honeypot: %d %.300s", code, page)
	}
	if n := f.count(t, `SELECT count(*) FROM subscribers`); n != 0 {
		t.Fatal("a bot's sign-up was stored")
	}
	if msgs := f.drain(t); len(msgs) != 0 {
		t.Fatal("a bot's sign-up was mailed")
	}
}

// Every form needs the CSRF token of the browser's cookie, and a POST the
// browser marks as cross-site is refused; the one-click POST needs neither.
func TestCSRF(t *testing.T) {
	f := newFixture(t)
	sub, tok := f.subscriber(t, "ada@example.com")
	b := f.browser(t)
	_, page := b.get("/subscribe")
	good := csrfOf(t, page)
	other := f.browser(t)
	_, otherPage := other.get("/subscribe")
	foreign := csrfOf(t, otherPage)

	forms := []struct{ path, page string }{
		{"/subscribe", "/subscribe"},
		{"/u/" + tok + "/name", "/u/" + tok},
		{"/u/" + tok + "/email", "/u/" + tok},
		{"/u/" + tok + "/resubscribe", "/u/" + tok},
	}
	values := func(csrf string) url.Values {
		v := url.Values{"email": {"victim@example.com"}, "name": {"Changed"}}
		if csrf != "" {
			v.Set("csrf", csrf)
		}
		return v
	}
	for _, form := range forms {
		// No token; another browser's token; no cookie at all.
		for name, c := range map[string]struct {
			b    *browser
			csrf string
		}{
			"missing token":   {b, ""},
			"foreign token":   {b, foreign},
			"no cookie":       {f.browser(t), good},
			"malformed token": {b, good[:len(good)-1]},
		} {
			if code, _ := c.b.do("POST", form.path, values(c.csrf)); code != 403 {
				t.Errorf("POST %s with %s: %d, want 403", form.path, name, code)
			}
		}
		// The right token from a cross-site page.
		for h, v := range map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"} {
			b.header.Set(h, v)
			if code, _ := b.do("POST", form.path, values(good)); code != 403 {
				t.Errorf("POST %s with %s: %s: %d, want 403", form.path, h, v, code)
			}
			b.header.Del(h)
		}
	}
	if n := f.count(t, `SELECT count(*) FROM subscribers`); n != 1 {
		t.Fatalf("%d subscribers after forged forms", n)
	}
	if s := f.byEmail(t, "ada@example.com"); s.Name != "Reader" {
		t.Fatalf("a forged form changed the name to %q", s.Name)
	}
	if msgs := f.drain(t); len(msgs) != 0 {
		t.Fatalf("forged forms sent %d emails", len(msgs))
	}
	// The confirmation button too.
	res, err := f.subs.SignUp(context.Background(), "new@example.com", "", subscribers.Source{Method: subscribers.MethodForm})
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := b.do("POST", "/confirm/"+res.Mailing.Token, url.Values{}); code != 403 {
		t.Errorf("confirm without a token: %d, want 403", code)
	}
	if st := f.byEmail(t, "new@example.com").Status; st != subscribers.Pending {
		t.Fatalf("a forged confirmation confirmed: %s", st)
	}
	// The one-click POST works cross-site, with no cookie, as mailbox
	// providers send it.
	req := mustReq(t, "POST", f.srv.URL+"/u/"+tok, "List-Unsubscribe=One-Click")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Origin", "https://mail.example")
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || f.status(t, sub.ID) != subscribers.Unsubscribed {
		t.Fatalf("cross-site one-click: %d, status %s", resp.StatusCode, f.status(t, sub.ID))
	}
}

// Expired, unknown and tampered confirmation links do nothing, on GET and
// POST alike.
func TestBadConfirmationLinks(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	expired, _ := f.subs.SignUp(ctx, "late@example.com", "", subscribers.Source{Method: subscribers.MethodForm})
	f.subs.DB.Exec(`UPDATE subscriber_tokens SET created_at = now() - interval '8 days', expires_at = now() - interval '1 day'`)
	valid, _ := f.subs.SignUp(ctx, "valid@example.com", "", subscribers.Source{Method: subscribers.MethodForm})
	tampered := []byte(valid.Mailing.Token)
	tampered[10] ^= 1
	b := f.browser(t)
	csrf := csrfOf(t, mustCSRFPage(t, b))
	for _, c := range []struct {
		token string
		code  int
		says  string
	}{
		{expired.Mailing.Token, 410, "expired"},
		{string(tampered), 404, "not valid"},
		{strings.Repeat("A", 43), 404, "not valid"},
		{"short", 404, "not valid"},
		{valid.Mailing.Token + "A", 404, "not valid"},
	} {
		for _, method := range []string{"GET", "POST"} {
			code, page := b.do(method, "/confirm/"+c.token, url.Values{"csrf": {csrf}})
			if code != c.code || !strings.Contains(page, c.says) {
				t.Errorf("%s of token %.12s…: %d, want %d saying %q", method, c.token, code, c.code, c.says)
			}
		}
	}
	for _, addr := range []string{"late@example.com", "valid@example.com"} {
		if st := f.byEmail(t, addr).Status; st != subscribers.Pending {
			t.Fatalf("%s is %s after bad links", addr, st)
		}
	}
}

func TestRateLimits(t *testing.T) {
	f := newFixtureWith(t, func(s *web.Server, subs *subscribers.Store) {
		s.IPLimit = web.RateLimit{Burst: 3, Every: time.Hour}
		s.TrustedProxies = mustPrefixes(t, "127.0.0.1/32")
		subs.Confirm = subscribers.ConfirmPolicy{PerWindow: 2, Gap: -1}
	})
	b := f.browser(t)
	b.header.Set("X-Forwarded-For", "198.51.100.10")
	for i := range 3 {
		if code, _ := b.signUp(fmt.Sprintf("r%d@example.com", i), ""); code != 200 {
			t.Fatalf("sign-up %d: %d", i, code)
		}
	}
	code, page := b.signUp("r3@example.com", "")
	if code != 429 || !strings.Contains(page, "Too many requests") {
		t.Fatalf("fourth sign-up from one client: %d, want 429", code)
	}
	// Another client behind the same trusted proxy has a bucket of its own;
	// so does a neighbour in another /64, but not the same /64.
	b.header.Set("X-Forwarded-For", "203.0.113.5, 198.51.100.11")
	if code, _ := b.signUp("other@example.com", ""); code != 200 {
		t.Fatalf("another client: %d", code)
	}
	for i, c := range []struct {
		xff  string
		want int
	}{{"2001:db8:1:2::1", 200}, {"2001:db8:1:2::2", 200}, {"2001:db8:1:2:ffff::3", 200}, {"2001:db8:1:2::4", 429}, {"2001:db8:1:3::1", 200}} {
		b.header.Set("X-Forwarded-For", c.xff)
		if code, _ := b.signUp(fmt.Sprintf("v6-%d@example.com", i), ""); code != c.want {
			t.Errorf("client %s: %d, want %d", c.xff, code, c.want)
		}
	}
	// Per address, whoever asks: two emails, then the page says the same
	// and nothing more is sent.
	for i := range 4 {
		b.header.Set("X-Forwarded-For", fmt.Sprintf("192.0.2.%d", i+1))
		if code, page := b.signUp("popular@example.com", ""); code != 200 || !strings.Contains(page, "Check your inbox") {
			t.Fatalf("sign-up %d of one address: %d", i, code)
		}
	}
	msgs := f.drain(t)
	n := 0
	for _, m := range msgs {
		if m.To[0] == "popular@example.com" {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d confirmation emails to one address, want 2", n)
	}

	// X-Forwarded-For from a peer that isn't a trusted proxy is ignored.
	g := newFixtureWith(t, func(s *web.Server, _ *subscribers.Store) { s.IPLimit = web.RateLimit{Burst: 1, Every: time.Hour} })
	gb := g.browser(t)
	gb.header.Set("X-Forwarded-For", "198.51.100.1")
	gb.signUp("a@example.com", "")
	gb.header.Set("X-Forwarded-For", "198.51.100.2")
	if code, _ := gb.signUp("b@example.com", ""); code != 429 {
		t.Fatalf("a forged X-Forwarded-For escaped the limit: %d", code)
	}
}

// A name with a line break can't add a header to the confirmation email,
// nor to anything else.
func TestHeaderInjectionInName(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	evil := "Ada\r\nBcc: victim@example.com\r\nSubject: Free money"
	if code, _ := b.signUp("ada@example.com", evil); code != 200 {
		t.Fatalf("sign-up: %d", code)
	}
	msgs := f.drain(t)
	if len(msgs) != 1 || len(msgs[0].To) != 1 || msgs[0].To[0] != "ada@example.com" {
		t.Fatalf("messages %+v", msgs)
	}
	_, m := textPart(t, msgs[0])
	if m.Header.Get("Bcc") != "" || m.Header.Get("Subject") != "Confirm your subscription to London Daily" || len(m.Header["Subject"]) != 1 {
		t.Fatalf("headers after a name with line breaks: %v", m.Header)
	}
	to, err := mail.ParseAddress(m.Header.Get("To"))
	if err != nil || to.Address != "ada@example.com" || to.Name != "" {
		t.Fatalf("To: %q (%v)", m.Header.Get("To"), err)
	}
	s := f.byEmail(t, "ada@example.com")
	if strings.ContainsAny(s.Name, "\r\n") {
		t.Fatalf("stored name %q", s.Name)
	}
	// The name form cleans it the same way.
	tok := f.subs.Tokens.Unsubscribe(s.UUID)
	if code, _ := b.submit("/u/"+tok, "/u/"+tok+"/name", url.Values{"name": {"Eve\nBcc: x@example.com"}}); code != 200 {
		t.Fatalf("name form: %d", code)
	}
	if s := f.byEmail(t, "ada@example.com"); s.Name != "Eve Bcc: x@example.com" {
		t.Fatalf("stored name %q", s.Name)
	}
}

// The same form sent several times at once (a double click, a retry) makes
// one subscriber and one email.
func TestConcurrentDoubleSubmit(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	_, page := b.get("/subscribe")
	form := url.Values{"email": {"double@example.com"}, "name": {"Double"}, "csrf": {csrfOf(t, page)}}
	var wg sync.WaitGroup
	codes := make([]int, 4)
	for i := range codes {
		wg.Go(func() { codes[i], _ = b.do("POST", "/subscribe", form) })
	}
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Fatalf("submit %d: %d", i, c)
		}
	}
	if n := f.count(t, `SELECT count(*) FROM subscribers`); n != 1 {
		t.Fatalf("%d subscribers", n)
	}
	if n := f.count(t, `SELECT count(*) FROM consents WHERE action = 'signup'`); n != 4 {
		t.Fatalf("%d sign-ups in the consent record, want each of the 4 kept", n)
	}
	if msgs := f.drain(t); len(msgs) != 1 {
		t.Fatalf("%d confirmation emails, want 1", len(msgs))
	}
	// Confirming twice at once: one confirmation, the other told the link
	// was used.
	res, _ := f.subs.SignUp(context.Background(), "twice@example.com", "", subscribers.Source{Method: subscribers.MethodForm})
	_, cpage := b.get("/confirm/" + res.Mailing.Token)
	cform := url.Values{"csrf": {csrfOf(t, cpage)}}
	for i := range 4 {
		wg.Go(func() { codes[i], _ = b.do("POST", "/confirm/"+res.Mailing.Token, cform) })
	}
	wg.Wait()
	if got := fmt.Sprint(sortInts(codes[:4])); got != "[200 410 410 410]" {
		t.Fatalf("concurrent confirms answered %s", got)
	}
	if n := f.count(t, `SELECT count(*) FROM consents WHERE action = 'confirm'`); n != 1 {
		t.Fatalf("%d confirmations recorded", n)
	}
}

func sortInts(s []int) []int {
	out := append([]int(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// The unsubscribe link's page: unsubscribe, then subscribe again through a
// confirmation, change the name at once, and move to a new address once it
// is confirmed.
func TestManageSubscription(t *testing.T) {
	f := newFixture(t)
	sub, tok := f.subscriber(t, "ada@example.com")
	b := f.browser(t)
	manage := "/u/" + tok
	code, page := b.get(manage)
	for _, want := range []string{"a***@example.com", `action="/u/` + tok + `/name"`, `action="/u/` + tok + `/email"`, `value="Reader"`} {
		if code != 200 || !strings.Contains(page, want) {
			t.Fatalf("manage page lacks %s: %.600s", want, page)
		}
	}
	// Unsubscribe with the page's button: the answer offers to come back.
	code, page = b.do("POST", manage, url.Values{"List-Unsubscribe": {"One-Click"}})
	if code != 200 || !strings.Contains(page, "You are unsubscribed") || !strings.Contains(page, "Subscribe again") || !strings.Contains(page, `action="/u/`+tok+`/resubscribe"`) {
		t.Fatalf("after unsubscribing: %d %.800s", code, page)
	}
	if f.status(t, sub.ID) != subscribers.Unsubscribed {
		t.Fatal("not unsubscribed")
	}
	// A mailbox provider's POST (no cookie) gets a link to the page instead
	// of a form.
	resp, _ := noRedirects.Do(mustReq(t, "POST", f.srv.URL+manage, "List-Unsubscribe=One-Click"))
	if p := body(t, resp); !strings.Contains(p, `href="/u/`+tok+`"`) || strings.Contains(p, `name="csrf"`) {
		t.Fatalf("one-click answer without a cookie: %.800s", p)
	}
	// Subscribe again: a confirmation email; nothing changes until pressed.
	code, page = b.do("POST", manage+"/resubscribe", url.Values{"csrf": {csrfOf(t, page)}})
	if code != 200 || !strings.Contains(page, "We’ve sent a confirmation link to a***@example.com") {
		t.Fatalf("resubscribe: %d %.600s", code, page)
	}
	if f.status(t, sub.ID) != subscribers.Unsubscribed {
		t.Fatal("resubscribing changed the status before the confirmation")
	}
	msgs := f.smtp.WaitFor(t, 1, 20*time.Second)
	link := confirmLink(t, msgs[0])
	_, cpage := b.get(link)
	if code, _ := b.do("POST", link, url.Values{"csrf": {csrfOf(t, cpage)}}); code != 200 || f.status(t, sub.ID) != subscribers.Confirmed {
		t.Fatalf("confirming the resubscription: %d, %s", code, f.status(t, sub.ID))
	}
	// Change the name: at once.
	code, page = b.submit(manage, manage+"/name", url.Values{"name": {"Ada Lovelace"}})
	if code != 200 || !strings.Contains(page, "Your name is saved") || f.byEmail(t, "ada@example.com").Name != "Ada Lovelace" {
		t.Fatalf("name change: %d %.400s", code, page)
	}
	code, page = b.submit(manage, manage+"/name", url.Values{"name": {strings.Repeat("n", 101)}})
	if code != 400 || !strings.Contains(page, "shorten") {
		t.Fatalf("a long name: %d", code)
	}
	// Change the address: a bad one is refused, a good one gets a link, and
	// the address changes only when it is pressed.
	code, page = b.submit(manage, manage+"/email", url.Values{"email": {"ada@new"}})
	if code != 400 || !strings.Contains(page, "no dot") {
		t.Fatalf("bad new address: %d %.300s", code, page)
	}
	code, page = b.submit(manage, manage+"/email", url.Values{"email": {"ada@new.example"}})
	if code != 200 || !strings.Contains(page, "check that inbox") {
		t.Fatalf("new address: %d %.400s", code, page)
	}
	if f.byEmail(t, "ada@example.com").ID != sub.ID {
		t.Fatal("the address changed before the new one was confirmed")
	}
	msgs = f.smtp.WaitFor(t, 2, 20*time.Second)
	if msgs[1].To[0] != "ada@new.example" {
		t.Fatalf("the change's link went to %v", msgs[1].To)
	}
	text, hdr := textPart(t, msgs[1])
	if hdr.Header.Get("Subject") != "Confirm your new address for London Daily" || !strings.Contains(text, "move a subscription") {
		t.Fatalf("change email: %s\n%s", hdr.Header.Get("Subject"), text)
	}
	link = confirmLink(t, msgs[1])
	code, cpage = b.get(link)
	if code != 200 || !strings.Contains(cpage, "Move your subscription to a***@new.example?") {
		t.Fatalf("change page: %d %.500s", code, cpage)
	}
	if code, page = b.do("POST", link, url.Values{"csrf": {csrfOf(t, cpage)}}); code != 200 || !strings.Contains(page, "Your address is changed") {
		t.Fatalf("confirm change: %d %.300s", code, page)
	}
	if s := f.byEmail(t, "ada@new.example"); s.ID != sub.ID || s.Status != subscribers.Confirmed {
		t.Fatalf("after the change: %+v", s)
	}
	// A change to an address that has a subscription of its own: the page
	// says the same; pressing the link refuses.
	f.subscriber(t, "taken@example.com")
	if code, page = b.submit(manage, manage+"/email", url.Values{"email": {"taken@example.com"}}); code != 200 || !strings.Contains(page, "check that inbox") {
		t.Fatalf("change to a taken address: %d", code)
	}
	msgs = f.smtp.WaitFor(t, 3, 20*time.Second)
	link = confirmLink(t, msgs[2])
	_, cpage = b.get(link)
	if code, _ := b.do("POST", link, url.Values{"csrf": {csrfOf(t, cpage)}}); code != 409 {
		t.Fatalf("confirming a change to a taken address: %d, want 409", code)
	}
	if s := f.byEmail(t, "ada@new.example"); s.ID != sub.ID {
		t.Fatal("a refused change moved the subscription")
	}
	f.noSecretsInLogs(t, tok, "ada@example.com", "ada@new.example", "taken@example.com")
}

func mustPrefixes(t *testing.T, s ...string) []netip.Prefix {
	t.Helper()
	out, err := web.ParsePrefixes(strings.Join(s, ","))
	if err != nil {
		t.Fatal(err)
	}
	return out
}
