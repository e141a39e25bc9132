package delivery

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// recordAsync hands the group's results to the run's recorder, once the
// previous group's are written, and goes on: writing is a database round
// trip the SMTP connection would otherwise sit out. One group at a time so
// that at most two groups per connection are sent and not yet recorded,
// which is what a crash can duplicate.
func (c *conn) recordAsync(ctx context.Context) error {
	if err := c.wait(); err != nil {
		return err
	}
	if len(c.results) == 0 {
		return nil
	}
	rs := c.results
	c.results, c.writing = c.writing[:0], rs
	for i := range rs {
		rs[i].Holder = c.r.feed.holder
	}
	c.recording = c.r.rec.add(rs)
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

// write records results (of holder's leases, or each of its own Holder's).
// It keeps trying for a while when the database is away: results not
// written are the duplicates a crash would cause, since their leases would
// expire and be sent again.
func (c *conn) write(ctx context.Context, results []Result) error {
	return c.r.write(ctx, c.r.feed.holder, results)
}

func (r *run) write(ctx context.Context, holder string, results []Result) error {
	if len(results) == 0 {
		return nil
	}
	ctx = context.WithoutCancel(ctx)
	var err error
	for attempt := range 60 {
		var n int64
		n, err = r.w.Queue.Record(ctx, r.edition, holder, results)
		if err == nil {
			if lost := int64(len(results)) - n; lost > 0 {
				r.w.Log.Warn("results for expired leases not recorded", "holder", holder, "count", lost)
			}
			return nil
		}
		r.w.Log.Warn("recording results failed; retrying", "holder", holder, "attempt", attempt+1, "err", err)
		time.Sleep(time.Second)
	}
	return fmt.Errorf("record %d results: %w", len(results), err)
}
