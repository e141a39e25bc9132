package main

// Tests that run the newsletter binary as separate processes and do to them
// what production does: SIGKILL at random points, SIGTERM, several workers
// at once, PostgreSQL restarted under a send.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"newsletter/internal/pgtest"
	"newsletter/internal/smtptest"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// binary builds the newsletter command once per test run (without the race
// detector: these tests are about processes, and speed matters).
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "newsletter-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "newsletter")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// proc prepares the binary with the harness's environment plus extra; the
// caller runs it (Output, CombinedOutput or Start).
func (h *harness) proc(extra []string, args ...string) *exec.Cmd {
	cmd := exec.Command(binary(h.t), args...)
	cmd.Env = append(os.Environ(), extra...)
	h.t.Cleanup(func() {
		if cmd.Process != nil && cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd
}

// bigList imports n confirmed subscribers and the seed edition.
func (h *harness) bigList(n int) {
	h.t.Helper()
	h.readers(n)
	h.must("edition", "import", seedPath)
}

// readers migrates and imports n confirmed subscribers,
// reader000000@example.com and on.
func (h *harness) readers(n int) {
	h.t.Helper()
	h.must("migrate")
	var csv strings.Builder
	csv.WriteString("email,status\n")
	for i := range n {
		fmt.Fprintf(&csv, "reader%06d@example.com,confirmed\n", i)
	}
	h.must("subscribers", "import", h.file("readers.csv", csv.String()))
}

// allDeliveredOnce checks every recipient got the edition and returns how
// many extra copies went out in all.
func allDelivered(t *testing.T, db *sqlx.DB, srv *smtptest.Server, n int) (duplicates int) {
	t.Helper()
	counts := srv.RecipientCounts()
	for i := range n {
		c := counts[fmt.Sprintf("reader%06d@example.com", i)]
		if c == 0 {
			t.Fatalf("reader%06d never got the edition", i)
		}
		duplicates += c - 1
	}
	var sent int
	db.Get(&sent, `SELECT count(*) FROM deliveries WHERE status = 'sent'`)
	if sent != n {
		t.Fatalf("%d deliveries recorded sent, want %d", sent, n)
	}
	return duplicates
}

// waitAccepted waits for the server to have accepted n messages in all
// (WaitFor needs the messages kept; this works WithDiscard too).
func waitAccepted(t *testing.T, srv *smtptest.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for srv.Accepted() < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d messages accepted after a minute", srv.Accepted(), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

const (
	testConns = 2
	testGroup = 50 // delivery.Worker's default Group: results recorded per group
)

// SIGKILL at random points of a 20,000-recipient send, ten times, each
// followed at once by a restart: everyone is delivered, and the duplicates
// are no more than the messages in flight when each kill came (a group per
// connection). The leases stay the default five minutes: the killed
// processes' leases come back because the registry of workers finds them
// dead (each is named in a later process's log), not because they expired.
func TestKilledSendLosesNobody(t *testing.T) {
	h := newHarness(t)
	const n = 20000
	h.smtp = smtptest.Start(t, smtptest.WithDiscard())
	t.Setenv("SMTP_URL", fmt.Sprintf("smtp://%s?tls=none", h.smtp.Addr()))
	h.bigList(n)
	env := []string{"NEWSLETTER_LEASE_TTL=5m", fmt.Sprintf("NEWSLETTER_SMTP_CONNS=%d", testConns)}
	var logs strings.Builder // every process's stderr, one after the other
	var killed []int
	for kill := range 10 {
		cmd := h.proc(env, "send", "--date", "2025-11-13")
		cmd.Stderr = &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// A random point: after some messages of this run went out.
		before := h.smtp.Accepted()
		target := before + 200 + rand.IntN(1200)
		deadline := time.Now().Add(30 * time.Second)
		for h.smtp.Accepted() < target && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		killed = append(killed, cmd.Process.Pid)
		t.Logf("kill %d after %d messages in all", kill+1, h.smtp.Accepted())
	}
	remaining := n - h.smtp.Accepted()
	cmd := h.proc(env, "send", "--date", "2025-11-13")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &logs
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("final send: %v\n%s\n%s", err, out.String(), logs.String())
	}
	t.Logf("the final send took %s for the %d messages left: %s", time.Since(start).Round(time.Millisecond), remaining, out.String())
	dups := allDelivered(t, h.db, h.smtp, n)
	// Per crash, per connection: the group being sent and the one being
	// recorded meanwhile.
	bound := 10 * testConns * 2 * testGroup
	t.Logf("%d duplicates after 10 kills (bound %d)", dups, bound)
	if dups > bound {
		t.Fatalf("%d duplicates, more than the %d messages that can be in flight at 10 kills", dups, bound)
	}
	deadReturned(t, logs.String(), killed)
	var rows int
	h.db.Get(&rows, `SELECT count(*) FROM workers`)
	if rows != 0 {
		t.Fatalf("%d rows left in workers, want none: the dead removed, the last one gone", rows)
	}
}

// deadReturned checks the logs say that each killed process's leases were
// returned because it was found dead.
func deadReturned(t *testing.T, logs string, pids []int) {
	t.Helper()
	returned := 0
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, "returned the leases of a dead worker") {
			continue
		}
		for i, pid := range pids {
			if strings.Contains(line, fmt.Sprintf(" pid=%d ", pid)) {
				pids = append(pids[:i], pids[i+1:]...)
				_, count, _ := strings.Cut(line, "deliveries=")
				n, _ := strconv.Atoi(strings.TrimSpace(count))
				returned += n
				break
			}
		}
	}
	if len(pids) > 0 {
		t.Fatalf("no process said it found the killed %v dead:\n%s", pids, logs)
	}
	t.Logf("%d deliveries returned from the killed processes", returned)
}

