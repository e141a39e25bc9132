package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/mail"
	"net/url"
	"newsletter/internal/logtest"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape GETs url's /metrics and parses it as Prometheus does.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics is not Prometheus's text format: %v", err)
	}
	return fams
}

// value is the metric of fams named name whose labels include labels
// (name=value pairs); -1 when there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.Metric {
		for i := 0; i < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// A real send by `serve --worker`, then a one-click unsubscribe: what
// /metrics says is what PostgreSQL holds.
func TestMetricsAfterASend(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.smtp.RejectRcpt("charles@example.com", 550, "5.1.1", "no such user")
	t.Setenv("NEWSLETTER_LISTEN", "127.0.0.1:0")
	base, _ := h.serve(t, "--worker")
	h.must("send", "--date", "2025-11-13", "--enqueue-only")
	h.waitFinished()
	// The one-click POST a mailbox provider makes (RFC 8058), from the
	// link in Ada's message.
	var link string
	for _, m := range h.smtp.Messages() {
		if m.To[0] == "ada@example.com" {
			msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
			if err != nil {
				t.Fatal(err)
			}
			link = regexp.MustCompile(`<(https://[^>]+)>`).FindStringSubmatch(msg.Header.Get("List-Unsubscribe"))[1]
		}
	}
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.PostForm(base+strings.TrimPrefix(u.Path, "/newsletter"), url.Values{"List-Unsubscribe": {"One-Click"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("one-click unsubscribe: %s", resp.Status)
	}

	fams := scrape(t, base)
	count := func(query string) float64 {
		var n float64
		if err := h.db.Get(&n, query); err != nil {
			t.Fatal(err)
		}
		return n
	}
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"newsletter_messages_sent_total", nil, count(`SELECT count(*) FROM deliveries WHERE status = 'sent'`)},
		{"newsletter_messages_failed_total", []string{"class", "bounced"},
			count(`SELECT count(*) FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id WHERE d.status = 'failed' AND d.permanent AND s.status = 'bounced'`)},
		{"newsletter_messages_failed_total", []string{"class", "permanent"}, 0},
		{"newsletter_messages_failed_total", []string{"class", "temporary"}, count(`SELECT count(*) FROM deliveries WHERE status = 'failed' AND NOT permanent`)},
		{"newsletter_send_duration_seconds", nil, 1},
		{"newsletter_subscribers", []string{"status", "confirmed"}, count(`SELECT count(*) FROM subscribers WHERE status = 'confirmed'`)},
		{"newsletter_subscribers", []string{"status", "unsubscribed"}, count(`SELECT count(*) FROM subscribers WHERE status = 'unsubscribed'`)},
		{"newsletter_subscribers", []string{"status", "bounced"}, count(`SELECT count(*) FROM subscribers WHERE status = 'bounced'`)},
		{"newsletter_subscribers", []string{"status", "pending"}, count(`SELECT count(*) FROM subscribers WHERE status = 'pending'`)},
		{"newsletter_unsubscribes_total", []string{"how", "one-click"}, 1},
		{"newsletter_unsubscribes_total", []string{"how", "page"}, 0},
		{"newsletter_last_send_finished_timestamp_seconds", nil, count(`SELECT extract(epoch FROM finished_at)::float8 FROM editions`)},
		// Finished: no edition has deliveries queued.
		{"newsletter_deliveries_queued", nil, -1},
	}
	for _, c := range checks {
		got := value(fams, c.name, c.labels...)
		if d := got - c.want; d > 1e-3 || d < -1e-3 {
			t.Errorf("%s%v = %v, PostgreSQL says %v", c.name, c.labels, got, c.want)
		}
	}
	if sent := value(fams, "newsletter_messages_sent_total"); sent != 3 {
		t.Errorf("sent %v, want the 3 confirmed subscribers the relay accepted", sent)
	}
	if unsub := value(fams, "newsletter_subscribers", "status", "unsubscribed"); unsub != 2 {
		t.Errorf("unsubscribed %v, want 2 (one imported so, one by the one-click POST)", unsub)
	}
}

// NEWSLETTER_METRICS_LISTEN takes /metrics off the public address, and
// gives worker one.
func TestMetricsListen(t *testing.T) {
	h := newHarness(t)
	h.setup()
	t.Setenv("NEWSLETTER_LISTEN", "127.0.0.1:0")
	t.Setenv("NEWSLETTER_METRICS_LISTEN", "127.0.0.1:0")
	base, logs := h.serve(t)
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/metrics on the public address: %s, want 404 with NEWSLETTER_METRICS_LISTEN set", resp.Status)
	}
	if fams := scrape(t, metricsAddr(t, logs)); value(fams, "newsletter_subscribers", "status", "confirmed") != 4 {
		t.Errorf("serve's metrics listener: subscribers %v", fams["newsletter_subscribers"])
	}

	wlogs := h.background(t, "worker", "--poll", "50ms")
	if fams := scrape(t, metricsAddr(t, wlogs)); value(fams, "newsletter_messages_sent_total") != 0 {
		t.Errorf("worker's metrics: sent %v before any send", value(fams, "newsletter_messages_sent_total"))
	}
}

var metricsServing = regexp.MustCompile(`msg="serving metrics" addr=(\S+)`)

// metricsAddr waits for the log line naming the metrics listener.
func metricsAddr(t *testing.T, logs *logtest.Buffer) string {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := metricsServing.FindStringSubmatch(logs.String()); m != nil {
			return "http://" + m[1]
		}
	}
	t.Fatalf("no metrics listener:\n%s", logs.String())
	return ""
}

// background runs a long-lived subcommand until the test ends (then
// cancels it, as SIGTERM would, and wants exit 0), and returns its stderr.
func (h *harness) background(t *testing.T, args ...string) *logtest.Buffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &logtest.Buffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, io.Discard, logs) }()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("newsletter %s exited %d:\n%s", strings.Join(args, " "), code, logs.String())
		}
	})
	return logs
}

// waitFinished waits until the edition's send is finished, by whichever
// process runs it.
func (h *harness) waitFinished() {
	h.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var finished bool
		h.db.Get(&finished, `SELECT finished_at IS NOT NULL FROM editions`)
		if finished {
			return
		}
	}
	h.t.Fatal("the edition's send did not finish")
}
