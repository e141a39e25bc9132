package delivery_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"newsletter/delivery"
	"newsletter/edition"
	"newsletter/internal/smtptest"
)

// bounceSend sends the fixture's edition to a server that refuses every
// k-th reader with 550 5.1.1, pausing at a 5% share of hard bounces.
func bounceSend(t *testing.T, f *fixture, srv *smtptest.Server) error {
	t.Helper()
	w := &delivery.Worker{Queue: f.q, Dial: dialer(t, f, smtpConfig(srv)), Holder: "bounces",
		Log: quietLog(), Conns: 1, BouncePause: 0.05, Poll: 10 * time.Millisecond}
	var stats delivery.Stats
	return w.Run(context.Background(), f.edition, &stats)
}

func rejectEvery(srv *smtptest.Server, n, k int) {
	for i := 0; i < n; i += k {
		srv.RejectRcpt(fmt.Sprintf("reader%05d@example.com", i), 550, "5.1.1", "no such user")
	}
}

// A stale list (one reader in ten gone) pauses the send at the 51st hard
// bounce of its first 1,000 outcomes, long before the rest is mailed; once
// someone resumes it, it is not paused again for the same reason.
func TestStaleListPausesSend(t *testing.T) {
	const n = 1500
	f := newFixture(t, n)
	ctx := context.Background()
	srv := smtptest.Start(t)
	rejectEvery(srv, n, 10)
	f.q.Enqueue(ctx, f.edition, "example.com", 0)
	err := bounceSend(t, f, srv)
	if !errors.Is(err, delivery.ErrPaused) || !strings.Contains(err.Error(), "51 of the first") || !strings.Contains(err.Error(), "stale") {
		t.Fatalf("send of a stale list: %v", err)
	}
	decided := f.count(t, `status IN ('sent', 'failed')`)
	if decided < 500 || decided > 600 {
		t.Fatalf("%d deliveries decided at the pause, want the first ~510", decided)
	}
	if bounced := f.count(t, `status = 'failed' AND smtp_enhanced = '5.1.1'`); bounced != 51 {
		t.Fatalf("%d hard bounces recorded at the pause, want 51", bounced)
	}
	if _, err := (&edition.Store{DB: f.db}).Resume(ctx, f.edition); err != nil {
		t.Fatal(err)
	}
	if err := bounceSend(t, f, srv); err != nil {
		t.Fatalf("resumed send: %v", err)
	}
	if left := f.count(t, `status NOT IN ('sent', 'failed')`); left != 0 {
		t.Fatalf("%d deliveries left after the resumed send", left)
	}
	if sent := f.count(t, `status = 'sent'`); sent != n-n/10 {
		t.Fatalf("%d sent, want %d", sent, n-n/10)
	}
}

// A healthy list (2% gone) is sent whole, and the watch ends after the
// first 1,000 outcomes.
func TestHealthyListIsNotPaused(t *testing.T) {
	const n = 1200
	f := newFixture(t, n)
	ctx := context.Background()
	srv := smtptest.Start(t)
	rejectEvery(srv, n, 50)
	f.q.Enqueue(ctx, f.edition, "example.com", 0)
	if err := bounceSend(t, f, srv); err != nil {
		t.Fatalf("send: %v", err)
	}
	if sent := f.count(t, `status = 'sent'`); sent != n-n/50 {
		t.Fatalf("%d sent, want %d", sent, n-n/50)
	}
	st, err := (&edition.Store{DB: f.db}).SendState(ctx, f.edition)
	if err != nil || !st.BounceWatchDone {
		t.Fatalf("watch not ended after the window: %+v %v", st, err)
	}
}
