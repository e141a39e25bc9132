package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"newsletter/edition"
	"newsletter/subscribers"
	"newsletter/web"
)

func cmdServe(ctx context.Context, e *env) error {
	fs := flagSet(e, "serve", "serve [flags]\n\nServes the reader pages: /subscribe (sign-up, double opt-in), /confirm/{token}, GET/POST /u/{token}\n"+
		"(one-click unsubscribe, RFC 8058, and the subscription's page), /editions, /editions/YYYY-MM-DD, /healthz, /readyz.\n"+
		"Confirmation emails go out through SMTP_URL from NEWSLETTER_FROM.")
	c := newConfig(fs, envDatabaseURL, envListen, envTemplates, envSecret, envBaseURL, envSMTPURL, envFrom,
		envConfirmTTL, envConfirmLimit, envSignupLimit, envTrustedProxies, envListID)
	var site string
	var withWorker bool
	fs.BoolVar(&withWorker, "worker", os.Getenv("NEWSLETTER_SERVE_WORKER") == "1", "also run a delivery worker in this process, like `newsletter worker` (env NEWSLETTER_SERVE_WORKER=1)")
	var wf workerFlags
	wf.register(fs)
	fs.StringVar(&site, "site-name", "", "the publication's name shown on the pages (env NEWSLETTER_SITE_NAME; default: the latest edition's)")
	if _, err := parseArgs(fs, e.args); err != nil {
		return err
	}
	if err := wf.check(); err != nil {
		return err
	}
	tpl, db, err := start(ctx, c, e.log)
	if err != nil {
		return err
	}
	defer db.Close()
	web.TunePool(db)
	if site == "" {
		site = os.Getenv("NEWSLETTER_SITE_NAME")
	}
	eds := &edition.Store{DB: db}
	if site == "" {
		site = latestSiteName(ctx, eds)
	}
	subs := &subscribers.Store{DB: db, Tokens: c.tokens, Confirm: c.confirm}
	outbox := web.NewOutbox(c.smtp, e.log, web.DefaultOutboxWorkers, web.DefaultOutboxQueue)
	srv := &web.Server{
		DB:             db,
		Subscribers:    subs,
		Editions:       eds,
		BaseURL:        c.baseURL,
		Templates:      tpl,
		SiteName:       site,
		Log:            e.log,
		Outbox:         outbox,
		From:           c.fromAddr,
		DKIM:           c.dkim,
		TrustedProxies: c.proxies,
		IPLimit:        c.ipLimit,
	}
	pruneCtx, stopPruning := context.WithCancel(ctx)
	pruned := make(chan struct{})
	go func() { defer close(pruned); pruneTokens(pruneCtx, subs, e) }()
	if withWorker {
		// Stopped with the server: ctx ends, the messages in flight finish,
		// the leases are handed back, then serve returns.
		wctx, stopWorker := context.WithCancel(ctx)
		workerDone := make(chan struct{})
		go func() {
			defer close(workerDone)
			if err := runWorker(wctx, e, c, &wf, tpl, db, 2*time.Second); err != nil && wctx.Err() == nil {
				e.log.Error("in-process worker stopped", "err", err)
			}
		}()
		defer func() { stopWorker(); <-workerDone }()
	}
	hs := &http.Server{
		Addr:              c.listen,
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	// Whatever way serve ends, the queued confirmation emails are sent
	// (for a while) and the pruner stops.
	defer func() {
		stopPruning()
		<-pruned
		octx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := outbox.Close(octx); err != nil {
			e.log.Error("confirmation emails left unsent at shutdown", "err", err)
		}
	}()
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return fmt.Errorf("listen on %s (%s): %w", c.listen, envListen, err)
	}
	e.log.Info("serving", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	e.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// latestSiteName is the site name of the newest edition, for pages that
// name the publication; "the newsletter" before any edition exists.
func latestSiteName(ctx context.Context, eds *edition.Store) string {
	list, err := eds.List(ctx)
	if err != nil || len(list) == 0 {
		return "the newsletter"
	}
	st, err := eds.GetByID(ctx, list[0].ID)
	if err != nil {
		return "the newsletter"
	}
	return st.Edition.Site.Name
}

// pruneTokens deletes long-expired confirmation tokens every hour until ctx
// ends.
func pruneTokens(ctx context.Context, subs *subscribers.Store, e *env) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := subs.PruneTokens(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("prune expired confirmation tokens", "err", err)
		} else if n > 0 {
			e.log.Info("pruned expired confirmation tokens", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
