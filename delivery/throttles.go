package delivery

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// throttleKeep is how long the fleet remembers a domain's throttle after
// the last report on it: long enough to outlast a pause in sending to it,
// short enough that tomorrow's send starts at full pace.
const throttleKeep = 10 * time.Minute

// maxGrowth bounds the messages one report counts towards a domain's
// recovery: 1.05^200 is far past any ceiling already.
const maxGrowth = 200

// throttleReport is what one worker tells the fleet at a refresh.
type throttleReport struct {
	// Throttled domains, and the pace to halve for each when the fleet has
	// none for it: its ceiling, or throttledStart.
	throttled []string
	bases     []float64
	// Slowed domains that took messages: how many, and the pace at which
	// each is back to normal (its ceiling, or recoveredRate).
	grown  []string
	counts []int
	caps   []float64
}

// halveThrottles halves the fleet's pace to each domain ($1) that throttled a
// worker: from the fleet's pace, or from $2 when the fleet has none for it or
// has forgotten it, but not below $3 messages per second. A pace halved less
// than $5 seconds ago is left as it is: the other workers' answers to the
// same burst of mail carry the same news.
const halveThrottles = `
INSERT INTO domain_throttles AS t (domain, rate, halved_at, until)
SELECT x.domain, greatest(x.base / 2, $3), now(), now() + make_interval(secs => $4)
FROM unnest($1::text[], $2::float8[]) AS x(domain, base)
ON CONFLICT (domain) DO UPDATE SET
	rate = CASE
		WHEN t.until <= now() THEN excluded.rate
		WHEN t.halved_at > now() - make_interval(secs => $5) THEN t.rate
		ELSE least(greatest(t.rate / 2, $3), excluded.rate) END,
	halved_at = CASE
		WHEN t.until > now() AND t.halved_at > now() - make_interval(secs => $5) THEN t.halved_at
		ELSE now() END,
	until = excluded.until`

// growThrottles speeds each domain ($1) up by 5% and 0.05 messages per
// second for each message it took ($2), which n times over is
// (rate+1)·1.05ⁿ-1, up to the pace at which it is back to normal ($3). The
// rate is computed from the row as it is when updated, so that reports of
// two workers at once both count.
const growThrottles = `
UPDATE domain_throttles AS t
SET rate = least((t.rate + 1) * power(1.05::float8, x.n) - 1, x.cap),
	until = now() + make_interval(secs => $4)
FROM unnest($1::text[], $2::int[], $3::float8[]) AS x(domain, n, cap)
WHERE t.domain = x.domain AND t.until > now()`

// readThrottles reads the fleet's throttles, forgetting those nobody has
// reported on for throttleKeep.
const readThrottles = `
WITH forgotten AS (DELETE FROM domain_throttles WHERE until <= now())
SELECT domain, rate FROM domain_throttles WHERE until > now()`

// report takes what this worker has to tell the fleet since the last
// report.
func (l *limits) report() throttleReport {
	l.mu.Lock()
	defer l.mu.Unlock()
	var r throttleReport
	for dom, p := range l.domains {
		ceiling, capped := l.ceilings[dom]
		switch {
		case p.throttled:
			r.throttled = append(r.throttled, dom)
			r.bases = append(r.bases, cond(capped, ceiling, throttledStart))
		case p.accepted > 0:
			r.grown = append(r.grown, dom)
			r.counts = append(r.counts, min(p.accepted, maxGrowth))
			r.caps = append(r.caps, cond(capped, ceiling, recoveredRate))
		}
		p.throttled, p.accepted = false, 0
	}
	return r
}

func cond(c bool, a, b float64) float64 {
	if c {
		return a
	}
	return b
}

// send writes the report to domain_throttles.
func (r throttleReport) send(ctx context.Context, db *sqlx.DB) error {
	if len(r.grown) > 0 {
		_, err := db.ExecContext(ctx, growThrottles, pq.Array(r.grown), pq.Array(r.counts), pq.Array(r.caps), throttleKeep.Seconds())
		if err != nil {
			return fmt.Errorf("report the domains that took mail while slowed: %w", err)
		}
	}
	if len(r.throttled) > 0 {
		_, err := db.ExecContext(ctx, halveThrottles, pq.Array(r.throttled), pq.Array(r.bases), minDomainRate,
			throttleKeep.Seconds(), refreshEvery.Seconds())
		if err != nil {
			return fmt.Errorf("report the domains that throttled us: %w", err)
		}
	}
	return nil
}

// refresh counts the live workers, tells the fleet what this worker learnt
// since the last refresh, reads what the fleet knows, and sets this
// worker's share accordingly. Without the database it rebalances all the
// same, on the throttles it knew.
func (l *limits) refresh(ctx context.Context) error {
	live := 1
	if l.peers != nil {
		live = max(1, l.peers())
	}
	l.mu.Lock()
	before, known := l.live, l.fleet
	l.mu.Unlock()
	err := l.report().send(ctx, l.db)
	var rows []struct {
		Domain string  `db:"domain"`
		Rate   float64 `db:"rate"`
	}
	if rerr := l.db.SelectContext(ctx, &rows, readThrottles); rerr != nil {
		err = fmt.Errorf("read the fleet's throttles: %w", rerr)
	} else {
		known = make(map[string]float64, len(rows))
		for _, r := range rows {
			known[r.Domain] = r.Rate
		}
	}
	l.apply(known, live)
	if live != before && (l.rate > 0 || len(l.ceilings) > 0) {
		l.log.Info("sharing the fleet's rate limits", "live_workers", live, "rate", l.share())
	}
	return err
}

// start refreshes the limits now and every refreshEvery until the returned
// func is called, which reports what is left to tell the fleet: the
// throttles this run met are the fleet's news even once it is done.
func (l *limits) start(ctx context.Context) (stop func()) {
	if err := l.refresh(ctx); err != nil {
		l.log.Warn("refresh the fleet's rate limits failed", "err", err)
	}
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(refreshEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				defer cancel()
				if err := l.report().send(bg, l.db); err != nil {
					l.log.Warn("report to the fleet failed", "err", err)
				}
				return
			case <-t.C:
				if err := l.refresh(ctx); err != nil && ctx.Err() == nil {
					l.log.Warn("refresh the fleet's rate limits failed", "err", err)
				}
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}
