// Package metrics is the process's Prometheus metrics, served on /metrics:
// what the sends did, the reader pages' events, the database's counts and
// the schedule's last outcomes.
//
// Nothing here is on a message's path. The sends' counts are the counters
// each delivery.Run keeps anyway, read when Prometheus scrapes; the counts
// of subscribers and queued deliveries are queried then; the reader pages
// add to atomic counters (web.Counts).
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"newsletter/web"
)

// Outcomes is when the schedule last sent a digest and last failed to
// (zero: never).
type Outcomes func(ctx context.Context) (lastSent, lastFailed time.Time, err error)

// Metrics is a process's metrics. Make it with New.
type Metrics struct {
	reg        *prometheus.Registry
	log        *slog.Logger
	sends      *sends
	readers    *web.Counts
	relayFails *prometheus.CounterVec
	db         *database

	mu       sync.Mutex
	outcomes Outcomes
}

// New makes the metrics of a process whose database is db (nil: none of
// the database's counts).
func New(db *sqlx.DB, log *slog.Logger) *Metrics {
	m := &Metrics{
		reg:     prometheus.NewRegistry(),
		log:     log,
		sends:   newSends(),
		readers: new(web.Counts),
		relayFails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "newsletter_smtp_connection_errors_total",
			Help: "Connections to an SMTP relay that failed, by relay (host:port).",
		}, []string{"relay"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.sends, m.sends.duration, m.relayFails,
		readersCollector{m.readers},
		scheduleCollector{m},
	)
	if db != nil {
		m.db = &database{db: db}
		m.reg.MustRegister(m.db)
	}
	return m
}

// Handler serves the metrics in Prometheus's text format. A failed
// database query leaves its metrics out of the scrape and is logged; the
// others are served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      slogErrors{m.log},
		ErrorHandling: promhttp.ContinueOnError,
		Timeout:       10 * time.Second,
	})
}

// Readers is what the reader pages count their events in (web.Server's
// Counts).
func (m *Metrics) Readers() *web.Counts { return m.readers }

// DialFailed counts a failed connection to relay ("host:port"); it is
// delivery.BulkDialer's dialFailed.
func (m *Metrics) DialFailed(relay string) { m.relayFails.WithLabelValues(relay).Inc() }

// ScheduleOutcomes sets where the times of the schedule's last digest sent
// and last failed come from, read at each scrape.
func (m *Metrics) ScheduleOutcomes(f Outcomes) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.outcomes = f
}

// slogErrors is promhttp's error log on the process's logger.
type slogErrors struct{ log *slog.Logger }

func (l slogErrors) Println(v ...any) {
	if l.log != nil {
		l.log.Warn("metrics: scrape incomplete", "err", v)
	}
}

// readersCollector reads the reader pages' counters.
type readersCollector struct{ c *web.Counts }

var (
	signUpsDesc = prometheus.NewDesc("newsletter_signups_total",
		"Sign-up forms stored by the reader pages (each asks for a confirmation).", nil, nil)
	confirmationsDesc = prometheus.NewDesc("newsletter_confirmations_total",
		"Subscriptions confirmed by their link.", nil, nil)
	unsubscribesDesc = prometheus.NewDesc("newsletter_unsubscribes_total",
		"Unsubscribes by how: one-click (RFC 8058, from the mailbox provider) or page (the subscription page's button).",
		[]string{"how"}, nil)
)

func (c readersCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- signUpsDesc
	ch <- confirmationsDesc
	ch <- unsubscribesDesc
}

func (c readersCollector) Collect(ch chan<- prometheus.Metric) {
	counter(ch, signUpsDesc, c.c.SignUps.Load())
	counter(ch, confirmationsDesc, c.c.Confirmations.Load())
	counter(ch, unsubscribesDesc, c.c.OneClickUnsubscribes.Load(), "one-click")
	counter(ch, unsubscribesDesc, c.c.PageUnsubscribes.Load(), "page")
}

// scheduleCollector reads the schedule's last outcomes.
type scheduleCollector struct{ m *Metrics }

var (
	lastScheduledDesc = prometheus.NewDesc("newsletter_schedule_last_success_timestamp_seconds",
		"When the schedule last sent the day's digest (Unix time; absent: never).", nil, nil)
	lastFailedDesc = prometheus.NewDesc("newsletter_schedule_last_failure_timestamp_seconds",
		"When a scheduled digest last failed (Unix time; absent: never).", nil, nil)
)

func (c scheduleCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- lastScheduledDesc
	ch <- lastFailedDesc
}

func (c scheduleCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	f := c.m.outcomes
	c.m.mu.Unlock()
	if f == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sent, failed, err := f(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(lastScheduledDesc, err)
		return
	}
	timestamp(ch, lastScheduledDesc, sent)
	timestamp(ch, lastFailedDesc, failed)
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v int64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v int64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
}

// timestamp is a gauge of t in Unix seconds; nothing when t is zero.
func timestamp(ch chan<- prometheus.Metric, d *prometheus.Desc, t time.Time) {
	if t.IsZero() {
		return
	}
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(t.UnixNano())/1e9)
}
