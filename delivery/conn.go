package delivery

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"newsletter/smtpclient"
)

// conn is one connection's loop: take jobs from the run's feed and send
// them as one stream for as long as the feed has them ready, recording
// each group of outcomes while the stream goes on.
type conn struct {
	w       *Worker // the run's configuration
	r       *run
	mailer  Mailer
	sent    int           // messages on this connection, for MaxPerConn
	slow    time.Duration // pause between streams after throttling
	results []Result      // gathered, not yet handed to the recorder
	dialled bool          // it tried to connect once

	// The previous group's results are written while this group is sent
	// (see recordAsync): recording is non-nil while that write runs;
	// writing is its buffer, reused once it is done.
	recording <-chan error
	writing   []Result
}

// loop sends until the edition is done, paused, or ctx ends; what it
// gathered is recorded before it returns.
func (c *conn) loop(ctx context.Context) (err error) {
	defer func() {
		if c.mailer != nil {
			c.mailer.Close()
		}
		bg, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if ferr := c.flush(bg); ferr != nil {
			err = errors.Join(err, ferr)
		}
	}()
	feed := c.r.feed
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if c.r.paused.Load() {
			return ErrPaused
		}
		if c.mailer == nil && feed.expect && !c.dialled {
			// Connect while the feed takes its first lease, not after.
			if err := c.dial(ctx, nil); err != nil {
				return err
			}
			continue
		}
		j, ok := feed.tryTake()
		if !ok {
			// Our own results count as pending until written.
			if err := c.wait(); err != nil {
				return err
			}
			if j, ok, err = feed.take(ctx); !ok {
				return err
			}
		}
		if c.mailer == nil {
			if err := c.dial(ctx, &j); err != nil {
				return err
			}
			if c.mailer == nil {
				continue // j went back to the feed: try again
			}
		}
		if err := c.stream(ctx, j); err != nil {
			return err
		}
		if c.slow > 0 && !sleep(ctx, c.slow) {
			return ctx.Err()
		}
	}
}

// dial connects; a job the connection holds goes back to the feed when it
// can't. A nil error with no mailer means try again (after a wait).
func (c *conn) dial(ctx context.Context, held *Job) error {
	c.dialled = true
	m, err := c.w.Dial(ctx)
	if err == nil {
		c.mailer = m
		c.r.dialStreak.Store(0)
		return nil
	}
	if held != nil {
		c.r.feed.giveBack([]Job{*held})
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return c.dialFailed(ctx, err)
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

// chunk is the most messages the next stream may send (0: no limit): a
// group while a rate paces the send or the connection was slowed down (the
// pause comes between streams), and no more than the connection may still
// send (MaxPerConn).
func (c *conn) chunk() int {
	n := 0
	if c.slow > 0 || c.r.limits.paced() {
		n = c.w.Group
	}
	if c.w.MaxPerConn > 0 {
		if rest := max(1, c.w.MaxPerConn-c.sent); n == 0 || rest < n {
			n = rest
		}
	}
	return n
}

// dialFailed waits, and pauses the send when the relay has been
// unreachable too many times in a row, or at once when it refused us for a
// reason only a change of configuration cures: a retry would get the same
// answer. A nil error means try again.
func (c *conn) dialFailed(ctx context.Context, err error) error {
	if errors.Is(err, smtpclient.ErrMisconfigured) {
		c.r.pause(oneLine(err.Error()))
		return ErrPaused
	}
	n := c.r.dialStreak.Add(1)
	c.w.Log.Warn("connect to the SMTP relay failed", "holder", c.r.feed.holder, "failures_in_a_row", n, "err", err)
	if n >= int64(c.w.DialThreshold) {
		c.r.pause(fmt.Sprintf("the SMTP relay could not be reached %d times in a row: %v", n, err))
	}
	if err := c.wait(); err != nil {
		return err
	}
	if !sleep(ctx, min(c.w.Poll<<min(n, 6), time.Minute)) {
		return ctx.Err()
	}
	return nil
}

// oneLine flattens an error text (errors.Join of several relays' errors)
// into the one line of a pause reason.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
