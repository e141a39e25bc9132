package main

import (
	"context"
	"log/slog"
	"strings"

	"github.com/jmoiron/sqlx"
	"golang.org/x/time/rate"

	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/mail"
	"os"
	"strconv"
	"time"

	"newsletter/delivery"
	"newsletter/edition"
	"newsletter/mailer"
	"newsletter/subscribers"
	"newsletter/templates"
)

// workerFlags are the knobs of a delivery worker, flags with environment
// defaults (none of them secret, so -h may show them).
type workerFlags struct {
	conns          int
	maxAttempts    int
	retryBase      time.Duration
	batch          int
	maxPerConn     int
	rate           float64
	domainRates    string
	errorThreshold int
	leaseTTL       time.Duration
	envErr         error // a variable that does not parse
}

func (w *workerFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&w.conns, "conns", w.envInt("NEWSLETTER_SMTP_CONNS", 2), "SMTP connections in parallel (env NEWSLETTER_SMTP_CONNS)")
	fs.IntVar(&w.maxAttempts, "max-attempts", w.envInt("NEWSLETTER_MAX_ATTEMPTS", 5), "attempts before a temporary failure is final (env NEWSLETTER_MAX_ATTEMPTS)")
	fs.DurationVar(&w.retryBase, "retry-base", w.envDuration("NEWSLETTER_RETRY_BASE", 30*time.Second), "first retry delay, doubled per attempt (env NEWSLETTER_RETRY_BASE)")
	fs.IntVar(&w.batch, "batch", w.envInt("NEWSLETTER_BATCH", 200), "deliveries leased at a time per connection (env NEWSLETTER_BATCH)")
	fs.IntVar(&w.maxPerConn, "max-per-conn", w.envInt("NEWSLETTER_SMTP_MAX_MSGS", 1000), "messages per SMTP connection before reconnecting; 0: no limit (env NEWSLETTER_SMTP_MAX_MSGS)")
	fs.Float64Var(&w.rate, "rate", w.envFloat("NEWSLETTER_RATE", 0), "messages per second for this process at most; 0: no limit (env NEWSLETTER_RATE)")
	fs.StringVar(&w.domainRates, "domain-rates", os.Getenv("NEWSLETTER_DOMAIN_RATES"), "messages per second per recipient domain, like gmail.com=50,yahoo.com=20 (env NEWSLETTER_DOMAIN_RATES)")
	fs.IntVar(&w.errorThreshold, "error-threshold", w.envInt("NEWSLETTER_ERROR_THRESHOLD", 100), "pause the send after this many temporary failures in a row; 0: never (env NEWSLETTER_ERROR_THRESHOLD)")
	fs.DurationVar(&w.leaseTTL, "lease-ttl", w.envDuration("NEWSLETTER_LEASE_TTL", 5*time.Minute), "how long a worker holds leased deliveries; a crashed worker's are resent after it (env NEWSLETTER_LEASE_TTL)")
}

// worker builds the delivery worker the flags describe.
func (w *workerFlags) worker(c *config, db *sqlx.DB, comp *delivery.Composer, log *slog.Logger) (*delivery.Worker, error) {
	domains, err := parseDomainRates(w.domainRates)
	if err != nil {
		return nil, err
	}
	// Each connection leases between batches and writes a group's results
	// while it sends the next, so up to two database connections per SMTP
	// connection are busy at once; with database/sql's default of 2 idle
	// connections the others were closed and reopened all the time, a new
	// PostgreSQL backend (and its prepared statements) each.
	db.SetMaxIdleConns(max(4, 2*w.conns+2))
	prep, err := comp.Prepare()
	if err != nil {
		return nil, fmt.Errorf("prepare the edition's message: %w", err)
	}
	wk := &delivery.Worker{
		Queue:          &delivery.Queue{DB: db},
		Editions:       &edition.Store{DB: db},
		Dial:           delivery.BulkDialer(c.relays, comp, prep),
		Holder:         holderName(),
		Log:            log,
		Conns:          w.conns,
		Group:          groupSize(w.conns),
		Batch:          w.batch,
		MaxAttempts:    w.maxAttempts,
		RetryBase:      w.retryBase,
		MaxPerConn:     w.maxPerConn,
		LeaseTTL:       w.leaseTTL,
		Domains:        delivery.NewDomainLimits(domains),
		ErrorThreshold: w.errorThreshold,
	}
	if w.rate > 0 {
		wk.Rate = rate.NewLimiter(rate.Limit(w.rate), max(1, int(w.rate/10)))
	}
	return wk, nil
}

