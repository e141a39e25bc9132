package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"newsletter/delivery"
	"newsletter/internal/pgtest"
	"newsletter/internal/smtptest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const testSecret = "4f1c9e07b2a85d63e91f0c7a2b48d5e6-test-secret"

// harness is a database of its own, an SMTP server of its own and the
// environment the binary reads, for running subcommands as a user would.
type harness struct {
	t    *testing.T
	db   *sqlx.DB
	smtp *smtptest.Server
	dir  string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	url := pgtest.NewURL(t)
	db, err := sqlx.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	srv := smtptest.Start(t)
	h := &harness{t: t, db: db, smtp: srv, dir: t.TempDir()}
	t.Setenv("DATABASE_URL", url)
	t.Setenv("SMTP_URL", fmt.Sprintf("smtp://%s?tls=none", srv.Addr()))
	t.Setenv("NEWSLETTER_FROM", "London Daily <newsletter@london-daily.example>")
	t.Setenv("NEWSLETTER_BASE_URL", "https://news.example.com/newsletter")
	t.Setenv("NEWSLETTER_SECRET", testSecret)
	t.Setenv("NEWSLETTER_TZ", "Europe/London")
	t.Setenv("NEWSLETTER_RETRY_BASE", "50ms")
	t.Setenv("NEWSLETTER_TEMPLATES", "")
	t.Setenv("NEWSLETTER_LIST_ID", "")
	return h
}

// run runs a subcommand and returns its exit code, stdout and stderr.
func (h *harness) run(args ...string) (int, string, string) {
	return h.runCtx(context.Background(), args...)
}

