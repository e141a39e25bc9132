package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Outcome is what a Mailer reports for one message.
type Outcome struct {
	Sent       bool
	Permanent  bool // the server refused it for good (5xx)
	HardBounce bool // the mailbox does not exist (5.1.x to RCPT)
	ConnLost   bool // the connection is unusable; the Mailer must be redialled
	Code       int
	Enhanced   string
	Reply      string // the server's reply, or the error's text
}

// Mailer sends the edition's message for one job on a connection of its
// own. A Mailer is used by one goroutine at a time.
type Mailer interface {
	Send(ctx context.Context, j Job) Outcome
	Close() error
}

// Dialer opens a new Mailer (one SMTP connection).
type Dialer func(ctx context.Context) (Mailer, error)

// Worker drains an edition's queue over Conns connections, each its own
// goroutine with its own lease holder name.
type Worker struct {
	Queue  *Queue
	Dial   Dialer
	Holder string // unique per process, e.g. host/pid/random
	Log    *slog.Logger

	Conns       int           // SMTP connections, one goroutine each (default 1)
	Batch       int           // deliveries leased at a time per connection (default 100)
	FlushEvery  int           // results written per batch at most (default 50)
	LeaseTTL    time.Duration // how long a lease holds (default 5m)
	MaxAttempts int           // attempts before a temporary failure is final (default 5)
	RetryBase   time.Duration // first retry delay, doubled each time (default 30s)
	RetryMax    time.Duration // longest retry delay (default 30m)
	Poll        time.Duration // how often an idle worker looks again (default 1s)

	// wake is closed (and replaced) whenever one of this worker's
	// connections finishes a batch, so the others stop waiting at once
	// instead of at the next poll.
	mu   sync.Mutex
	wake chan struct{}
}

func (w *Worker) wakeChan() chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.wake == nil {
		w.wake = make(chan struct{})
	}
	return w.wake
}

func (w *Worker) broadcast() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.wake != nil {
		close(w.wake)
	}
	w.wake = make(chan struct{})
}

// Stats counts what one Run did.
type Stats struct {
	Sent, Failed, Retried, Skipped atomic.Int64
}

func (w *Worker) defaults() {
	if w.Conns <= 0 {
		w.Conns = 1
	}
	if w.Batch <= 0 {
		w.Batch = 100
	}
	if w.FlushEvery <= 0 {
		w.FlushEvery = 50
	}
	if w.LeaseTTL <= 0 {
		w.LeaseTTL = 5 * time.Minute
	}
	if w.MaxAttempts <= 0 {
		w.MaxAttempts = 5
	}
	if w.RetryBase <= 0 {
		w.RetryBase = 30 * time.Second
	}
	if w.RetryMax <= 0 {
		w.RetryMax = 30 * time.Minute
	}
	if w.Poll <= 0 {
		w.Poll = time.Second
	}
	if w.Log == nil {
		w.Log = slog.Default()
	}
}

