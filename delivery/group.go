package delivery

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// stream sends first and then the jobs the feed has ready, as one
// pipelined stream (Mailer.Stream): each is asked for while the message
// before is on its way, their outcomes become results as the replies come,
// and every Group of them is handed to the recorder while the rest are on
// their way (see recordAsync), so the stream never stops for the database
// and never leaves more than two groups unrecorded. The stream ends when
// the feed has nothing ready, and early, before its next message, when the
// send is paused or stopped, a domain throttles us, or the connection has
// sent its share (chunk); the jobs it took and did not try go back to the
// feed.
func (c *conn) stream(ctx context.Context, first Job) error {
	var (
		limit   = c.chunk()
		pending = &first
		taken   int
		untried []Job
		werr    error

		stopped, lost, throttled bool
	)
	// The messages being written finish even when ctx is cancelled: the
	// stream's own context stops it only before a message.
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	next := func() (Job, bool) {
		for {
			if pending == nil {
				if stopped || throttled || ctx.Err() != nil || c.r.paused.Load() || limit > 0 && taken >= limit {
					return Job{}, false
				}
				j, ok := c.r.feed.tryTake()
				if !ok {
					return Job{}, false
				}
				pending = &j
			}
			j := *pending
			pending = nil
			if c.admit(ctx, j) {
				taken++
				return j, true
			}
		}
	}
	done := func(j Job, o Outcome) {
		if stopped && o.NotTried && !o.ConnLost {
			untried = append(untried, j)
			return
		}
		c.results = append(c.results, c.result(j, o))
		if o.Misconfigured {
			// The relay refuses us, whoever the recipient: stop at once.
			c.r.pause(o.Reply)
		}
		lost = lost || o.ConnLost
		if o.Throttled {
			throttled = true
			c.r.limits.throttled(domainOf(j.Email))
		} else if o.Sent {
			c.r.limits.accepted(domainOf(j.Email))
		}
		if len(c.results) >= c.w.Group && werr == nil {
			if werr = c.recordAsync(ctx); werr != nil {
				stopped = true
				cancel()
			}
		}
	}
	c.mailer.Stream(sctx, next, done)
	c.sent += taken - len(untried)
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
	c.r.feed.giveBack(untried)
	if werr != nil {
		return werr
	}
	return c.recordAsync(ctx)
}

// admit decides what to do with a job the feed handed out: true to send
// it now; else its result is gathered (skipped, given up, or back to the
// queue for later, when its domain's pace would hold the connection too
// long).
func (c *conn) admit(ctx context.Context, j Job) bool {
	now := time.Now()
	r := Result{ID: j.ID, SubscriberID: j.SubscriberID}
	switch {
	case j.SubscriberStatus != "confirmed":
		r.Status, r.Reply = Skipped, "subscriber is "+j.SubscriberStatus
		c.r.stats.Skipped.Add(1)
	case j.Attempts > c.w.MaxAttempts:
		// Leased again after its worker died mid-attempt, too often.
		r.Status, r.Reply = Failed, fmt.Sprintf("gave up after %d attempts", c.w.MaxAttempts)
		c.r.stats.Failed.Add(1)
	case !c.r.sendBy.IsZero() && now.After(c.r.sendBy):
		r.Status, r.Reply = Failed, "the send-by deadline passed before it could be sent"
		c.r.stats.Failed.Add(1)
	default:
		wait, ok := c.r.limits.reserve(domainOf(j.Email), 2*time.Second)
		if !ok {
			r.Status, r.Deferred, r.NextAttempt = Queued, true, now.Add(wait)
			c.r.stats.Deferred.Add(1)
			break
		}
		if wait > 0 && !sleep(ctx, wait) {
			r.Status, r.Deferred, r.NextAttempt = Queued, true, now
			break
		}
		// It goes out whatever ctx says now: it is leased.
		c.r.limits.wait(ctx, 1)
		return true
	}
	c.results = append(c.results, r)
	return false
}

// result turns a message's outcome into the delivery's result.
func (c *conn) result(j Job, o Outcome) Result {
	r := Result{ID: j.ID, SubscriberID: j.SubscriberID, Code: o.Code, Enhanced: o.Enhanced, Reply: o.Reply}
	switch {
	case o.NotTried, o.Misconfigured:
		r.Status, r.Deferred, r.NextAttempt = Queued, true, time.Now()
		c.r.stats.Deferred.Add(1)
		return r
	case o.Sent:
		r.Status = Sent
		c.r.stats.Sent.Add(1)
		c.r.failures.delivered()
		c.r.watchBounces(false)
		return r
	case o.Permanent:
		r.Status, r.Permanent, r.HardBounce = Failed, true, o.HardBounce
		c.r.stats.Failed.Add(1)
		c.r.stats.Refused.Add(1)
		if o.HardBounce {
			c.r.stats.Bounced.Add(1)
		}
		c.w.Log.Info("delivery refused", "subscriber", j.SubscriberID, "code", o.Code, "enhanced", o.Enhanced)
		c.r.watchBounces(o.HardBounce)
		return r
	}
	if c.failed(j, o) {
		// The relay's failure, not this delivery's: no attempt counted.
		r.Status, r.Deferred, r.NextAttempt = Queued, true, time.Now()
		c.r.stats.Deferred.Add(1)
		return r
	}
	next := time.Now().Add(c.w.backoff(j.Attempts))
	switch {
	case j.Attempts >= c.w.MaxAttempts:
		r.Status = Failed
	case !c.r.sendBy.IsZero() && next.After(c.r.sendBy):
		r.Status = Failed
		r.Reply += " (no retry: the send-by deadline comes first)"
	default:
		r.Status, r.NextAttempt = Queued, next
		c.r.stats.Retried.Add(1)
		return r
	}
	c.r.stats.Failed.Add(1)
	c.w.Log.Info("delivery failed", "subscriber", j.SubscriberID, "attempts", j.Attempts, "code", o.Code)
	return r
}

// failed adds a temporary failure to the run's streak, pauses the send
// when the streak says so, and reports whether the delivery is to go back
// untried (it came round: the relay, not the delivery, is failing).
func (c *conn) failed(j Job, o Outcome) (untried bool) {
	reply := o.Reply
	if j.Email != "" {
		// A pause reason is shown to operators and kept with the edition:
		// not the address a reply may quote.
		reply = strings.ReplaceAll(reply, j.Email, "<recipient>")
	}
	reason, untried := c.r.failures.fail(failure{id: j.ID, domain: domainOf(j.Email), code: o.Code,
		enhanced: o.Enhanced, throttled: o.Throttled, reply: reply}, c.w.ErrorThreshold)
	if reason != "" {
		c.r.pause(reason)
	}
	return untried
}
