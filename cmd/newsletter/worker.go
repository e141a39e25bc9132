package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"newsletter/delivery"
	"newsletter/edition"
	"newsletter/subscribers"
	"newsletter/templates"
)

func cmdWorker(ctx context.Context, e *env) error {
	fs := flagSet(e, "worker", "worker [flags]\n\nA long-lived delivery worker: sends every edition whose send has started until SIGINT/SIGTERM.\nRun any number of them, on any number of machines, against one database.")
	c := newConfig(fs, envDatabaseURL, envSMTPURL, envFrom, envBaseURL, envTemplates, envListID, envSecret)
	var wf workerFlags
	wf.register(fs)
	var poll time.Duration
	fs.DurationVar(&poll, "poll", 2*time.Second, "how often to look for work when idle")
	pos, err := parseArgs(fs, e.args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageErr("worker takes no arguments")
	}
	if err := wf.check(); err != nil {
		return err
	}
	tpl, db, err := start(ctx, c, e.log)
	if err != nil {
		return err
	}
	defer db.Close()
	err = runWorker(ctx, e, c, &wf, tpl, db, poll)
	if errors.Is(err, context.Canceled) {
		e.log.Info("worker stopped")
		return nil
	}
	return err
}

// runWorker sends the active editions, oldest first, until ctx ends. It is
// also what `serve --worker` runs beside the web server.
func runWorker(ctx context.Context, e *env, c *config, wf *workerFlags, tpl *templates.Set, db *sqlx.DB, poll time.Duration) error {
	eds := &edition.Store{DB: db}
	subs := &subscribers.Store{DB: db, Tokens: c.tokens}
	e.log.Info("worker started", "conns", wf.conns)
	for {
		ids, err := eds.Active(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// The database may be restarting: keep trying.
			e.log.Warn("list active editions failed; retrying", "err", err)
		}
		for _, id := range ids {
			if err := workEdition(ctx, e, c, wf, tpl, db, eds, subs, id); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				e.log.Warn("edition not finished", "edition", id, "err", err)
			}
		}
		if !sleepCtx(ctx, poll) {
			return ctx.Err()
		}
	}
}

func workEdition(ctx context.Context, e *env, c *config, wf *workerFlags, tpl *templates.Set, db *sqlx.DB, eds *edition.Store, subs *subscribers.Store, id int64) error {
	st, err := eds.GetByID(ctx, id)
	if err != nil {
		return err
	}
	// Rendered once per edition, here as in send.
	comp, err := composer(c, tpl, st.Edition, subs)
	if err != nil {
		return err
	}
	w, err := wf.worker(c, db, comp, e.log)
	if err != nil {
		return err
	}
	var stats delivery.Stats
	err = w.Run(ctx, id, &stats)
	e.log.Info("edition worked", "edition", st.Edition.DateString(), "sent", stats.Sent.Load(), "failed", stats.Failed.Load(), "err", err)
	if err != nil {
		return fmt.Errorf("edition %s: %w", st.Edition.DateString(), err)
	}
	return nil
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
