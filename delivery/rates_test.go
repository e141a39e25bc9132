package delivery_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"newsletter/delivery"
	"newsletter/internal/smtptest"
	"newsletter/subscribers"
)

// shareLog keeps the shares of the fleet's rate a worker logged.
type shareLog struct {
	mu     sync.Mutex
	shares []float64
}

func (h *shareLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *shareLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *shareLog) WithGroup(string) slog.Handler            { return h }
func (h *shareLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "sharing the fleet's rate limits" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "rate" {
			h.mu.Lock()
			h.shares = append(h.shares, a.Value.Float64())
			h.mu.Unlock()
		}
		return true
	})
	return nil
}

func (h *shareLog) last() float64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.shares) == 0 {
		return 0
	}
	return h.shares[len(h.shares)-1]
}

// tookAfter reports whether the worker logged share then after first.
func (h *shareLog) tookAfter(first, then float64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	i := slices.Index(h.shares, first)
	return i >= 0 && slices.Contains(h.shares[i+1:], then)
}

// rateOf is the messages per second from the first to the last message.
func rateOf(msgs []smtptest.Message) float64 {
	if len(msgs) < 2 {
		return 0
	}
	return float64(len(msgs)-1) / msgs[len(msgs)-1].At.Sub(msgs[0].At).Seconds()
}

// Three workers under one fleet-wide rate send about that rate in total,
// not three times it; when one stops, the other two take its share.
func TestFleetSharesTheRate(t *testing.T) {
	const fleetRate, n = 100.0, 500
	f := newFixture(t, n)
	ctx := context.Background()
	srv := smtptest.Start(t)
	if _, err := f.q.Enqueue(ctx, f.edition, "example.com", 0); err != nil {
		t.Fatal(err)
	}
	// The live workers, as the registry of package fleet would count
	// them: each registered before it starts, gone when it stops.
	var live atomic.Int64
	live.Store(3)
	peers := func() int { return int(live.Load()) }
	dial := dialer(t, f, smtpConfig(srv))
	logs := make([]*shareLog, 3)
	errs := make([]error, 3)
	stopCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	for i := range 3 {
		logs[i] = &shareLog{}
		w := &delivery.Worker{Queue: f.q, Dial: dial, Holder: fmt.Sprint("fleet", i), Log: slog.New(logs[i]),
			Conns: 2, Batch: 20, Group: 5, Rate: fleetRate, Peers: peers, Poll: 50 * time.Millisecond}
		runCtx := ctx
		if i == 2 {
			runCtx = stopCtx
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var stats delivery.Stats
			errs[i] = w.Run(runCtx, f.edition, &stats)
			live.Add(-1)
		}()
	}
	srv.WaitFor(t, 150, time.Minute)
	stop() // the third worker stops mid-send
	stoppedAt := time.Now()
	wg.Wait()
	if errs[0] != nil || errs[1] != nil || !errors.Is(errs[2], context.Canceled) {
		t.Fatalf("runs: %v; want two finished and the third stopped", errs)
	}
	msgs := srv.Messages()
	sort.Slice(msgs, func(i, j int) bool { return msgs[i].At.Before(msgs[j].At) })
	if len(msgs) != n {
		t.Fatalf("%d messages for %d recipients", len(msgs), n)
	}
	// Three at once, over the middle of their time together.
	cut := sort.Search(n, func(i int) bool { return msgs[i].At.After(stoppedAt) })
	three := rateOf(msgs[20 : cut-10])
	// The two left, once they have counted each other.
	from := sort.Search(n, func(i int) bool { return msgs[i].At.After(stoppedAt.Add(2 * time.Second)) })
	if from > n-12 {
		t.Fatalf("%d of %d messages sent in the 2s after the third worker stopped: faster than the fleet's rate, %.0f", n-from, n, fleetRate)
	}
	two := rateOf(msgs[from : n-10])
	t.Logf("three workers: %.0f msgs/s; two, after the third stopped: %.0f msgs/s (fleet rate %.0f)", three, two, fleetRate)
	if three > 1.5*fleetRate || two > 1.5*fleetRate {
		t.Errorf("the fleet sent %.0f msgs/s with three workers, %.0f with two: more than its rate, %.0f", three, two, fleetRate)
	}
	// The stopped worker's last share was a third; each survivor took a
	// half once it had stopped. A survivor's very last share may be the
	// whole rate: the other survivor can finish and leave first.
	if got := logs[2].last(); got != fleetRate/3 {
		t.Errorf("the stopped worker's last share: %v msgs/s (shares %v), want %v", got, logs[2].shares, fleetRate/3)
	}
	for i := range 2 {
		if !logs[i].tookAfter(fleetRate/3, fleetRate/2) {
			t.Errorf("worker %d's shares %v: never %v after %v", i, logs[i].shares, fleetRate/2, fleetRate/3)
		}
	}
}

