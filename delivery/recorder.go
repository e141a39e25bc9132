package delivery

import (
	"context"
	"sync"
	"time"
)

// recorder writes the groups of outcomes that a run's connections hand it,
// several connections' groups in one statement: at many connections each
// group is small (Group shrinks so that connections × groups stay near 400),
// and a statement, a commit and its WAL flush per group would cost more
// than the rows. A connection waits for its group to be written before it
// hands over the next (conn.recordAsync), so what a crash can duplicate is
// still two groups per connection.
//
// A group is written at once when few connections could add to it; with
// many, the recorder waits a little (at most linger) for a few more, which
// costs nothing: a connection's next group takes far longer to send.
type recorder struct {
	r      *run
	mu     sync.Mutex
	queue  []handoff
	kick   chan struct{} // a handoff arrived
	stop   chan struct{} // closed when the run's connections are done
	wg     sync.WaitGroup
	linger time.Duration
}

// handoff is one connection's group: done gets the write's error.
type handoff struct {
	results []Result
	done    chan error
}

// recorderLinger is the longest a group waits for others to share its
// statement.
const recorderLinger = 20 * time.Millisecond

func newRecorder(r *run) *recorder {
	rec := &recorder{r: r, kick: make(chan struct{}, 1), stop: make(chan struct{}), linger: recorderLinger}
	rec.wg.Add(1)
	go rec.loop()
	return rec
}

// add hands results over (each with its Holder set) and returns where the
// write's error will come.
func (rec *recorder) add(results []Result) <-chan error {
	done := make(chan error, 1)
	rec.mu.Lock()
	rec.queue = append(rec.queue, handoff{results: results, done: done})
	rec.mu.Unlock()
	select {
	case rec.kick <- struct{}{}:
	default:
	}
	return done
}

// close waits for the last write; no connection may add after it.
func (rec *recorder) close() {
	close(rec.stop)
	rec.wg.Wait()
}

func (rec *recorder) loop() {
	defer rec.wg.Done()
	// Enough groups to write at once: a quarter of the connections.
	enough := max(1, rec.r.w.Conns/4)
	for {
		select {
		case <-rec.kick:
		case <-rec.stop:
			rec.write(rec.take())
			return
		}
		deadline := time.NewTimer(rec.linger)
	gather:
		for rec.waiting() < enough {
			select {
			case <-rec.kick:
			case <-deadline.C:
				break gather
			case <-rec.stop:
				break gather
			}
		}
		deadline.Stop()
		rec.write(rec.take())
	}
}

func (rec *recorder) waiting() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.queue)
}

func (rec *recorder) take() []handoff {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	q := rec.queue
	rec.queue = nil
	return q
}

// write records the handoffs' results in one statement and tells each.
func (rec *recorder) write(hs []handoff) {
	if len(hs) == 0 {
		return
	}
	all := hs[0].results
	if len(hs) > 1 {
		all = nil
		for _, h := range hs {
			all = append(all, h.results...)
		}
	}
	// Each result names its connection's lease (Holder); the worker's
	// name is for the log.
	err := rec.r.write(context.Background(), rec.r.w.Holder, all)
	// Work went back to the queue: idle connections may take it. Only
	// then: woken after every group, each idle connection would lease and
	// count after every group, which keeps PostgreSQL busy at high
	// connection counts. Looked at before the connections have their
	// results back (and reuse them).
	requeued, bounced := false, false
	for _, res := range all {
		requeued = requeued || res.Status == Queued
		bounced = bounced || isBounce(res)
	}
	if bounced && err == nil && rec.r.w.Bounced != nil {
		rec.bounced(all)
	}
	for _, h := range hs {
		h.done <- err
	}
	if requeued {
		rec.r.broadcast()
	}
}

// isBounce tells a result the bounce handler is to hear of (Worker.Bounced):
// a temporary failure given up counts only when a server answered it (not
// a delivery the deadline stopped before it was tried).
func isBounce(r Result) bool {
	return r.HardBounce || (r.Status == Failed && !r.Permanent && r.Code >= 400)
}

// bounced hands the bounces among results to Worker.Bounced.
func (rec *recorder) bounced(results []Result) {
	var b []Result
	for _, r := range results {
		if isBounce(r) {
			b = append(b, r)
		}
	}
	rec.r.w.Bounced(context.Background(), b)
}
