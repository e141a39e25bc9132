package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"newsletter/subscribers"
	"newsletter/web"
)

// Benchmarks of the two endpoints that take load: the RFC 8058 one-click
// POST (mailbox providers send it in bursts after each edition) and the
// sign-up form. Both run over real HTTP against real PostgreSQL, from
// GOMAXPROCS×4 concurrent clients, and report requests/s and the 99th
// percentile latency besides ns/op.

func benchClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute,
	}}
}

// latencies collects request durations from parallel clients.
type latencies struct {
	mu  sync.Mutex
	all []time.Duration
}

func (l *latencies) add(d []time.Duration) {
	l.mu.Lock()
	l.all = append(l.all, d...)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B, elapsed time.Duration) {
	if len(l.all) == 0 {
		return
	}
	slices.Sort(l.all)
	p99 := l.all[min(len(l.all)-1, len(l.all)*99/100)]
	b.ReportMetric(float64(len(l.all))/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
}

// BenchmarkOneClick unsubscribes a different subscriber with each request,
// the exact body a mailbox provider sends, no cookie.
func BenchmarkOneClick(b *testing.B) {
	f := newFixture(b)
	var csv strings.Builder
	csv.WriteString("email\n")
	for i := range b.N {
		fmt.Fprintf(&csv, "reader%d@example.com\n", i)
	}
	if _, err := f.subs.Import(context.Background(), strings.NewReader(csv.String()), subscribers.Confirmed); err != nil {
		b.Fatal(err)
	}
	links := make([]string, 0, b.N)
	err := f.subs.Each(context.Background(), subscribers.Confirmed, func(s subscribers.Subscriber) error {
		links = append(links, f.subs.UnsubscribeURL(f.base, s.UUID))
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	client := benchClient()
	var next atomic.Int64
	var lat latencies
	b.SetParallelism(4)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			link := links[next.Add(1)-1]
			t0 := time.Now()
			resp, err := client.Post(link, "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
			if err != nil {
				b.Error(err)
				return
			}
			drainClose(resp)
			mine = append(mine, time.Since(t0))
			if resp.StatusCode != 200 {
				b.Errorf("one-click: %d", resp.StatusCode)
				return
			}
		}
		lat.add(mine)
	})
	elapsed := time.Since(start)
	b.StopTimer()
	lat.report(b, elapsed)
	var left int
	f.subs.DB.Get(&left, `SELECT count(*) FROM subscribers WHERE status = 'confirmed'`)
	if left != 0 {
		b.Fatalf("%d subscribers still confirmed", left)
	}
}

// BenchmarkSignup signs up a new address with each request, through the
// whole path: CSRF check, validation, the transaction (subscriber, consent
// entry, per-address count, token), and queueing the confirmation email
// (sent to the in-process SMTP server by the outbox's workers). The per-IP
// limit is off: every client here is 127.0.0.1.
func BenchmarkSignup(b *testing.B) {
	f := newFixtureWith(b, func(s *web.Server, _ *subscribers.Store) { s.IPLimit = web.RateLimit{Burst: -1} })
	br := f.browser(b)
	_, page := br.get("/subscribe")
	token := csrfOf(b, page)
	u, _ := url.Parse(f.base)
	cookies := br.client.Jar.Cookies(u)
	client := benchClient()
	var next atomic.Int64
	var lat latencies
	b.SetParallelism(4)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			n := next.Add(1)
			form := url.Values{"email": {fmt.Sprintf("new%d@example.com", n)}, "name": {"Bench Reader"}, "csrf": {token}}
			req, _ := http.NewRequest("POST", f.base+"/subscribe", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for _, c := range cookies {
				req.AddCookie(c)
			}
			t0 := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			drainClose(resp)
			mine = append(mine, time.Since(t0))
			if resp.StatusCode != 200 {
				b.Errorf("sign-up: %d", resp.StatusCode)
				return
			}
		}
		lat.add(mine)
	})
	elapsed := time.Since(start)
	b.StopTimer()
	lat.report(b, elapsed)
	b.ReportMetric(float64(runtime.GOMAXPROCS(0)*4), "clients")
}

func drainClose(resp *http.Response) {
	buf := make([]byte, 32<<10)
	for {
		if _, err := resp.Body.Read(buf); err != nil {
			break
		}
	}
	resp.Body.Close()
}