// A domain that throttles one worker slows the others down for that domain,
// though it never throttled them.
func TestThrottleSlowsTheFleetForThatDomain(t *testing.T) {
	f := newFixture(t, 20)
	ctx := context.Background()
	addSlow := func(name string) {
		if _, err := f.subs.Add(ctx, name+"@slow.example", "", subscribers.Confirmed); err != nil {
			t.Fatal(err)
		}
	}
	addSlow("first")
	// Two workers live; one is throttled by slow.example through its relay.
	peers := func() int { return 2 }
	rates := map[string]float64{"slow.example": 40}
	throttling := smtptest.Start(t)
	throttling.RejectRcpt("first@slow.example", 421, "4.7.28", "unusual rate of unsolicited mail, slow down")
	if _, err := f.q.Enqueue(ctx, f.edition, "example.com", 0); err != nil {
		t.Fatal(err)
	}
	w := &delivery.Worker{Queue: f.q, Dial: dialer(t, f, smtpConfig(throttling)), Holder: "throttled", Log: quietLog(),
		MaxAttempts: 1, DomainRates: rates, Peers: peers}
	var stats delivery.Stats
	if err := w.Run(ctx, f.edition, &stats); err != nil {
		t.Fatal(err)
	}
	var slowed []string
	if err := f.db.Select(&slowed, `SELECT domain FROM domain_throttles`); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(slowed, []string{"slow.example"}) {
		t.Fatalf("the fleet slows %q after a 421 4.7.28 from slow.example alone", slowed)
	}
	// The other worker sends the next edition through a relay that
	// takes everything: it paces slow.example at its share of the
	// fleet's halved pace, one message at a time, not at its share of the
	// ceiling in bursts of twenty.
	for i := range 20 {
		addSlow(fmt.Sprint("reader", i))
	}
	next := f.addEdition(t, "2025-11-14")
	if _, err := f.q.Enqueue(ctx, next, "example.com", 0); err != nil {
		t.Fatal(err)
	}
	relay := smtptest.Start(t)
	w = &delivery.Worker{Queue: f.q, Dial: dialer(t, f, smtpConfig(relay)), Holder: "other", Log: quietLog(),
		Group: 1, DomainRates: rates, Peers: peers}
	stats = delivery.Stats{}
	if err := w.Run(ctx, next, &stats); err != nil {
		t.Fatal(err)
	}
	var slow []smtptest.Message
	for _, m := range relay.Messages() {
		if strings.HasSuffix(m.To[0], "@slow.example") {
			slow = append(slow, m)
		}
	}
	if len(slow) != 21 || stats.Sent.Load() != 41 {
		t.Fatalf("%d messages to slow.example, %d sent; want 21 of 41", len(slow), stats.Sent.Load())
	}
	// 10 msgs/s, one at a time, speeding up as the messages are taken:
	// ten messages a second at first, some 16 in the next.
	span := slow[len(slow)-1].At.Sub(slow[0].At)
	t.Logf("21 messages to slow.example over %v", span)
	if span < 500*time.Millisecond {
		t.Errorf("21 messages to slow.example in %v: not slowed by the fleet's throttle", span)
	}
}
