package delivery_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"newsletter/delivery"
	"newsletter/internal/smtptest"
)

// streamCount wraps the real bulk mailer to count its streams and the
// messages in each: a stream that ends costs a far relay's round trip
// before the next one's first message.
type streamCount struct {
	delivery.Mailer
	mu      *sync.Mutex
	streams *[]int
}

func (s streamCount) Stream(ctx context.Context, next func() (delivery.Job, bool), done func(delivery.Job, delivery.Outcome)) {
	n := 0
	s.Mailer.Stream(ctx, func() (delivery.Job, bool) {
		j, ok := next()
		if ok {
			n++
		}
		return j, ok
	}, done)
	s.mu.Lock()
	*s.streams = append(*s.streams, n)
	s.mu.Unlock()
}

// Connections behind a slow relay keep one stream each from their first
// message to their last, across the Run's leases (thirty of ten here): the
// next lease is taken while half of the last is still to send, so the
// pipeline never runs dry waiting for the database, and no connection waits
// for a lease of its own. The work is shared to the last message: the
// connections send about as many each.
func TestConnectionsKeepOneStreamAcrossLeases(t *testing.T) {
	const n, conns = 300, 2
	f := newFixture(t, n)
	ctx := context.Background()
	srv := smtptest.Start(t)
	srv.Stall("*", 5*time.Millisecond) // a relay some way off
	if _, err := f.q.Enqueue(ctx, f.edition, "example.com", 0); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var streams []int
	real := dialer(t, f, smtpConfig(srv))
	dial := func(ctx context.Context) (delivery.Mailer, error) {
		m, err := real(ctx)
		if err != nil {
			return nil, err
		}
		return streamCount{Mailer: m, mu: &mu, streams: &streams}, nil
	}
	w := &delivery.Worker{Queue: f.q, Dial: dial, Holder: "feed", Log: quietLog(), Conns: conns, Batch: 10, Group: 5}
	var stats delivery.Stats
	if err := w.Run(ctx, f.edition, &stats); err != nil {
		t.Fatal(err)
	}
	if got := f.count(t, `status = 'sent'`); got != n || srv.Accepted() != n {
		t.Fatalf("%d sent, %d accepted, want %d", got, srv.Accepted(), n)
	}
	// One stream per connection, and a spare few for a lease that came
	// late on a busy machine; a stream per lease would be thirty.
	total := 0
	for _, k := range streams {
		total += k
	}
	t.Logf("streams: %v", streams)
	if len(streams) > conns+4 || total != n {
		t.Errorf("%d streams (%v) for %d messages over %d connections: the pipeline ran dry between leases", len(streams), streams, total, conns)
	}
	if srv.Connections() != conns {
		t.Errorf("%d SMTP connections, want %d", srv.Connections(), conns)
	}
}

// A paced send holds its lease longer than the lease lasts: the feed renews
// what it holds, so no delivery of a live worker's is ever left expired for
// another worker to rescue and send again.
func TestFeedRenewsWhatItHolds(t *testing.T) {
	const n = 60
	f := newFixture(t, n)
	ctx := context.Background()
	srv := smtptest.Start(t)
	if _, err := f.q.Enqueue(ctx, f.edition, "example.com", 0); err != nil {
		t.Fatal(err)
	}
	// 60 leased at once, sent at 20 a second: some three seconds, two
	// leases' time.
	w := &delivery.Worker{Queue: f.q, Dial: dialer(t, f, smtpConfig(srv)), Holder: "paced", Log: quietLog(),
		Conns: 1, Batch: n, Group: 5, Rate: 20, LeaseTTL: 1500 * time.Millisecond}
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- w.Run(ctx, f.edition, new(delivery.Stats)) }()
	expired := 0
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			running = false
		case <-time.After(50 * time.Millisecond):
			expired = max(expired, f.count(t, `status = 'sending' AND lease_expires_at < now()`))
		}
	}
	if expired > 0 {
		t.Errorf("%d leases of a live, paced worker expired during its send", expired)
	}
	if took := time.Since(start); took < w.LeaseTTL+500*time.Millisecond {
		t.Fatalf("the send took %v, hardly longer than a lease (%v): the pace was not kept", took, w.LeaseTTL)
	}
	if got := f.count(t, `status = 'sent' AND attempts = 1`); got != n || srv.Accepted() != n {
		t.Fatalf("%d sent at the first attempt, %d accepted; want %d, each once", got, srv.Accepted(), n)
	}
}
