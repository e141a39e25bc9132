package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"newsletter/edition"
)

// Outcome is what a Mailer reports for one message.
type Outcome struct {
	Sent       bool
	Permanent  bool // the server refused it for good (5xx)
	HardBounce bool // the mailbox does not exist (5.1.x to RCPT)
	ConnLost   bool // the connection is unusable; the Mailer must be redialled
	Throttled  bool // the server asked us to slow down (421, 4.7.28, 451 4.7.x)
	// Misconfigured: the relay refuses us, not this message (535, 530 to
	// MAIL FROM): the send stops, the message goes back untried.
	Misconfigured bool
	// NotTried: the connection was gone before this message was started;
	// it goes back to the queue without counting as an attempt.
	NotTried bool
	Code     int
	Enhanced string
	Reply    string // the server's reply, or the error's text
}

// Mailer sends messages on a connection of its own. A Mailer is used by one
// goroutine at a time.
type Mailer interface {
	// Stream sends the message of each job next gives, in order, as one
	// stream, until next says there are no more or ctx is cancelled: the
	// messages being written then finish, and one asked for and not yet
	// written is reported NotTried. next is asked for each job while the
	// message before is on its way (smtpclient.Conn.SendStream), and
	// answers at once. done gets each job's outcome, as soon as it is
	// final, while the later messages go on. A message whose fate is
	// unknown (the connection died after its data was written) must not
	// be reported Sent.
	Stream(ctx context.Context, next func() (Job, bool), done func(Job, Outcome))
	Close() error
}

// Dialer opens a new Mailer (one SMTP connection).
type Dialer func(ctx context.Context) (Mailer, error)

// ErrPaused is returned by Run when the send is paused: by the error
// threshold, or by hand.
var ErrPaused = errors.New("send paused")

// Worker drains an edition's queue over Conns connections, each its own
// goroutine with its own lease holder name. Any number of Workers, in any
// number of processes, can share one edition. A Worker is its configuration
// only: each Run keeps the state of its send apart (see run), so a Worker
// can run again, or run several editions at once.
type Worker struct {
	Queue    *Queue
	Editions *edition.Store
	Dial     Dialer
	Holder   string // unique per process, e.g. host/pid/random
	Log      *slog.Logger

	Conns       int           // SMTP connections, one goroutine each (default 1)
	Batch       int           // deliveries the Run leases at a time, at least 4 per connection (default 100)
	Group       int           // outcomes recorded together while the stream goes on (default 50)
	LeaseTTL    time.Duration // how long a lease holds (default 5m)
	MaxAttempts int           // attempts before a temporary failure is final (default 5)
	RetryBase   time.Duration // first retry delay, doubled each time (default 30s)
	RetryMax    time.Duration // longest retry delay (default 30m)
	Poll        time.Duration // how often an idle worker looks again (default 1s)
	MaxPerConn  int           // messages per connection before reconnecting (0: no limit)

	// The rate limits are the whole fleet's, not this worker's: it sends
	// at its share, each limit divided by the live workers (see limits.go).
	// Each Run takes that share: a process sends one edition at a time.
	Rate        float64            // messages per second to all domains (0: no limit)
	DomainRates map[string]float64 // messages per second by recipient domain
	Peers       func() int         // live workers sharing the limits, itself included (nil: this worker alone)

	// ErrorThreshold pauses the send after this many temporary failures in
	// a row with nothing delivered in between, or sooner when the relay
	// gives every delivery left the same answer (see streak; 0: never), and
	// DialThreshold after this many failed connection attempts in a row
	// (default 10): better a clear pause than burning the list against a
	// dead relay. A misconfigured relay pauses it at once.
	ErrorThreshold int
	DialThreshold  int
	// BouncePause pauses the send when more than this share of its first
	// BounceWindow outcomes are hard bounces; 0: never.
	BouncePause float64

	// Bounced, when set, is given the recorded results that are bounces:
	// hard ones, and temporary failures given up (no attempt left, or the
	// send-by deadline): the SMTP reply at send time feeds the same
	// handler as the bounces that come back later (package bounces). It
	// runs on the recorder, before the results' connections go on, and
	// must not keep the slice.
	Bounced func(ctx context.Context, bounces []Result)
}

// Stats counts what one Run did. The counters are the run's own, added to
// as outcomes come; /metrics reads them when scraped (package metrics), so
// counting for it costs the send nothing more.
type Stats struct {
	Sent, Failed, Retried, Skipped, Deferred atomic.Int64
	// Of Failed, Refused are the server's permanent refusals (5xx), and of
	// those, Bounced the mailboxes that do not exist (5.1.x to RCPT); the
	// rest of Failed are temporary failures given up on.
	Refused, Bounced atomic.Int64
}

func (w *Worker) defaults() {
	if w.Conns <= 0 {
		w.Conns = 1
	}
	if w.Batch <= 0 {
		w.Batch = 100
	}
	if w.Group <= 0 {
		w.Group = 50
	}
	if w.LeaseTTL <= 0 {
		w.LeaseTTL = 5 * time.Minute
	}
	if w.MaxAttempts <= 0 {
		w.MaxAttempts = 5
	}
	if w.RetryBase <= 0 {
		w.RetryBase = 30 * time.Second
	}
	if w.RetryMax <= 0 {
		w.RetryMax = 30 * time.Minute
	}
	if w.Poll <= 0 {
		w.Poll = time.Second
	}
	if w.DialThreshold <= 0 {
		w.DialThreshold = 10
	}
	if w.Log == nil {
		w.Log = slog.Default()
	}
	if w.Editions == nil {
		w.Editions = &edition.Store{DB: w.Queue.DB}
	}
}

