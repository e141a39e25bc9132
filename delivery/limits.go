package delivery

import (
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DomainLimits paces messages per recipient domain. A domain can have a
// configured ceiling (gmail.com=50/s); any domain whose servers throttle us
// (421, 4.7.28, 451 4.7.x) is slowed down, halving its pace each time, and
// sped back up a little with each message it accepts (additive increase,
// multiplicative decrease, as TCP does). The limits are per process.
type DomainLimits struct {
	mu       sync.Mutex
	ceilings map[string]rate.Limit
	domains  map[string]*rate.Limiter
}

// throttledStart is the pace a domain that throttled us without a configured
// ceiling starts from.
const throttledStart = rate.Limit(20)

// minDomainRate is the slowest a throttled domain is paced: one message per
// ten seconds.
const minDomainRate = rate.Limit(0.1)

// NewDomainLimits takes the configured ceilings, in messages per second by
// domain (lower case).
func NewDomainLimits(ceilings map[string]float64) *DomainLimits {
	d := &DomainLimits{ceilings: map[string]rate.Limit{}, domains: map[string]*rate.Limiter{}}
	for dom, r := range ceilings {
		d.ceilings[strings.ToLower(dom)] = rate.Limit(r)
		d.domains[strings.ToLower(dom)] = rate.NewLimiter(rate.Limit(r), max(1, int(r)))
	}
	return d
}

// domainOf is the lower-cased domain of an address.
func domainOf(addr string) string {
	return strings.ToLower(addr[strings.LastIndexByte(addr, '@')+1:])
}

// Reserve takes a slot for one message to the domain. It returns how long
// to wait first; when that is longer than maxWait it takes nothing and
// reports false, and the caller puts the message back in the queue for later
// rather than holding its connection idle.
func (d *DomainLimits) Reserve(domain string, maxWait time.Duration) (time.Duration, bool) {
	if d == nil {
		return 0, true
	}
	d.mu.Lock()
	l := d.domains[domain]
	d.mu.Unlock()
	if l == nil {
		return 0, true
	}
	now := time.Now()
	r := l.ReserveN(now, 1)
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

// Throttled halves the domain's pace.
func (d *DomainLimits) Throttled(domain string) { d.answered(domain, true) }

// Accepted speeds the domain up a little after a message it took; a domain
// without a ceiling that is back to full speed is forgotten.
func (d *DomainLimits) Accepted(domain string) { d.answered(domain, false) }

// answered paces the domain after its answer to a message: multiplicative
// decrease when it throttled us, additive increase when it took the message.
func (d *DomainLimits) answered(domain string, throttled bool) {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	l := d.domains[domain]
	if throttled {
		if l == nil {
			l = rate.NewLimiter(throttledStart, 1)
			d.domains[domain] = l
		}
		l.SetLimit(max(l.Limit()/2, minDomainRate))
		l.SetBurst(1)
		return
	}
	if l == nil {
		return
	}
	ceiling, capped := d.ceilings[domain]
	next := l.Limit()*1.05 + 0.05
	switch {
	case capped && next >= ceiling:
		l.SetLimit(ceiling)
		l.SetBurst(max(1, int(ceiling)))
	case !capped && next >= 4*throttledStart:
		delete(d.domains, domain)
	default:
		l.SetLimit(next)
	}
}
