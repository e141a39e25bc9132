package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"strings"
	"testing"
	"time"
)

// apiClient calls the JSON API of a running serve.
type apiClient struct {
	t    *testing.T
	base string
}

// call sends a request and returns the status and the body.
func (c *apiClient) call(method, path, token, ctype, body string) (int, []byte, http.Header) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+"/api/v1"+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header
}

// json calls and decodes the JSON answer, which must have status want.
func (c *apiClient) json(want int, method, path, token, ctype, body string) map[string]any {
	c.t.Helper()
	code, b, _ := c.call(method, path, token, ctype, body)
	if code != want {
		c.t.Fatalf("%s %s: %d, want %d: %s", method, path, code, want, b)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		c.t.Fatalf("%s %s: not JSON: %v: %s", method, path, err, b)
	}
	return v
}

// refused checks a call is refused with status and the API's error form.
func (c *apiClient) refused(status int, code, method, path, token, ctype, body string) {
	c.t.Helper()
	got, b, _ := c.call(method, path, token, ctype, body)
	var e struct {
		Error struct{ Code, Message string }
	}
	if got != status || json.Unmarshal(b, &e) != nil || e.Error.Code != code || e.Error.Message == "" {
		c.t.Fatalf("%s %s: %d %s, want %d with code %q", method, path, got, b, status, code)
	}
}

