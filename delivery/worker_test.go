package delivery_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/mail"
	"os"
	"strings"
	"testing"
	"time"

	"newsletter/bounces"
	"newsletter/delivery"
	"newsletter/edition"
	"newsletter/internal/smtptest"
	"newsletter/metrics"
	"newsletter/smtpclient"
	"newsletter/templates"
)

// composer renders the seed edition once, as `send` does.
func composer(t testing.TB, f *fixture) *delivery.Composer {
	t.Helper()
	data, err := os.ReadFile("../demo/london-daily-2025-11-13.txt")
	if err != nil {
		t.Fatal(err)
	}
	ed, _, err := edition.Parse(data, edition.ParseOptions{SiteURL: "https://london-daily.example"})
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	r, err := tpl.RenderEdition(ed, templates.EditionData{BaseURL: "https://news.example.com", WebURL: "https://news.example.com/editions/2025-11-13"})
	if err != nil {
		t.Fatal(err)
	}
	return &delivery.Composer{
		Rendered:          r,
		From:              &mail.Address{Name: "London Daily", Address: "newsletter@example.com"},
		ListID:            "London Daily <newsletter.example.com>",
		UnsubscribeMailto: "mailto:newsletter@example.com?subject=unsubscribe",
		UnsubscribeURL:    func(uuid string) string { return f.subs.UnsubscribeURL("https://news.example.com", uuid) },
		ReturnPath:        f.verp().AppendAddress,
	}
}

// verp makes the fixture's envelope senders, as `send` does.
func (f *fixture) verp() *bounces.VERP {
	return bounces.NewVERP(f.subs.Tokens.Derive("verp"), "bounces.example.com")
}

// dialer opens the connections a send uses: the edition prepared once,
// over pipelined SMTP.
func dialer(t testing.TB, f *fixture, relays ...smtpclient.Config) delivery.Dialer {
	t.Helper()
	comp := composer(t, f)
	prep, err := comp.Prepare()
	if err != nil {
		t.Fatal(err)
	}
	return delivery.BulkDialer(relays, comp, prep, nil)
}

