package delivery

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// feed leases a Run's deliveries ahead of its connections, in leases of
// Batch or more, and hands them out one at a time, as each connection's
// stream asks for its next message (see conn.stream). So a connection never
// waits for a lease, nor drains its pipeline between leases (each drain
// costs the relay's round trip), and at the end of a send the work left is
// shared message by message: the connections finish together, not one
// lease apart. One leaser per Run also means the Run's leases never
// collide with each other, and PostgreSQL gets one statement per lease of
// Batch, not one per connection per group.
//
// The feed's loop is also the one that looks at the database when nothing
// is due (expired leases, retries not due yet, the end of the send), once
// per poll or wake-up for all the connections.
type feed struct {
	r      *run
	holder string // the Run's lease holder: Worker.Holder/0
	low    int    // lease again when this few are left
	size   int    // deliveries a lease asks for
	expect bool   // the send had queued deliveries when the Run began
	cursor int64  // the highest id leased so far in this pass (see Queue.Lease)

	rescued time.Time // when the loop last rescued expired leases

	mu    sync.Mutex
	jobs  []Job // leased, not taken: jobs[head:]
	head  int
	over  bool          // no more jobs will come
	err   error         // why, when the send is not done: paused, stopped
	avail chan struct{} // closed when jobs come or the feed is over
	idle  int           // connections waiting in take, their results written
	live  int           // connections still running
	want  chan struct{} // (buffered) the loop is wanted: jobs ran low, or a connection went idle
}

// newFeed makes the feed of a Run that found sp queued. With more than one
// connection its first pass starts at a random id among them, so that
// processes sharing the edition start apart and rarely have rows another
// just took to step over (FOR UPDATE SKIP LOCKED keeps each row to one
// holder where they meet); the pass then goes on from the lowest id. A
// single connection sends in the order of the ids.
func newFeed(r *run, sp span) *feed {
	w := r.w
	// A lease when half of the last is gone: at a loopback relay's pace
	// half a lease of 200 lasts some 30 ms, several leases' time.
	size := max(w.Batch, 4*w.Conns)
	f := &feed{r: r, holder: w.Holder + "/0", low: size / 2, size: size, expect: sp.N > 0, live: w.Conns,
		avail: make(chan struct{}), want: make(chan struct{}, 1)}
	if w.Conns > 1 && sp.N > 0 {
		f.cursor = sp.Lo - 1 + rand.Int64N(sp.Hi-sp.Lo+1)
	}
	return f
}

// tryTake hands out the next job, if one is ready.
func (f *feed) tryTake() (Job, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pop()
}

// take waits for the next job. ok is false when no more will come: err says
// why (nil: the send is done).
func (f *feed) take(ctx context.Context) (j Job, ok bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for {
		if j, ok := f.pop(); ok {
			return j, true, nil
		}
		if f.over {
			return Job{}, false, f.err
		}
		f.idle++
		f.poke()
		ch := f.avail
		f.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		f.mu.Lock()
		f.idle--
		if ctx.Err() != nil {
			return Job{}, false, ctx.Err()
		}
	}
}

// pop takes the oldest job; f.mu is held. Nothing is handed out once the
// feed is over for a pause or a stop.
func (f *feed) pop() (Job, bool) {
	if f.head == len(f.jobs) || f.over && f.err != nil {
		return Job{}, false
	}
	j := f.jobs[f.head]
	f.jobs[f.head] = Job{}
	f.head++
	if f.head == len(f.jobs) {
		f.jobs, f.head = f.jobs[:0], 0
	}
	if len(f.jobs)-f.head <= f.low {
		f.poke()
	}
	return j, true
}

// poke wakes the loop; f.mu is held or not.
func (f *feed) poke() {
	select {
	case f.want <- struct{}{}:
	default:
	}
}

