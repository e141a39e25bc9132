package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"newsletter/delivery"
	"newsletter/edition"
)

// How often a running send says how it stands: a terminal's bar is redrawn
// often, so that it moves; a log gets a line every few seconds. Variables
// so that the tests need not wait.
var (
	progressTerminal = 500 * time.Millisecond
	progressLog      = 5 * time.Second
)

// rateWindow is how far back the current rate looks: long enough to smooth
// a stream's pauses between groups, short enough to follow a slowdown.
const rateWindow = 10 * time.Second

// progress reports a send as it runs, from the run's counters; when they
// have not moved it says what the send is waiting for. It reads the
// database only then, once a tick, and once at the start for how many
// recipients are left: nothing on the send's own path.
type progress struct {
	a       *app
	w       *delivery.Worker
	st      *edition.Stored
	stats   *delivery.Stats
	out     io.Writer // a terminal: the bar; nil: log lines
	left    int64     // recipients without a final outcome when the send started (-1: unknown)
	start   time.Time
	samples []sample // finished deliveries over the last rateWindow
	moved   bool     // finished deliveries changed since the last tick
}

type sample struct {
	at   time.Time
	done int64
}

// newProgress is the progress of a send starting at start. The run's
// counters start at zero there: the first report has a rate.
func newProgress(a *app, w *delivery.Worker, st *edition.Stored, stats *delivery.Stats, start time.Time) *progress {
	return &progress{a: a, w: w, st: st, stats: stats, start: start, left: -1, samples: []sample{{at: start}}}
}

// watchSend starts reporting the send's progress: a bar on stderr when it
// is a terminal, else log lines. The returned stop ends the reports.
func (a *app) watchSend(ctx context.Context, w *delivery.Worker, st *edition.Stored, stats *delivery.Stats) (stop func()) {
	p := newProgress(a, w, st, stats, time.Now())
	if c, err := w.Queue.Count(ctx, st.ID); err == nil {
		p.left = c.Queued + c.Sending
	}
	every := progressLog
	if isTerminal(a.stderr) {
		p.out, every = a.stderr, progressTerminal
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				if p.out != nil {
					p.report(context.Background(), time.Now())
					fmt.Fprintln(p.out)
				}
				return
			case now := <-t.C:
				p.report(ctx, now)
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

// progressLine is where a send stands.
type progressLine struct {
	sent, failed, skipped, retried int64
	remaining                      int64         // -1: unknown
	rate                           float64       // finished deliveries per second, lately
	eta                            time.Duration // -1: unknown
}

// line reads the counters at now.
func (p *progress) line(now time.Time) progressLine {
	s := p.stats
	l := progressLine{sent: s.Sent.Load(), failed: s.Failed.Load(), skipped: s.Skipped.Load(),
		retried: s.Retried.Load(), remaining: -1, eta: -1}
	done := l.sent + l.failed + l.skipped
	p.moved = len(p.samples) == 0 || p.samples[len(p.samples)-1].done != done
	p.samples = append(p.samples, sample{now, done})
	for len(p.samples) > 2 && now.Sub(p.samples[1].at) >= rateWindow {
		p.samples = p.samples[1:]
	}
	if first := p.samples[0]; now.Sub(first.at) > 0 {
		l.rate = float64(done-first.done) / now.Sub(first.at).Seconds()
	}
	if p.left >= 0 {
		// Other workers may finish some of them too: never below zero.
		l.remaining = max(0, p.left-done)
		if l.rate > 0 {
			l.eta = time.Duration(float64(l.remaining) / l.rate * float64(time.Second))
		}
	}
	return l
}

// report draws the bar, or logs a line with what the send waits for when
// nothing was finished since the last one.
func (p *progress) report(ctx context.Context, now time.Time) {
	l := p.line(now)
	if p.out != nil {
		fmt.Fprintf(p.out, "\r%s\x1b[K", p.bar(l, now))
		return
	}
	attrs := []any{"edition", p.st.Edition.DateString(), "sent", l.sent, "failed", l.failed,
		"skipped", l.skipped, "retried", l.retried, "remaining", l.remaining,
		"rate", fmt.Sprintf("%.1f/s", l.rate), "elapsed", now.Sub(p.start).Round(time.Second)}
	if l.eta >= 0 {
		attrs = append(attrs, "eta", now.Add(l.eta).Format(time.TimeOnly))
	}
	if !p.moved {
		attrs = append(attrs, "waiting", p.waitingFor(ctx))
	}
	p.a.log.Log(ctx, slog.LevelInfo, "send progress", attrs...)
}

// bar is the terminal's line: a bar of the share finished, the counts, the
// rate and the estimated finish.
func (p *progress) bar(l progressLine, now time.Time) string {
	const width = 24
	done := l.sent + l.failed + l.skipped
	frac := 0.0
	if total := done + l.remaining; l.remaining >= 0 && total > 0 {
		frac = float64(done) / float64(total)
	}
	n := int(frac * width)
	s := fmt.Sprintf("[%s%s] %3.0f%% %d sent, %d failed, ", strings.Repeat("=", n), strings.Repeat(" ", width-n),
		100*frac, l.sent, l.failed)
	if l.remaining >= 0 {
		s += fmt.Sprintf("%d left, ", l.remaining)
	}
	s += fmt.Sprintf("%.0f msgs/s", l.rate)
	switch {
	case l.remaining == 0:
	case l.eta >= 0:
		s += fmt.Sprintf(", done at %s (in %s)", now.Add(l.eta).Format(time.TimeOnly), l.eta.Round(time.Second))
	case !p.moved:
		s += ", waiting"
	}
	return s
}

// waitingFor says what a send that finished nothing lately waits for: a
// pause, other workers' leases, retries not due yet, or the relay.
func (p *progress) waitingFor(ctx context.Context) string {
	if st, err := p.w.Editions.SendState(ctx, p.st.ID); err == nil && st.PausedAt != nil && st.PauseReason != nil {
		return "paused: " + *st.PauseReason
	}
	wt, err := p.w.Queue.Waiting(ctx, p.st.ID, p.w.Holder)
	if err != nil {
		return "waiting (" + describe(err) + ")"
	}
	var parts []string
	if wt.Leased > 0 {
		parts = append(parts, fmt.Sprintf("%d deliveries leased by another worker until %s at the latest",
			wt.Leased, wt.LeasedUntil.Local().Format(time.TimeOnly)))
	}
	if wt.Retries > 0 {
		parts = append(parts, fmt.Sprintf("%d retries, the first due at %s", wt.Retries, wt.RetryAt.Local().Format(time.TimeOnly)))
	}
	if len(parts) == 0 {
		return "waiting for the SMTP relay (connecting, or slow to answer)"
	}
	return "waiting: " + strings.Join(parts, "; ")
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