func smtpConfig(srv *smtptest.Server) smtpclient.Config {
	return smtpclient.Config{Host: srv.Host(), Port: srv.Port(), TLS: smtpclient.TLSNone, Timeout: 5 * time.Second}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestWorkerSendsEachRecipientOnceOverManyConnections(t *testing.T) {
	f := newFixture(t, 120)
	ctx := context.Background()
	srv := smtptest.Start(t)
	if _, err := f.q.Enqueue(ctx, f.edition, "example.com", 0); err != nil {
		t.Fatal(err)
	}
	// The subscriber who leaves after the enqueue is skipped, not sent.
	if err := f.subs.Unsubscribe(ctx, 7); err != nil {
		t.Fatal(err)
	}
	w := &delivery.Worker{Queue: f.q, Dial: dialer(t, f, smtpConfig(srv)), Holder: "test",
		Log: quietLog(), Conns: 4, Batch: 7, Group: 5}
	var stats delivery.Stats
	if err := w.Run(ctx, f.edition, &stats); err != nil {
		t.Fatal(err)
	}
	msgs := srv.Messages()
	seen := map[string]int{}
	for _, m := range msgs {
		seen[m.To[0]]++
	}
	if len(msgs) != 119 || len(seen) != 119 {
		t.Fatalf("%d messages to %d recipients, want 119 each once", len(msgs), len(seen))
	}
	if stats.Sent.Load() != 119 || stats.Skipped.Load() != 1 {
		t.Fatalf("stats sent %d skipped %d", stats.Sent.Load(), stats.Skipped.Load())
	}
	if f.count(t, `status = 'sent'`) != 119 || f.count(t, `status = 'skipped' AND subscriber_id = 7`) != 1 {
		t.Fatal("outcomes not recorded")
	}
	if srv.Connections() > 4 {
		t.Fatalf("%d connections for 4 workers", srv.Connections())
	}
	// Each message's envelope sender names its own delivery (VERP).
	verp := f.verp()
	for _, m := range msgs {
		var id int64
		f.db.QueryRow(`SELECT d.id FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id WHERE s.email = $1`, m.To[0]).Scan(&id)
		if got, err := verp.Delivery(strings.TrimSuffix(strings.TrimPrefix(m.From, "bounces+"), "@bounces.example.com")); m.From != verp.Address(id) || err != nil || got != id {
			t.Fatalf("envelope sender %q for %s (delivery %d): token names %d, %v", m.From, m.To[0], id, got, err)
		}
	}
}

func TestWorkerPausesWhenRelayIsDown(t *testing.T) {
	f := newFixture(t, 5)
	ctx := context.Background()
	f.q.Enqueue(ctx, f.edition, "example.com", 0)
	// Nothing listens here: every dial fails.
	cfg := smtpclient.Config{Host: "127.0.0.1", Port: 1, TLS: smtpclient.TLSNone, Timeout: time.Second}
	w := &delivery.Worker{Queue: f.q, Dial: dialer(t, f, cfg), Holder: "test",
		Log: quietLog(), DialThreshold: 3, Poll: time.Millisecond}
	var stats delivery.Stats
	err := w.Run(ctx, f.edition, &stats)
	if !errors.Is(err, delivery.ErrPaused) || !strings.Contains(err.Error(), "could not be reached 3 times") {
		t.Fatalf("Run against a dead relay: %v; want a pause after 3 failed dials", err)
	}
	// Nobody lost an attempt to the dead relay, nobody was given up.
	if n := f.count(t, `status = 'queued' AND attempts = 0`); n != 5 {
		t.Fatalf("%d of 5 deliveries back in the queue untouched", n)
	}
	var reason string
	f.db.Get(&reason, `SELECT pause_reason FROM editions WHERE id = $1`, f.edition)
	if !strings.Contains(reason, "127.0.0.1:1") {
		t.Fatalf("pause reason %q does not name the relay", reason)
	}
	// Resumed with a relay that works, the send finishes from where it stopped.
	srv := smtptest.Start(t)
	if _, err := (&edition.Store{DB: f.db}).Resume(ctx, f.edition); err != nil {
		t.Fatal(err)
	}
	w = &delivery.Worker{Queue: f.q, Dial: dialer(t, f, cfg, smtpConfig(srv)), Holder: "test2", Log: quietLog()}
	if err := w.Run(ctx, f.edition, &stats); err != nil {
		t.Fatal(err)
	}
	if len(srv.Messages()) != 5 || f.count(t, `status = 'sent'`) != 5 {
		t.Fatalf("after resuming through the failover relay: %d messages, %d sent", len(srv.Messages()), f.count(t, `status = 'sent'`))
	}
}

// A Worker run again starts clean: the streak of temporary failures that
// paused its last run is not carried into the next, where one failure is
// not a streak.
func TestWorkerRunAgainForgetsTheFailureStreak(t *testing.T) {
	f := newFixture(t, 10)
	ctx := context.Background()
	srv := smtptest.Start(t)
	addr := func(i int) string { return fmt.Sprintf("reader%05d@example.com", i) }
	for i := range 10 {
		srv.RejectRcpt(addr(i), 451, "4.4.1", "relay overloaded")
	}
	if _, err := f.q.Enqueue(ctx, f.edition, "example.com", 0); err != nil {
		t.Fatal(err)
	}
	w := &delivery.Worker{Queue: f.q, Dial: dialer(t, f, smtpConfig(srv)), Holder: "again", Log: quietLog(),
		ErrorThreshold: 3, MaxAttempts: 1, Group: 1, Batch: 1}
	var stats delivery.Stats
	if err := w.Run(ctx, f.edition, &stats); !errors.Is(err, delivery.ErrPaused) {
		t.Fatalf("first run: %v; want a pause after 3 temporary failures", err)
	}
	// The relay recovers, but for the next recipient in line.
	for i := 4; i < 10; i++ {
		srv.RejectRcpt(addr(i), 0, "", "")
	}
	if _, err := (&edition.Store{DB: f.db}).Resume(ctx, f.edition); err != nil {
		t.Fatal(err)
	}
	if err := w.Run(ctx, f.edition, &stats); err != nil {
		t.Fatalf("second run: %v; want it finished", err)
	}
	if n := f.count(t, `status = 'sent'`); n != 6 {
		t.Fatalf("%d sent, want the 6 the relay took", n)
	}
}

// A Worker run again starts clean: the send-by deadline of the edition it
// sent last does not hold for the next, which has none.
func TestWorkerRunAgainForgetsTheSendBy(t *testing.T) {
	f := newFixture(t, 5)
	ctx := context.Background()
	srv := smtptest.Start(t)
	late := f.edition
	if _, err := f.q.Enqueue(ctx, late, "example.com", time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // the deadline passes before the send
	w := &delivery.Worker{Queue: f.q, Dial: dialer(t, f, smtpConfig(srv)), Holder: "again", Log: quietLog()}
	var stats delivery.Stats
	if err := w.Run(ctx, late, &stats); err != nil {
		t.Fatal(err)
	}
	if stats.Failed.Load() != 5 || len(srv.Messages()) != 0 {
		t.Fatalf("past its deadline: %d failed, %d messages; want 5 failed, none sent", stats.Failed.Load(), len(srv.Messages()))
	}
	next := f.addEdition(t, "2025-11-14")
	if _, err := f.q.Enqueue(ctx, next, "example.com", 0); err != nil {
		t.Fatal(err)
	}
	stats = delivery.Stats{}
	if err := w.Run(ctx, next, &stats); err != nil {
		t.Fatal(err)
	}
	if stats.Sent.Load() != 5 || len(srv.Messages()) != 5 {
		t.Fatalf("the next edition, without a deadline: %d sent, %d messages; want 5", stats.Sent.Load(), len(srv.Messages()))
	}
}

// BenchmarkSend10k sends an edition to 10,000 subscribers through an
// in-process SMTP sink, every outcome recorded in PostgreSQL, one run
// without metrics and one with, in turn (so that a machine's load drifting
// falls on both): with, the run is counted by package metrics and /metrics
// is scraped every second (fifteen times Prometheus's usual rate), its
// database counts included. Issue 13: counting must cost nothing
// measurable; msgs/s-off and msgs/s-on are the two rates.
func BenchmarkSend10k(b *testing.B) {
	f := newFixture(b, 10000)
	srv := smtptest.Start(b, smtptest.WithDiscard())
	dial := dialer(b, f, smtpConfig(srv))
	m := metrics.New(f.db, quietLog())
	var off, on time.Duration
	for i := range b.N {
		off += benchSend(b, f, dial, nil, i)
		on += benchSend(b, f, dial, m, i)
	}
	b.ReportMetric(float64(b.N)*10000/off.Seconds(), "msgs/s-off")
	b.ReportMetric(float64(b.N)*10000/on.Seconds(), "msgs/s-on")
}

// benchSend sends the edition once and returns how long it took; with m,
// counted and scraped meanwhile.
func benchSend(b *testing.B, f *fixture, dial delivery.Dialer, m *metrics.Metrics, i int) time.Duration {
	ctx := context.Background()
	if m != nil {
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					rec := httptest.NewRecorder()
					m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
					if rec.Code != 200 || !strings.Contains(rec.Body.String(), "newsletter_messages_sent_total") {
						b.Errorf("scrape: %d %s", rec.Code, rec.Body.String())
					}
				}
			}
		}()
		defer func() { close(stop); <-done }()
	}
	b.StopTimer()
	f.db.MustExec(`DELETE FROM deliveries`)
	f.db.MustExec(`UPDATE editions SET send_started_at = NULL, finished_at = NULL`)
	b.StartTimer()
	start := time.Now()
	if _, err := f.q.Enqueue(ctx, f.edition, "example.com", 0); err != nil {
		b.Fatal(err)
	}
	w := &delivery.Worker{Queue: f.q, Dial: dial, Holder: fmt.Sprint("bench", i, m != nil), Log: quietLog(), Conns: 4}
	var stats delivery.Stats
	end := func() {}
	if m != nil {
		end = m.Track(&stats)
	}
	if err := w.Run(ctx, f.edition, &stats); err != nil {
		b.Fatal(err)
	}
	end()
	if stats.Sent.Load() != 10000 {
		b.Fatalf("sent %d", stats.Sent.Load())
	}
	return time.Since(start)
}
