package delivery

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"golang.org/x/time/rate"
)

// limits is one Run's share of the fleet's rate limits. The limits
// (Worker.Rate, Worker.DomainRates) are the whole fleet's: this worker paces
// its messages at each limit divided by the number of live workers
// (Worker.Peers), counted again every refreshEvery, so that a worker joining
// or dying rebalances the others within a refresh or two.
//
// A domain whose servers throttle us (421, 4.7.28, 451 4.7.x) is slowed down
// for the whole fleet: its pace is halved and kept in PostgreSQL
// (domain_throttles, see throttles.go), where every worker reads it, and it
// speeds back up a little with each message the fleet gets accepted
// (additive increase, multiplicative decrease, as TCP does), up to the
// domain's ceiling, or until a domain without one is forgotten. Other
// domains keep their pace, and the send goes on.
//
// Per message everything is in memory (a map under a mutex and the
// limiters); only refresh talks to the database.
type limits struct {
	rate     float64            // the fleet's messages per second; 0: no limit
	ceilings map[string]float64 // the fleet's, per domain (lower case)
	peers    func() int
	db       *sqlx.DB
	log      *slog.Logger
	all      *rate.Limiter // this worker's share of rate; nil: no limit

	mu      sync.Mutex
	live    int                // live workers at the last refresh
	fleet   map[string]float64 // the fleet's throttles at the last refresh
	domains map[string]*pace   // the domains this worker paces
}

// pace is this worker's pace for one recipient domain.
type pace struct {
	lim    *rate.Limiter
	fleet  float64 // the fleet's messages per second to the domain
	slowed bool    // fleet is a throttle's, under the domain's ceiling
	// What this worker has to tell the fleet at the next refresh: the
	// domain throttled it, or took this many messages while slowed.
	throttled bool
	accepted  int
}

// throttledStart is the fleet's pace to a domain that throttled us without
// a configured ceiling before it is halved, and recoveredRate the pace at
// which such a domain is forgotten again.
const (
	throttledStart = 20.0
	recoveredRate  = 4 * throttledStart
)

// minDomainRate is the slowest the fleet paces a throttled domain: one
// message per ten seconds.
const minDomainRate = 0.1

// refreshEvery is how often a worker counts the live workers and reads and
// writes the fleet's throttles.
const refreshEvery = time.Second

func newLimits(w *Worker) *limits {
	l := &limits{rate: w.Rate, ceilings: map[string]float64{}, peers: w.Peers, db: w.Queue.DB, log: w.Log,
		domains: map[string]*pace{}}
	for dom, r := range w.DomainRates {
		l.ceilings[strings.ToLower(dom)] = r
	}
	l.apply(nil, 1)
	return l
}

// domainOf is the lower-cased domain of an address.
func domainOf(addr string) string {
	return strings.ToLower(addr[strings.LastIndexByte(addr, '@')+1:])
}

// reserve takes a slot for one message to the domain. It returns how long
// to wait first; when that is longer than maxWait it takes nothing and
// reports false, and the caller puts the message back in the queue for later
// rather than holding its connection idle.
func (l *limits) reserve(domain string, maxWait time.Duration) (time.Duration, bool) {
	l.mu.Lock()
	p := l.domains[domain]
	l.mu.Unlock()
	if p == nil {
		return 0, true
	}
	now := time.Now()
	r := p.lim.ReserveN(now, 1)
	if !r.OK() {
		return maxWait + time.Second, false
	}
	wait := r.DelayFrom(now)
	if wait > maxWait {
		r.CancelAt(now)
		return wait, false
	}
	return wait, true
}

// paced reports whether any message now waits for a rate: the fleet-wide
// one, or a domain's.
func (l *limits) paced() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all != nil || len(l.domains) > 0
}

// wait waits for this worker's share of the fleet's rate to allow n more
// messages. It waits whatever ctx says: the messages are leased already.
func (l *limits) wait(ctx context.Context, n int) {
	if l.all == nil {
		return
	}
	for range n {
		l.all.Wait(context.WithoutCancel(ctx))
	}
}

// throttled halves the domain's pace at once, here, and tells the fleet at
// the next refresh. Once per refresh: the answers to the messages already
// on their way carry the same news, and halving once per answer would all
// but stop the domain for one burst.
func (l *limits) throttled(domain string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.domains[domain]
	if p == nil {
		p = &pace{fleet: throttledStart}
		l.domains[domain] = p
	}
	if p.throttled {
		return
	}
	p.throttled, p.slowed, p.accepted = true, true, 0
	p.fleet = max(p.fleet/2, minDomainRate)
	p.set(l.live)
}

// accepted counts a message the domain took, which speeds a slowed domain
// up at the next refresh.
func (l *limits) accepted(domain string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p := l.domains[domain]; p != nil && p.slowed && !p.throttled {
		p.accepted++
	}
}

// set paces the domain at this worker's share of the fleet's pace: in bursts
// up to a second's worth, but one at a time while slowed.
func (p *pace) set(live int) {
	share := Share(p.fleet, live)
	burst := max(1, int(share))
	if p.slowed {
		burst = 1
	}
	if p.lim == nil { // a new limiter starts with its burst's worth
		p.lim = rate.NewLimiter(rate.Limit(share), burst)
		return
	}
	p.lim.SetLimit(rate.Limit(share))
	p.lim.SetBurst(burst)
}

// apply sets this worker's share for live workers and the fleet's
// throttles, by domain (their pace, messages per second).
func (l *limits) apply(throttles map[string]float64, live int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rate > 0 && live != l.live {
		share := Share(l.rate, live)
		if l.all == nil { // made by newLimits, before any message
			l.all = rate.NewLimiter(rate.Limit(share), max(1, int(share/10)))
		}
		l.all.SetLimit(rate.Limit(share))
		l.all.SetBurst(max(1, int(share/10)))
	}
	l.live, l.fleet = live, throttles
	for dom, p := range l.domains {
		_, capped := l.ceilings[dom]
		if r, ok := throttles[dom]; !capped && !p.throttled && (!ok || r >= recoveredRate) {
			delete(l.domains, dom) // no longer slowed, and no ceiling
		}
	}
	for dom, ceiling := range l.ceilings {
		if r, ok := throttles[dom]; ok && r < ceiling {
			l.pace(dom, r, true)
		} else {
			l.pace(dom, ceiling, false)
		}
	}
	for dom, r := range throttles {
		if _, capped := l.ceilings[dom]; !capped && r < recoveredRate {
			l.pace(dom, r, true)
		}
	}
}

// pace paces the domain at the fleet's pace r; a throttle this worker has
// not reported yet keeps its own, slower pace.
func (l *limits) pace(domain string, r float64, slowed bool) {
	p := l.domains[domain]
	if p == nil {
		p = &pace{}
		l.domains[domain] = p
	}
	if p.throttled {
		r, slowed = min(r, p.fleet), true
	}
	if !slowed {
		p.accepted = 0
	}
	p.fleet, p.slowed = r, slowed
	p.set(l.live)
}

// share is this worker's share of the fleet's rate, for the log.
func (l *limits) share() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rate / float64(l.live)
}

// Share is one worker's part of a fleet-wide rate among live workers (0: no
// limit). The limits and the registry's account of each worker both use it.
func Share(fleetRate float64, live int) float64 {
	if fleetRate <= 0 {
		return 0
	}
	return fleetRate / float64(max(1, live))
}
