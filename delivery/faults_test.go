package delivery_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"newsletter/delivery"
	"newsletter/internal/smtptest"
	"newsletter/subscribers"
)

type outcome struct {
	Status    string  `db:"status"`
	Permanent *bool   `db:"permanent"`
	Code      *int    `db:"smtp_code"`
	Enhanced  *string `db:"smtp_enhanced"`
	Attempts  int     `db:"attempts"`
	SubStatus string  `db:"sub_status"`
}

func (f *fixture) outcome(t *testing.T, email string) outcome {
	t.Helper()
	var o outcome
	err := f.db.Get(&o, `SELECT d.status, d.permanent, d.smtp_code, d.smtp_enhanced, d.attempts, s.status AS sub_status
		FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id WHERE s.email = $1`, email)
	if err != nil {
		t.Fatalf("outcome of %s: %v", email, err)
	}
	return o
}

// The test SMTP server answering 451, 421, 550 and 552 to chosen
// recipients, dropping a connection mid-DATA and stalling past the timeout:
// each outcome recorded as it should be, everyone else delivered once.
func TestFaultsAreToldApart(t *testing.T) {
	f := newFixture(t, 60)
	ctx := context.Background()
	srv := smtptest.Start(t)
	addr := func(i int) string { return fmt.Sprintf("reader%05d@example.com", i) }
	srv.RejectRcpt(addr(3), 451, "4.3.0", "mailbox busy")
	srv.RejectRcpt(addr(11), 550, "5.1.1", "no such user")
	srv.RejectData(addr(17), 552, "5.3.4", "message too big")
	srv.RejectRcpt(addr(23), 550, "5.7.1", "blocked by policy")
	// The throttling server is another domain's: only that domain slows.
	if _, err := f.subs.Add(ctx, "reader@throttling.example", "", subscribers.Confirmed); err != nil {
		t.Fatal(err)
	}
	srv.RejectRcpt("reader@throttling.example", 421, "4.7.0", "too many connections, slow down")
	srv.Stall(addr(41), 3*time.Second) // past the 1s timeout
	srv.DropAfter(45)                  // the 46th accepted message's DATA is cut
	f.q.Enqueue(ctx, f.edition, "example.com", 0)
	cfg := smtpConfig(srv)
	cfg.Timeout = time.Second
	w := &delivery.Worker{Queue: f.q, Dial: dialer(t, f, cfg), Holder: "faults",
		Log: quietLog(), Conns: 1, MaxAttempts: 3, RetryBase: 20 * time.Millisecond, Poll: 10 * time.Millisecond}
	// The bounce handler hears of the hard bounce and of the temporary
	// failures given up that a server answered, once each.
	var bounced []string
	w.Bounced = func(_ context.Context, rs []delivery.Result) {
		for _, r := range rs {
			bounced = append(bounced, fmt.Sprint(r.Code, r.Enhanced, r.HardBounce))
		}
	}
	var stats delivery.Stats
	if err := w.Run(ctx, f.edition, &stats); err != nil {
		t.Fatal(err)
	}
	slices.Sort(bounced)
	if want := []string{"4214.7.0false", "4514.3.0false", "5505.1.1true"}; !slices.Equal(bounced, want) {
		t.Errorf("bounces handed over: %q, want %q", bounced, want)
	}
	// Temporary: retried to the limit, then failed, not permanent.
	if o := f.outcome(t, addr(3)); o.Status != "failed" || *o.Permanent || o.Attempts != 3 || *o.Code != 451 {
		t.Errorf("451: %+v", o)
	}
	// Hard bounce: failed at once, the subscriber marked bounced.
	if o := f.outcome(t, addr(11)); o.Status != "failed" || !*o.Permanent || o.Attempts != 1 || *o.Enhanced != "5.1.1" || o.SubStatus != "bounced" {
		t.Errorf("550 5.1.1: %+v", o)
	}
	// Permanent but not a bad mailbox: failed, the subscriber kept.
	if o := f.outcome(t, addr(17)); o.Status != "failed" || !*o.Permanent || *o.Code != 552 || o.SubStatus != "confirmed" {
		t.Errorf("552 to DATA: %+v", o)
	}
	if o := f.outcome(t, addr(23)); o.Status != "failed" || !*o.Permanent || o.SubStatus != "confirmed" {
		t.Errorf("550 5.7.1: %+v", o)
	}
	// 421: the server closed the connection; retried, then failed.
	if o := f.outcome(t, "reader@throttling.example"); o.Status != "failed" || *o.Permanent || *o.Code != 421 {
		t.Errorf("421: %+v", o)
	}
	if o := f.outcome(t, addr(41)); o.Status != "failed" || *o.Permanent {
		t.Errorf("stalled past the timeout: %+v", o)
	}
	counts := srv.RecipientCounts()
	for i := range 60 {
		switch i {
		case 3, 11, 17, 23, 41:
			if counts[addr(i)] != 0 {
				t.Errorf("%s was refused but the server accepted it %d times", addr(i), counts[addr(i)])
			}
		default:
			if counts[addr(i)] != 1 {
				t.Errorf("%s got %d messages, want 1", addr(i), counts[addr(i)])
			}
			if o := f.outcome(t, addr(i)); o.Status != "sent" {
				t.Errorf("%s: %+v, want sent", addr(i), o)
			}
		}
	}
	// Throttling slowed that recipient's domain down for the fleet, and no
	// other.
	var slowed []string
	if err := f.db.Select(&slowed, `SELECT domain FROM domain_throttles`); err != nil {
		t.Fatal(err)
	}
	if len(slowed) != 1 || slowed[0] != "throttling.example" {
		t.Errorf("the fleet slows %q after a 421 from throttling.example alone", slowed)
	}
}