// Run sends the edition until every delivery has a final outcome (sent,
// failed or skipped) or ctx is cancelled. On cancellation the message being
// written finishes, the results are recorded, the unsent leases released,
// and Run returns ctx's error.
func (w *Worker) Run(ctx context.Context, editionID int64, stats *Stats) error {
	w.defaults()
	var wg sync.WaitGroup
	errs := make([]error, w.Conns)
	for i := range w.Conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &conn{w: w, holder: fmt.Sprintf("%s/%d", w.Holder, i), edition: editionID, stats: stats}
			errs[i] = c.run(ctx)
			w.broadcast()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// conn is one connection's loop.
type conn struct {
	w       *Worker
	holder  string
	edition int64
	stats   *Stats
	mailer  Mailer
	results []Result
	// dialFailures counts failed dials in a row; while the relay is
	// unreachable the rest of a batch is handed back and the loop waits.
	dialFailures int
}

func (c *conn) run(ctx context.Context) error {
	defer func() {
		if c.mailer != nil {
			c.mailer.Close()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		jobs, err := c.w.Queue.Lease(ctx, c.edition, c.holder, c.w.Batch, c.w.LeaseTTL)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c.w.Log.Warn("lease failed; retrying", "holder", c.holder, "err", err)
			if !sleep(ctx, c.w.Poll) {
				return ctx.Err()
			}
			continue
		}
		if len(jobs) == 0 {
			done, err := c.idle(ctx)
			if done || err != nil {
				return err
			}
			continue
		}
		if err := c.work(ctx, jobs); err != nil {
			return err
		}
	}
}

// idle waits for retries that are not due yet or leases held elsewhere; it
// reports done when nothing of the edition is left.
func (c *conn) idle(ctx context.Context) (bool, error) {
	wake := c.w.wakeChan() // before counting, so a batch finished meanwhile wakes us
	if _, err := c.w.Queue.Rescue(ctx); err != nil {
		c.w.Log.Warn("rescue failed", "err", err)
	}
	pending, next, err := c.w.Queue.Pending(ctx, c.edition)
	if err != nil {
		if ctx.Err() != nil {
			return true, ctx.Err()
		}
		c.w.Log.Warn("count pending failed; retrying", "err", err)
		pending = 1
	}
	if pending == 0 {
		return true, nil
	}
	wait := c.w.Poll
	if !next.IsZero() {
		if d := time.Until(next); d < wait {
			wait = max(d, 10*time.Millisecond)
		}
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return true, ctx.Err()
	case <-t.C:
	case <-wake:
	}
	return false, nil
}

// work sends one leased batch, recording results every FlushEvery messages.
func (c *conn) work(ctx context.Context, jobs []Job) error {
	for i, j := range jobs {
		if ctx.Err() != nil {
			return c.stop(jobs[i:], ctx.Err())
		}
		c.results = append(c.results, c.deliver(ctx, j))
		if c.dialFailures > 0 {
			// The relay is unreachable: don't dial once per recipient.
			err := c.stop(jobs[i+1:], nil)
			if !sleep(ctx, min(c.w.Poll<<min(c.dialFailures, 6), time.Minute)) {
				return ctx.Err()
			}
			return err
		}
		if len(c.results) >= c.w.FlushEvery {
			if err := c.flush(ctx); err != nil {
				return c.stop(jobs[i+1:], err)
			}
		}
	}
	if err := c.flush(ctx); err != nil {
		return c.stop(nil, err)
	}
	c.w.broadcast()
	return nil
}

// stop records what was done and hands back the leases never tried.
func (c *conn) stop(untried []Job, cause error) error {
	bg, cancel := context.WithTimeout(context.WithoutCancel(context.Background()), 30*time.Second)
	defer cancel()
	err := c.flush(bg)
	ids := make([]int64, len(untried))
	for i, j := range untried {
		ids[i] = j.ID
	}
	if rerr := c.w.Queue.Release(bg, c.holder, ids); rerr != nil {
		err = errors.Join(err, rerr)
	}
	if err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

// flush records the results gathered so far. It keeps trying for a while
// when the database is away: results not written are the duplicates a crash
// would cause, since their leases would expire and be sent again.
func (c *conn) flush(ctx context.Context) error {
	if len(c.results) == 0 {
		return nil
	}
	ctx = context.WithoutCancel(ctx)
	var err error
	for attempt := range 30 {
		var n int64
		n, err = c.w.Queue.Record(ctx, c.holder, c.results)
		if err == nil {
			if lost := int64(len(c.results)) - n; lost > 0 {
				c.w.Log.Warn("results for expired leases not recorded", "holder", c.holder, "count", lost)
			}
			c.results = c.results[:0]
			return nil
		}
		c.w.Log.Warn("recording results failed; retrying", "holder", c.holder, "attempt", attempt+1, "err", err)
		time.Sleep(time.Second)
	}
	return fmt.Errorf("record %d results: %w", len(c.results), err)
}

// deliver sends one job and turns what happened into a Result.
func (c *conn) deliver(ctx context.Context, j Job) Result {
	r := Result{ID: j.ID, SubscriberID: j.SubscriberID}
	if j.SubscriberStatus != "confirmed" {
		r.Status = Skipped
		r.Reply = "subscriber is " + j.SubscriberStatus
		c.stats.Skipped.Add(1)
		return r
	}
	if j.Attempts > c.w.MaxAttempts {
		// Leased again after its worker died mid-attempt, too often.
		r.Status, r.Reply = Failed, fmt.Sprintf("gave up after %d attempts", c.w.MaxAttempts)
		c.stats.Failed.Add(1)
		return r
	}
	var o Outcome
	if c.mailer == nil {
		m, err := c.w.Dial(ctx)
		if err != nil {
			c.dialFailures++
			c.w.Log.Warn("connect to SMTP server failed", "holder", c.holder, "err", err)
			o = Outcome{ConnLost: true, Reply: "connect: " + err.Error()}
		} else {
			c.mailer, c.dialFailures = m, 0
		}
	}
	if c.mailer != nil {
		// The message being written finishes even when ctx is cancelled.
		o = c.mailer.Send(context.WithoutCancel(ctx), j)
		if o.ConnLost {
			c.mailer.Close()
			c.mailer = nil
		}
	}
	r.Code, r.Enhanced, r.Reply = o.Code, o.Enhanced, o.Reply
	switch {
	case o.Sent:
		r.Status = Sent
		c.stats.Sent.Add(1)
	case o.Permanent:
		r.Status, r.Permanent, r.HardBounce = Failed, true, o.HardBounce
		c.stats.Failed.Add(1)
		c.w.Log.Info("delivery refused", "subscriber", j.SubscriberID, "code", o.Code, "enhanced", o.Enhanced)
	case j.Attempts >= c.w.MaxAttempts:
		r.Status = Failed
		c.stats.Failed.Add(1)
		c.w.Log.Info("delivery failed after retries", "subscriber", j.SubscriberID, "attempts", j.Attempts, "code", o.Code)
	default:
		r.Status = Queued
		r.NextAttempt = time.Now().Add(c.w.backoff(j.Attempts))
		c.stats.Retried.Add(1)
	}
	return r
}

// backoff is the delay before attempt n+1: RetryBase doubled per attempt,
// at most RetryMax, with ±25% jitter so retries of a failed batch spread out.
func (w *Worker) backoff(attempt int) time.Duration {
	d := w.RetryBase << min(attempt-1, 20)
	if d <= 0 || d > w.RetryMax {
		d = w.RetryMax
	}
	return time.Duration(float64(d) * (0.75 + rand.Float64()/2))
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