func (h *harness) runCtx(ctx context.Context, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

// must runs a subcommand that has to succeed.
func (h *harness) must(args ...string) string {
	h.t.Helper()
	code, out, errs := h.run(args...)
	if code != 0 {
		h.t.Fatalf("newsletter %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

func (h *harness) file(name, content string) string {
	p := filepath.Join(h.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		h.t.Fatal(err)
	}
	return p
}

const seedPath = "../../demo/london-daily-2025-11-13.txt"

const subscribersCSV = `email,name,status
ada@example.com,Ada Lovelace,confirmed
charles@example.com,Charles Babbage,confirmed
zoe@example.com,Zoë Brontë,confirmed
nameless@example.com,,confirmed
pending@example.com,Pending Person,pending
left@example.com,Left Already,unsubscribed
`

var confirmedAddrs = []string{"ada@example.com", "charles@example.com", "zoe@example.com", "nameless@example.com"}

// setup migrates, imports the sample subscribers and the seed edition.
func (h *harness) setup() {
	h.t.Helper()
	h.must("migrate")
	h.must("subscribers", "import", h.file("subs.csv", subscribersCSV))
	out := h.must("edition", "import", seedPath, "--site-url", "https://london-daily.example")
	if strings.TrimSpace(out) != "2025-11-13" {
		h.t.Fatalf("edition import printed %q, want the date 2025-11-13", out)
	}
}

func (h *harness) deliveryStatus(email string) (status string, attempts int) {
	h.t.Helper()
	var r struct {
		Status   string `db:"status"`
		Attempts int    `db:"attempts"`
	}
	err := h.db.Get(&r, `SELECT d.status, d.attempts FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id WHERE s.email = $1`, email)
	if err != nil {
		h.t.Fatalf("delivery of %s: %v", email, err)
	}
	return r.Status, r.Attempts
}

// recipients counts the messages the SMTP server accepted per recipient.
func recipients(msgs []smtptest.Message) map[string]int {
	n := map[string]int{}
	for _, m := range msgs {
		for _, to := range m.To {
			n[to]++
		}
	}
	return n
}

func TestSendEndToEnd(t *testing.T) {
	h := newHarness(t)
	h.setup()
	out := h.must("send", "--date", "2025-11-13")
	if !strings.Contains(out, "sent 4, failed 0, skipped 0") {
		t.Fatalf("send summary: %q", out)
	}
	msgs := h.smtp.Messages()
	got := recipients(msgs)
	if len(msgs) != 4 || len(got) != 4 {
		t.Fatalf("%d messages to %v, want one each to %v", len(msgs), got, confirmedAddrs)
	}
	for _, a := range confirmedAddrs {
		if got[a] != 1 {
			t.Errorf("%s got %d messages, want 1", a, got[a])
		}
		if st, _ := h.deliveryStatus(a); st != "sent" {
			t.Errorf("%s: delivery %s, want sent", a, st)
		}
	}
	ids := map[string]bool{}
	for _, m := range msgs {
		hdr := checkMessage(t, m.Data)
		if ids[hdr.Get("Message-Id")] {
			t.Errorf("Message-ID %s used twice", hdr.Get("Message-Id"))
		}
		ids[hdr.Get("Message-Id")] = true
		// The recorded Message-ID is the one on the wire.
		q := delivery.Queue{DB: h.db}
		id, status, err := q.ByMessageID(context.Background(), hdr.Get("Message-Id"))
		var n int
		h.db.Get(&n, `SELECT count(*) FROM deliveries WHERE id = $1 AND smtp_code = 250 AND smtp_reply IS NULL`, id)
		if err != nil || status != delivery.Sent || n != 1 {
			t.Errorf("Message-ID %s is not recorded with the server's code (and no text for a plain 250)", hdr.Get("Message-Id"))
		}
	}

	// A cron job that fires twice sends nothing new.
	out = h.must("send", "--date", "2025-11-13")
	if !strings.Contains(out, "sent 0,") || len(h.smtp.Messages()) != 4 {
		t.Fatalf("second send: %q and %d messages in all, want nothing new", out, len(h.smtp.Messages()))
	}

	// The edition is frozen once its send started.
	code, _, errs := h.run("edition", "import", seedPath)
	if code == 0 || !strings.Contains(errs, "already being sent") {
		t.Fatalf("re-import after send: exit %d, %q; want a refusal", code, errs)
	}
}

// checkMessage asserts what a subscriber's mail client relies on: valid
// RFC 5322 with CRLF and short lines, a multipart/alternative of text then
// HTML, and the bulk-sender headers. It returns the header.
func checkMessage(t *testing.T, data []byte) mail.Header {
	h, _ := checkMessageParts(t, data, true)
	return h
}

// checkMessageParts is checkMessage returning the decoded parts by type too;
// seed says whether the message is of the seed edition.
func checkMessageParts(t *testing.T, data []byte, seed bool) (mail.Header, map[string]string) {
	t.Helper()
	if bytes.Contains(bytes.ReplaceAll(data, []byte("\r\n"), nil), []byte("\n")) {
		t.Fatal("a bare LF in the message: lines must end in CRLF (RFC 5322 section 2.1)")
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if len(sc.Bytes()) > 998 {
			t.Fatalf("a line of %d octets: at most 998 (RFC 5322 section 2.1.1)", len(sc.Bytes()))
		}
	}
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not an RFC 5322 message: %v", err)
	}
	h := m.Header
	for _, k := range []string{"From", "To", "Subject", "Date", "Message-Id", "Mime-Version", "List-Unsubscribe", "List-Unsubscribe-Post", "List-Id"} {
		if h.Get(k) == "" {
			t.Errorf("header %s missing", k)
		}
	}
	if _, err := h.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	if _, err := h.AddressList("To"); err != nil {
		t.Errorf("To: %v", err)
	}
	if got := h.Get("List-Unsubscribe-Post"); got != "List-Unsubscribe=One-Click" {
		t.Errorf("List-Unsubscribe-Post %q", got)
	}
	lu := h.Get("List-Unsubscribe")
	if !strings.Contains(lu, "<https://news.example.com/newsletter/u/") || !strings.Contains(lu, "<mailto:") {
		t.Errorf("List-Unsubscribe %q: want the https one-click URL and a mailto", lu)
	}
	subj, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	if err != nil || (seed && !strings.HasPrefix(subj, "London Daily: Russia and Belarus")) {
		t.Errorf("Subject %q (%v)", subj, err)
	}
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type %q: want multipart/alternative", h.Get("Content-Type"))
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var types []string
	parts := map[string]string{}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("MIME part: %v", err)
		}
		ct, cp, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		if !strings.EqualFold(cp["charset"], "utf-8") {
			t.Errorf("%s part charset %q, want utf-8", ct, cp["charset"])
		}
		body, err := io.ReadAll(p) // decodes quoted-printable
		if err != nil {
			t.Fatalf("read %s part: %v", ct, err)
		}
		// The text part wraps lines: compare with whitespace collapsed.
		flat := strings.Join(strings.Fields(string(body)), " ")
		if seed && !strings.Contains(flat, "UK Bonds Rally as Chancellor Reeves Briefs Markets Ahead of November Budget") {
			t.Errorf("%s part lacks the last related headline", ct)
		}
		parts[ct] = string(body)
		if !bytes.Contains(body, []byte("/u/")) {
			t.Errorf("%s part lacks the unsubscribe link", ct)
		}
		types = append(types, ct)
	}
	if strings.Join(types, ",") != "text/plain,text/html" {
		t.Fatalf("parts %v, want text/plain then text/html", types)
	}
	return h, parts
}

func TestSendRecordsRefusalAndDeliversTheRest(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.smtp.RejectRcpt("charles@example.com", 550, "5.1.1", "no such user")
	h.must("send", "--date", "2025-11-13")
	got := recipients(h.smtp.Messages())
	for _, a := range []string{"ada@example.com", "zoe@example.com", "nameless@example.com"} {
		if got[a] != 1 {
			t.Errorf("%s got %d messages, want 1", a, got[a])
		}
	}
	var r struct {
		Status    string `db:"status"`
		Permanent bool   `db:"permanent"`
		Code      int    `db:"smtp_code"`
		Enhanced  string `db:"smtp_enhanced"`
		SubStatus string `db:"sub_status"`
	}
	err := h.db.Get(&r, `SELECT d.status, d.permanent, d.smtp_code, d.smtp_enhanced, s.status AS sub_status
		FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id WHERE s.email = 'charles@example.com'`)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != "failed" || !r.Permanent || r.Code != 550 || r.Enhanced != "5.1.1" || r.SubStatus != "bounced" {
		t.Fatalf("refused recipient recorded as %+v; want failed, permanent, 550 5.1.1, subscriber bounced", r)
	}
}

func TestSendSurvivesDroppedConnection(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.smtp.DropAfter(1) // the second message's DATA is cut mid-transfer
	h.must("send", "--date", "2025-11-13", "--conns", "1")
	got := recipients(h.smtp.Messages())
	for _, a := range confirmedAddrs {
		if got[a] != 1 {
			t.Errorf("%s got %d messages, want exactly 1", a, got[a])
		}
		if st, _ := h.deliveryStatus(a); st != "sent" {
			t.Errorf("%s: %s, want sent", a, st)
		}
	}
	if h.smtp.Connections() < 2 {
		t.Errorf("%d connections: the lost one should have been reopened", h.smtp.Connections())
	}
}

func TestSendTemporaryFailureRetriedThenRecorded(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.smtp.RejectRcpt("zoe@example.com", 451, "4.3.0", "try later")
	h.must("send", "--date", "2025-11-13", "--max-attempts", "3")
	st, attempts := h.deliveryStatus("zoe@example.com")
	if st != "failed" || attempts != 3 {
		t.Fatalf("zoe: %s after %d attempts, want failed after 3", st, attempts)
	}
	var perm bool
	h.db.Get(&perm, `SELECT permanent FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id WHERE s.email = 'zoe@example.com'`)
	if perm {
		t.Error("a 451 recorded as permanent")
	}
	if n := recipients(h.smtp.Messages()); n["ada@example.com"] != 1 || n["zoe@example.com"] != 0 {
		t.Errorf("messages %v", n)
	}
}

func TestSendInterruptedThenResumed(t *testing.T) {
	h := newHarness(t)
	h.must("migrate")
	var csv strings.Builder
	csv.WriteString("email,status\n")
	for i := range 40 {
		fmt.Fprintf(&csv, "reader%02d@example.com,confirmed\n", i)
	}
	h.must("subscribers", "import", h.file("many.csv", csv.String()))
	h.must("edition", "import", seedPath)
	for i := range 40 {
		h.smtp.Stall(fmt.Sprintf("reader%02d@example.com", i), 20*1e6) // 20ms a message
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		code, _, _ := h.runCtx(ctx, "send", "--date", "2025-11-13", "--conns", "2", "--batch", "5")
		done <- code
	}()
	h.smtp.WaitFor(t, 6, 10e9)
	cancel() // Ctrl-C
	if code := <-done; code != exitInterrupted {
		t.Fatalf("interrupted send exited %d, want %d (a clean stop, recipients left)", code, exitInterrupted)
	}
	var leased, sent int
	h.db.Get(&leased, `SELECT count(*) FROM deliveries WHERE status = 'sending'`)
	h.db.Get(&sent, `SELECT count(*) FROM deliveries WHERE status = 'sent'`)
	if leased != 0 {
		t.Fatalf("%d deliveries still leased after a clean stop", leased)
	}
	if sent != len(h.smtp.Messages()) || sent >= 40 {
		t.Fatalf("after the stop: %d recorded sent, %d accepted by the server; want equal and fewer than 40", sent, len(h.smtp.Messages()))
	}
	h.must("send", "--date", "2025-11-13")
	got := recipients(h.smtp.Messages())
	if len(got) != 40 {
		t.Fatalf("%d recipients after the rerun, want 40", len(got))
	}
	for a, n := range got {
		if n != 1 {
			t.Errorf("%s got %d messages, want 1", a, n)
		}
	}
}

func TestSendTestCopyRecordsNothing(t *testing.T) {
	h := newHarness(t)
	h.setup()
	out := h.must("send", "--date", "2025-11-13", "--to", "editor@example.com")
	if !strings.Contains(out, "test copy") {
		t.Fatalf("output %q", out)
	}
	msgs := h.smtp.Messages()
	if len(msgs) != 1 || msgs[0].To[0] != "editor@example.com" {
		t.Fatalf("messages %+v, want one to editor@example.com", recipients(msgs))
	}
	checkMessage(t, msgs[0].Data)
	var n int
	h.db.Get(&n, `SELECT count(*) FROM deliveries`)
	var started bool
	h.db.Get(&started, `SELECT send_started_at IS NOT NULL FROM editions`)
	if n != 0 || started {
		t.Fatalf("a test copy left %d deliveries and send_started=%v; want none", n, started)
	}
}

func TestPreview(t *testing.T) {
	h := newHarness(t)
	h.setup()
	html := h.must("preview", "--date", "2025-11-13", "--format", "html")
	if !strings.Contains(html, "<table") || !strings.Contains(html, "Russia and Belarus hold military drills") || strings.Contains(html, "<script") {
		t.Fatalf("html preview: %.300s", html)
	}
	text := h.must("preview", "--date", "2025-11-13", "--format", "text")
	if strings.Contains(text, "<") && strings.Contains(text, "</") {
		t.Fatalf("text preview has markup: %.300s", text)
	}
	out := filepath.Join(h.dir, "preview.eml")
	h.must("preview", "--date", "2025-11-13", "--format", "eml", "--out", out)
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	checkMessage(t, data)
	if code, _, errs := h.run("preview", "--date", "2030-01-01"); code == 0 || !strings.Contains(errs, "no edition for 2030-01-01") {
		t.Fatalf("preview of a missing date: exit %d %q", code, errs)
	}
}

func TestBadInputKeepsStoredData(t *testing.T) {
	h := newHarness(t)
	h.setup()
	// A file that is not an edition.
	code, _, errs := h.run("edition", "import", h.file("list.csv", subscribersCSV))
	if code == 0 || !strings.Contains(errs, "want") {
		t.Fatalf("import of a CSV as an edition: exit %d %q", code, errs)
	}
	// A CSV with malformed addresses: every bad line reported, nothing stored.
	bad := "email,name\nok@example.com,OK\nnot an address,X\nalso@bad,Y\n"
	code, _, errs = h.run("subscribers", "import", h.file("bad.csv", bad))
	if code == 0 || !strings.Contains(errs, "line 3") || !strings.Contains(errs, "line 4") {
		t.Fatalf("bad CSV: exit %d, stderr %q; want lines 3 and 4 reported", code, errs)
	}
	var n int
	h.db.Get(&n, `SELECT count(*) FROM subscribers`)
	if n != 6 {
		t.Fatalf("%d subscribers after a rejected import, want the 6 already there", n)
	}
	// A headline with markup and a line break: stored as text, escaped in
	// the HTML, never a header of its own.
	evil := `{"date":"2025-11-14","site":{"name":"London Daily"},"lead":{"title":"<script>alert(1)</script>\r\nBcc: victim@example.com","body":[{"kind":"paragraph","text":"x"}]},"related":[]}`
	h.must("edition", "import", h.file("evil.json", evil))
	h.must("send", "--date", "2025-11-14", "--to", "editor@example.com")
	m := h.smtp.Messages()[0]
	hdr, parts := checkMessageParts(t, m.Data, false)
	if hdr.Get("Bcc") != "" || len(m.To) != 1 {
		t.Fatal("a line break in the headline injected a header")
	}
	subj, _ := new(mime.WordDecoder).DecodeHeader(hdr.Get("Subject"))
	if subj != "London Daily: <script>alert(1)</script> Bcc: victim@example.com" {
		t.Fatalf("subject %q: want the headline as one line of text", subj)
	}
	if strings.Contains(parts["text/html"], "<script>") || !strings.Contains(parts["text/html"], "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Fatal("the headline's <script> is not escaped in the HTML part")
	}
	if !strings.Contains(parts["text/plain"], "<script>alert(1)</script> Bcc: victim@example.com") {
		t.Fatal("the text part does not show the headline as plain text")
	}
}

func TestConfigErrorsSayWhatToFix(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		env, value, want string
	}{
		{"DATABASE_URL", "", "DATABASE_URL is not set"},
		{"DATABASE_URL", "mysql://x", "DATABASE_URL must be a postgres:// URL"},
		{"SMTP_URL", "", "SMTP_URL is not set"},
		{"SMTP_URL", "ftp://user:hunter2pw@host", "SMTP_URL"},
		{"NEWSLETTER_FROM", "not an address", "NEWSLETTER_FROM"},
		{"NEWSLETTER_BASE_URL", "news.example.com", "NEWSLETTER_BASE_URL"},
		{"NEWSLETTER_TZ", "Mars/Olympus", "NEWSLETTER_TZ"},
		{"NEWSLETTER_SECRET", "short", "NEWSLETTER_SECRET"},
		{"NEWSLETTER_SECRET", "", "NEWSLETTER_SECRET is not set"},
		{"NEWSLETTER_TEMPLATES", "/no/such/folder", "NEWSLETTER_TEMPLATES"},
		{"NEWSLETTER_SMTP_CONNS", "many", "NEWSLETTER_SMTP_CONNS"},
	} {
		t.Run(tc.env+"="+tc.value, func(t *testing.T) {
			t.Setenv(tc.env, tc.value)
			code, _, errs := h.run("send", "--date", "2025-11-13")
			if code == 0 || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d, stderr %q; want an error containing %q", code, errs, tc.want)
			}
			if strings.Contains(errs, "hunter2pw") {
				t.Fatal("the SMTP password appears in the error")
			}
			if strings.Count(strings.TrimSpace(errs), "\n") != 0 {
				t.Fatalf("error is not one line: %q", errs)
			}
		})
	}
}

