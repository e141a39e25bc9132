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

	"golang.org/x/time/rate"

	"newsletter/edition"
)

// Outcome is what a Mailer reports for one message.
type Outcome struct {
	Sent       bool
	Permanent  bool // the server refused it for good (5xx)
	HardBounce bool // the mailbox does not exist (5.1.x to RCPT)
	ConnLost   bool // the connection is unusable; the Mailer must be redialled
	Throttled  bool // the server asked us to slow down (421, 4.7.28, 451 4.7.x)
	// NotTried: the connection was gone before this message was started;
	// it goes back to the queue without counting as an attempt.
	NotTried bool
	Code     int
	Enhanced string
	Reply    string // the server's reply, or the error's text
}

// Mailer sends messages on a connection of its own. A Mailer is used by one
// goroutine at a time.
type Mailer interface {
	// Send sends the jobs' messages in order and sets out[i] for jobs[i].
	// A message whose fate is unknown (the connection died after its data
	// was written) must not be reported Sent.
	Send(ctx context.Context, jobs []Job, out []Outcome)
	Close() error
}

// Dialer opens a new Mailer (one SMTP connection).
type Dialer func(ctx context.Context) (Mailer, error)

// ErrPaused is returned by Run when the send is paused: by the error
// threshold, or by hand.
var ErrPaused = errors.New("send paused")

// Worker drains an edition's queue over Conns connections, each its own
// goroutine with its own lease holder name. Any number of Workers, in any
// number of processes, can share one edition.
type Worker struct {
	Queue    *Queue
	Editions *edition.Store
	Dial     Dialer
	Holder   string // unique per process, e.g. host/pid/random
	Log      *slog.Logger

	Conns       int           // SMTP connections, one goroutine each (default 1)
	Batch       int           // deliveries leased at a time per connection (default 100)
	Group       int           // messages sent and recorded together (default 50)
	LeaseTTL    time.Duration // how long a lease holds (default 5m)
	MaxAttempts int           // attempts before a temporary failure is final (default 5)
	RetryBase   time.Duration // first retry delay, doubled each time (default 30s)
	RetryMax    time.Duration // longest retry delay (default 30m)
	Poll        time.Duration // how often an idle worker looks again (default 1s)
	MaxPerConn  int           // messages per connection before reconnecting (0: no limit)

	Rate    *rate.Limiter // all messages of this process (nil: unlimited)
	Domains *DomainLimits // per recipient domain (nil: unlimited)

	// ErrorThreshold pauses the send after this many temporary failures in
	// a row with nothing delivered in between (0: never), and
	// DialThreshold after this many failed connection attempts in a row
	// (default 10): better a clear pause than burning the list against a
	// dead relay.
	ErrorThreshold int
	DialThreshold  int

	mu     sync.Mutex
	wake   chan struct{} // closed when a connection finishes a group
	sendBy time.Time     // the edition's deadline; zero: none

	failStreak atomic.Int64
	dialStreak atomic.Int64
	paused     atomic.Bool
	polling    atomic.Bool  // an idle connection is looking at the database (see conn.idle)
	cursor     atomic.Int64 // the highest id leased in this pass (see Queue.Lease)
}

// Stats counts what one Run did.
type Stats struct {
	Sent, Failed, Retried, Skipped, Deferred atomic.Int64
}