// groupSize is how many messages a connection sends before recording them:
// 50, but fewer with many connections, so that the messages held in memory
// (a group of ~50 KB messages per connection) and the duplicates a crash can
// cause (a group per connection) stay near 50 × 8 whatever the pool size.
func groupSize(conns int) int {
	return min(50, max(10, 400/conns))
}

// parseDomainRates reads "gmail.com=50,yahoo.com=20".
func parseDomainRates(s string) (map[string]float64, error) {
	out := map[string]float64{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		dom, r, ok := strings.Cut(part, "=")
		v, err := strconv.ParseFloat(strings.TrimSpace(r), 64)
		if !ok || err != nil || v <= 0 || strings.TrimSpace(dom) == "" {
			return nil, usageErr("NEWSLETTER_DOMAIN_RATES / --domain-rates: %q is not domain=messages-per-second, like gmail.com=50", part)
		}
		out[strings.ToLower(strings.TrimSpace(dom))] = v
	}
	return out, nil
}

func (w *workerFlags) check() error {
	switch {
	case w.envErr != nil:
		return w.envErr
	case w.conns < 1 || w.conns > 100:
		return usageErr("--conns (NEWSLETTER_SMTP_CONNS) must be between 1 and 100")
	case w.maxAttempts < 1:
		return usageErr("--max-attempts (NEWSLETTER_MAX_ATTEMPTS) must be at least 1")
	case w.retryBase <= 0:
		return usageErr("--retry-base (NEWSLETTER_RETRY_BASE) must be a positive duration like 30s")
	case w.batch < 1 || w.batch > 10000:
		return usageErr("--batch (NEWSLETTER_BATCH) must be between 1 and 10000")
	case w.leaseTTL < time.Second:
		return usageErr("--lease-ttl (NEWSLETTER_LEASE_TTL) must be at least 1s")
	case w.maxPerConn < 0 || w.rate < 0 || w.errorThreshold < 0:
		return usageErr("--max-per-conn, --rate and --error-threshold can't be negative")
	}
	return nil
}

func cmdSend(ctx context.Context, e *env) error {
	fs := flagSet(e, "send", "send [--date YYYY-MM-DD] [--to ADDRESS] [--retry-failed] [flags]\n\nSends the edition to every confirmed subscriber and returns when each has a recorded outcome.\nSafe to run twice: nobody already sent is sent again; a paused send resumes where it stopped.\n--to sends one test copy and records nothing.")
	c := newConfig(fs, envDatabaseURL, envSMTPURL, envFrom, envBaseURL, envTZ, envTemplates, envListID, envSecret)
	var date, to string
	var retryFailed, enqueueOnly bool
	var window time.Duration
	fs.StringVar(&date, "date", "", "the edition's date, YYYY-MM-DD (default: today in NEWSLETTER_TZ)")
	fs.StringVar(&to, "to", "", "send one test copy to this address only, recording nothing")
	fs.BoolVar(&retryFailed, "retry-failed", false, "first put the edition's temporary failures back in the queue")
	fs.BoolVar(&enqueueOnly, "enqueue-only", false, "queue the recipients and return, leaving the sending to `newsletter worker` processes")
	var wf workerFlags
	wf.register(fs)
	fs.DurationVar(&window, "send-window", wf.envDuration("NEWSLETTER_SEND_WINDOW", 12*time.Hour), "temporary failures are given up this long after the send started; 0: never (env NEWSLETTER_SEND_WINDOW)")
	pos, err := parseArgs(fs, e.args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageErr("send takes no arguments (did you mean --date %s?)", pos[0])
	}
	if err := wf.check(); err != nil {
		return err
	}
	if window < 0 {
		return usageErr("--send-window (NEWSLETTER_SEND_WINDOW) can't be negative")
	}
	tpl, db, err := start(ctx, c, e.log)
	if err != nil {
		return err
	}
	defer db.Close()
	st, err := editionFor(ctx, db, date, c.location)
	if err != nil {
		return err
	}
	subs := &subscribers.Store{DB: db, Tokens: c.tokens}
	comp, err := composer(c, tpl, st.Edition, subs)
	if err != nil {
		return err
	}
	if to != "" {
		return sendTestCopy(ctx, e, c, comp, to)
	}

	start := time.Now()
	w, err := wf.worker(c, db, comp, e.log)
	if err != nil {
		return err
	}
	if retryFailed {
		n, err := w.Queue.RetryFailed(ctx, st.ID)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "re-queued %d temporary failures\n", n)
	}
	if reason, err := w.Editions.Resume(ctx, st.ID); err != nil {
		return err
	} else if reason != "" {
		fmt.Fprintf(e.stdout, "resuming the send, paused because: %s\n", reason)
	}
	queued, err := w.Queue.Enqueue(ctx, st.ID, c.fromDomain(), window)
	if err != nil {
		return err
	}
	e.log.Info("send started", "edition", st.Edition.DateString(), "newly_queued", queued)
	if enqueueOnly {
		fmt.Fprintf(e.stdout, "edition %s: queued %d new recipients for the workers\n", st.Edition.DateString(), queued)
		return nil
	}
	var stats delivery.Stats
	runErr := w.Run(ctx, st.ID, &stats)
	elapsed := time.Since(start)
	interrupted := errors.Is(runErr, context.Canceled)
	paused := errors.Is(runErr, delivery.ErrPaused)
	if runErr != nil && !interrupted && !paused {
		return fmt.Errorf("send %s: %w", st.Edition.DateString(), runErr)
	}
	counts, err := w.Queue.Count(context.WithoutCancel(ctx), st.ID)
	if err != nil {
		return err
	}
	sent := stats.Sent.Load()
	fmt.Fprintf(e.stdout, "edition %s: sent %d, failed %d, skipped %d, retried %d in %s (%.1f msgs/s)\n",
		st.Edition.DateString(), sent, stats.Failed.Load(), stats.Skipped.Load(), stats.Retried.Load(),
		elapsed.Round(time.Millisecond), float64(sent)/elapsed.Seconds())
	fmt.Fprintf(e.stdout, "all %d recipients: %d sent, %d failed (%d refused by the server), %d skipped, %d not finished\n",
		counts.Total(), counts.Sent, counts.Failed, counts.FailedPermanent, counts.Skipped, counts.Queued+counts.Sending)
	switch {
	case interrupted:
		fmt.Fprintf(e.stderr, "interrupted: %d recipients are not finished; run the same send again to finish them\n", counts.Queued+counts.Sending)
	case paused:
		return fmt.Errorf("%v; %d recipients are not finished: fix the cause, then run the same send again to resume", runErr, counts.Queued+counts.Sending)
	}
	return nil
}

