package delivery

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"newsletter/smtpclient"
)

// conn is one connection's loop: lease a batch, send it a group at a time,
// record each group while the next goes out.
type conn struct {
	w       *Worker // the run's configuration
	r       *run
	holder  string
	id      int // its index among the run's connections (its stripe, see plan)
	mailer  Mailer
	sent    int           // messages on this connection, for MaxPerConn
	slow    time.Duration // pause between groups after throttling
	results []Result      // of the group being sent
	outs    []Outcome

	// The previous group's results are written while this group is sent
	// (see recordAsync): recording is non-nil while that write runs;
	// writing is its buffer, reused once it is done.
	recording <-chan error
	writing   []Result
}

// loop leases and sends until the edition is done, paused, or ctx ends.
func (c *conn) loop(ctx context.Context) (err error) {
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
		if c.r.paused.Load() {
			return ErrPaused
		}
		jobs, again, err := c.lease(ctx)
		if err != nil {
			return err
		}
		if again {
			continue
		}
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

// lease takes the connection's next batch: from its stripe while there is
// one to work (see plan), else from the shared pass, whose cursor starts
// again from the lowest id once a lease finds nothing above it. again asks
// the caller to lease once more at once (the database was away, a stripe or
// a pass ended); no jobs and no again means nothing is due. A returned
// error ends the connection.
func (c *conn) lease(ctx context.Context) (jobs []Job, again bool, err error) {
	n := c.r.plan.size(c.w.Conns, c.w.Group, c.w.Batch)
	after, upto, striped := c.r.plan.claim(c.id, n)
	if !striped {
		after, upto = c.r.cursor.Load(), math.MaxInt64
	}
	// Not cancelled by ctx: a lease the server committed while the
	// client gave up would sit unknown until its expiry. Once it is
	// back, a stop hands it back at once.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	jobs, err = c.w.Queue.LeaseRange(lctx, c.r.edition, c.holder, n, c.w.LeaseTTL, after, upto)
	cancel()
	if err == nil && ctx.Err() != nil {
		return nil, false, c.stop(jobs, ctx.Err())
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		// The database is away (restarting?): wait and try again.
		c.w.Log.Warn("lease failed; retrying", "holder", c.holder, "err", err)
		if !sleep(ctx, c.w.Poll) {
			return nil, false, ctx.Err()
		}
		return nil, true, nil
	}
	if striped {
		c.r.plan.leased(c.id, n, jobs)
		return jobs, len(jobs) == 0, nil
	}
	c.r.plan.left.Add(-int64(len(jobs)))
	if len(jobs) == 0 && after > 0 {
		// The end of a pass: start again from the lowest id.
		c.r.cursor.CompareAndSwap(after, 0)
		return nil, true, nil
	}
	c.r.advance(jobs)
	return jobs, false, nil
}

// idle waits until a queued delivery is due (retries not due yet, leases
// held by other connections), and reports done when nothing of the edition
// is left. One idle connection of the run looks at the database, once per
// poll or wake-up, for all of them; the others wait for its word: at the end
// of a send most connections are idle, and each counting what is left on its
// own would multiply that count by the number of connections, every poll.
// Looking only counts: a lease attempt each time would scan the queue.
func (c *conn) idle(ctx context.Context) (bool, error) {
	for {
		if c.r.finished.Load() {
			return true, nil
		}
		wake := c.r.wakeChan() // before looking, so a change meanwhile wakes us
		if !c.r.polling.CompareAndSwap(false, true) {
			if !waitFor(ctx, wake, c.w.Poll) {
				return true, ctx.Err()
			}
			continue
		}
		done, due, d, err := c.look(ctx)
		c.r.polling.Store(false)
		if done || due {
			c.r.broadcast() // the others look for themselves
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
	// Expired leases are those of a worker alive but stuck (a dead one's
	// come back through the registry of workers within seconds), so they
	// are looked for a few times a lease, not at every poll: without an
	// index of the unfinished rows (it would stop updates being made in
	// place), each look reads the rows of the editions being sent.
	if time.Since(c.r.rescued) >= max(c.w.Poll, min(c.w.LeaseTTL/4, 15*time.Second)) {
		c.r.rescued = time.Now()
		if _, err := c.w.Queue.Rescue(ctx); err != nil {
			c.w.Log.Warn("rescue failed", "err", err)
		}
	}
	if st, err := c.w.Editions.SendState(ctx, c.r.edition); err == nil && st.PausedAt != nil {
		c.r.paused.Store(true)
		return true, false, 0, ErrPaused
	}
	pending, next, err := c.w.Queue.Pending(ctx, c.r.edition)
	if err != nil {
		if ctx.Err() != nil {
			return true, false, 0, ctx.Err()
		}
		c.w.Log.Warn("count pending failed; retrying", "err", err)
		pending = 1
	}
	if pending == 0 {
		// Nothing queued and nothing leased, this run's own results
		// included (written before a connection looks): the run is over
		// for every connection, and one count says so for all of them.
		c.r.finished.Store(true)
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

// sleep waits for d or the end of ctx (false).
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	return waitFor(ctx, nil, d) // a nil channel never wakes
}

// work sends one leased batch, as one stream unless a rate applies (see
// chunk), recording each group of outcomes as it goes.
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
		if c.r.paused.Load() {
			return c.stop(jobs, ErrPaused)
		}
		if c.mailer == nil {
			m, err := c.w.Dial(ctx)
			if err != nil {
				return c.dialFailed(ctx, jobs, err)
			}
			c.mailer = m
			c.r.dialStreak.Store(0)
		}
		n := c.chunk(len(jobs))
		untried, err := c.sendGroup(ctx, jobs[:n], leasedAt)
		if jobs = jobs[n:]; len(untried) > 0 {
			jobs = append(untried, jobs...)
		}
		if err != nil {
			return c.stop(jobs, err)
		}
		if err := c.recordAsync(ctx); err != nil {
			return c.stop(jobs, err)
		}
		if c.slow > 0 && !sleep(ctx, c.slow) {
			return c.stop(jobs, ctx.Err())
		}
	}
	return nil
}

// streamBudget is about how many messages a process's connections hold
// put together at once (each its recipient's own lines, a few KB): a
// stream's messages are made before it starts.
const streamBudget = 2000

// chunk is how many of the n jobs left go out in one stream: as many as the
// budget allows the connection, since every pause in the stream costs the
// relay's round trip, but a group at a time while a rate paces the send or
// the connection was slowed down (the pause comes between groups), and no
// more than the connection may still send (MaxPerConn).
func (c *conn) chunk(n int) int {
	n = min(n, max(c.w.Group, streamBudget/c.w.Conns))
	if c.slow > 0 || c.r.limits.paced() {
		n = min(n, c.w.Group)
	}
	if c.w.MaxPerConn > 0 {
		n = min(n, max(1, c.w.MaxPerConn-c.sent))
	}
	return n
}

// extend renews the leases of the jobs left and keeps only those still held.
func (c *conn) extend(ctx context.Context, jobs []Job) ([]Job, error) {
	ids := make([]int64, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	held, err := c.w.Queue.Extend(ctx, c.r.edition, c.holder, ids, c.w.LeaseTTL)
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
// the relay has been unreachable too many times in a row, or at once when
// it refused us for a reason only a change of configuration cures: a
// retry would get the same answer.
func (c *conn) dialFailed(ctx context.Context, jobs []Job, err error) error {
	if errors.Is(err, smtpclient.ErrMisconfigured) {
		c.r.pause(oneLine(err.Error()))
		return c.stop(jobs, ErrPaused)
	}
	n := c.r.dialStreak.Add(1)
	c.w.Log.Warn("connect to the SMTP relay failed", "holder", c.holder, "failures_in_a_row", n, "err", err)
	if n >= int64(c.w.DialThreshold) {
		c.r.pause(fmt.Sprintf("the SMTP relay could not be reached %d times in a row: %v", n, err))
	}
	if serr := c.stop(jobs, nil); serr != nil {
		return serr
	}
	if !sleep(ctx, min(c.w.Poll<<min(n, 6), time.Minute)) {
		return ctx.Err()
	}
	return nil
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
	if rerr := c.w.Queue.Release(bg, c.r.edition, c.holder, ids); rerr != nil {
		err = errors.Join(err, rerr)
	}
	if len(ids) > 0 {
		c.r.broadcast() // handed back: others may take them
	}
	if err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

// oneLine flattens an error text (errors.Join of several relays' errors)
// into the one line of a pause reason.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