func (w *Worker) defaults() {
	if w.Conns <= 0 {
		w.Conns = 1
	}
	if w.Batch <= 0 {
		w.Batch = 100
	}
	if w.Group <= 0 {
		w.Group = 50
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
	if w.DialThreshold <= 0 {
		w.DialThreshold = 10
	}
	if w.Log == nil {
		w.Log = slog.Default()
	}
	if w.Editions == nil {
		w.Editions = &edition.Store{DB: w.Queue.DB}
	}
}

// Run sends the edition until every delivery has a final outcome (sent,
// failed or skipped), the send is paused (ErrPaused), or ctx is cancelled.
// On cancellation the messages being written finish, their results are
// recorded, the unsent leases are handed back, and Run returns ctx's error.
func (w *Worker) Run(ctx context.Context, editionID int64, stats *Stats) error {
	w.defaults()
	st, err := w.Editions.SendState(ctx, editionID)
	if err != nil {
		return err
	}
	if st.PausedAt != nil {
		return fmt.Errorf("%w: %s", ErrPaused, *st.PauseReason)
	}
	if st.SendBy != nil {
		w.sendBy = *st.SendBy
	}
	w.paused.Store(false)
	w.cursor.Store(0)
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
	for _, err := range errs {
		if errors.Is(err, ErrPaused) {
			st, _ := w.Editions.SendState(context.WithoutCancel(ctx), editionID)
			if st.PauseReason != nil {
				return fmt.Errorf("%w: %s", ErrPaused, *st.PauseReason)
			}
			return err
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return w.Editions.MarkFinished(ctx, editionID)
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

// advance moves the lease cursor past the highest id of jobs.
func (w *Worker) advance(jobs []Job) {
	var top int64
	for _, j := range jobs {
		top = max(top, j.ID)
	}
	for {
		cur := w.cursor.Load()
		if cur >= top || w.cursor.CompareAndSwap(cur, top) {
			return
		}
	}
}

// pause stops the edition's send for every worker, in every process.
func (w *Worker) pause(editionID int64, reason string) {
	if w.paused.Swap(true) {
		return
	}
	w.Log.Warn("pausing the send", "edition", editionID, "reason", reason)
	if err := w.Editions.Pause(context.Background(), editionID, reason); err != nil {
		w.Log.Error("pause failed", "edition", editionID, "err", err)
	}
}

// conn is one connection's loop.
type conn struct {
	w       *Worker
	holder  string
	edition int64
	stats   *Stats
	mailer  Mailer
	sent    int           // messages on this connection, for MaxPerConn
	slow    time.Duration // pause between groups after throttling
	results []Result      // of the group being sent
	outs    []Outcome

	// The previous group's results are written while this group is sent:
	// writing is a database round trip the SMTP connection would otherwise
	// sit out. recording is non-nil while that write runs; writing is its
	// buffer, reused once it is done.
	recording chan error
	writing   []Result
}

func (c *conn) run(ctx context.Context) (err error) {
	defer func() {
		if c.mailer != nil {
			c.mailer.Close()
		}
		if werr := c.wait(); werr != nil {
			err = errors.Join(err, werr)
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if c.w.paused.Load() {
			return ErrPaused
		}
		after := c.w.cursor.Load()
		// Not cancelled by ctx: a lease the server committed while the
		// client gave up would sit unknown until its expiry. Once it is
		// back, a stop hands it back at once.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		jobs, err := c.w.Queue.Lease(lctx, c.edition, c.holder, c.w.Batch, c.w.LeaseTTL, after)
		cancel()
		if err == nil && ctx.Err() != nil {
			return c.stop(jobs, ctx.Err())
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// The database is away (restarting?): wait and try again.
			c.w.Log.Warn("lease failed; retrying", "holder", c.holder, "err", err)
			if !sleep(ctx, c.w.Poll) {
				return ctx.Err()
			}
			continue
		}
		if len(jobs) == 0 && after > 0 {
			// The end of a pass: start again from the lowest id.
			c.w.cursor.CompareAndSwap(after, 0)
			continue
		}
		c.w.advance(jobs)
		if len(jobs) == 0 {
			// Our own last results count as pending until written.
			if err := c.wait(); err != nil {
				return err
			}
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

// idle waits until a queued delivery is due (retries not due yet, leases
// held by other connections), and reports done when nothing of the edition
// is left. One idle connection of the Worker looks at the database, once per
// poll or wake-up, for all of them; the others wait for its word (with each
// looking on its own, a 100k send over 32 connections counted what was left
// 59 times, a few at most now). Looking only counts: a lease attempt each
// time would scan the queue.
func (c *conn) idle(ctx context.Context) (bool, error) {
	for {
		wake := c.w.wakeChan() // before looking, so a change meanwhile wakes us
		if !c.w.polling.CompareAndSwap(false, true) {
			if !waitFor(ctx, wake, c.w.Poll) {
				return true, ctx.Err()
			}
			continue
		}
		done, due, d, err := c.look(ctx)
		c.w.polling.Store(false)
		if done || due {
			c.w.broadcast() // the others look for themselves
			return done, err
		}
		if !waitFor(ctx, wake, d) {
			return true, ctx.Err()
		}
	}
}

// look rescues expired leases and tells whether the edition is done (or
// paused: err), whether a queued delivery is due, and else how long to wait.
func (c *conn) look(ctx context.Context) (done, due bool, d time.Duration, err error) {
	if _, err := c.w.Queue.Rescue(ctx); err != nil {
		c.w.Log.Warn("rescue failed", "err", err)
	}
	if st, err := c.w.Editions.SendState(ctx, c.edition); err == nil && st.PausedAt != nil {
		c.w.paused.Store(true)
		return true, false, 0, ErrPaused
	}
	pending, next, err := c.w.Queue.Pending(ctx, c.edition)
	if err != nil {
		if ctx.Err() != nil {
			return true, false, 0, ctx.Err()
		}
		c.w.Log.Warn("count pending failed; retrying", "err", err)
		pending = 1
	}
	if pending == 0 {
		return true, false, 0, nil
	}
	d = c.w.Poll
	if !next.IsZero() {
		until := time.Until(next)
		if until <= 0 {
			return false, true, 0, nil // something is due: lease it
		}
		d = min(d, max(until, 10*time.Millisecond))
	}
	return false, false, d, nil
}

// waitFor waits for d, a wake-up or the end of ctx (false).
func waitFor(ctx context.Context, wake <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-wake:
	}
	return true
}

// work sends one leased batch a group at a time, recording each group.
func (c *conn) work(ctx context.Context, jobs []Job) error {
	leasedAt := time.Now()
	for len(jobs) > 0 {
		if time.Since(leasedAt) > c.w.LeaseTTL/3 {
			var err error
			if jobs, err = c.extend(context.WithoutCancel(ctx), jobs); err != nil {
				return c.stop(nil, err)
			}
			leasedAt = time.Now()
			if len(jobs) == 0 {
				return nil
			}
		}
		if ctx.Err() != nil {
			return c.stop(jobs, ctx.Err())
		}
		if c.w.paused.Load() {
			return c.stop(jobs, ErrPaused)
		}
		n := min(c.w.Group, len(jobs))
		group := jobs[:n]
		if c.mailer == nil {
			m, err := c.w.Dial(ctx)
			if err != nil {
				return c.dialFailed(ctx, jobs, err)
			}
			c.mailer = m
			c.w.dialStreak.Store(0)
		}
		jobs = jobs[n:]
		c.sendGroup(ctx, group)
		if err := c.recordAsync(ctx); err != nil {
			return c.stop(jobs, err)
		}
		if c.slow > 0 && !sleep(ctx, c.slow) {
			return c.stop(jobs, ctx.Err())
		}
	}
	return nil
}

// extend renews the leases of the jobs left and keeps only those still held.
func (c *conn) extend(ctx context.Context, jobs []Job) ([]Job, error) {
	ids := make([]int64, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	held, err := c.w.Queue.Extend(ctx, c.holder, ids, c.w.LeaseTTL)
	if err != nil {
		return nil, err
	}
	kept := jobs[:0]
	for _, j := range jobs {
		if held[j.ID] {
			kept = append(kept, j)
		}
	}
	if lost := len(jobs) - len(kept); lost > 0 {
		c.w.Log.Warn("leases lost to a rescuer; not sending those", "holder", c.holder, "count", lost)
	}
	return kept, nil
}

// dialFailed hands the batch back untried, waits, and pauses the send when
// the relay has been unreachable too many times in a row.
func (c *conn) dialFailed(ctx context.Context, jobs []Job, err error) error {
	n := c.w.dialStreak.Add(1)
	c.w.Log.Warn("connect to the SMTP relay failed", "holder", c.holder, "failures_in_a_row", n, "err", err)
	if n >= int64(c.w.DialThreshold) {
		c.w.pause(c.edition, fmt.Sprintf("the SMTP relay could not be reached %d times in a row: %v", n, err))
	}
	if serr := c.stop(jobs, nil); serr != nil {
		return serr
	}
	if !sleep(ctx, min(c.w.Poll<<min(n, 6), time.Minute)) {
		return ctx.Err()
	}
	return nil
}

// sendGroup decides what to do with each job of a group, sends those that
// go, and turns their outcomes into results.
func (c *conn) sendGroup(ctx context.Context, group []Job) {
	now := time.Now()
	send := group[:0:0]
	for _, j := range group {
		r := Result{ID: j.ID, SubscriberID: j.SubscriberID}
		switch {
		case j.SubscriberStatus != "confirmed":
			r.Status, r.Reply = Skipped, "subscriber is "+j.SubscriberStatus
			c.stats.Skipped.Add(1)
		case j.Attempts > c.w.MaxAttempts:
			// Leased again after its worker died mid-attempt, too often.
			r.Status, r.Reply = Failed, fmt.Sprintf("gave up after %d attempts", c.w.MaxAttempts)
			c.stats.Failed.Add(1)
		case !c.w.sendBy.IsZero() && now.After(c.w.sendBy):
			r.Status, r.Reply = Failed, "the send-by deadline passed before it could be sent"
			c.stats.Failed.Add(1)
		default:
			wait, ok := c.w.Domains.Reserve(domainOf(j.Email), 2*time.Second)
			if !ok {
				r.Status, r.Deferred, r.NextAttempt = Queued, true, now.Add(wait)
				c.stats.Deferred.Add(1)
				break
			}
			if wait > 0 && !sleep(ctx, wait) {
				r.Status, r.Deferred, r.NextAttempt = Queued, true, now
				break
			}
			send = append(send, j)
			continue
		}
		c.results = append(c.results, r)
	}
	if len(send) == 0 {
		return
	}
	if c.w.Rate != nil {
		for range send {
			// The group goes out whatever ctx says: it is leased now.
			c.w.Rate.Wait(context.WithoutCancel(ctx))
		}
	}
	if cap(c.outs) < len(send) {
		c.outs = make([]Outcome, len(send))
	}
	outs := c.outs[:len(send)]
	clear(outs)
	// The messages being written finish even when ctx is cancelled.
	c.mailer.Send(context.WithoutCancel(ctx), send, outs)
	lost, throttled := false, false
	for i, j := range send {
		o := outs[i]
		c.results = append(c.results, c.result(j, o))
		lost = lost || o.ConnLost
		if o.Throttled {
			throttled = true
			c.w.Domains.Throttled(domainOf(j.Email))
		} else if o.Sent {
			c.w.Domains.Accepted(domainOf(j.Email))
		}
	}
	c.sent += len(send)
	if throttled {
		// Slow this connection down; it speeds back up as messages go.
		c.slow = min(max(2*c.slow, 500*time.Millisecond), time.Minute)
	} else {
		c.slow /= 2
	}
	if lost || (c.w.MaxPerConn > 0 && c.sent >= c.w.MaxPerConn) {
		c.mailer.Close()
		c.mailer, c.sent = nil, 0
	}
	if th := c.w.ErrorThreshold; th > 0 && c.w.failStreak.Load() >= int64(th) {
		last := c.results[len(c.results)-1].Reply
		c.w.pause(c.edition, fmt.Sprintf("%d temporary failures in a row with nothing delivered; the last: %s", c.w.failStreak.Load(), last))
	}
}

// result turns a message's outcome into the delivery's result.
func (c *conn) result(j Job, o Outcome) Result {
	r := Result{ID: j.ID, SubscriberID: j.SubscriberID, Code: o.Code, Enhanced: o.Enhanced, Reply: o.Reply}
	switch {
	case o.NotTried:
		r.Status, r.Deferred, r.NextAttempt = Queued, true, time.Now()
		c.stats.Deferred.Add(1)
		return r
	case o.Sent:
		r.Status = Sent
		c.stats.Sent.Add(1)
		c.w.failStreak.Store(0)
		return r
	case o.Permanent:
		r.Status, r.Permanent, r.HardBounce = Failed, true, o.HardBounce
		c.stats.Failed.Add(1)
		c.w.Log.Info("delivery refused", "subscriber", j.SubscriberID, "code", o.Code, "enhanced", o.Enhanced)
		return r
	}
	c.w.failStreak.Add(1)
	next := time.Now().Add(c.w.backoff(j.Attempts))
	switch {
	case j.Attempts >= c.w.MaxAttempts:
		r.Status = Failed
	case !c.w.sendBy.IsZero() && next.After(c.w.sendBy):
		r.Status = Failed
		r.Reply += " (no retry: the send-by deadline comes first)"
	default:
		r.Status, r.NextAttempt = Queued, next
		c.stats.Retried.Add(1)
		return r
	}
	c.stats.Failed.Add(1)
	c.w.Log.Info("delivery failed", "subscriber", j.SubscriberID, "attempts", j.Attempts, "code", o.Code)
	return r
}

// stop records what was done and hands back the leases never tried.
func (c *conn) stop(untried []Job, cause error) error {
	bg, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := c.flush(bg)
	ids := make([]int64, len(untried))
	for i, j := range untried {
		ids[i] = j.ID
	}
	if rerr := c.w.Queue.Release(bg, c.holder, ids); rerr != nil {
		err = errors.Join(err, rerr)
	}
	if len(ids) > 0 {
		c.w.broadcast() // handed back: others may take them
	}
	if err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

// recordAsync starts writing the group's results in the background, once
// the previous group's are written: at most two groups per connection are
// sent and not yet recorded, which is what a crash can duplicate.
func (c *conn) recordAsync(ctx context.Context) error {
	if err := c.wait(); err != nil {
		return err
	}
	if len(c.results) == 0 {
		return nil
	}
	rs := c.results
	c.results, c.writing = c.writing[:0], rs
	done := make(chan error, 1)
	c.recording = done
	go func() {
		err := c.write(ctx, rs)
		for _, r := range rs {
			if r.Status == Queued {
				// Work went back to the queue: idle connections may take
				// it. (Waking them after every group instead kept
				// PostgreSQL busy with their lease and count queries at
				// high connection counts.)
				c.w.broadcast()
				break
			}
		}
		done <- err
	}()
	return nil
}

// wait waits for the background write, if one runs.
func (c *conn) wait() error {
	if c.recording == nil {
		return nil
	}
	err := <-c.recording
	c.recording = nil
	return err
}

// flush records every result gathered so far before it returns.
func (c *conn) flush(ctx context.Context) error {
	err := c.wait()
	if werr := c.write(ctx, c.results); werr != nil {
		return errors.Join(err, werr)
	}
	c.results = c.results[:0]
	return err
}

// write records results. It keeps trying for a while when the database is
// away: results not written are the duplicates a crash would cause, since
// their leases would expire and be sent again.
func (c *conn) write(ctx context.Context, results []Result) error {
	if len(results) == 0 {
		return nil
	}
	ctx = context.WithoutCancel(ctx)
	var err error
	for attempt := range 60 {
		var n int64
		n, err = c.w.Queue.Record(ctx, c.holder, results)
		if err == nil {
			if lost := int64(len(results)) - n; lost > 0 {
				c.w.Log.Warn("results for expired leases not recorded", "holder", c.holder, "count", lost)
			}
			return nil
		}
		c.w.Log.Warn("recording results failed; retrying", "holder", c.holder, "attempt", attempt+1, "err", err)
		time.Sleep(time.Second)
	}
	return fmt.Errorf("record %d results: %w", len(results), err)
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

// sleep waits for d or the end of ctx (false).
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	return waitFor(ctx, nil, d) // a nil channel never wakes
}
