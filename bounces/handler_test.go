package bounces_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"newsletter/bounces"
	"newsletter/delivery"
	"newsletter/edition"
	"newsletter/internal/logtest"
	"newsletter/internal/pgtest"
	"newsletter/subscribers"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// fixture is a list of n confirmed readers and one edition queued for
// them, its deliveries marked sent.
type fixture struct {
	db      *sqlx.DB
	subs    *subscribers.Store
	h       *bounces.Handler
	log     *logtest.Buffer
	edition int64
}

func newFixture(t testing.TB, n int) *fixture {
	t.Helper()
	db := pgtest.New(t)
	tok, _ := subscribers.NewTokens([]byte(strings.Repeat("k", 32)))
	f := &fixture{db: db, subs: &subscribers.Store{DB: db, Tokens: tok}, log: &logtest.Buffer{}}
	var csv strings.Builder
	csv.WriteString("email,name,status\n")
	for i := range n {
		fmt.Fprintf(&csv, "reader%d@example.org,Reader %d,confirmed\n", i+1, i+1)
	}
	ctx := context.Background()
	if _, err := f.subs.Import(ctx, strings.NewReader(csv.String()), subscribers.Confirmed); err != nil {
		t.Fatal(err)
	}
	d, _ := edition.ParseDate("2026-11-30")
	ed := &edition.Edition{Date: d, Site: edition.Site{Name: "London Daily"}, Lead: edition.Story{Title: "Lead", Body: []edition.Block{{Kind: edition.Paragraph, Text: "Body."}}}}
	id, _, err := (&edition.Store{DB: db}).Save(ctx, ed, edition.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	f.edition = id
	if _, err := (&delivery.Queue{DB: db}).Enqueue(ctx, id, "example.com", 0); err != nil {
		t.Fatal(err)
	}
	db.MustExec(`UPDATE deliveries SET status = 'sent', sent_at = now(), attempts = 1`)
	f.h = &bounces.Handler{DB: db, Subs: f.subs, VERP: bounces.NewVERP(tok.Derive("verp"), "example.com"),
		Soft: bounces.DefaultSoftPolicy, Log: slog.New(slog.NewTextHandler(f.log, nil))}
	return f
}

// delivery is the id of the delivery to reader i (from 1).
func (f *fixture) delivery(t *testing.T, i int) int64 {
	t.Helper()
	var id int64
	if err := f.db.Get(&id, `SELECT d.id FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
		WHERE d.edition_id = $1 AND s.email = $2`, f.edition, fmt.Sprintf("reader%d@example.org", i)); err != nil {
		t.Fatal(err)
	}
	return id
}

func (f *fixture) status(t *testing.T, i int) string {
	t.Helper()
	var s string
	if err := f.db.Get(&s, `SELECT status FROM subscribers WHERE email = $1`, fmt.Sprintf("reader%d@example.org", i)); err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *fixture) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := f.db.Get(&n, query, args...); err != nil {
		t.Fatal(err)
	}
	return n
}

// inbound hands a fixture to the handler as mailed to the VERP address of
// delivery id.
func (f *fixture) inbound(t *testing.T, id int64, file string) (bounces.Outcome, error) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	return f.h.Inbound(context.Background(), "inbound", f.h.VERP.Address(id), bytes.NewReader(data))
}

// unchanged checks that nothing was recorded or changed for anyone.
func (f *fixture) unchanged(t *testing.T, n int) {
	t.Helper()
	if c := f.count(t, `SELECT count(*) FROM subscribers WHERE status <> 'confirmed'`); c != 0 {
		t.Errorf("%d subscribers changed status", c)
	}
	if c := f.count(t, `SELECT count(*) FROM suppressions`) + f.count(t, `SELECT count(*) FROM bounce_events`); c != 0 {
		t.Errorf("%d suppressions and events recorded", c)
	}
	if c := f.count(t, `SELECT count(*) FROM consents WHERE action <> 'import'`); c != 0 {
		t.Errorf("%d consent entries added", c)
	}
	_ = n
}