// apiState is what the refusals must leave unchanged.
func (h *harness) apiState() string {
	h.t.Helper()
	var s string
	err := h.db.Get(&s, `SELECT concat_ws(' ',
		(SELECT count(*) FROM editions), (SELECT coalesce(string_agg(md5(content::text), ',' ORDER BY date), '') FROM editions),
		(SELECT count(*) FROM editions WHERE send_started_at IS NOT NULL OR paused_at IS NOT NULL),
		(SELECT count(*) FROM deliveries), (SELECT count(*) FROM subscribers WHERE status = 'confirmed'),
		(SELECT count(*) FROM subscribers), (SELECT count(*) FROM consents), (SELECT count(*) FROM audit_log))`)
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// The JSON API end to end, over HTTP against serve --worker: import the seed
// edition, preview it, send a test copy and read it back, send it to a few
// hundred subscribers and watch it finish, pause and resume another; and the
// refusals, each leaving PostgreSQL as it was.
func TestAPI(t *testing.T) {
	h := newHarness(t)
	const n = 300
	h.readers(n)
	orig := passwordInput
	t.Cleanup(func() { passwordInput = orig })
	token := func(email, role, name string) string {
		passwordInput = strings.NewReader("a long enough password\n")
		h.must("editors", "add", email, "--role", role)
		lines := strings.Split(strings.TrimSpace(h.must("editors", "token", email, "--name", name)), "\n")
		return lines[len(lines)-1]
	}
	admin := token("chief@news.example", "admin", "chief-cms")
	editor := token("ed@news.example", "editor", "cms")
	out := strings.TrimSpace(h.must("editors", "token", "ed@news.example", "--name", "old"))
	revoked := out[strings.LastIndex(out, "\n")+1:]
	h.must("editors", "revoke", "old")
	t.Setenv("NEWSLETTER_LISTEN", "127.0.0.1:0")
	base, _ := h.serve(t, "--worker")
	c := &apiClient{t: t, base: base}
	seed, err := os.ReadFile(seedPath)
	if err != nil {
		t.Fatal(err)
	}

	before := h.apiState()
	c.refused(401, "unauthorized", "POST", "/editions", "", "text/plain", string(seed))
	c.refused(401, "invalid_token", "POST", "/editions", revoked, "text/plain", string(seed))
	c.refused(401, "invalid_token", "GET", "/editions", "nlt_not-a-token", "", "")
	c.refused(403, "forbidden", "POST", "/subscribers", editor, "application/json", `{"email": "new@example.com"}`)
	c.refused(403, "forbidden", "POST", "/subscribers/reader000001@example.com/unsubscribe", editor, "", "")
	c.refused(400, "invalid", "POST", "/editions", editor, "text/plain", "not an edition at all")
	c.refused(400, "invalid", "POST", "/editions", editor, "application/rss+xml", string(seed))
	c.refused(415, "unsupported_media_type", "POST", "/editions", editor, "application/xml", string(seed))
	c.refused(413, "too_large", "POST", "/editions", editor, "text/plain", strings.Repeat("x", 5<<20))
	c.refused(400, "invalid", "POST", "/editions", editor, "application/json", `{"url": "ftp://example.com/x"}`)
	c.refused(400, "invalid", "POST", "/subscribers", admin, "application/json", `{"email": "new@example.com", "stauts": "confirmed"}`)
	c.refused(400, "invalid", "POST", "/subscribers", admin, "application/json", `{"email": "not an address"}`)
	c.refused(404, "not_found", "GET", "/editions/2025-11-13", editor, "", "")
	c.refused(400, "invalid", "GET", "/editions/13-11-2025", editor, "", "")
	c.refused(404, "not_found", "POST", "/editions/2025-11-13/send", editor, "", "")
	c.refused(400, "invalid", "POST", "/editions/2025-11-13/send", editor, "application/json", `{"at": "tomorrow"}`)
	if after := h.apiState(); after != before {
		t.Fatalf("a refused call changed PostgreSQL:\nbefore %s\nafter  %s", before, after)
	}

	got := c.json(201, "POST", "/editions", editor, "text/plain; charset=utf-8", string(seed))
	if got["date"] != "2025-11-13" || got["saved"] != "inserted" {
		t.Fatalf("import: %v", got)
	}
	list := c.json(200, "GET", "/editions", editor, "", "")
	if eds := list["editions"].([]any); len(eds) != 1 || eds[0].(map[string]any)["state"] != "draft" {
		t.Fatalf("list: %v", list)
	}
	ed := c.json(200, "GET", "/editions/2025-11-13", editor, "", "")
	subject, _ := ed["subject"].(string)
	if subject == "" || ed["edition"] == nil {
		t.Fatalf("edition: %v", ed)
	}
	for format, want := range map[string]string{"html": "text/html", "text": "text/plain", "eml": "message/rfc822"} {
		code, body, hd := c.call("GET", "/editions/2025-11-13/preview?format="+format, editor, "", "")
		if code != 200 || !strings.HasPrefix(hd.Get("Content-Type"), want) || len(body) < 500 {
			t.Fatalf("preview %s: %d %s, %d bytes", format, code, hd.Get("Content-Type"), len(body))
		}
		if format == "eml" && !strings.Contains(string(body), "\r\nSubject: ") {
			t.Fatalf("the eml preview has no Subject field:\n%.500s", body)
		}
	}
	c.refused(400, "invalid", "GET", "/editions/2025-11-13/preview?format=pdf", editor, "", "")

	// A test copy: read back from the SMTP server, its subject marked, no
	// delivery recorded.
	c.json(200, "POST", "/editions/2025-11-13/test", editor, "application/json", `{"to": ["desk@news.example"]}`)
	msgs := h.smtp.WaitFor(t, 1, 30*time.Second)
	m, err := mail.ReadMessage(bytes.NewReader(msgs[0].Data))
	if err != nil || m.Header.Get("Subject") != "[TEST] "+subject || msgs[0].To[0] != "desk@news.example" {
		t.Fatalf("test copy: to %v, %v, %v", msgs[0].To, m, err)
	}
	var deliveries int
	h.db.Get(&deliveries, `SELECT count(*) FROM deliveries`)
	if deliveries != 0 {
		t.Fatalf("the test copy was recorded: %d deliveries", deliveries)
	}
	c.refused(400, "invalid", "POST", "/editions/2025-11-13/test", editor, "application/json", `{"to": ["no address"]}`)
	c.refused(415, "unsupported_media_type", "POST", "/editions/2025-11-13/test", editor, "text/plain", `{"to": ["a@example.com"]}`)
	c.refused(409, "conflict", "POST", "/editions/2025-11-13/pause", editor, "", "")

	// The send: 202 at once, twice sends nobody twice, finished by the
	// worker in serve.
	sent := c.json(202, "POST", "/editions/2025-11-13/send", editor, "", "")
	if sent["newly_queued"] != float64(n) {
		t.Fatalf("send: %v", sent)
	}
	again := c.json(202, "POST", "/editions/2025-11-13/send", editor, "application/json", `{"at": "2025-11-13T06:00:00Z"}`)
	if again["newly_queued"] != float64(0) {
		t.Fatalf("send again: %v", again)
	}
	c.waitState("2025-11-13", editor, "finished", n)
	c.refused(409, "conflict", "POST", "/editions", editor, "application/json", strings.Replace(editionJSON(t, ed), `"title":"`, `"title":"Changed: `, 1))
	if d := allDelivered(t, h.db, h.smtp, n); d != 0 {
		t.Fatalf("%d copies sent twice", d)
	}

	// Pause and resume another edition mid-send: its count stands still
	// while paused, and it finishes once resumed.
	next := strings.Replace(editionJSON(t, ed), `"date":"2025-11-13`, `"date":"2025-11-14`, 1)
	if got := c.json(201, "POST", "/editions", editor, "application/json", next); got["date"] != "2025-11-14" {
		t.Fatalf("import the next day: %v", got)
	}
	release := h.smtp.HoldNth(1 + n + n/3)
	c.json(202, "POST", "/editions/2025-11-14/send", editor, "", "")
	waitAccepted(t, h.smtp, 1+n+n/3-1)
	if st := c.json(200, "POST", "/editions/2025-11-14/pause", editor, "", ""); st["state"] != "paused" {
		t.Fatalf("pause: %v", st)
	}
	release()
	time.Sleep(2 * time.Second) // the batches under way end
	first := c.json(200, "GET", "/editions/2025-11-14/status", editor, "", "")
	time.Sleep(3 * time.Second)
	second := c.json(200, "GET", "/editions/2025-11-14/status", editor, "", "")
	c1, c2 := first["counts"].(map[string]any), second["counts"].(map[string]any)
	if second["state"] != "paused" || c1["sent"] != c2["sent"] || c2["sent"].(float64) >= n {
		t.Fatalf("paused, the send went on: %v then %v", first, second)
	}
	c.json(200, "POST", "/editions/2025-11-14/resume", editor, "", "")
	c.waitState("2025-11-14", editor, "finished", n)

	// A URL import goes through the same fetch as `edition import URL`:
	// the seed again as today's repeats the last edition's lead story.
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/today.txt" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(seed)
	}))
	t.Cleanup(site.Close)
	c.refused(409, "conflict", "POST", "/editions", editor, "application/json", `{"url": "`+site.URL+`/today.txt"}`)
	c.refused(502, "fetch_failed", "POST", "/editions", editor, "application/json", `{"url": "`+site.URL+`/gone"}`)

	// Subscribers, as an admin.
	p := c.json(200, "GET", "/subscribers?email=READER000001@example.com", editor, "", "")
	if p["email"] != "reader000001@example.com" || p["status"] != "confirmed" {
		t.Fatalf("find: %v", p)
	}
	c.json(201, "POST", "/subscribers", admin, "application/json", `{"email": "new@example.com", "name": "New Reader"}`)
	c.refused(409, "conflict", "POST", "/subscribers", admin, "application/json", `{"email": "new@example.com"}`)
	if u := c.json(200, "POST", "/subscribers/new@example.com/unsubscribe", admin, "", ""); u["changed"] != true {
		t.Fatalf("unsubscribe: %v", u)
	}
	if p := c.json(200, "GET", "/subscribers?email=new@example.com", editor, "", ""); p["status"] != "unsubscribed" {
		t.Fatalf("after unsubscribe: %v", p)
	}
	// A finished send has nothing left to cancel.
	c.refused(409, "conflict", "POST", "/editions/2025-11-14/cancel", editor, "", "")

	audit := h.must("audit")
	for _, want := range []string{"ed@news.example\timport\t2025-11-13", "test-send\t2025-11-13", "ed@news.example\tsend\t2025-11-13",
		"pause\t2025-11-14", "resume\t2025-11-14", "chief@news.example\tsubscriber.add\tnew@example.com", "subscriber.unsubscribe\tnew@example.com"} {
		if !strings.Contains(audit, want) {
			t.Errorf("the audit record has no %q:\n%s", want, audit)
		}
	}
}

// waitState polls the edition's status until it is in state with n sent.
func (c *apiClient) waitState(date, token, state string, n int) {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := c.json(200, "GET", "/editions/"+date+"/status", token, "", "")
		counts := st["counts"].(map[string]any)
		if st["state"] == state && counts["sent"] == float64(n) && counts["total"] == float64(n) {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("edition %s is not %s with %d sent: %v", date, state, n, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// editionJSON is the edition's JSON from GET /editions/{date}'s answer.
func editionJSON(t *testing.T, ed map[string]any) string {
	b, err := json.Marshal(ed["edition"])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
