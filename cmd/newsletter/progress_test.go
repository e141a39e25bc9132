package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"newsletter/delivery"
	"newsletter/internal/logtest"
)

// The first report of a send already has its rate: counted from the start,
// not from the first report (which said 0.0/s with 6,930 sent).
func TestFirstProgressReportHasARate(t *testing.T) {
	var stats delivery.Stats
	start := time.Now()
	p := newProgress(nil, nil, nil, &stats, start)
	p.left = 10000
	stats.Sent.Store(6930)
	l := p.line(start.Add(5 * time.Second))
	if l.rate < 1385 || l.rate > 1387 || l.eta <= 0 {
		t.Fatalf("first report: rate %.1f/s, eta %v; want 1386/s and an eta", l.rate, l.eta)
	}
}

// A send whose output is not a terminal logs a progress line every few
// seconds (here every few milliseconds), saying what it waits for when
// nothing moves; `status --watch`, in another process, follows it until it
// finishes.
func TestSendProgressAndStatusWatch(t *testing.T) {
	h := newHarness(t)
	h.setup()
	t.Setenv("NEWSLETTER_SMTP_CONNS", "1")
	oldLog, oldWatch := progressLog, statusWatchEvery
	progressLog, statusWatchEvery = 20*time.Millisecond, 50*time.Millisecond
	t.Cleanup(func() { progressLog, statusWatchEvery = oldLog, oldWatch })
	release := h.smtp.HoldNth(3) // two delivered, then the relay stalls
	defer release()

	sendLog, watchOut := &logtest.Buffer{}, &logtest.Buffer{}
	sent, watched := make(chan int, 1), make(chan int, 1)
	go func() {
		sent <- run(context.Background(), []string{"send", "--date", "2025-11-13"}, &logtest.Buffer{}, sendLog)
	}()
	waitFor(t, sendLog, "sent=2 failed=0 skipped=0 retried=0 remaining=2")
	waitFor(t, sendLog, "waiting=")
	go func() {
		watched <- run(context.Background(), []string{"status", "--date", "2025-11-13", "--watch"}, watchOut, &logtest.Buffer{})
	}()
	waitFor(t, watchOut, "edition 2025-11-13: sending")
	waitFor(t, watchOut, "started:")
	if strings.Contains(watchOut.String(), "100.0% done") {
		t.Fatalf("--watch says done while the relay holds the send:\n%s", watchOut.String())
	}
	release()
	if code := <-sent; code != 0 {
		t.Fatalf("send exited %d:\n%s", code, sendLog.String())
	}
	select {
	case code := <-watched:
		if code != 0 {
			t.Fatalf("status --watch exited %d", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("status --watch did not return once the send finished")
	}
	out := watchOut.String()
	if frames := strings.Count(out, "edition 2025-11-13:"); frames < 2 {
		t.Errorf("--watch drew %d reports, want one per interval:\n%s", frames, out)
	}
	last := out[strings.LastIndex(out, "edition 2025-11-13:"):]
	if !strings.Contains(last, "finished") || !strings.Contains(last, "progress:  100.0% done") {
		t.Errorf("--watch's last report:\n%s", last)
	}
}

// waitFor waits until b holds want.
func waitFor(t *testing.T, b *logtest.Buffer, want string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if strings.Contains(b.String(), want) {
			return
		}
	}
	t.Fatalf("no %q in:\n%s", want, b.String())
}
