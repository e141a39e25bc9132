package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// Prometheus's /metrics (package metrics): on serve's listener, or on
// NEWSLETTER_METRICS_LISTEN of its own, for worker and to keep it off the
// reader pages' public address.

// metricsConnections bounds the connections of the metrics listener: a few
// Prometheus servers scrape it.
const metricsConnections = 64

// parseMetricsListen reads NEWSLETTER_METRICS_LISTEN: empty, or host:port.
func parseMetricsListen(c *config, name, v string) error {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(v); err != nil {
		return fmt.Errorf("%s %q must be host:port, like 127.0.0.1:9464", name, v)
	}
	c.metricsListen = v
	return nil
}

// withMetrics is h with GET /metrics beside it, outside the reader pages'
// own handler: a scrape is neither logged per request nor given the pages'
// headers.
func (a *app) withMetrics(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.metrics.Handler())
	mux.Handle("/", h)
	return mux
}

// serveMetrics serves /metrics on NEWSLETTER_METRICS_LISTEN, when set,
// until what it returns is called.
func (a *app) serveMetrics(ctx context.Context) (stop func(), err error) {
	if a.cfg.metricsListen == "" {
		return func() {}, nil
	}
	ln, err := listen(a.cfg.metricsListen, metricsConnections)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (NEWSLETTER_METRICS_LISTEN): %w", a.cfg.metricsListen, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.metrics.Handler())
	hs := a.httpServer(ctx, mux)
	a.log.Info("serving metrics", "addr", ln.Addr().String(), "path", "/metrics")
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("the metrics server stopped", "err", err)
		}
	}()
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
		<-done
	}, nil
}
