package delivery_test

import (
	"context"
	"testing"
	"time"

	"newsletter/delivery"
	"newsletter/internal/smtptest"
)

// A connection sends its whole lease as one stream, and the outcomes are
// written down a group at a time while it goes on: held in the middle of a
// lease of 40, the send has already recorded the groups before the held
// message, so a crash there would duplicate at most two groups, not the
// lease.
func TestStreamRecordsEachGroupOnTheWay(t *testing.T) {
	f := newFixture(t, 40)
	ctx := context.Background()
	srv := smtptest.Start(t)
	if _, err := f.q.Enqueue(ctx, f.edition, "example.com", 0); err != nil {
		t.Fatal(err)
	}
	// The server holds back the 28th message (and, as servers that
	// pipeline do, its replies to the 27th until it answers).
	release := srv.HoldNth(28)
	defer release()
	cfg := smtpConfig(srv)
	cfg.Timeout = time.Minute // the held reply is not a dead server
	w := &delivery.Worker{Queue: f.q, Dial: dialer(t, f, cfg), Holder: "test",
		Log: quietLog(), Conns: 1, Batch: 40, Group: 5}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, f.edition, new(delivery.Stats)) }()

	deadline := time.Now().Add(20 * time.Second)
	// Held at the 28th, the 26 before it have their outcomes: 25
	// recorded means five groups were written while the stream went on.
	for f.count(t, `status = 'sent'`) < 25 {
		if time.Now().After(deadline) {
			release()
			t.Fatalf("held at the 28th message, %d sent recorded: outcomes wait for the end of the stream", f.count(t, `status = 'sent'`))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := srv.Connections(); n != 1 {
		t.Errorf("%d connections, want the one", n)
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if f.count(t, `status = 'sent'`) != 40 || srv.Accepted() != 40 {
		t.Fatalf("sent %d, accepted %d, want 40", f.count(t, `status = 'sent'`), srv.Accepted())
	}
}