// A threshold of temporary failures in a row pauses the send with a clear
// reason; resuming continues where it stopped, nobody sent twice.
func TestErrorThresholdPausesAndResumeContinues(t *testing.T) {
	f := newFixture(t, 40)
	ctx := context.Background()
	srv := smtptest.Start(t)
	for i := 10; i < 40; i++ {
		srv.RejectRcpt(fmt.Sprintf("reader%05d@example.com", i), 451, "4.4.1", "relay overloaded")
	}
	f.q.Enqueue(ctx, f.edition, "example.com", 0)
	mk := func() *delivery.Worker {
		return &delivery.Worker{Queue: f.q, Dial: dialer(t, f, smtpConfig(srv)), Holder: "th",
			Log: quietLog(), ErrorThreshold: 5, Group: 5, Batch: 5, RetryBase: time.Hour}
	}
	var stats delivery.Stats
	err := mk().Run(ctx, f.edition, &stats)
	if err == nil || !strings.Contains(err.Error(), "5 temporary failures in a row") {
		t.Fatalf("Run: %v; want a pause after 5 temporary failures", err)
	}
	sentBefore := f.count(t, `status = 'sent'`)
	if sentBefore != 10 {
		t.Fatalf("%d sent before the pause, want the 10 that were accepted", sentBefore)
	}
	untouched := f.count(t, `status = 'queued' AND attempts = 0`)
	if untouched == 0 {
		t.Fatal("the pause came after the whole list was tried")
	}
	// The relay recovers; the send is resumed.
	for i := 10; i < 40; i++ {
		srv.RejectRcpt(fmt.Sprintf("reader%05d@example.com", i), 0, "", "")
	}
	if _, err := w(f).Editions.Resume(ctx, f.edition); err != nil {
		t.Fatal(err)
	}
	n, err := f.q.RetryFailed(ctx, f.edition)
	if err != nil {
		t.Fatal(err)
	}
	f.db.MustExec(`UPDATE deliveries SET next_attempt_at = now() WHERE status = 'queued'`)
	t.Logf("re-queued %d temporary failures", n)
	if err := mk().Run(ctx, f.edition, &stats); err != nil {
		t.Fatal(err)
	}
	counts := srv.RecipientCounts()
	for i := range 40 {
		if c := counts[fmt.Sprintf("reader%05d@example.com", i)]; c != 1 {
			t.Errorf("reader%05d got %d messages, want 1", i, c)
		}
	}
}

// w gives the edition store the worker would use.
func w(f *fixture) *delivery.Worker {
	wk := &delivery.Worker{Queue: f.q}
	wk.Editions = editionStore(f)
	return wk
}
