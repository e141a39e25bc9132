package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"newsletter/delivery"
)

// A send without a window has no deadline: NULL in the database, no send_by
// in `status --json`, "no deadline" in the text; its temporary failures are
// still retried until their attempts run out.
func TestSendWithoutWindowHasNoDeadline(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.smtp.RejectRcpt("zoe@example.com", 451, "4.3.0", "try later")
	h.must("send", "--date", "2025-11-13", "--send-window", "0", "--max-attempts", "3")
	var sendBy *time.Time
	if err := h.db.Get(&sendBy, `SELECT send_by FROM editions WHERE date = '2025-11-13'`); err != nil {
		t.Fatal(err)
	}
	if sendBy != nil {
		t.Errorf("send_by %v in the database, want NULL", sendBy)
	}
	if st, attempts := h.deliveryStatus("zoe@example.com"); st != "failed" || attempts != 3 {
		t.Errorf("zoe: %s after %d attempts, want failed after 3", st, attempts)
	}
	var rep map[string]any
	out := h.must("status", "--date", "2025-11-13", "--json")
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if v := rep["send_by"]; v != nil {
		t.Errorf("status --json: send_by %v, want none", v)
	}
	if out := h.must("status", "--date", "2025-11-13"); !strings.Contains(out, "send by:   no deadline\n") {
		t.Errorf("status: %q, want it to say there is no deadline", out)
	}
}

// `status` lists the live workers and what they do: a worker process is
// listed sending the edition at its rate over its connections, and no
// longer once it stopped.
func TestStatusListsLiveWorkers(t *testing.T) {
	h := newHarness(t)
	h.setup()
	for _, a := range confirmedAddrs {
		h.smtp.Stall(a, time.Second)
	}
	h.must("send", "--date", "2025-11-13", "--enqueue-only")
	worker := h.proc([]string{"NEWSLETTER_RATE=40", "NEWSLETTER_SMTP_CONNS=3"}, "worker", "--poll", "50ms")
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Workers []struct {
			Host, Version, Edition string
			PID                    int
			Rate                   float64
			Conns                  int
			Age                    float64 `json:"heartbeat_age_seconds"`
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(rep.Workers) == 0 || rep.Workers[0].Edition == "" {
		if time.Now().After(deadline) {
			t.Fatalf("status --json never listed the worker sending: %+v", rep)
		}
		time.Sleep(20 * time.Millisecond)
		if err := json.Unmarshal([]byte(h.must("status", "--date", "2025-11-13", "--json")), &rep); err != nil {
			t.Fatal(err)
		}
	}
	w := rep.Workers[0]
	if len(rep.Workers) != 1 || w.PID != worker.Process.Pid || w.Edition != "2025-11-13" || w.Rate != 40 || w.Conns != 3 || w.Version == "" || w.Host == "" {
		t.Fatalf("status --json listed %+v; want the worker (pid %d) sending 2025-11-13 at 40 over 3", rep.Workers, worker.Process.Pid)
	}
	text := h.must("status", "--date", "2025-11-13")
	if want := fmt.Sprintf("pid %d (", worker.Process.Pid); !strings.Contains(text, "workers 1 live\n") || !strings.Contains(text, want) ||
		!strings.Contains(text, "sending 2025-11-13 at 40 msgs/s over 3 connections") {
		t.Fatalf("status: %q; want the worker, what it sends, its rate and connections", text)
	}
	worker.Process.Signal(syscall.SIGTERM)
	if err := worker.Wait(); err != nil {
		t.Fatalf("worker after SIGTERM: %v", err)
	}
	if text := h.must("status", "--date", "2025-11-13"); !strings.Contains(text, "workers 0 live\n") {
		t.Fatalf("status after the worker stopped: %q", text)
	}
}

// Once an edition's deliveries are pruned, `status` still tells its counts
// and its failures by reply code, from the summary, and says the list of
// recipients went with them.
func TestStatusOfAPrunedEdition(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.smtp.RejectRcpt("zoe@example.com", 550, "5.1.1", "no such user")
	h.must("send", "--date", "2025-11-13")
	before := h.must("status", "--date", "2025-11-13")
	q := &delivery.Queue{DB: h.db}
	p, err := q.Prune(context.Background(), delivery.Retention{Months: 13}, time.Now().AddDate(0, 15, 0), time.Second)
	if err != nil || len(p.Partitions) == 0 {
		t.Fatalf("prune: %+v, %v", p, err)
	}
	out := h.must("status", "--date", "2025-11-13", "--undelivered")
	counts := before[strings.Index(before, "recipients "):]
	counts = counts[:strings.Index(counts, "\n")+1]
	for _, want := range []string{counts, "deliveries pruned", "  550 5.1.1 refused: 1\n", "no list of recipients"} {
		if !strings.Contains(out, want) {
			t.Errorf("status of the pruned edition lacks %q:\n%s", want, out)
		}
	}
	var rep struct {
		Pruned   bool
		Failures []delivery.Failure
	}
	if err := json.Unmarshal([]byte(h.must("status", "--date", "2025-11-13", "--json")), &rep); err != nil ||
		!rep.Pruned || len(rep.Failures) != 1 || rep.Failures[0].Code != 550 {
		t.Errorf("status --json of the pruned edition: %+v, %v", rep, err)
	}
}
