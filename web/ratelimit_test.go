package web

import (
	"fmt"
	"net/http"
	"net/netip"
	"testing"
	"time"
)

// The limiter forgets idle clients and never remembers more than two
// generations of maxLimiterKeys, whatever the number of addresses.
func TestLimiterMemoryIsBounded(t *testing.T) {
	l := newIPLimiter(RateLimit{Burst: 2, Every: time.Minute})
	l.maxKeys = 100
	now := time.Date(2025, 11, 13, 8, 0, 0, 0, time.UTC)
	for i := range 10_000 {
		l.allow(fmt.Sprintf("198.51.%d.%d", i/256, i%256), now)
	}
	if n := l.size(); n > 2*l.maxKeys {
		t.Fatalf("the limiter remembers %d clients, want at most %d", n, 2*l.maxKeys)
	}
	// A client that used its burst is refused, until its bucket refills.
	if !l.allow("a", now) || !l.allow("a", now) || l.allow("a", now) {
		t.Fatal("burst of 2 not enforced")
	}
	if !l.allow("a", now.Add(time.Minute)) {
		t.Fatal("no token after a minute")
	}
	// Idle for two generations: forgotten (its bucket would be full anyway).
	later := now.Add(5 * l.idle)
	l.allow("b", later)
	l.allow("b", later.Add(l.idle))
	if _, ok := l.cur["a"]; ok {
		t.Fatal("an idle client is still remembered")
	}
	if _, ok := l.old["a"]; ok {
		t.Fatal("an idle client is still remembered")
	}
	if newIPLimiter(RateLimit{Burst: -1}).allow("x", now) != true {
		t.Fatal("a disabled limiter refused")
	}
}

func TestClientIP(t *testing.T) {
	trusted, err := ParsePrefixes("127.0.0.1, 10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		remote, xff, want string
	}{
		{"203.0.113.9:5000", "198.51.100.1", "203.0.113.9"},                   // not a proxy: header ignored
		{"127.0.0.1:5000", "198.51.100.1", "198.51.100.1"},                    // trusted proxy
		{"127.0.0.1:5000", "6.6.6.6, 198.51.100.1, 10.1.2.3", "198.51.100.1"}, // last untrusted hop
		{"127.0.0.1:5000", "", "127.0.0.1"},
		{"127.0.0.1:5000", "garbage", "127.0.0.1"},
		{"[::ffff:127.0.0.1]:5000", "2001:db8::1", "2001:db8::1"},
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.remote
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := clientIP(r, trusted); got.String() != c.want {
			t.Errorf("clientIP(%s, XFF %q) = %s, want %s", c.remote, c.xff, got, c.want)
		}
	}
	if k := limiterKey(netip.MustParseAddr("2001:db8:1:2:3:4:5:6")); k != "2001:db8:1:2::/64" {
		t.Errorf("IPv6 key %s", k)
	}
	if _, err := ParsePrefixes("10.0.0.0/33"); err == nil {
		t.Error("a bad prefix was accepted")
	}
}
