package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"syscall"
	"time"

	"golang.org/x/net/netutil"

	"newsletter/api"
	"newsletter/desk"
	"newsletter/edition"
	"newsletter/editors"
	"newsletter/newsroom"
	"newsletter/subscribers"
	"newsletter/web"
)

var serveCommand = &command{
	usage: "serve [flags]\n\nServes the reader pages: /subscribe (sign-up, double opt-in), /confirm/{token}, GET/POST /u/{token}\n" +
		"(one-click unsubscribe, RFC 8058, and the subscription's page), /editions, /editions/YYYY-MM-DD, /healthz, /readyz,\n" +
		"the JSON API under /api/v1 (bearer tokens: `editors token`), and the editors' desk under /desk.\n" +
		"Confirmation emails go out through SMTP_URL from NEWSLETTER_FROM.",
	needs: needDB | needTemplates,
	setup: func(*flag.FlagSet) runFunc { return serve },
}

func serve(ctx context.Context, a *app, _ []string) error {
	subs := &subscribers.Store{DB: a.db, Tokens: a.cfg.tokens, Confirm: a.cfg.confirm}
	outbox := web.NewOutbox(a.cfg.smtp, a.log, web.DefaultOutboxWorkers, web.DefaultOutboxQueue)
	room := a.room(subs)
	srv := a.readerPages(ctx, subs, outbox, room)
	pruneCtx, stopPruning := context.WithCancel(ctx)
	pruned := make(chan struct{})
	go func() { defer close(pruned); a.pruneTokens(pruneCtx, subs) }()
	defer a.keepHistory(ctx)()
	if a.cfg.serveWorker {
		defer a.runSchedule(ctx)()
		defer a.workBeside(ctx)()
	} else {
		if a.cfg.sched.spec != nil {
			a.log.Warn("NEWSLETTER_SCHEDULE is set but serve runs no delivery worker: the schedule runs in worker and serve --worker processes")
		}
		defer a.standBy(ctx, 2*time.Second)()
	}
	// Whatever way serve ends, the queued confirmation emails are sent
	// (for a while) and the pruner stops.
	defer func() {
		stopPruning()
		<-pruned
		octx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := outbox.Close(octx); err != nil {
			a.log.Error("confirmation emails left unsent at shutdown", "err", err)
		}
	}()
	h := a.withDesk(a.withWebhooks(srv.Handler()), room)
	if a.cfg.metricsListen == "" {
		h = a.withMetrics(h)
	} else {
		stop, err := a.serveMetrics(ctx)
		if err != nil {
			return err
		}
		defer stop()
	}
	return a.listenAndServe(ctx, h)
}

// readerPages is the web server of the reader pages.
func (a *app) readerPages(ctx context.Context, subs *subscribers.Store, outbox *web.Outbox, room *newsroom.Room) *web.Server {
	eds := &edition.Store{DB: a.db}
	site := a.cfg.siteName
	if site == "" {
		site = latestSiteName(ctx, eds)
	}
	return &web.Server{
		DB:             a.db,
		Subscribers:    subs,
		Editions:       eds,
		BaseURL:        a.cfg.baseURL,
		Templates:      a.tpl,
		SiteName:       site,
		Log:            a.log,
		Outbox:         outbox,
		From:           a.cfg.fromAddr,
		DKIM:           a.cfg.dkim,
		TrustedProxies: a.cfg.proxies,
		IPLimit:        a.cfg.ipLimit,
		Counts:         a.metrics.Readers(),
		API:            (&api.API{Room: room, Accounts: &editors.Store{DB: a.db}, Log: a.log}).Handler(),
	}
}

// withDesk serves the editors' desk under /desk beside h.
func (a *app) withDesk(h http.Handler, room *newsroom.Room) http.Handler {
	d := (&desk.Desk{DB: a.db, Room: room, Accounts: &editors.Store{DB: a.db}, BaseURL: a.cfg.baseURL, Log: a.log}).Handler()
	mux := http.NewServeMux()
	mux.Handle(desk.Prefix, d)
	mux.Handle(desk.Prefix+"/", d)
	mux.Handle("/", h)
	return mux
}

// workBeside runs a delivery worker beside the web server and returns what
// stops it: ctx ends, the messages in flight finish, the leases are handed
// back, then serve returns.
func (a *app) workBeside(ctx context.Context) (stop func()) {
	wctx, stopWorker := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := a.runWorker(wctx, 2*time.Second); err != nil && wctx.Err() == nil {
			a.log.Error("in-process worker stopped", "err", err)
		}
	}()
	return func() { stopWorker(); <-done }
}

// listenAndServe serves h on NEWSLETTER_LISTEN until ctx ends, then shuts
// down gracefully.
func (a *app) listenAndServe(ctx context.Context, h http.Handler) error {
	hs := a.httpServer(ctx, h)
	limit := maxConnections()
	ln, err := listen(a.cfg.listen, limit)
	if err != nil {
		return fmt.Errorf("listen on %s (NEWSLETTER_LISTEN): %w", a.cfg.listen, err)
	}
	a.log.Info("serving", "addr", ln.Addr().String(), "max_connections", limit)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	a.log.Info("shutting down")
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

// httpServer is the HTTP server of h, with its timeouts, its context and
// its error log.
func (a *app) httpServer(ctx context.Context, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              a.cfg.listen,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		// The server's own complaints (TLS handshakes, accept errors,
		// panics in handlers) go where every other log line goes.
		ErrorLog: slog.NewLogLogger(a.log.With("from", "net/http").Handler(), slog.LevelWarn),
	}
}

// listen listens on addr and accepts at most limit connections at a time:
// past that, new ones wait in the kernel's backlog until one closes, so a
// flood of idle or half-open connections can't take every file descriptor
// the process has (the database and SMTP connections need some too).
func listen(addr string, limit int) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return netutil.LimitListener(ln, limit), nil
}

// maxConnections is how many HTTP connections serve keeps open at most:
// half the process's file descriptor limit, which leaves the rest to the
// database pool, SMTP, the worker beside and the files it opens, and at
// most 4096, many more than a newsletter's reader pages see at once.
func maxConnections() int {
	const most, fallback = 4096, 512
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return fallback
	}
	return max(int(min(rl.Cur/2, most)), 16)
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
func (a *app) pruneTokens(ctx context.Context, subs *subscribers.Store) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := subs.PruneTokens(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("prune expired confirmation tokens", "err", err)
		} else if n > 0 {
			a.log.Info("pruned expired confirmation tokens", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