// giveBack returns jobs a connection took and did not try, to be taken
// again first.
func (f *feed) giveBack(jobs []Job) {
	if len(jobs) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jobs = slices.Insert(f.jobs, f.head, jobs...)
	f.signal()
}

// leave tells the feed a connection stopped for good.
func (f *feed) leave() {
	f.mu.Lock()
	f.live--
	f.mu.Unlock()
	f.poke()
}

// signal wakes the connections waiting in take; f.mu is held.
func (f *feed) signal() {
	close(f.avail)
	f.avail = make(chan struct{})
}

// push adds leased jobs.
func (f *feed) push(jobs []Job, at time.Time) {
	for i := range jobs {
		jobs[i].leased = at
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// Those handed out go first: the buffer holds about a lease and a
	// half, however long the send.
	n := copy(f.jobs, f.jobs[f.head:])
	clear(f.jobs[n:])
	f.jobs, f.head = append(f.jobs[:n], jobs...), 0
	f.signal()
}

// close ends the feed: err nil when the send is done.
func (f *feed) close(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.over {
		f.over, f.err = true, err
		f.signal()
	}
}

// state tells how many jobs are ready, and whether every running
// connection waits for one.
func (f *feed) state() (ready int, allIdle bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ready = len(f.jobs) - f.head
	return ready, ready == 0 && f.idle >= f.live
}

// loop leases while the connections need jobs, and looks at the database
// when nothing is due, until the send is done, paused or ctx ends.
func (f *feed) loop(ctx context.Context) {
	r := f.r
	dry := false // the last lease found nothing due
	for {
		if ctx.Err() != nil {
			f.close(ctx.Err())
			return
		}
		if r.paused.Load() {
			f.close(ErrPaused)
			return
		}
		f.renew(ctx)
		ready, allIdle := f.state()
		if ready > f.low {
			f.wait(ctx, r.w.Poll)
			continue
		}
		if !dry {
			jobs, at, again, err := f.lease(ctx)
			if err != nil {
				if ctx.Err() == nil {
					// The database is away (restarting?): wait and try again.
					r.w.Log.Warn("lease failed; retrying", "holder", f.holder, "err", err)
					f.wait(ctx, r.w.Poll)
				}
				continue
			}
			if len(jobs) > 0 {
				f.push(jobs, at)
				continue
			}
			if again {
				continue
			}
			dry = true
		}
		// Nothing due now. Until every connection has written its results
		// and waits, what they hold counts as pending: look then. Till
		// then a connection going idle is no news; results requeued (a
		// wake-up) or the poll are.
		if !allIdle {
			dry = !f.wait(ctx, r.w.Poll)
			continue
		}
		done, due, d, err := f.look(ctx)
		if done {
			f.close(err)
			return
		}
		dry = !due && !f.wait(ctx, d)
	}
}

// wait waits for d, a connection's want, a wake-up of the run (results
// requeued, a pause) or the end of ctx; at most until the jobs ready are
// due for renewal. It reports whether there may be news in the database:
// the time is up, or the run was woken.
func (f *feed) wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(min(d, f.r.w.LeaseTTL/6))
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-f.want:
		return false
	case <-f.r.wakeChan():
	}
	return true
}

// lease takes the next lease, of the ids above the cursor; once a pass
// finds nothing above it, it starts again from the lowest id (again), which
// also picks up retries, rescued leases and rows queued later.
func (f *feed) lease(ctx context.Context) (jobs []Job, at time.Time, again bool, err error) {
	after := f.cursor
	at = time.Now()
	// Not cancelled by ctx: a lease the server committed while the client
	// gave up would sit unknown until its expiry. Once it is back, a stop
	// hands it back (the jobs are the feed's, released at the end).
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	jobs, err = f.r.w.Queue.Lease(lctx, f.r.edition, f.holder, f.size, f.r.w.LeaseTTL, after)
	cancel()
	if err != nil {
		return nil, at, false, err
	}
	if len(jobs) == 0 && after > 0 {
		f.cursor = 0 // the end of a pass
		return nil, at, true, nil
	}
	for _, j := range jobs {
		f.cursor = max(f.cursor, j.ID)
	}
	return jobs, at, false, nil
}

