package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"newsletter/delivery"
	"newsletter/edition"
	"newsletter/subscribers"
)

var workerCommand = &command{
	usage: "worker [flags]\n\nA long-lived delivery worker: sends every edition whose send has started until SIGINT/SIGTERM.\n" +
		"Run any number of them, on any number of machines, against one database.",
	needs: needDB | needTemplates,
	setup: func(fs *flag.FlagSet) runFunc {
		var poll time.Duration
		fs.DurationVar(&poll, "poll", 2*time.Second, "how often to look for work when idle")
		return func(ctx context.Context, a *app, _ []string) error {
			stop, err := a.serveMetrics(ctx)
			if err != nil {
				return err
			}
			defer stop()
			defer a.keepHistory(ctx)()
			defer a.runSchedule(ctx)()
			err = a.runWorker(ctx, poll)
			if errors.Is(err, context.Canceled) {
				a.log.Info("worker stopped")
				return nil
			}
			return err
		}
	},
}

// runWorker sends the active editions, oldest first, until ctx ends. It is
// also what `serve --worker` runs beside the web server.
func (a *app) runWorker(ctx context.Context, poll time.Duration) error {
	leave, err := a.joinFleet(ctx)
	if err != nil {
		return err
	}
	defer leave()
	eds := &edition.Store{DB: a.db}
	a.log.Info("worker started", "conns", a.cfg.conns)
	for {
		ids, err := eds.Active(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// The database may be restarting: keep trying.
			a.log.Warn("list active editions failed; retrying", "err", err)
		}
		for _, id := range ids {
			if err := a.workEdition(ctx, eds, id); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				a.log.Warn("edition not finished", "edition", id, "err", err)
			}
		}
		if !sleepCtx(ctx, poll) {
			return ctx.Err()
		}
	}
}

func (a *app) workEdition(ctx context.Context, eds *edition.Store, id int64) error {
	st, err := eds.GetByID(ctx, id)
	if err != nil {
		return err
	}
	// Rendered once per edition, here as in send.
	comp, err := a.composer(st.Edition, &subscribers.Store{DB: a.db, Tokens: a.cfg.tokens})
	if err != nil {
		return err
	}
	w, err := a.newWorker(comp)
	if err != nil {
		return err
	}
	var stats delivery.Stats
	err = a.sendEdition(ctx, w, id, st.Edition.DateString(), &stats)
	a.log.Info("edition worked", "edition", st.Edition.DateString(), "sent", stats.Sent.Load(), "failed", stats.Failed.Load(), "err", err)
	if err != nil {
		return fmt.Errorf("edition %s: %w", st.Edition.DateString(), err)
	}
	return nil
}

// newWorker builds the delivery worker the settings describe, for the
// edition comp renders. It is the one place a delivery.Worker is made.
func (a *app) newWorker(comp *delivery.Composer) (*delivery.Worker, error) {
	c := a.cfg
	prep, err := comp.Prepare()
	if err != nil {
		return nil, fmt.Errorf("prepare the edition's message: %w", err)
	}
	w := &delivery.Worker{
		Queue:          &delivery.Queue{DB: a.db},
		Editions:       &edition.Store{DB: a.db},
		Dial:           delivery.BulkDialer(c.relays, comp, prep, a.metrics.DialFailed),
		Holder:         a.holder(),
		Log:            a.log,
		Conns:          c.conns,
		Group:          groupSize(c.conns),
		Batch:          c.batch,
		MaxAttempts:    c.maxAttempts,
		RetryBase:      c.retryBase,
		MaxPerConn:     c.maxPerConn,
		LeaseTTL:       c.leaseTTL,
		Rate:           c.rate,
		DomainRates:    c.domainRates,
		Peers:          a.liveWorkers,
		ErrorThreshold: c.errorThreshold,
		BouncePause:    c.bouncePause,
		Bounced:        a.bounceHandler().SendTime,
	}
	return w, nil
}

// groupSize is how many outcomes a connection gathers before it records
// them (its messages go on meanwhile, see delivery.Worker.Group): 50, but
// fewer with many connections, so that the duplicates a crash can cause (two
// groups per connection) stay near 2 × 50 × 8 whatever the pool size.
func groupSize(conns int) int {
	return min(50, max(10, 400/conns))
}

// holderName names this process in lease records: host, pid and a random
// part, so a restarted process never mistakes an old lease for its own.
func holderName() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), randomHex(4))
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
