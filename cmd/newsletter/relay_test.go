package main

// A broken relay: the send stops early with the relay's reply and the fix,
// exits with a status that says so, and a rerun once it is fixed delivers
// everyone.

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"newsletter/delivery"
	"newsletter/edition"
	"newsletter/internal/smtptest"
)

// checkAttempts fails when any delivery was charged more than max attempts.
func (h *harness) checkAttempts(max int) {
	h.t.Helper()
	var n int
	h.db.Get(&n, `SELECT count(*) FROM deliveries WHERE attempts > $1`, max)
	if n != 0 {
		h.t.Errorf("%d deliveries charged more than %d attempts", n, max)
	}
}

// deliveredOnce checks every confirmed subscriber got exactly one message.
func (h *harness) deliveredOnce() {
	h.t.Helper()
	got := recipients(h.smtp.Messages())
	for _, a := range confirmedAddrs {
		if got[a] != 1 {
			h.t.Errorf("%s got %d messages, want 1", a, got[a])
		}
	}
}

func TestSendPausesWhenTheRelayFailsEveryone(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.smtp.RejectRcpt("*", 451, "4.3.0", "relay queue full")
	code, _, errs := h.run("send", "--date", "2025-11-13")
	if code != exitStopped || !strings.Contains(errs, "paused") || !strings.Contains(errs, "451 4.3.0 relay queue full") {
		t.Fatalf("exit %d, stderr %q; want %d and a pause with the relay's reply", code, errs, exitStopped)
	}
	h.checkAttempts(1)
	var failed int
	h.db.Get(&failed, `SELECT count(*) FROM deliveries WHERE status = 'failed'`)
	if failed != 0 {
		t.Errorf("%d deliveries failed for the relay's trouble", failed)
	}
	h.smtp.RejectRcpt("*", 0, "", "")
	h.must("send", "--date", "2025-11-13")
	h.deliveredOnce()
}

func TestSendStopsAtAMisconfiguredRelay(t *testing.T) {
	t.Run("AUTH refused", func(t *testing.T) {
		h := newHarness(t)
		h.smtp = smtptest.Start(t, smtptest.WithAuth("newsletter", "right"))
		t.Setenv("SMTP_URL", fmt.Sprintf("smtp://newsletter:wrong@%s?tls=none", h.smtp.Addr()))
		h.setup()
		const fix = "fix: correct the user name and password in SMTP_URL"
		for _, args := range [][]string{{"send", "--date", "2025-11-13", "--to", "editor@example.com"}, {"send", "--date", "2025-11-13"}} {
			code, _, errs := h.run(args...)
			// The error's one line (log lines go to stderr too).
			_, reason, _ := strings.Cut(errs, "newsletter send: ")
			if code != exitStopped || !strings.Contains(reason, "535 5.7.8") || !strings.Contains(reason, fix) || strings.Count(reason, "\n") != 1 {
				t.Errorf("%s: exit %d, stderr %q; want %d, the reply and the fix in one line", args, code, errs, exitStopped)
			}
		}
		var untried int
		h.db.Get(&untried, `SELECT count(*) FROM deliveries WHERE status = 'queued' AND attempts = 0`)
		if untried != len(confirmedAddrs) {
			t.Errorf("%d of %d deliveries back in the queue untried", untried, len(confirmedAddrs))
		}
		if c := h.smtp.Connections(); c > 3 {
			t.Errorf("%d connections: the send kept trying a relay that refused us", c)
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		h := newHarness(t)
		h.smtp = smtptest.Start(t, smtptest.WithTLS())
		t.Setenv("SMTP_URL", fmt.Sprintf("smtp://%s", h.smtp.Addr()))
		h.setup()
		code, _, errs := h.run("send", "--date", "2025-11-13")
		if code != exitStopped || !strings.Contains(errs, "certificate") || !strings.Contains(errs, "ca=/path/to/ca.pem") {
			t.Fatalf("exit %d, stderr %q; want %d and how to trust the CA", code, errs, exitStopped)
		}
		h.checkAttempts(0)
		// ca=FILE makes it work.
		ca := h.file("ca.pem", string(h.smtp.CertPEM()))
		t.Setenv("SMTP_URL", fmt.Sprintf("smtp://%s?ca=%s", h.smtp.Addr(), ca))
		h.must("send", "--date", "2025-11-13")
		h.deliveredOnce()
	})
}

// SIGINT in the middle of a send: the messages being written finish, the
// rest is handed back, and the exit status says work is left.
func TestInterruptedSendExitsNonZero(t *testing.T) {
	h := newHarness(t)
	const n = 300
	h.bigList(n)
	code, out := h.signalMidSend(n, 20, syscall.SIGINT)
	if code != exitInterrupted {
		t.Fatalf("SIGINT mid-send: exit %d, want %d\n%s", code, exitInterrupted, out)
	}
	if !strings.Contains(out, "interrupted") || !strings.Contains(out, "run the same send again") {
		t.Errorf("output does not say what is left:\n%s", out)
	}
}

// What a send that finished nothing lately says it waits for.
func TestProgressSaysWhatTheSendWaitsFor(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.must("send", "--date", "2025-11-13", "--enqueue-only")
	var id int64
	h.db.Get(&id, `SELECT id FROM editions`)
	q := &delivery.Queue{DB: h.db}
	p := &progress{w: &delivery.Worker{Queue: q, Editions: &edition.Store{DB: h.db}, Holder: "me"}, st: &edition.Stored{ID: id}}
	ctx := context.Background()
	if got := p.waitingFor(ctx); !strings.Contains(got, "waiting for the SMTP relay") {
		t.Errorf("nothing leased, nothing to retry: %q", got)
	}
	jobs, err := q.Lease(ctx, id, "another-host/1/0", 2, time.Hour, 0)
	if err != nil || len(jobs) != 2 {
		t.Fatalf("lease: %v, %d", err, len(jobs))
	}
	// Our own leases are not waited for.
	if _, err := q.Lease(ctx, id, "me/0", 1, time.Hour, 0); err != nil {
		t.Fatal(err)
	}
	h.db.MustExec(`UPDATE deliveries SET next_attempt_at = now() + interval '1 hour' WHERE status = 'queued'`)
	got := p.waitingFor(ctx)
	if !strings.Contains(got, "2 deliveries leased by another worker until") || !strings.Contains(got, "1 retries, the first due at") {
		t.Errorf("waiting for: %q", got)
	}
	if err := p.w.Editions.Pause(ctx, id, "the relay said no"); err != nil {
		t.Fatal(err)
	}
	if got := p.waitingFor(ctx); got != "paused: the relay said no" {
		t.Errorf("paused: %q", got)
	}
}
