package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"newsletter/delivery"
	"newsletter/edition"
)

// How often a running send says how it stands: often on a terminal, where
// someone is watching and silence looks like a hang; seldom in a log.
const (
	progressTerminal = 5 * time.Second
	progressLog      = time.Minute
)

// progress reports a send as it runs, from the run's counters; when they
// have not moved it says what the send is waiting for. It reads the
// database only then, once a tick: nothing on the send's own path.
type progress struct {
	a      *app
	w      *delivery.Worker
	st     *edition.Stored
	stats  *delivery.Stats
	out    io.Writer // a terminal; nil: log lines
	last   int64     // finished deliveries at the last tick
	start  time.Time
	lastAt time.Time
}

// watchSend starts reporting the send's progress: to stderr when it is a
// terminal, else as log lines. The returned stop ends the reports.
func (a *app) watchSend(ctx context.Context, w *delivery.Worker, st *edition.Stored, stats *delivery.Stats) (stop func()) {
	p := &progress{a: a, w: w, st: st, stats: stats, start: time.Now()}
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
				return
			case <-t.C:
				p.report(ctx)
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

// report writes one line: the counts, and what the send waits for when
// nothing was finished since the last one.
func (p *progress) report(ctx context.Context) {
	s := p.stats
	done := s.Sent.Load() + s.Failed.Load() + s.Skipped.Load()
	line := fmt.Sprintf("edition %s: %d sent, %d failed, %d skipped, %d retries so far (%s)",
		p.st.Edition.DateString(), s.Sent.Load(), s.Failed.Load(), s.Skipped.Load(), s.Retried.Load(),
		time.Since(p.start).Round(time.Second))
	if done == p.last {
		line += "; " + p.waitingFor(ctx)
	}
	p.last = done
	if p.out != nil {
		fmt.Fprintln(p.out, line)
		return
	}
	p.a.log.Info("send progress", "edition", p.st.Edition.DateString(), "status", line)
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
