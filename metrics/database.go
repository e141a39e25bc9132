package metrics

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"
)

// database is the counts PostgreSQL keeps, queried at each scrape: the
// subscribers by status (the whole table, by count(*), fine at a scrape
// every 15 seconds or more) and the deliveries not yet final of the
// editions being sent (theirs only, found by editions_active_idx).
type database struct{ db *sqlx.DB }

var (
	subscribersDesc = prometheus.NewDesc("newsletter_subscribers",
		"Subscribers by status.", []string{"status"}, nil)
	queuedDesc = prometheus.NewDesc("newsletter_deliveries_queued",
		"Deliveries not yet final (queued, or being sent) of each edition whose send is under way, by the edition's date.",
		[]string{"edition"}, nil)
	lastFinishedDesc = prometheus.NewDesc("newsletter_last_send_finished_timestamp_seconds",
		"When the last edition's send finished, every recipient with a final outcome (Unix time; absent: never), whoever ran it.",
		nil, nil)
)

// subscriberStatuses are every status the subscribers table allows, so
// each has its series even at zero.
var subscriberStatuses = []string{"pending", "confirmed", "unsubscribed", "bounced"}

func (d *database) Describe(ch chan<- *prometheus.Desc) {
	ch <- subscribersDesc
	ch <- queuedDesc
	ch <- lastFinishedDesc
}

func (d *database) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.subscribers(ctx, ch); err != nil {
		ch <- prometheus.NewInvalidMetric(subscribersDesc, err)
	}
	if err := d.queued(ctx, ch); err != nil {
		ch <- prometheus.NewInvalidMetric(queuedDesc, err)
	}
	var last *time.Time
	if err := d.db.GetContext(ctx, &last, `SELECT max(finished_at) FROM editions`); err != nil {
		ch <- prometheus.NewInvalidMetric(lastFinishedDesc, fmt.Errorf("last finished send: %w", err))
	} else if last != nil {
		timestamp(ch, lastFinishedDesc, *last)
	}
}

func (d *database) subscribers(ctx context.Context, ch chan<- prometheus.Metric) error {
	var rows []struct {
		Status string `db:"status"`
		N      int64  `db:"n"`
	}
	if err := d.db.SelectContext(ctx, &rows, `SELECT status, count(*) AS n FROM subscribers GROUP BY status`); err != nil {
		return fmt.Errorf("count subscribers by status: %w", err)
	}
	by := map[string]int64{}
	for _, r := range rows {
		by[r.Status] = r.N
	}
	for _, st := range subscriberStatuses {
		gauge(ch, subscribersDesc, by[st], st)
	}
	return nil
}

func (d *database) queued(ctx context.Context, ch chan<- prometheus.Metric) error {
	var rows []struct {
		Date string `db:"date"`
		N    int64  `db:"n"`
	}
	// Each edition's deliveries are in its send month's partition.
	err := d.db.SelectContext(ctx, &rows, `
		SELECT to_char(e.date, 'YYYY-MM-DD') AS date,
		       (SELECT count(*) FROM deliveries d
		        WHERE d.edition_id = e.id AND d.send_month = e.send_month AND d.status IN ('queued', 'sending')) AS n
		FROM editions e
		WHERE e.send_started_at IS NOT NULL AND e.finished_at IS NULL`)
	if err != nil {
		return fmt.Errorf("count queued deliveries: %w", err)
	}
	for _, r := range rows {
		gauge(ch, queuedDesc, r.N, r.Date)
	}
	return nil
}
