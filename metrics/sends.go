package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"newsletter/delivery"
)

// sends adds up the counters of the process's delivery runs: those that
// ended, and those under way, read as they stand when scraped.
type sends struct {
	duration prometheus.Histogram

	mu    sync.Mutex
	ended totals
	live  map[*delivery.Stats]struct{}
}

// totals are a run's counts, or several runs' added.
type totals struct {
	sent, retried, skipped        int64
	bounced, permanent, temporary int64
}

func (t *totals) add(s *delivery.Stats) {
	failed, refused, bounced := s.Failed.Load(), s.Refused.Load(), s.Bounced.Load()
	t.sent += s.Sent.Load()
	t.retried += s.Retried.Load()
	t.skipped += s.Skipped.Load()
	t.bounced += bounced
	t.permanent += refused - bounced
	t.temporary += failed - refused
}

var (
	sentDesc = prometheus.NewDesc("newsletter_messages_sent_total",
		"Messages the SMTP relay accepted.", nil, nil)
	failedDesc = prometheus.NewDesc("newsletter_messages_failed_total",
		"Deliveries given up on, by class: bounced (the mailbox does not exist, 5.1.x), permanent (any other 5xx refusal), temporary (4xx or no answer, past the attempts, the send window or the deadline).",
		[]string{"class"}, nil)
	retriedDesc = prometheus.NewDesc("newsletter_messages_retried_total",
		"Temporary failures put back in the queue for another attempt.", nil, nil)
	skippedDesc = prometheus.NewDesc("newsletter_messages_skipped_total",
		"Deliveries not sent because the subscriber left after the send started.", nil, nil)
)

func newSends() *sends {
	return &sends{
		live: map[*delivery.Stats]struct{}{},
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "newsletter_send_duration_seconds",
			Help: "How long this process's runs of an edition's send took, from start to its last delivery (or its pause or stop).",
			// From a short list to a million recipients behind a slow relay.
			Buckets: prometheus.ExponentialBuckets(1, 2.5, 12),
		}),
	}
}

// Track counts the run whose counters are stats until the returned func is
// called when the run ends: it adds them to the totals and observes the
// run's duration.
func (m *Metrics) Track(stats *delivery.Stats) (end func()) {
	s, start := m.sends, time.Now()
	s.mu.Lock()
	s.live[stats] = struct{}{}
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.live, stats)
		s.ended.add(stats)
		s.mu.Unlock()
		s.duration.Observe(time.Since(start).Seconds())
	}
}

func (s *sends) Describe(ch chan<- *prometheus.Desc) {
	ch <- sentDesc
	ch <- failedDesc
	ch <- retriedDesc
	ch <- skippedDesc
}

func (s *sends) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	t := s.ended
	for stats := range s.live {
		t.add(stats)
	}
	s.mu.Unlock()
	counter(ch, sentDesc, t.sent)
	counter(ch, failedDesc, t.bounced, "bounced")
	counter(ch, failedDesc, t.permanent, "permanent")
	counter(ch, failedDesc, t.temporary, "temporary")
	counter(ch, retriedDesc, t.retried)
	counter(ch, skippedDesc, t.skipped)
}
