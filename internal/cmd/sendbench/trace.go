package main

import (
	"bytes"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"
)

// connTrace times each connection's messages at the delaying proxy (-trace):
// when each connection started and stopped sending, and how long a message
// took it, which tells a sender's idle connections (a late start, an early
// finish) from slow round trips. It reads what the client writes instead of
// splicing it through, so it costs the proxy some CPU (in sink_us).
type connTrace struct {
	mu    sync.Mutex
	conns map[int64]*connTimes
}

// connTimes is one connection's first and last MAIL FROM, and how many.
type connTimes struct {
	first, last time.Time
	n           int
}

var mailFrom = []byte("MAIL FROM:")

// pass passes what the client writes on to the server, counting the MAIL
// commands of connection id as they go.
func (t *connTrace) pass(id int64, server, client net.Conn) {
	b := make([]byte, 64<<10)
	for {
		n, err := client.Read(b)
		if n > 0 {
			if k := bytes.Count(b[:n], mailFrom); k > 0 {
				t.mail(id, k)
			}
			if _, werr := server.Write(b[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF: the client is done
		}
	}
}

func (t *connTrace) mail(id int64, k int) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.conns[id]
	if c == nil {
		c = &connTimes{first: now}
		t.conns[id] = c
	}
	c.last, c.n = now, c.n+k
}

func (t *connTrace) reset() {
	t.mu.Lock()
	t.conns = map[int64]*connTimes{}
	t.mu.Unlock()
}

// summary tells, over the connections that sent: how long after the first
// connection's first message the last one started, how long before the
// last message the others stopped (median and most), and a connection's
// mean time per message.
func (t *connTrace) summary() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var cs []*connTimes
	for _, c := range t.conns {
		if c.n > 1 {
			cs = append(cs, c)
		}
	}
	if len(cs) == 0 {
		return ""
	}
	start, end := cs[0].first, cs[0].last
	for _, c := range cs {
		start, end = minTime(start, c.first), maxTime(end, c.last)
	}
	var late time.Duration
	var idle []time.Duration
	var per float64
	for _, c := range cs {
		late = max(late, c.first.Sub(start))
		idle = append(idle, end.Sub(c.last))
		per += float64(c.last.Sub(c.first).Milliseconds()) / float64(c.n-1)
	}
	slices.Sort(idle)
	ms := func(d time.Duration) int64 { return d.Milliseconds() }
	return fmt.Sprintf("; trace: %d connections, the last started %d ms after the first, idle at the end median %d ms (most %d), %.1f ms per message per connection",
		len(cs), ms(late), ms(idle[len(idle)/2]), ms(idle[len(idle)-1]), per/float64(len(cs)))
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
