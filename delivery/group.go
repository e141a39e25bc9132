package delivery

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// sendGroup decides what to do with each job of group, and sends those that
// go as one pipelined stream: their outcomes become results as the replies
// come, and every Group of them is recorded while the rest are on their way
// (see recordAsync), so the stream never stops for the database and never
// leaves more than two groups unrecorded. The stream stops early, before its
// next message, when the send is paused or stopped, a domain throttles us,
// or the lease is due for renewal; the jobs it did not try then are
// returned, for the caller to go on with.
func (c *conn) sendGroup(ctx context.Context, group []Job, leasedAt time.Time) ([]Job, error) {
	now := time.Now()
	send := group[:0:0]
	for _, j := range group {
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
			send = append(send, j)
			continue
		}
		c.results = append(c.results, r)
	}
	if len(send) == 0 {
		return nil, nil
	}
	// The group goes out whatever ctx says: it is leased now.
	c.r.limits.wait(ctx, len(send))
	if cap(c.outs) < len(send) {
		c.outs = make([]Outcome, len(send))
	}
	s := stream{c: c, ctx: ctx, send: send, outs: c.outs[:len(send)], leasedAt: leasedAt}
	clear(s.outs)
	// The messages being written finish even when ctx is cancelled: the
	// stream's own context stops it only before a message.
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	s.cancel = cancel
	c.mailer.Send(sctx, send, s.outs, s.done)
	c.sent += len(send) - len(s.untried)
	if s.throttled {
		// Slow this connection down; it speeds back up as messages go.
		c.slow = min(max(2*c.slow, 500*time.Millisecond), time.Minute)
	} else {
		c.slow /= 2
	}
	if s.lost || (c.w.MaxPerConn > 0 && c.sent >= c.w.MaxPerConn) {
		c.mailer.Close()
		c.mailer, c.sent = nil, 0
	}
	return s.untried, s.err
}

// stream is one sendGroup's messages on their way: done takes each outcome
// as it becomes final.
type stream struct {
	c        *conn
	ctx      context.Context // the connection's: its end stops the stream
	send     []Job
	outs     []Outcome
	leasedAt time.Time
	cancel   context.CancelFunc // stops the stream before its next message
	k        int                // outcomes taken so far

	stopped, lost, throttled bool
	untried                  []Job // stopped before they were tried
	err                      error // recording failed: the connection ends
}

// done takes the outcomes s.outs[s.k:k], records a group once one is
// gathered, and stops the stream when it should go no further.
func (s *stream) done(k int) {
	c := s.c
	for ; s.k < k; s.k++ {
		j, o := s.send[s.k], s.outs[s.k]
		if s.stopped && o.NotTried && !o.ConnLost {
			s.untried = append(s.untried, j)
			continue
		}
		c.results = append(c.results, c.result(j, o))
		if o.Misconfigured {
			// The relay refuses us, whoever the recipient: stop at once.
			c.r.pause(o.Reply)
		}
		s.lost = s.lost || o.ConnLost
		if o.Throttled {
			s.throttled = true
			c.r.limits.throttled(domainOf(j.Email))
		} else if o.Sent {
			c.r.limits.accepted(domainOf(j.Email))
		}
	}
	if k == len(s.send) || s.stopped {
		return
	}
	if len(c.results) >= c.w.Group {
		if err := c.recordAsync(s.ctx); err != nil {
			s.err = err
			s.stop()
			return
		}
	}
	if s.ctx.Err() != nil || c.r.paused.Load() || s.throttled || time.Since(s.leasedAt) > c.w.LeaseTTL/3 {
		s.stop()
	}
}

// stop ends the stream before its next message; the messages not tried
// come back to the caller.
func (s *stream) stop() {
	s.stopped = true
	s.cancel()
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
