package schedule_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"newsletter/delivery"
	"newsletter/edition"
	"newsletter/internal/logtest"
	"newsletter/internal/pgtest"
	"newsletter/internal/smtptest"
	"newsletter/schedule"
	"newsletter/smtpclient"
	"newsletter/subscribers"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// fixture is a database with confirmed subscribers, an import that stores
// an edition for the day asked, and a start of the send that queues it, as
// `send --enqueue-only` does; both count their calls.
type fixture struct {
	db       *sqlx.DB
	loc      *time.Location
	imports  atomic.Int64
	starts   atomic.Int64
	failWith error // the import's error, when set
	logs     logtest.Buffer
}

const readers = 3

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{db: pgtest.New(t), loc: london(t)}
	tok, _ := subscribers.NewTokens([]byte(strings.Repeat("k", 32)))
	var csv strings.Builder
	csv.WriteString("email,name,status\n")
	for i := range readers {
		fmt.Fprintf(&csv, "reader%d@example.com,Reader %d,confirmed\n", i, i)
	}
	subs := &subscribers.Store{DB: f.db, Tokens: tok}
	if _, err := subs.Import(context.Background(), strings.NewReader(csv.String()), subscribers.Confirmed); err != nil {
		t.Fatal(err)
	}
	return f
}

// scheduler is one process's scheduler of spec.
func (f *fixture) scheduler(t *testing.T, spec, holder string) *schedule.Scheduler {
	t.Helper()
	s, err := schedule.Parse(spec, f.loc)
	if err != nil {
		t.Fatal(err)
	}
	return &schedule.Scheduler{
		DB: f.db, Spec: s, CatchUp: 6 * time.Hour, Holder: holder,
		Log:    slog.New(slog.NewTextHandler(&f.logs, nil)),
		Import: f.importEdition,
		Start:  f.startSend,
	}
}

func (f *fixture) importEdition(ctx context.Context, day time.Time) (time.Time, error) {
	f.imports.Add(1)
	if f.failWith != nil {
		return time.Time{}, f.failWith
	}
	ed := &edition.Edition{Date: day, Site: edition.Site{Name: "London Daily"},
		Lead: edition.Story{Title: "Lead of " + day.Format(time.DateOnly), Body: []edition.Block{{Kind: edition.Paragraph, Text: "Body."}}}}
	_, _, err := (&edition.Store{DB: f.db}).Save(ctx, ed, edition.FormatJSON)
	return day, err
}

func (f *fixture) startSend(ctx context.Context, date time.Time) error {
	f.starts.Add(1)
	st, err := (&edition.Store{DB: f.db}).Get(ctx, date)
	if err != nil {
		return err
	}
	_, err = (&delivery.Queue{DB: f.db}).Enqueue(ctx, st.ID, "example.com", 0)
	return err
}

// tick ticks every scheduler at each step from from to to.
func tick(t *testing.T, from, to time.Time, step time.Duration, ss ...*schedule.Scheduler) {
	t.Helper()
	for now := from; !now.After(to); now = now.Add(step) {
		for _, s := range ss {
			if err := s.Tick(context.Background(), now); err != nil {
				t.Fatalf("tick at %v: %v", now, err)
			}
		}
	}
}

// deliveriesPerReader is how many deliveries each subscriber has of the
// edition of day.
func (f *fixture) deliveriesPerReader(t *testing.T, day string) map[string]int {
	t.Helper()
	rows, err := f.db.Query(`
		SELECT s.email, count(*) FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
		JOIN editions e ON e.id = d.edition_id WHERE e.date = $1::date GROUP BY s.email`, day)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var email string
		var n int
		if err := rows.Scan(&email, &n); err != nil {
			t.Fatal(err)
		}
		out[email] = n
	}
	return out
}

func (f *fixture) assertSentOnce(t *testing.T, day string) {
	t.Helper()
	got := f.deliveriesPerReader(t, day)
	if len(got) != readers {
		t.Fatalf("edition %s went to %d readers (%v), want %d", day, len(got), got, readers)
	}
	for email, n := range got {
		if n != 1 {
			t.Fatalf("%s has %d deliveries of %s, want 1", email, n, day)
		}
	}
}