func TestHardBounceSuppressesWithEvidence(t *testing.T) {
	f := newFixture(t, 3)
	id := f.delivery(t, 2)
	out, err := f.inbound(t, id, "postfix-hard.eml")
	if err != nil || out != bounces.Bounced {
		t.Fatalf("hard bounce: %s, %v", out, err)
	}
	if f.status(t, 2) != "bounced" || f.status(t, 1) != "confirmed" || f.status(t, 3) != "confirmed" {
		t.Fatal("only reader 2 is to be bounced")
	}
	if ok, _ := f.subs.Suppressed(context.Background(), "reader2@example.org"); !ok {
		t.Fatal("reader 2 not on the suppression list")
	}
	var ev struct {
		Delivery   int64  `db:"delivery_id"`
		Kind       string `db:"kind"`
		Source     string `db:"source"`
		Status     string `db:"status"`
		Diagnostic string `db:"diagnostic"`
	}
	if err := f.db.Get(&ev, `SELECT delivery_id, kind, source, status, diagnostic FROM bounce_events`); err != nil {
		t.Fatal(err)
	}
	if ev.Delivery != id || ev.Kind != "hard" || ev.Source != "inbound" || ev.Status != "5.1.1" || !strings.Contains(ev.Diagnostic, "User unknown") || strings.Contains(ev.Diagnostic, "@") {
		t.Fatalf("bounce event %+v", ev)
	}
	var detail, method string
	if err := f.db.QueryRow(`SELECT detail, method FROM consents WHERE action = 'suppress'`).Scan(&detail, &method); err != nil {
		t.Fatal(err)
	}
	if method != "bounce" || !strings.Contains(detail, "bounced: inbound dsn 5.1.1, delivery "+fmt.Sprint(id)) || strings.Contains(detail, "@") {
		t.Fatalf("consent record: %s %q", method, detail)
	}
	// The same bounce again (a token used again) changes nothing more.
	if _, err := f.inbound(t, id, "postfix-hard.eml"); !errors.Is(err, bounces.ErrReused) {
		t.Fatalf("the same bounce again: %v, want ErrReused", err)
	}
	if n := f.count(t, `SELECT count(*) FROM bounce_events`) + f.count(t, `SELECT count(*) FROM consents WHERE action = 'suppress'`); n != 2 {
		t.Fatalf("%d events and suppress entries after a repeat, want 2", n)
	}
	if strings.Contains(f.log.String(), "reader2@") {
		t.Fatalf("the log names an address:\n%s", f.log)
	}
}

func TestSoftBouncesMarkAfterThePolicysCount(t *testing.T) {
	f := newFixture(t, 1)
	f.h.Soft = bounces.SoftPolicy{Count: 2, Within: 30 * 24 * time.Hour}
	first := f.delivery(t, 1)
	if out, err := f.inbound(t, first, "postfix-delayed.eml"); err != nil || out != bounces.Counted {
		t.Fatalf("first soft bounce: %s, %v", out, err)
	}
	if f.status(t, 1) != "confirmed" {
		t.Fatal("one soft bounce marked the subscriber")
	}
	// A second notice about the same delivery is not a second bounce.
	if _, err := f.inbound(t, first, "gmail-full.eml"); !errors.Is(err, bounces.ErrReused) {
		t.Fatalf("a second soft bounce of one delivery: %v", err)
	}
	// The next edition's delivery bounces too: two of two.
	ctx := context.Background()
	d, _ := edition.ParseDate("2026-12-01")
	ed := &edition.Edition{Date: d, Site: edition.Site{Name: "London Daily"}, Lead: edition.Story{Title: "Lead", Body: []edition.Block{{Kind: edition.Paragraph, Text: "Body."}}}}
	next, _, err := (&edition.Store{DB: f.db}).Save(ctx, ed, edition.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&delivery.Queue{DB: f.db}).Enqueue(ctx, next, "example.com", 0); err != nil {
		t.Fatal(err)
	}
	var second int64
	f.db.Get(&second, `SELECT id FROM deliveries WHERE edition_id = $1`, next)
	if out, err := f.inbound(t, second, "exim-delayed.eml"); err != nil || out != bounces.Bounced {
		t.Fatalf("second soft bounce: %s, %v", out, err)
	}
	if f.status(t, 1) != "bounced" {
		t.Fatal("two soft bounces within the period did not mark the subscriber")
	}
	var detail string
	f.db.Get(&detail, `SELECT detail FROM consents WHERE action = 'suppress'`)
	if !strings.Contains(detail, "2 soft bounces within 720h0m0s") {
		t.Fatalf("consent detail %q", detail)
	}
}

func TestComplaintUnsubscribes(t *testing.T) {
	f := newFixture(t, 2)
	if out, err := f.inbound(t, f.delivery(t, 1), "arf-yahoo.eml"); err != nil || out != bounces.Unsubscribed {
		t.Fatalf("complaint: %s, %v", out, err)
	}
	if f.status(t, 1) != "unsubscribed" || f.status(t, 2) != "confirmed" {
		t.Fatal("the complaint did not unsubscribe reader 1 alone")
	}
	var reason string
	f.db.Get(&reason, `SELECT reason FROM suppressions`)
	var method, detail string
	f.db.QueryRow(`SELECT method, detail FROM consents WHERE action = 'suppress'`).Scan(&method, &detail)
	if reason != "complained" || method != "complaint" || !strings.HasPrefix(detail, "complained: inbound arf abuse") {
		t.Fatalf("suppression %q, consent %s %q", reason, method, detail)
	}
}

func TestMailtoUnsubscribe(t *testing.T) {
	f := newFixture(t, 2)
	sub, err := f.subs.ByEmail(context.Background(), "reader2@example.org")
	if err != nil {
		t.Fatal(err)
	}
	token := f.subs.Tokens.Unsubscribe(sub.UUID)
	out, err := f.h.Inbound(context.Background(), "inbound", "unsubscribe+"+token+"@example.com", strings.NewReader("Subject: unsubscribe\r\n\r\n"))
	if err != nil || out != bounces.Unsubscribed {
		t.Fatalf("mailto unsubscribe: %s, %v", out, err)
	}
	if f.status(t, 2) != "unsubscribed" || f.status(t, 1) != "confirmed" {
		t.Fatal("reader 2 alone is to leave")
	}
	if n := f.count(t, `SELECT count(*) FROM consents WHERE action = 'unsubscribe' AND method = 'mailto' AND subscriber_id = $1`, sub.ID); n != 1 {
		t.Fatalf("%d mailto unsubscribe entries in the consent record", n)
	}
	if n := f.count(t, `SELECT count(*) FROM bounce_events WHERE kind = 'unsubscribe' AND subscriber_id = $1 AND delivery_id IS NULL`, sub.ID); n != 1 {
		t.Fatalf("%d unsubscribe events", n)
	}
}

