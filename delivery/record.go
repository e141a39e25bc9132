package delivery

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// recordAsync starts writing the group's results in the background, once
// the previous group's are written. In the background because writing is a
// database round trip the SMTP connection would otherwise sit out; one
// write at a time so that at most two groups per connection are sent and
// not yet recorded, which is what a crash can duplicate.
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
		for _, res := range rs {
			if res.Status == Queued {
				// Work went back to the queue: idle connections may take
				// it. Only then: woken after every group, each idle
				// connection would lease and count after every group,
				// which keeps PostgreSQL busy at high connection counts.
				c.r.broadcast()
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
		n, err = c.w.Queue.Record(ctx, c.r.edition, c.holder, results)
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