func (f *fixture) runs(t *testing.T) map[string]schedule.Record {
	t.Helper()
	list, err := schedule.List(context.Background(), f.db, 1000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]schedule.Record{}
	for _, r := range list {
		out[r.Day.Format(time.DateOnly)] = r
	}
	return out
}

// Ticking every quarter of an hour across the spring-forward and fall-back days of
// Europe/London, with the schedule in the hour one skips and the other
// repeats: one digest a day, each at its day's time.
func TestOneDigestPerDayAcrossDaylightSaving(t *testing.T) {
	for _, tc := range []struct {
		name     string
		from, to time.Time
		first    map[string]string // day -> the instant its run is due
	}{
		{"spring forward", time.Date(2026, 3, 28, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 30, 23, 0, 0, 0, time.UTC),
			map[string]string{"2026-03-28": "2026-03-28T01:30:00Z", "2026-03-29": "2026-03-29T01:00:00Z", "2026-03-30": "2026-03-30T00:30:00Z"}},
		{"fall back", time.Date(2026, 10, 24, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 26, 23, 0, 0, 0, time.UTC),
			map[string]string{"2026-10-24": "2026-10-24T00:30:00Z", "2026-10-25": "2026-10-25T00:30:00Z", "2026-10-26": "2026-10-26T01:30:00Z"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			s := f.scheduler(t, "01:30", "p1")
			tick(t, tc.from, tc.to, 15*time.Minute, s)
			if n := f.starts.Load(); n != int64(len(tc.first)) {
				t.Fatalf("%d sends started over %d days, want one a day", n, len(tc.first))
			}
			runs := f.runs(t)
			if len(runs) != len(tc.first) {
				t.Fatalf("%d runs recorded, want %d: %v", len(runs), len(tc.first), runs)
			}
			for day, at := range tc.first {
				r := runs[day]
				if r.State != schedule.Sent || r.ScheduledFor.UTC().Format(time.RFC3339) != at {
					t.Errorf("run of %s: %s, due %v; want sent, due %s", day, r.State, r.ScheduledFor.UTC(), at)
				}
				if r.StartedAt == nil || r.StartedAt.Before(r.ScheduledFor) || r.StartedAt.Sub(r.ScheduledFor) >= 15*time.Minute {
					t.Errorf("run of %s started at %v, want within a tick of %v", day, r.StartedAt, r.ScheduledFor)
				}
				f.assertSentOnce(t, day)
			}
		})
	}
}

