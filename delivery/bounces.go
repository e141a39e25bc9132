package delivery

import (
	"context"
	"fmt"
	"sync/atomic"
)

// BounceWindow is how many of a send's first outcomes (sent or refused)
// are watched for hard bounces.
const BounceWindow = 1000

// bounceWatch pauses a send whose first BounceWindow outcomes hold more
// hard bounces than the Worker's BouncePause share of them: a stale
// imported list, caught before it harms the sender's reputation (Gmail's
// and Yahoo's sender guidelines judge a sender by how often it mails
// addresses that don't exist). It pauses as soon as the share can no
// longer stay under the limit (the (limit+1)th hard bounce), not at the
// window's end. Each process watches the outcomes it sees; the first to
// finish the window, or to pause, ends the watch for all (see
// edition.Store.EndBounceWatch), so a send resumed by someone who looked
// is not paused again for it.
type bounceWatch struct {
	limit   int64 // hard bounces allowed in the window
	seen    atomic.Int64
	bounced atomic.Int64
	done    atomic.Bool
}

// newBounceWatch is the watch of a run, nil when there is none: the share
// is 0 (off) or the edition's watch is over.
func newBounceWatch(share float64, over bool) *bounceWatch {
	if share <= 0 || over {
		return nil
	}
	return &bounceWatch{limit: int64(share * BounceWindow)}
}

// outcome counts a sent (hard false) or refused delivery and returns the
// pause reason when the window's hard bounces went over the limit; end
// reports that the watch is over (the window full, or the reason given).
func (b *bounceWatch) outcome(hard bool) (reason string, end bool) {
	if b == nil || b.done.Load() {
		return "", false
	}
	n := b.seen.Add(1)
	if n > BounceWindow {
		return "", false
	}
	if hard {
		if k := b.bounced.Add(1); k > b.limit && b.done.CompareAndSwap(false, true) {
			return fmt.Sprintf("%d of the first %d deliveries were hard bounces (the address does not exist), over NEWSLETTER_BOUNCE_PAUSE's %d in %d: is the list stale? Check it (newsletter status --undelivered), then resume",
				k, n, b.limit, BounceWindow), true
		}
	}
	if n == BounceWindow && b.done.CompareAndSwap(false, true) {
		return "", true
	}
	return "", false
}

// watchBounces feeds an outcome to the run's bounce watch and acts on it.
func (r *run) watchBounces(hard bool) {
	reason, end := r.bounces.outcome(hard)
	if !end {
		return
	}
	if err := r.w.Editions.EndBounceWatch(context.Background(), r.edition); err != nil {
		r.w.Log.Error("ending the bounce watch", "edition", r.edition, "err", err)
	}
	if reason != "" {
		r.pause(reason)
	}
}
