package delivery_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"newsletter/delivery"
	"newsletter/internal/smtptest"
	"newsletter/subscribers"
)

// addAt adds confirmed subscribers at other domains than the fixture's.
func (f *fixture) addAt(t *testing.T, emails ...string) {
	t.Helper()
	for _, e := range emails {
		if _, err := f.subs.Add(context.Background(), e, "", subscribers.Confirmed); err != nil {
			t.Fatal(err)
		}
	}
}

// A relay answering 451 to everyone: the send pauses at the first retry
// with that reply as its reason, nobody is charged more than one attempt,
// and once the relay recovers a resumed send delivers everyone once.
func TestRelayFailingEveryonePausesWithItsReply(t *testing.T) {
	f := newFixture(t, 6)
	f.addAt(t, "ann@other.example", "bob@third.example")
	ctx := context.Background()
	srv := smtptest.Start(t)
	srv.RejectRcpt("*", 451, "4.3.0", "relay queue full")
	f.q.Enqueue(ctx, f.edition, "example.com", 0)
	mk := func() *delivery.Worker {
		return &delivery.Worker{Queue: f.q, Dial: dialer(t, f, smtpConfig(srv)), Holder: "relay",
			Log: quietLog(), Conns: 2, Group: 3, Batch: 3, ErrorThreshold: 100, MaxAttempts: 5,
			RetryBase: 20 * time.Millisecond, Poll: 10 * time.Millisecond}
	}
	var stats delivery.Stats
	err := mk().Run(ctx, f.edition, &stats)
	if !errors.Is(err, delivery.ErrPaused) || !strings.Contains(err.Error(), "451 4.3.0 relay queue full") ||
		!strings.Contains(err.Error(), "every delivery left") {
		t.Fatalf("Run against a relay failing everyone: %v; want a pause with its reply", err)
	}
	if n := f.count(t, `attempts > 1`); n != 0 {
		t.Errorf("%d deliveries charged more than one attempt for the relay's failure", n)
	}
	if n := f.count(t, `status = 'queued'`); n != 8 {
		t.Errorf("%d of 8 deliveries queued after the pause", n)
	}
	srv.RejectRcpt("*", 0, "", "")
	if _, err := w(f).Editions.Resume(ctx, f.edition); err != nil {
		t.Fatal(err)
	}
	f.db.MustExec(`UPDATE deliveries SET next_attempt_at = now() WHERE status = 'queued'`)
	if err := mk().Run(ctx, f.edition, &stats); err != nil {
		t.Fatal(err)
	}
	if n := f.count(t, `status = 'sent'`); n != 8 {
		t.Fatalf("%d of 8 sent after the relay recovered", n)
	}
	for rcpt, n := range srv.RecipientCounts() {
		if n != 1 {
			t.Errorf("%s got %d messages", rcpt, n)
		}
	}
}

// One domain throttling us while the others are delivered is that
// domain's business: it is retried at its own pace to the limit, the send
// is not paused, even with failures in a row past the threshold at the end.
func TestOneDomainThrottlingDoesNotPause(t *testing.T) {
	f := newFixture(t, 20)
	slow := []string{"a@gmail.example", "b@gmail.example"}
	f.addAt(t, slow...)
	ctx := context.Background()
	srv := smtptest.Start(t)
	for _, a := range slow {
		srv.RejectRcpt(a, 421, "4.7.28", "unusual rate of unsolicited mail")
	}
	f.q.Enqueue(ctx, f.edition, "example.com", 0)
	wk := &delivery.Worker{Queue: f.q, Dial: dialer(t, f, smtpConfig(srv)), Holder: "throttle",
		Log: quietLog(), ErrorThreshold: 2, MaxAttempts: 2,
		RetryBase: 10 * time.Millisecond, Poll: 5 * time.Millisecond}
	var stats delivery.Stats
	if err := wk.Run(ctx, f.edition, &stats); err != nil {
		t.Fatalf("Run: %v; one throttling domain must not pause the send", err)
	}
	if n := f.count(t, `status = 'sent'`); n != 20 {
		t.Errorf("%d of 20 sent", n)
	}
	for _, a := range slow {
		if o := f.outcome(t, a); o.Status != "failed" || o.Attempts != 2 {
			t.Errorf("%s: %+v, want failed after 2 attempts", a, o)
		}
	}
}

// A wrong password stops the send at the first dial: the reply and the fix
// in the pause's reason, no attempt charged to anyone.
func TestMisconfiguredRelayStopsAtOnce(t *testing.T) {
	for name, auth := range map[string][2]string{
		"wrong password": {"user", "wrong"}, // 535 to AUTH
		"no credentials": {"", ""},          // 530 to MAIL FROM
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, 30)
			ctx := context.Background()
			srv := smtptest.Start(t, smtptest.WithAuth("user", "right"))
			f.q.Enqueue(ctx, f.edition, "example.com", 0)
			cfg := smtpConfig(srv)
			cfg.Username, cfg.Password = auth[0], auth[1]
			wk := &delivery.Worker{Queue: f.q, Dial: dialer(t, f, cfg), Holder: "auth",
				Log: quietLog(), Conns: 2, Group: 5, Batch: 5, Poll: 5 * time.Millisecond}
			var stats delivery.Stats
			err := wk.Run(ctx, f.edition, &stats)
			if !errors.Is(err, delivery.ErrPaused) || !strings.Contains(err.Error(), "fix:") || !strings.Contains(err.Error(), "SMTP_URL") {
				t.Fatalf("Run: %v; want a pause with the fix", err)
			}
			if n := f.count(t, `status = 'queued' AND attempts = 0`); n != 30 {
				t.Errorf("%d of 30 deliveries back in the queue untried", n)
			}
			if c := srv.Connections(); c > 2 {
				t.Errorf("%d connections: the send went on after the relay refused us", c)
			}
			t.Log(err)
		})
	}
}