// Three worker processes on one edition: each recipient exactly once.
func TestThreeWorkersShareAnEdition(t *testing.T) {
	h := newHarness(t)
	const n = 3000
	h.smtp = smtptest.Start(t, smtptest.WithDiscard())
	t.Setenv("SMTP_URL", fmt.Sprintf("smtp://%s?tls=none", h.smtp.Addr()))
	h.bigList(n)
	var wg sync.WaitGroup
	outs := make([]string, 3)
	for i := range 3 {
		cmd := h.proc(nil, "send", "--date", "2025-11-13")
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := cmd.CombinedOutput()
			outs[i] = string(b)
			if err != nil {
				t.Errorf("send %d: %v\n%s", i, err, b)
			}
		}()
	}
	wg.Wait()
	if dups := allDelivered(t, h.db, h.smtp, n); dups != 0 {
		t.Fatalf("%d duplicates with three workers, want none", dups)
	}
	for i, o := range outs {
		if !strings.Contains(o, "sent ") {
			t.Errorf("worker %d printed %q", i, o)
		}
	}
}

// SIGTERM mid-send: the messages in flight finish, the leases are handed
// back, exit 0; a rerun completes the edition with nobody sent twice.
// signalMidSend starts a send of the n recipients of bigList, each 5ms at
// the server, signals it once after messages were accepted, and returns
// its exit status and output.
func (h *harness) signalMidSend(n, after int, sig os.Signal) (int, string) {
	h.t.Helper()
	for i := range n {
		h.smtp.Stall(fmt.Sprintf("reader%06d@example.com", i), 5*time.Millisecond)
	}
	cmd := h.proc(nil, "send", "--date", "2025-11-13")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.smtp.WaitFor(h.t, after, 30*time.Second)
	cmd.Process.Signal(sig)
	cmd.Wait()
	return cmd.ProcessState.ExitCode(), out.String()
}

func TestTerminatedSendStopsCleanly(t *testing.T) {
	h := newHarness(t)
	const n = 400
	h.bigList(n)
	if code, out := h.signalMidSend(n, 50, syscall.SIGTERM); code != exitInterrupted {
		t.Fatalf("SIGTERM: exit %d, want %d (a clean stop, recipients left)\n%s", code, exitInterrupted, out)
	}
	var leased, sent int
	h.db.Get(&leased, `SELECT count(*) FROM deliveries WHERE status = 'sending'`)
	h.db.Get(&sent, `SELECT count(*) FROM deliveries WHERE status = 'sent'`)
	if leased != 0 || sent != len(h.smtp.Messages()) || sent == n {
		t.Fatalf("after SIGTERM: %d leased, %d recorded sent, %d accepted; want 0 leased and records = accepted < %d", leased, sent, len(h.smtp.Messages()), n)
	}
	for i := range n {
		h.smtp.Stall(fmt.Sprintf("reader%06d@example.com", i), 0)
	}
	h.must("send", "--date", "2025-11-13")
	if dups := allDelivered(t, h.db, h.smtp, n); dups != 0 {
		t.Fatalf("%d duplicates after a graceful stop, want none", dups)
	}
}

// PostgreSQL restarted under a running send: the workers reconnect and
// finish, nobody lost.
func TestSendSurvivesDatabaseRestart(t *testing.T) {
	cl, err := pgtest.NewCluster()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Stop)
	h := newHarness(t)
	h.db.Close()
	h.db, err = sqlx.Open("postgres", cl.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("DATABASE_URL", cl.URL)
	const n = 1500
	h.smtp = smtptest.Start(t, smtptest.WithDiscard())
	t.Setenv("SMTP_URL", fmt.Sprintf("smtp://%s?tls=none", h.smtp.Addr()))
	h.bigList(n)
	for i := range n {
		h.smtp.Stall(fmt.Sprintf("reader%06d@example.com", i), time.Millisecond)
	}
	cmd := h.proc(nil, "send", "--date", "2025-11-13")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitAccepted(t, h.smtp, 200)
	if err := cl.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted PostgreSQL after %d messages", h.smtp.Accepted())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("send across a database restart: %v\n%s", err, out.String())
		}
	case <-ctx.Done():
		t.Fatal("the send did not finish after the database came back")
	}
	if dups := allDelivered(t, h.db, h.smtp, n); dups != 0 {
		t.Fatalf("%d duplicates across a database restart, want none", dups)
	}
}