// Two processes tick at the same instants, concurrently: the day is
// imported once and its send started once, each subscriber queued once.
func TestRacingSchedulersSendOnce(t *testing.T) {
	f := newFixture(t)
	a, b := f.scheduler(t, "07:00", "a"), f.scheduler(t, "07:00", "b")
	due := time.Date(2026, 1, 15, 7, 0, 0, 0, time.UTC)
	for i := range 20 {
		now := due.Add(time.Duration(i) * 3 * time.Second)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for j, s := range []*schedule.Scheduler{a, b} {
			wg.Go(func() { errs[j] = s.Tick(context.Background(), now) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
	}
	if f.imports.Load() != 1 || f.starts.Load() != 1 {
		t.Fatalf("imported %d times, started %d sends; want one each", f.imports.Load(), f.starts.Load())
	}
	f.assertSentOnce(t, "2026-01-15")
}

// A process started two hours after the scheduled time catches the run up,
// once; one started after it does nothing more.
func TestCatchUpOnce(t *testing.T) {
	f := newFixture(t)
	due := time.Date(2026, 1, 15, 7, 0, 0, 0, time.UTC)
	first := f.scheduler(t, "07:00", "first")
	tick(t, due.Add(2*time.Hour), due.Add(2*time.Hour+time.Minute), time.Minute, first)
	if f.starts.Load() != 1 {
		t.Fatalf("%d sends started after catching up, want 1", f.starts.Load())
	}
	r := f.runs(t)["2026-01-15"]
	if r.State != schedule.Sent || !r.ScheduledFor.Equal(due) || r.StartedAt == nil || !r.StartedAt.Equal(due.Add(2*time.Hour)) {
		t.Fatalf("run: %+v, want sent, due 07:00, started 09:00", r)
	}
	again := f.scheduler(t, "07:00", "again")
	tick(t, due.Add(3*time.Hour), due.Add(5*time.Hour), 15*time.Minute, again)
	if f.starts.Load() != 1 || f.imports.Load() != 1 {
		t.Fatalf("after a second start: %d imports, %d sends started, want 1 each", f.imports.Load(), f.starts.Load())
	}
	f.assertSentOnce(t, "2026-01-15")
}

// A run due longer ago than NEWSLETTER_CATCHUP when a process comes back is
// recorded missed and reported, not sent late: after three days down, three
// runs, one log line each and one email.
func TestMissedRunNotSentLate(t *testing.T) {
	f := newFixture(t)
	relay := smtptest.Start(t)
	s := f.scheduler(t, "07:00", "p")
	s.Alert = alertTo(relay).Send
	yesterday := time.Date(2026, 1, 14, 7, 0, 0, 0, time.UTC)
	tick(t, yesterday, yesterday, time.Minute, s) // the process ran yesterday
	back := yesterday.Add(3*24*time.Hour + 7*time.Hour)
	tick(t, back, back.Add(time.Hour), 10*time.Minute, s)
	if f.starts.Load() != 1 || f.imports.Load() != 1 {
		t.Fatalf("%d imports, %d sends started, want only the first day's", f.imports.Load(), f.starts.Load())
	}
	runs := f.runs(t)
	for _, day := range []string{"2026-01-15", "2026-01-16", "2026-01-17"} {
		r := runs[day]
		if r.State != schedule.Missed || r.StartedAt != nil || !strings.Contains(r.Reason, "not sent late") {
			t.Fatalf("the run of %s: %+v, want missed", day, r)
		}
		if !strings.Contains(f.logs.String(), "level=ERROR msg=\"scheduled digest not sent\" day="+day+" outcome=missed") {
			t.Fatalf("no error-level log line for the missed run of %s:\n%s", day, f.logs.String())
		}
	}
	msgs := relay.WaitFor(t, 1, 10*time.Second)
	if len(msgs) != 1 || !strings.Contains(alertText(t, msgs[0]), "2026-01-15 to 2026-01-17 (3 days) missed") {
		t.Fatalf("alert emails: %d, want one about 2026-01-15 to 2026-01-17 missed", len(msgs))
	}
}

// An edition imported, then every process down until long after its hold
// ended: recorded missed, not sent late.
func TestImportedThenDownNotSentLate(t *testing.T) {
	f := newFixture(t)
	s := f.scheduler(t, "07:00", "p")
	s.Hold = 15 * time.Minute
	due := time.Date(2026, 1, 15, 7, 0, 0, 0, time.UTC)
	tick(t, due, due, time.Minute, s)
	tick(t, due.Add(8*time.Hour), due.Add(9*time.Hour), 10*time.Minute, f.scheduler(t, "07:00", "later"))
	if r := f.runs(t)["2026-01-15"]; r.State != schedule.Missed || f.starts.Load() != 0 || !strings.Contains(r.Reason, "not sent late") {
		t.Fatalf("run: %+v, %d sends started; want missed, none", r, f.starts.Load())
	}
}

// A held edition waits past its hold until it is released.
func TestHeldUntilReleased(t *testing.T) {
	f := newFixture(t)
	s := f.scheduler(t, "07:00", "p")
	s.Hold = 15 * time.Minute
	due := time.Date(2026, 1, 15, 7, 0, 0, 0, time.UTC)
	day := date(t, "2026-01-15")
	tick(t, due, due, time.Minute, s)
	if f.imports.Load() != 1 || f.starts.Load() != 0 {
		t.Fatalf("at the scheduled time: %d imports, %d sends; want the import only", f.imports.Load(), f.starts.Load())
	}
	if err := schedule.Release(context.Background(), f.db, day, due); err == nil || !strings.Contains(err.Error(), "not held") {
		t.Fatalf("release of a run not held: %v, want an error", err)
	}
	if err := schedule.Hold(context.Background(), f.db, day); err != nil {
		t.Fatal(err)
	}
	// Held past the catch-up window: the release still sends it.
	tick(t, due, due.Add(7*time.Hour), 10*time.Minute, s)
	if f.starts.Load() != 0 || len(f.deliveriesPerReader(t, "2026-01-15")) != 0 {
		t.Fatalf("a held edition was sent")
	}
	if r := f.runs(t)["2026-01-15"]; r.State != schedule.Holding || !r.Held {
		t.Fatalf("run: %+v, want holding, held", r)
	}
	release := due.Add(7*time.Hour + 30*time.Second)
	if err := schedule.Release(context.Background(), f.db, day, release); err != nil {
		t.Fatal(err)
	}
	tick(t, release, release.Add(time.Minute), time.Minute, s)
	if f.starts.Load() != 1 {
		t.Fatalf("%d sends started after the release, want 1", f.starts.Load())
	}
	f.assertSentOnce(t, "2026-01-15")
	if err := schedule.Hold(context.Background(), f.db, day); err == nil || !strings.Contains(err.Error(), "sent") {
		t.Fatalf("hold of a sent run: %v, want an error saying it was sent", err)
	}
	if err := schedule.Hold(context.Background(), f.db, date(t, "2026-01-16")); !errors.Is(err, schedule.ErrNoRun) {
		t.Fatalf("hold of a day without a run: %v, want ErrNoRun", err)
	}
}

// An import that keeps failing is retried with backoff until the catch-up
// window closes, then the run is recorded failed and the alert mailed.
func TestFailingImportRetriedThenFailed(t *testing.T) {
	f := newFixture(t)
	relay := smtptest.Start(t)
	f.failWith = errors.New("GET https://news.example.com/feed: 503 Service Unavailable")
	s := f.scheduler(t, "07:00", "p")
	s.CatchUp = time.Hour
	s.Alert = alertTo(relay).Send
	due := time.Date(2026, 1, 15, 7, 0, 0, 0, time.UTC)
	tick(t, due, due.Add(3*time.Hour), 10*time.Second, s)
	// 30s doubled per attempt, at most 15m, within an hour: attempts at
	// 0, 0:30, 1:30, 3:30, 7:30, 15:30, 30:30 and 45:30; the next would be
	// past the window.
	if n := f.imports.Load(); n != 8 {
		t.Fatalf("%d import attempts, want 8", n)
	}
	r := f.runs(t)["2026-01-15"]
	if r.State != schedule.Failed || !strings.Contains(r.Reason, "503 Service Unavailable") || f.starts.Load() != 0 {
		t.Fatalf("run: %+v, %d sends; want failed with the feed's error, not sent", r, f.starts.Load())
	}
	msgs := relay.WaitFor(t, 1, 10*time.Second)
	if len(msgs) != 1 || msgs[0].To[0] != "alerts@example.com" {
		t.Fatalf("%d alert emails, want one to alerts@example.com", len(msgs))
	}
	if text := alertText(t, msgs[0]); !strings.Contains(text, "2026-01-15 failed") || !strings.Contains(text, "503 Service Unavailable") {
		t.Fatalf("alert email:\n%s\nwant it to say 2026-01-15 failed and why", text)
	}
	logs := f.logs.String()
	if !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "503 Service Unavailable") {
		t.Fatalf("no error-level log line with the reason:\n%s", logs)
	}
	_, lastFailed, err := schedule.LastOutcomes(context.Background(), f.db)
	if err != nil || lastFailed.IsZero() {
		t.Fatalf("LastOutcomes: last failed %v, %v; want the failure's time", lastFailed, err)
	}
}

// alertText is an alert email's subject and decoded body.
func alertText(t *testing.T, m smtptest.Message) string {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatal(err)
	}
	return msg.Header.Get("Subject") + "\n" + string(body)
}

func alertTo(relay *smtptest.Server) *schedule.MailAlert {
	return &schedule.MailAlert{
		SMTP: smtpclient.Config{Host: relay.Host(), Port: relay.Port(), TLS: smtpclient.TLSNone, Timeout: 5 * time.Second},
		From: &mail.Address{Name: "London Daily", Address: "newsletter@example.com"},
		To:   &mail.Address{Address: "alerts@example.com"},
	}
}