// Run sends the edition until every delivery has a final outcome (sent,
// failed or skipped), the send is paused (ErrPaused), or ctx is cancelled.
// On cancellation the messages being written finish, their results are
// recorded, the unsent leases are handed back, and Run returns ctx's error.
func (w *Worker) Run(ctx context.Context, editionID int64, stats *Stats) error {
	cfg := *w // the defaults filled in for this run, not in the caller's value
	cfg.defaults()
	st, err := cfg.Editions.SendState(ctx, editionID)
	if err != nil {
		return err
	}
	if st.PausedAt != nil {
		return fmt.Errorf("%w: %s", ErrPaused, *st.PauseReason)
	}
	sp, err := cfg.Queue.Span(ctx, editionID)
	if err != nil {
		return err
	}
	r := &run{w: &cfg, edition: editionID, stats: stats, wake: make(chan struct{}), limits: newLimits(&cfg)}
	r.feed = newFeed(r, sp)
	if st.SendBy != nil {
		r.sendBy = *st.SendBy
	}
	r.bounces = newBounceWatch(cfg.BouncePause, st.BounceWatchDone)
	defer r.limits.start(ctx)()
	defer r.watchPause(ctx)()
	r.rec = newRecorder(r)
	feedCtx, stopFeed := context.WithCancel(ctx)
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		r.feed.loop(feedCtx)
	}()
	var wg sync.WaitGroup
	errs := make([]error, cfg.Conns)
	for i := range cfg.Conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &conn{w: &cfg, r: r}
			errs[i] = c.loop(ctx)
			r.feed.leave()
		}()
	}
	wg.Wait()
	stopFeed() // when every connection failed, it may still be leasing
	<-fed
	if err := r.feed.release(context.WithoutCancel(ctx)); err != nil {
		errs = append(errs, fmt.Errorf("hand back the leases not sent: %w", err))
	}
	r.rec.close() // every connection waited for its last write
	for _, err := range errs {
		if errors.Is(err, ErrPaused) {
			st, _ := cfg.Editions.SendState(context.WithoutCancel(ctx), editionID)
			if st.CancelledAt != nil {
				// What this run handed back untried is recorded as
				// cancelled now, not at some worker's next look.
				if err := settle(context.WithoutCancel(ctx), cfg.Queue.DB, editionID); err != nil {
					cfg.Log.Warn("settle the cancelled send", "edition", editionID, "err", err)
				}
			}
			if st.PauseReason != nil {
				return fmt.Errorf("%w: %s", ErrPaused, *st.PauseReason)
			}
			return err
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return cfg.Editions.MarkFinished(ctx, editionID)
}

// run is the state of one Run, shared by its connections and made afresh by
// each Run: a streak, a deadline or a pause of one send never carries over
// into the next.
type run struct {
	w       *Worker // the configuration, defaults filled in
	edition int64
	stats   *Stats
	sendBy  time.Time // the edition's deadline; zero: none
	limits  *limits   // this worker's share of the fleet's rate limits
	feed    *feed     // leases ahead and hands the connections their jobs
	rec     *recorder // writes the connections' outcomes

	mu   sync.Mutex
	wake chan struct{} // closed when results went back to the queue, or a pause

	failures   streak       // temporary failures in a row, over all connections
	bounces    *bounceWatch // hard bounces in the send's first outcomes; nil: not watched
	dialStreak atomic.Int64 // failed dials in a row, over all connections
	paused     atomic.Bool
}

func (r *run) wakeChan() chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.wake
}

func (r *run) broadcast() {
	r.mu.Lock()
	defer r.mu.Unlock()
	close(r.wake)
	r.wake = make(chan struct{})
}

// watchPause reads the edition's send state once a poll while the run goes
// on, and stops its connections when the send was paused or cancelled
// elsewhere (another process, the desk): a lease would only see it at the
// end of the batches and streams under way, which at a far relay's pace
// take seconds. Once a poll, not per message; the messages not yet handed
// to the relay go back untried (see conn.stop). It returns what stops it.
func (r *run) watchPause(ctx context.Context) (stop func()) {
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(r.w.Poll)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
			}
			if st, err := r.w.Editions.SendState(wctx, r.edition); err == nil && st.PausedAt != nil {
				r.paused.Store(true)
				r.broadcast()
				return
			}
		}
	}()
	return func() { cancel(); <-done }
}

// pause stops the edition's send for every worker, in every process.
func (r *run) pause(reason string) {
	if r.paused.Swap(true) {
		return
	}
	r.w.Log.Warn("pausing the send", "edition", r.edition, "reason", reason)
	if err := r.w.Editions.Pause(context.Background(), r.edition, reason); err != nil {
		r.w.Log.Error("pause failed", "edition", r.edition, "err", err)
	}
}

// backoff is the delay before attempt n+1: RetryBase doubled per attempt,
// at most RetryMax, with ±25% jitter so retries of a failed batch spread out.
func (w *Worker) backoff(attempt int) time.Duration {
	d := w.RetryBase << min(attempt-1, 20)
	if d <= 0 || d > w.RetryMax {
		d = w.RetryMax
	}
	return time.Duration(float64(d) * (0.75 + rand.Float64()/2))
}
