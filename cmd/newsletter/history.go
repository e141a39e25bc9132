package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"newsletter/delivery"
)

// The history of deliveries: monthly partitions made ahead, and the months
// past NEWSLETTER_RETENTION summarised and dropped (package delivery,
// partitions.go and retention.go).

var deliveriesPrune = &command{
	usage: "deliveries prune\n\nKeeps each edition's counts and failures, then drops the months of deliveries older than\n" +
		"NEWSLETTER_RETENTION whose editions have all finished; makes the months ahead. `worker` and\n" +
		"`serve` do it once a day.",
	needs: needDB,
	setup: func(*flag.FlagSet) runFunc {
		return func(ctx context.Context, a *app, _ []string) error {
			q := &delivery.Queue{DB: a.db}
			if err := q.EnsurePartitions(ctx, time.Now(), 0); err != nil {
				return err
			}
			p, err := q.Prune(ctx, a.cfg.retention, time.Now(), 10*time.Second)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "dropped %d months of deliveries %v, summarising %d editions\n",
				len(p.Partitions), p.Partitions, p.Editions)
			for part, why := range p.Kept {
				fmt.Fprintf(a.stdout, "kept %s: %s\n", part, why)
			}
			return nil
		}
	},
}

// historyLockWait bounds how long the background upkeep waits for the lock
// on the whole deliveries table that making or dropping a month takes, so
// that the sends queued behind its request are not held up long; it tries
// again the next day.
const historyLockWait = 2 * time.Second

// keepHistory makes the months of deliveries ahead and prunes the old ones
// now and once a day, in the background, until ctx ends or what it returns
// is called, which waits for it to stop.
func (a *app) keepHistory(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		q := &delivery.Queue{DB: a.db}
		for {
			if err := q.EnsurePartitions(ctx, time.Now(), historyLockWait); err != nil && ctx.Err() == nil {
				a.log.Warn("making the months of deliveries ahead failed; trying again tomorrow", "err", err)
			}
			p, err := q.Prune(ctx, a.cfg.retention, time.Now(), historyLockWait)
			switch {
			case err != nil && ctx.Err() == nil:
				a.log.Warn("pruning old deliveries failed; trying again tomorrow", "err", err)
			case len(p.Partitions) > 0:
				a.log.Info("pruned old deliveries", "months", p.Partitions, "editions", p.Editions)
			}
			for part, why := range p.Kept {
				a.log.Info("old deliveries kept", "month", part, "why", why)
			}
			if !sleepCtx(ctx, 24*time.Hour) {
				return
			}
		}
	}()
	return func() { cancel(); <-done }
}

// parseRetention reads NEWSLETTER_RETENTION: months ("13mo"), days
// ("400d"), or 0 to keep every delivery forever.
func parseRetention(c *config, name, v string) error {
	s := strings.TrimSpace(v)
	bad := fmt.Errorf("%s %q is not a retention: set it to months like 13mo, days like 400d, or 0 to keep deliveries forever", name, v)
	if s == "0" {
		c.retention = delivery.Retention{}
		return nil
	}
	num, unit := s, ""
	for _, u := range []string{"mo", "d"} {
		if n, ok := strings.CutSuffix(s, u); ok {
			num, unit = n, u
			break
		}
	}
	n, err := strconv.Atoi(num)
	if unit == "" || err != nil || n <= 0 || n > 1200 {
		return bad
	}
	if unit == "d" && n < 31 || unit == "mo" && n < 1 {
		return fmt.Errorf("%s %q is shorter than a month, the unit deliveries are dropped by: set at least 31d or 1mo, or 0 to keep them forever", name, v)
	}
	if unit == "mo" {
		c.retention = delivery.Retention{Months: n}
	} else {
		c.retention = delivery.Retention{Days: n}
	}
	return nil
}