// renew extends the leases of the jobs ready once the oldest is a third of
// its time old (a paced send, or connections away dialling), and drops
// those a rescuer took meanwhile.
func (f *feed) renew(ctx context.Context) {
	f.mu.Lock()
	var ids []int64
	for _, j := range f.jobs[f.head:] {
		if time.Since(j.leased) > f.r.w.LeaseTTL/3 {
			ids = make([]int64, 0, len(f.jobs)-f.head)
			for _, j := range f.jobs[f.head:] {
				ids = append(ids, j.ID)
			}
			break
		}
	}
	f.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	at := time.Now()
	held, err := f.r.w.Queue.Extend(context.WithoutCancel(ctx), f.r.edition, f.holder, ids, f.r.w.LeaseTTL)
	if err != nil {
		f.r.w.Log.Warn("renew leases failed", "holder", f.holder, "err", err)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	kept, lost := f.jobs[:f.head], 0
	for _, j := range f.jobs[f.head:] {
		if !slices.Contains(ids, j.ID) {
			kept = append(kept, j) // given back meanwhile: leased as it was
			continue
		}
		if !held[j.ID] {
			lost++
			continue
		}
		j.leased = at
		kept = append(kept, j)
	}
	f.jobs = kept
	if lost > 0 {
		f.r.w.Log.Warn("leases lost to a rescuer; not sending those", "holder", f.holder, "count", lost)
	}
}

// release hands back to the queue the jobs never handed out (or given
// back): the Run is over.
func (f *feed) release(ctx context.Context) error {
	f.mu.Lock()
	ids := make([]int64, 0, len(f.jobs)-f.head)
	for _, j := range f.jobs[f.head:] {
		ids = append(ids, j.ID)
	}
	f.jobs, f.head = nil, 0
	f.mu.Unlock()
	if len(ids) == 0 {
		return nil
	}
	return f.r.w.Queue.Release(ctx, f.r.edition, f.holder, ids)
}

// look rescues expired leases and tells whether the edition is done (or
// paused: err), whether a queued delivery is due, and else how long to wait.
func (f *feed) look(ctx context.Context) (done, due bool, d time.Duration, err error) {
	r := f.r
	// Expired leases are those of a worker alive but stuck (a dead one's
	// come back through the registry of workers within seconds), so they
	// are looked for a few times a lease, not at every poll: without an
	// index of the unfinished rows (it would stop updates being made in
	// place), each look reads the rows of the editions being sent.
	if time.Since(f.rescued) >= max(r.w.Poll, min(r.w.LeaseTTL/4, 15*time.Second)) {
		f.rescued = time.Now()
		if _, err := r.w.Queue.Rescue(ctx); err != nil {
			r.w.Log.Warn("rescue failed", "err", err)
		}
	}
	if st, err := r.w.Editions.SendState(ctx, r.edition); err == nil && st.PausedAt != nil {
		r.paused.Store(true)
		return true, false, 0, ErrPaused
	}
	pending, next, err := r.w.Queue.Pending(ctx, r.edition)
	if err != nil {
		if ctx.Err() != nil {
			return true, false, 0, ctx.Err()
		}
		r.w.Log.Warn("count pending failed; retrying", "err", err)
		pending = 1
	}
	if pending == 0 {
		// Nothing queued and nothing leased, every connection's results
		// written: the run is over.
		return true, false, 0, nil
	}
	d = r.w.Poll
	if !next.IsZero() {
		until := time.Until(next)
		if until <= 0 {
			return false, true, 0, nil // something is due: lease it
		}
		d = min(d, max(until, 10*time.Millisecond))
	}
	return false, false, d, nil
}
