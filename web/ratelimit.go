package web

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimit is a token bucket: Burst requests at once, then one every
// Every. The zero value means the default; a negative Burst means no limit
// (for load tests).
type RateLimit struct {
	Burst int
	Every time.Duration
}

// DefaultIPLimit is the default limit per client on the forms that send
// email (sign-up, subscribe again, change of address): 5 at once, then one
// every 2 minutes, which no person filling in a form meets.
var DefaultIPLimit = RateLimit{Burst: 5, Every: 2 * time.Minute}

func (l RateLimit) withDefault() RateLimit {
	if l.Burst == 0 && l.Every == 0 {
		return DefaultIPLimit
	}
	if l.Burst > 0 && l.Every <= 0 {
		l.Every = DefaultIPLimit.Every
	}
	return l
}

// maxLimiterKeys bounds the clients the limiter remembers. Past it the
// oldest generation is forgotten early, which at worst gives those clients
// a fresh bucket: memory stays bounded under a flood from many addresses.
const maxLimiterKeys = 100_000

// ipLimiter keeps a token bucket per client in two generations: every
// `idle` (the time an empty bucket takes to fill up again) the current
// generation becomes the old one and the old one is dropped, so a client
// idle for that long is forgotten, which costs nothing, since its bucket
// would be full by then. Memory is at most two generations of
// maxLimiterKeys entries.
type ipLimiter struct {
	limit   rate.Limit
	burst   int
	idle    time.Duration
	maxKeys int

	mu       sync.Mutex
	cur, old map[string]*rate.Limiter
	rotated  time.Time
}

func newIPLimiter(l RateLimit) *ipLimiter {
	l = l.withDefault()
	if l.Burst < 0 {
		return nil
	}
	idle := l.Every * time.Duration(l.Burst)
	return &ipLimiter{
		limit: rate.Every(l.Every), burst: l.Burst, idle: max(idle, time.Minute), maxKeys: maxLimiterKeys,
		cur: map[string]*rate.Limiter{}, old: map[string]*rate.Limiter{},
	}
}

// allow takes a token from key's bucket; nil limits nothing.
func (l *ipLimiter) allow(key string, now time.Time) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rotated.IsZero() {
		l.rotated = now
	}
	if now.Sub(l.rotated) >= l.idle || len(l.cur) >= l.maxKeys {
		l.old, l.cur, l.rotated = l.cur, make(map[string]*rate.Limiter, len(l.cur)), now
	}
	b, ok := l.cur[key]
	if !ok {
		if b, ok = l.old[key]; ok {
			delete(l.old, key)
		} else {
			b = rate.NewLimiter(l.limit, l.burst)
		}
		l.cur[key] = b
	}
	return b.AllowN(now, 1)
}

// retryAfter is how long until an empty bucket has a token again.
func (l *ipLimiter) retryAfter() time.Duration {
	return max(time.Second, time.Duration(float64(time.Second)/float64(l.limit)))
}

// size is how many clients the limiter remembers.
func (l *ipLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.cur) + len(l.old)
}

// clientIP is the address of the client: the peer, or, when the peer is a
// trusted proxy, the last address in X-Forwarded-For that isn't one. The
// header is believed only from trusted proxies, since anyone else can
// write anything in it.
func clientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	ip := ap.Addr().Unmap()
	if !isTrusted(ip, trusted) {
		return ip
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return ip // a malformed hop: trust nothing before it
		}
		a = a.Unmap()
		if !isTrusted(a, trusted) {
			return a
		}
		ip = a
	}
	return ip
}

// ParsePrefixes reads a comma-separated list of addresses and CIDR
// prefixes ("127.0.0.1, 10.0.0.0/8, ::1"), as NEWSLETTER_TRUSTED_PROXIES
// holds.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if strings.Contains(f, "/") {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return nil, fmt.Errorf("%q is not an address or a prefix like 10.0.0.0/8", f)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not an address or a prefix like 10.0.0.0/8", f)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func isTrusted(ip netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// limiterKey is the bucket a client counts against: its IPv4 address, or
// its IPv6 /64, the block one subscriber line usually gets (RFC 6177), so
// that stepping through one's own addresses doesn't reset the limit.
func limiterKey(ip netip.Addr) string {
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}
