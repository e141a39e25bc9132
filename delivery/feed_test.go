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
