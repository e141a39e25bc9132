package main

import (
	"fmt"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"newsletter/internal/smtptest"
)

// Three worker processes under NEWSLETTER_RATE=fleetRate send about
// fleetRate messages a second in all, not three times it; when one dies the
// other two take its share, and the fleet's total stays the same. The rate
// is read from the test server's receive times, over windows taken once the
// registry shows the workers the window is about.
func TestFleetRateSharedByThreeWorkers(t *testing.T) {
	const (
		n         = 1500
		fleetRate = 100.0
		window    = 4 * time.Second
	)
	h := newHarness(t)
	h.smtp = smtptest.Start(t)
	t.Setenv("SMTP_URL", fmt.Sprintf("smtp://%s?tls=none", h.smtp.Addr()))
	h.bigList(n)
	h.must("send", "--date", "2025-11-13", "--enqueue-only")

	env := []string{fmt.Sprintf("NEWSLETTER_RATE=%g", fleetRate), "NEWSLETTER_SMTP_CONNS=2"}
	var workers [3]*exec.Cmd
	for i := range workers {
		workers[i] = h.startWorker(env)
	}

	h.waitWorkersSending(3)
	time.Sleep(2 * time.Second) // each worker counts the live ones every second
	three := h.rateOver(window)
	t.Logf("fleet of three: %.1f msgs/s (fleet rate %g)", three, fleetRate)
	checkFleetRate(t, "three workers", three, fleetRate)

	workers[0].Process.Kill()
	workers[0].Wait()
	h.waitWorkersSending(2)
	time.Sleep(2 * time.Second)
	two := h.rateOver(window)
	t.Logf("fleet of two after one was killed: %.1f msgs/s", two)
	checkFleetRate(t, "two workers after the third died", two, fleetRate)
	// The rebalancing itself, exactly: each survivor's share, as its
	// registry row says, is half the fleet's rate.
	var shares []float64
	if err := h.db.Select(&shares, `SELECT rate FROM workers WHERE edition IS NOT NULL`); err != nil {
		t.Fatal(err)
	}
	if len(shares) != 2 || shares[0] != fleetRate/2 || shares[1] != fleetRate/2 {
		t.Fatalf("the two workers left have the shares %v; want %g each", shares, fleetRate/2)
	}

	// Every delivery recorded sent, not n messages at the server: the
	// killed worker's last groups, sent and not recorded, go back to the
	// queue when the fleet finds it dead and are sent again (the duplicates
	// a crash may cause), so n messages, and even every reader, can reach
	// the server before the survivors have sent and recorded those again.
	deadline := time.Now().Add(time.Minute)
	for sent := 0; sent < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d deliveries recorded sent after a minute", sent, n)
		}
		time.Sleep(50 * time.Millisecond)
		if err := h.db.Get(&sent, `SELECT count(*) FROM deliveries WHERE status = 'sent'`); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range workers[1:] {
		w.Process.Signal(syscall.SIGTERM)
		if err := w.Wait(); err != nil {
			t.Errorf("worker after SIGTERM: %v", err)
		}
	}
	if got := len(h.smtp.RecipientCounts()); got != n {
		t.Fatalf("%d of %d readers reached the server", got, n)
	}
}

// startWorker starts a `newsletter worker` process with extra environment.
func (h *harness) startWorker(extra []string) *exec.Cmd {
	h.t.Helper()
	cmd := h.proc(extra, "worker", "--poll", "50ms")
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	return cmd
}

// waitWorkersSending waits until the registry lists exactly n live workers
// sending an edition.
func (h *harness) waitWorkersSending(n int) {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var live int
		if err := h.db.Get(&live, `SELECT count(*) FROM workers WHERE edition IS NOT NULL`); err != nil {
			h.t.Fatal(err)
		}
		if live == n {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("the registry lists %d workers sending, want %d", live, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rateOver waits for d and returns the messages per second the test server
// received in that time, by its receive times.
func (h *harness) rateOver(d time.Duration) float64 {
	from := time.Now()
	time.Sleep(d)
	to := time.Now()
	count := 0
	for _, m := range h.smtp.Messages() {
		if !m.At.Before(from) && m.At.Before(to) {
			count++
		}
	}
	return float64(count) / to.Sub(from).Seconds()
}

// checkFleetRate fails the test when the fleet's total is over its limit.
// Not a performance bound: without sharing, each worker would be allowed the
// fleet's whole rate. The lower bound only says the fleet is sending.
func checkFleetRate(t *testing.T, what string, got, limit float64) {
	t.Helper()
	if got > 1.5*limit {
		t.Fatalf("%s sent %.1f msgs/s in all under NEWSLETTER_RATE=%g: the limit is not shared", what, got, limit)
	}
	if got < limit/4 {
		t.Fatalf("%s sent %.1f msgs/s in all under NEWSLETTER_RATE=%g: hardly sending", what, got, limit)
	}
}