func TestHelpAndUsage(t *testing.T) {
	h := newHarness(t)
	code, out, _ := h.run("help")
	for _, sub := range []string{"migrate", "subscribers", "edition", "preview", "send", "serve"} {
		if !strings.Contains(out, sub) {
			t.Errorf("help does not list %s", sub)
		}
	}
	if code != 0 {
		t.Errorf("help exit %d", code)
	}
	t.Setenv("SMTP_URL", "smtp://user:hunter2pw@example.com")
	for _, sub := range [][]string{{"migrate", "-h"}, {"send", "-h"}, {"preview", "-h"}, {"serve", "-h"}, {"subscribers", "add", "-h"}, {"edition", "import", "-h"}} {
		code, out, _ := h.run(sub...)
		if code != 0 || !strings.Contains(out, "Usage: newsletter") {
			t.Errorf("%v: exit %d, %q", sub, code, out)
		}
		if strings.Contains(out, "hunter2pw") {
			t.Errorf("%v -h shows the SMTP password", sub)
		}
	}
	if code, _, _ := h.run("frobnicate"); code == 0 {
		t.Error("an unknown subcommand succeeded")
	}
}

func TestSubscribersAddAndList(t *testing.T) {
	h := newHarness(t)
	h.must("migrate")
	if out := h.must("migrate"); !strings.Contains(out, "up to date") {
		t.Fatalf("second migrate: %q", out)
	}
	h.must("subscribers", "add", "ada@example.com", "--name", "Ada Lovelace", "--status", "confirmed")
	h.must("subscribers", "add", "bob@example.com")
	if code, _, errs := h.run("subscribers", "add", "ADA@example.com"); code == 0 || !strings.Contains(errs, "already") {
		t.Fatalf("adding an existing address: exit %d %q", code, errs)
	}
	if code, _, _ := h.run("subscribers", "add", "not-an-address"); code == 0 {
		t.Fatal("a malformed address was added")
	}
	out := h.must("subscribers", "list", "--status", "confirmed")
	if !strings.Contains(out, "ada@example.com\tAda Lovelace\tconfirmed") || strings.Contains(out, "bob@") {
		t.Fatalf("list --status confirmed: %q", out)
	}
	out = h.must("subscribers", "list")
	if !strings.Contains(out, "bob@example.com\t\tpending") {
		t.Fatalf("list: %q", out)
	}
}

