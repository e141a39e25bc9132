package delivery

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"golang.org/x/time/rate"

	"newsletter/internal/pgtest"
)

// One worker throttled by a domain slows every worker for that domain, and
// for no other; accepted messages bring it back to its ceiling; a worker
// dying gives the others its share.
func TestThrottleIsTheFleetsForThatDomainOnly(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	live := 2
	mk := func() *limits {
		return newLimits(&Worker{Queue: &Queue{DB: db}, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Peers: func() int { return live }, DomainRates: map[string]float64{"gmail.com": 40, "example.com": 40}})
	}
	a, b := mk(), mk()
	refresh := func(ls ...*limits) {
		t.Helper()
		for _, l := range ls {
			if err := l.refresh(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A domain's pace: messages per second, and one at a time or not.
	paced := func(l *limits, dom string) (rate.Limit, bool) {
		lim := l.domains[dom].lim
		return lim.Limit(), lim.Burst() == 1
	}
	refresh(a, b)
	if r, p := paced(b, "gmail.com"); r != 20 || p {
		t.Fatalf("before any throttle: gmail.com at %v msgs/s, paced one at a time %v; want 20, in bursts", r, p)
	}
	a.throttled("gmail.com")
	a.throttled("gmail.com") // the same burst's news: halved once
	refresh(a, b)
	for dom, want := range map[string]rate.Limit{"gmail.com": 10, "example.com": 20} {
		r, p := paced(b, dom)
		// Two messages at once are more than a slowed domain's pace allows.
		_, first := b.reserve(dom, 0)
		_, second := b.reserve(dom, 0)
		if r != want || p != (dom == "gmail.com") || (first && second) != (dom != "gmail.com") {
			t.Errorf("after gmail.com throttled another worker: %s at %v msgs/s, paced one at a time %v; want %v", dom, r, p, want)
		}
	}
	// Messages taken speed the fleet back up, to the ceiling and no further.
	for range 10 {
		b.accepted("gmail.com")
	}
	refresh(b, a)
	var fleet float64
	db.Get(&fleet, `SELECT rate FROM domain_throttles WHERE domain = 'gmail.com'`)
	if want := 21*1.62889462677744140625 - 1; fleet < want-1e-9 || fleet > want+1e-9 {
		t.Errorf("after 10 messages taken, the fleet's pace to gmail.com is %v, want %v", fleet, want)
	}
	if r, _ := paced(a, "gmail.com"); float64(r) != fleet/2 {
		t.Errorf("the throttled worker paces gmail.com at %v, want its share of the fleet's %v", r, fleet)
	}
	for range 100 {
		b.accepted("gmail.com")
	}
	refresh(b)
	live = 1 // a dies
	refresh(b)
	if r, p := paced(b, "gmail.com"); r != 40 || p {
		t.Errorf("recovered, alone: gmail.com at %v msgs/s, paced one at a time %v; want 40, in bursts", r, p)
	}
}
