package main

import (
	"context"
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
	conns       int
	maxAttempts int
	retryBase   time.Duration
	batch       int
	envErr      error // a variable that does not parse
}

func (w *workerFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&w.conns, "conns", w.envInt("NEWSLETTER_SMTP_CONNS", 2), "SMTP connections in parallel (env NEWSLETTER_SMTP_CONNS)")
	fs.IntVar(&w.maxAttempts, "max-attempts", w.envInt("NEWSLETTER_MAX_ATTEMPTS", 5), "attempts before a temporary failure is final (env NEWSLETTER_MAX_ATTEMPTS)")
	fs.DurationVar(&w.retryBase, "retry-base", w.envDuration("NEWSLETTER_RETRY_BASE", 30*time.Second), "first retry delay, doubled per attempt (env NEWSLETTER_RETRY_BASE)")
	fs.IntVar(&w.batch, "batch", w.envInt("NEWSLETTER_BATCH", 100), "deliveries leased at a time per connection (env NEWSLETTER_BATCH)")
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
	}
	return nil
}

func cmdSend(ctx context.Context, e *env) error {
	fs := flagSet(e, "send", "send [--date YYYY-MM-DD] [--to ADDRESS] [flags]\n\nSends the edition to every confirmed subscriber and returns when each has a recorded outcome.\nSafe to run twice: nobody already sent is sent again. --to sends one test copy and records nothing.")
	c := newConfig(fs, envDatabaseURL, envSMTPURL, envFrom, envBaseURL, envTZ, envTemplates, envListID, envSecret)
	var date, to string
	fs.StringVar(&date, "date", "", "the edition's date, YYYY-MM-DD (default: today in NEWSLETTER_TZ)")
	fs.StringVar(&to, "to", "", "send one test copy to this address only, recording nothing")
	var wf workerFlags
	wf.register(fs)
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
	if err := c.load(e.log); err != nil {
		return err
	}
	tpl, err := templates.Load(c.templatesDir)
	if err != nil {
		return err
	}
	db, err := openDB(ctx, c)
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
	q := &delivery.Queue{DB: db}
	queued, err := q.Enqueue(ctx, st.ID, c.fromDomain())
	if err != nil {
		return err
	}
	e.log.Info("send started", "edition", st.Edition.DateString(), "newly_queued", queued)
	w := &delivery.Worker{
		Queue:       q,
		Dial:        delivery.SMTPDialer(c.smtp, comp),
		Holder:      holderName(),
		Log:         e.log,
		Conns:       wf.conns,
		Batch:       wf.batch,
		MaxAttempts: wf.maxAttempts,
		RetryBase:   wf.retryBase,
	}
	var stats delivery.Stats
	runErr := w.Run(ctx, st.ID, &stats)
	elapsed := time.Since(start)
	interrupted := errors.Is(runErr, context.Canceled)
	if runErr != nil && !interrupted {
		return fmt.Errorf("send %s: %w", st.Edition.DateString(), runErr)
	}
	counts, err := q.Count(context.WithoutCancel(ctx), st.ID)
	if err != nil {
		return err
	}
	sent := stats.Sent.Load()
	fmt.Fprintf(e.stdout, "edition %s: sent %d, failed %d, skipped %d, retried %d in %s (%.1f msgs/s)\n",
		st.Edition.DateString(), sent, stats.Failed.Load(), stats.Skipped.Load(), stats.Retried.Load(),
		elapsed.Round(time.Millisecond), float64(sent)/elapsed.Seconds())
	fmt.Fprintf(e.stdout, "all %d recipients: %d sent, %d failed (%d refused by the server), %d skipped, %d not finished\n",
		counts.Total(), counts.Sent, counts.Failed, counts.FailedPermanent, counts.Skipped, counts.Queued+counts.Sending)
	if interrupted {
		fmt.Fprintf(e.stderr, "interrupted: %d recipients are not finished; run the same send again to finish them\n", counts.Queued+counts.Sending)
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
