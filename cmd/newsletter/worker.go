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
	"newsletter/fleet"
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

// runWorker sends the active editions, oldest first, until ctx ends,
// starting the scheduled sends as they fall due. It is also what
// `serve --worker` runs beside the web server.
func (a *app) runWorker(ctx context.Context, poll time.Duration) error {
	leave, err := a.joinFleet(ctx)
	if err != nil {
		return err
	}
	defer leave()
	a.log.Info("worker started", "conns", a.cfg.conns)
	for {
		if _, err := a.workRound(ctx); err != nil {
			return err
		}
		if !sleepCtx(ctx, poll) {
			return ctx.Err()
		}
	}
}

// workRound starts the scheduled sends that are due, records what the
// cancelled sends left queued as cancelled, then sends each active edition
// in turn. It returns how many editions were active, and an error only
// when ctx ended: the database may be restarting, and the next round tries
// again.
func (a *app) workRound(ctx context.Context) (int, error) {
	eds := &edition.Store{DB: a.db}
	ids, err := a.activeEditions(ctx)
	if err != nil {
		return 0, err
	}
	for _, id := range ids {
		if err := a.workEdition(ctx, eds, id); err != nil {
			if ctx.Err() != nil {
				return len(ids), ctx.Err()
			}
			a.log.Warn("edition not finished", "edition", id, "err", err)
		}
	}
	return len(ids), nil
}

// activeEditions starts the due scheduled sends (once across every process
// doing this at once, see newsroom.Room.StartDue), settles the cancelled
// sends, and lists the editions being sent. Failures are logged: it
// returns an error only when ctx ended.
func (a *app) activeEditions(ctx context.Context) ([]int64, error) {
	if _, err := a.room(nil).StartDue(ctx); err != nil && ctx.Err() == nil {
		a.log.Warn("start the due scheduled sends", "err", err)
	}
	if err := (&delivery.Queue{DB: a.db}).SettleCancelled(ctx); err != nil && ctx.Err() == nil {
		a.log.Warn("settle the cancelled sends", "err", err)
	}
	ids, err := (&edition.Store{DB: a.db}).Active(ctx)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil {
		a.log.Warn("list active editions failed; retrying", "err", err)
	}
	return ids, nil
}

// standBy is what plain `serve` (no --worker) runs beside the web server
// so that a desk on one machine needs nothing else: it starts the scheduled
// sends as they fall due and, while editions are being sent and no worker
// is live in the fleet, sends them itself, as a member of the fleet, until
// none is left. It returns what stops it.
func (a *app) standBy(ctx context.Context, poll time.Duration) (stop func()) {
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for sleepCtx(sctx, poll) {
			ids, err := a.activeEditions(sctx)
			if err != nil || len(ids) == 0 {
				continue
			}
			live, err := fleet.List(sctx, a.db)
			if err != nil || len(live) > 0 {
				continue // the workers send them
			}
			a.log.Info("no live worker: serve sends the editions being sent itself", "editions", len(ids))
			if err := a.sendAlone(sctx, poll); err != nil && sctx.Err() == nil {
				a.log.Error("serve's own sending stopped", "err", err)
			}
		}
	}()
	return func() { cancel(); <-done }
}

// sendAlone joins the fleet and works rounds until no edition is being
// sent.
func (a *app) sendAlone(ctx context.Context, poll time.Duration) error {
	leave, err := a.joinFleet(ctx)
	if err != nil {
		return err
	}
	defer leave()
	for {
		n, err := a.workRound(ctx)
		if err != nil || n == 0 {
			a.log.Info("serve stops sending: no edition is being sent")
			return err
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