func TestStatusAndRetryFailed(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.smtp.RejectRcpt("zoe@example.com", 451, "4.3.0", "mailbox busy")
	h.must("send", "--date", "2025-11-13", "--max-attempts", "1")
	out := h.must("status", "--date", "2025-11-13")
	if !strings.Contains(out, "edition 2025-11-13: finished") || !strings.Contains(out, "recipients 4: sent 3, failed 1 (refused 0, temporary 1)") {
		t.Fatalf("status: %q", out)
	}
	out = h.must("status", "--date", "2025-11-13", "--undelivered")
	if !strings.Contains(out, "zoe@example.com\tfailed (temporary)\t1\t451 4.3.0\t") {
		t.Fatalf("status --undelivered: %q", out)
	}
	var rep struct {
		State  string `json:"state"`
		Counts struct {
			Sent            int `json:"sent"`
			FailedTemporary int `json:"failed_temporary"`
		} `json:"counts"`
		Undelivered []struct {
			Email string `json:"email"`
			Code  int    `json:"smtp_code"`
		} `json:"undelivered"`
	}
	out = h.must("status", "--date", "2025-11-13", "--json", "--undelivered")
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, out)
	}
	if rep.State != "finished" || rep.Counts.Sent != 3 || rep.Counts.FailedTemporary != 1 || len(rep.Undelivered) != 1 || rep.Undelivered[0].Email != "zoe@example.com" || rep.Undelivered[0].Code != 451 {
		t.Fatalf("status --json: %+v", rep)
	}
	// The mailbox recovers; the temporary failures are sent again.
	h.smtp.RejectRcpt("zoe@example.com", 0, "", "")
	out = h.must("send", "--date", "2025-11-13", "--retry-failed")
	if !strings.Contains(out, "re-queued 1 temporary failures") || !strings.Contains(out, "sent 1,") {
		t.Fatalf("send --retry-failed: %q", out)
	}
	if n := recipients(h.smtp.Messages()); n["zoe@example.com"] != 1 || n["ada@example.com"] != 1 {
		t.Fatalf("messages %v", n)
	}
}

func TestWorkerCommandSendsQueuedEditions(t *testing.T) {
	h := newHarness(t)
	h.setup()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	var out, errb bytes.Buffer
	go func() { done <- run(ctx, []string{"worker", "--poll", "50ms"}, &out, &errb) }()
	h.must("send", "--date", "2025-11-13", "--enqueue-only")
	h.smtp.WaitFor(t, 4, 30*time.Second)
	h.waitFinished()
	cancel() // SIGTERM
	if code := <-done; code != 0 {
		t.Fatalf("worker exited %d: %s", code, errb.String())
	}
	if got := recipients(h.smtp.Messages()); len(got) != 4 {
		t.Fatalf("worker sent to %v", got)
	}
}

// `serve --worker` sends queued editions in the web server's process.
func TestServeWithInProcessWorker(t *testing.T) {
	h := newHarness(t)
	h.setup()
	t.Setenv("NEWSLETTER_LISTEN", "127.0.0.1:0")
	h.serve(t, "--worker")
	h.must("send", "--date", "2025-11-13", "--enqueue-only")
	h.smtp.WaitFor(t, 4, 30*time.Second)
	if got := recipients(h.smtp.Messages()); len(got) != 4 {
		t.Fatalf("serve --worker sent to %v", got)
	}
}