func TestWhatNamesNothingChangesNothing(t *testing.T) {
	f := newFixture(t, 2)
	ctx := context.Background()
	other := bounces.NewVERP([]byte(strings.Repeat("x", 32)), "example.com")
	data, _ := os.ReadFile("testdata/postfix-hard.eml")
	cases := map[string]string{
		"forged token":          other.Address(f.delivery(t, 1)),
		"damaged token":         strings.Replace(f.h.VERP.Address(f.delivery(t, 1)), "bounces+", "bounces+x", 1),
		"no such delivery":      f.h.VERP.Address(f.delivery(t, 2) + 1000),
		"unknown unsubscribe":   "unsubscribe+" + strings.Repeat("A", 43) + "@example.com",
		"not the bounce domain": f.h.VERP.Address(f.delivery(t, 1))[:10] + "@elsewhere.example",
	}
	for name, rcpt := range cases {
		if out, err := f.h.Inbound(ctx, "inbound", rcpt, bytes.NewReader(data)); err == nil || out != bounces.Nothing {
			t.Errorf("%s: %s, %v; want an error and nothing done", name, out, err)
		}
	}
	// Neither an auto-reply nor a report that needs nothing counts.
	for _, file := range []string{"autoreply-rfc3834.eml", "autoreply-outlook.eml", "arf-not-spam.eml"} {
		if out, err := f.inbound(t, f.delivery(t, 1), file); err != nil || out != bounces.Nothing {
			t.Errorf("%s: %s, %v; want nothing done", file, out, err)
		}
	}
	// Hostile input: refused, nothing done.
	if _, err := f.h.Inbound(ctx, "inbound", f.h.VERP.Address(f.delivery(t, 1)), io.LimitReader(strings.NewReader("Content-Type: multipart/report; boundary=b\r\n\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: x\r\n\r\nAction: oops\r\n"), 1<<20)); err == nil {
		t.Error("a broken DSN was accepted")
	}
	f.unchanged(t, 2)
	for _, want := range []string{"forged or damaged VERP token", "no such delivery", "unknown token", "not a bounce: ignored"} {
		if !strings.Contains(f.log.String(), want) {
			t.Errorf("the log does not say %q:\n%s", want, f.log)
		}
	}
}

func TestBounceForAnErasedSubscriberChangesNothing(t *testing.T) {
	f := newFixture(t, 2)
	id := f.delivery(t, 1)
	if _, err := f.subs.Erase(context.Background(), "reader1@example.org", subscribers.Source{Method: subscribers.MethodEditor}); err != nil {
		t.Fatal(err)
	}
	before := f.count(t, `SELECT count(*) FROM consents`) + f.count(t, `SELECT count(*) FROM suppressions`)
	if out, err := f.inbound(t, id, "gmail-hard.eml"); !errors.Is(err, bounces.ErrUnknown) || out != bounces.Nothing {
		t.Fatalf("bounce for an erased subscriber: %s, %v", out, err)
	}
	after := f.count(t, `SELECT count(*) FROM consents`) + f.count(t, `SELECT count(*) FROM suppressions`)
	if before != after || f.count(t, `SELECT count(*) FROM bounce_events`) != 0 {
		t.Fatal("something was recorded for an erased subscriber")
	}
	if !strings.Contains(f.log.String(), "data was erased") {
		t.Fatalf("log:\n%s", f.log)
	}
}

func TestSendTimeBouncesFeedTheHandler(t *testing.T) {
	f := newFixture(t, 3)
	hard, soft := f.delivery(t, 1), f.delivery(t, 2)
	f.h.Soft = bounces.SoftPolicy{Count: 1, Within: time.Hour}
	f.h.SendTime(context.Background(), []delivery.Result{
		{ID: hard, Status: delivery.Failed, Permanent: true, HardBounce: true, Code: 550, Enhanced: "5.1.1", Reply: "5.1.1 <reader1@example.org>: no such user"},
		{ID: soft, Status: delivery.Failed, Code: 452, Enhanced: "4.2.2", Reply: "4.2.2 mailbox full"},
	})
	if f.status(t, 1) != "bounced" || f.status(t, 2) != "bounced" || f.status(t, 3) != "confirmed" {
		t.Fatal("send-time bounces not acted on by the policy")
	}
	if n := f.count(t, `SELECT count(*) FROM bounce_events WHERE source = 'smtp' AND diagnostic NOT LIKE '%@%'`); n != 2 {
		t.Fatalf("%d send-time events", n)
	}
}
