package delivery

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// streak is a run's temporary failures in a row with nothing delivered in
// between, over all its connections. It pauses the send in two ways:
//
//   - ErrorThreshold failures in a row, whatever they were: a relay
//     failing in ways that vary;
//   - the relay's own failure: the same reply to every delivery still
//     pending, seen when the streak comes round to a delivery that already
//     failed in it (so everything leased in between failed too) with that
//     reply. On a short list this happens at the first retry, within
//     RetryBase, long before the threshold; the delivery that came round
//     is not charged a second attempt.
//
// Neither counts one domain throttling us (421, 4.7.28, 451 4.7.x from a
// single recipient domain): the domain limits slow that domain down, and
// the others' deliveries go on.
type streak struct {
	active atomic.Bool // failures since the last delivery: a delivery ends them

	mu       sync.Mutex
	n        int            // failures in a row
	reply    string         // the last failure's reply
	code     string         // the reply code (and enhanced code) of the current run of equal ones
	failed   map[int64]bool // deliveries failed in that run
	domain   string         // the first domain of the streak
	domains  bool           // more than one domain in the streak
	throttle bool           // every failure of the streak asked us to slow down
}

// delivered ends the streak: the relay delivers.
func (s *streak) delivered() {
	if !s.active.Load() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n, s.code, s.domain, s.domains = 0, "", "", false
	clear(s.failed)
	s.active.Store(false)
}

// failure is a temporary failure of delivery id to domain.
type failure struct {
	id        int64
	domain    string
	code      int
	enhanced  string
	throttled bool
	reply     string
}

// fail adds a failure and returns why the send must pause ("" when it
// must not) and whether f came round: its delivery already failed in
// this run of equal replies.
func (s *streak) fail(f failure, threshold int) (reason string, cameRound bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == 0 {
		s.domain, s.throttle = f.domain, true
		s.active.Store(true)
	}
	s.n++
	s.reply = f.reply
	s.domains = s.domains || f.domain != s.domain
	s.throttle = s.throttle && f.throttled
	if code := fmt.Sprintf("%d %s", f.code, f.enhanced); code != s.code {
		s.code = code
		clear(s.failed)
	}
	if s.failed == nil {
		s.failed = map[int64]bool{}
	}
	cameRound = s.failed[f.id] && len(s.failed) > 1
	s.failed[f.id] = true
	switch {
	case threshold <= 0 || s.throttle && !s.domains:
		return "", false
	case cameRound && f.code != 0:
		return fmt.Sprintf("the SMTP relay gave every delivery left (%d) the same answer, with nothing delivered: %s", len(s.failed), s.reply), true
	case s.n >= threshold:
		return fmt.Sprintf("%d temporary failures in a row with nothing delivered; the last: %s", s.n, s.reply), false
	}
	return "", false
}