// composer renders the edition once and returns what builds each
// recipient's message from it.
func composer(c *config, tpl *templates.Set, ed *edition.Edition, subs *subscribers.Store) (*delivery.Composer, error) {
	rendered, err := tpl.RenderEdition(ed, templates.EditionData{
		BaseURL:  c.baseURL,
		WebURL:   c.baseURL + "/editions/" + ed.DateString(),
		ListName: ed.Site.Name,
	})
	if err != nil {
		return nil, fmt.Errorf("render edition %s: %w", ed.DateString(), err)
	}
	return &delivery.Composer{
		Rendered:          rendered,
		From:              c.fromAddr,
		ListID:            c.listIDHeader(ed.Site.Name),
		UnsubscribeMailto: c.unsubscribeMailto(),
		UnsubscribeURL:    func(uuid string) string { return subs.UnsubscribeURL(c.baseURL, uuid) },
		DKIM:              c.dkim,
	}, nil
}

// sendTestCopy sends the edition to one address, outside the queue: no
// record, and the unsubscribe link is a placeholder that belongs to nobody.
func sendTestCopy(ctx context.Context, e *env, c *config, comp *delivery.Composer, to string) error {
	addr, err := subscribers.NormalizeAddress(to)
	if err != nil {
		return usageErr("--to: %v", err)
	}
	msg := comp.Message(&mail.Address{Address: addr}, "test-"+randomHex(12)+"@"+c.fromDomain(), c.baseURL+"/u/test-copy")
	m, err := mailer.Build(msg)
	if err != nil {
		return fmt.Errorf("build test copy: %w", err)
	}
	conn, err := mailer.Dial(ctx, c.smtp)
	if err != nil {
		return err
	}
	defer conn.Close()
	reply, err := conn.Send(ctx, m)
	if err != nil {
		return fmt.Errorf("send test copy: %w", err)
	}
	fmt.Fprintf(e.stdout, "sent a test copy to %s: %s\n", addr, reply)
	return nil
}

// holderName names this process in lease records: host, pid and a random
// part, so a restarted process never mistakes an old lease for its own.
func holderName() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), randomHex(4))
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (w *workerFlags) envInt(name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil && w.envErr == nil {
		w.envErr = fmt.Errorf("%s %q is not a whole number", name, s)
	}
	return v
}

func (w *workerFlags) envFloat(name string, def float64) float64 {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil && w.envErr == nil {
		w.envErr = fmt.Errorf("%s %q is not a number", name, s)
	}
	return v
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func (w *workerFlags) envDuration(name string, def time.Duration) time.Duration {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := time.ParseDuration(s)
	if err != nil && w.envErr == nil {
		w.envErr = fmt.Errorf("%s %q is not a duration like 30s or 2m", name, s)
	}
	return v
}
