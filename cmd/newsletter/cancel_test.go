package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Scheduled sends and cancels over the API and the command line, carried
// out by two plain `serve` processes (no --worker, no worker process): a
// schedule replaced, then unscheduled by a cancel, then due, is started by
// one of them exactly once and sent; another edition sent with an "at" in
// the past starts at once and is cancelled half way, every recipient then
// sent or cancelled and none left, and it can be neither resumed nor sent
// again.
func TestScheduleAndCancelWithServeAlone(t *testing.T) {
	h := newHarness(t)
	const n = 200
	h.bigList(n)
	editor := h.editorToken("ed@news.example")
	t.Setenv("NEWSLETTER_LISTEN", "127.0.0.1:0")
	base, _ := h.serve(t)
	h.serve(t) // a second desk process, competing for the scheduled start
	c := &apiClient{t: t, base: base}

	at := func(d time.Duration) string {
		return fmt.Sprintf(`{"at": %q}`, time.Now().Add(d).UTC().Format(time.RFC3339))
	}
	if st := c.json(202, "POST", "/editions/2025-11-13/send", editor, "application/json", at(time.Hour)); st["state"] != "scheduled" || st["send_at"] == nil {
		t.Fatalf("schedule: %v", st)
	}
	c.json(202, "POST", "/editions/2025-11-13/send", editor, "application/json", at(2*time.Hour))
	if st := c.json(200, "POST", "/editions/2025-11-13/cancel", editor, "", ""); st["state"] != "draft" {
		t.Fatalf("cancel of a scheduled send: %v", st)
	}
	time.Sleep(3 * time.Second) // the desk processes look for due sends meanwhile
	if h.smtp.Accepted() != 0 {
		t.Fatalf("an unscheduled send went out: %d messages", h.smtp.Accepted())
	}
	c.json(202, "POST", "/editions/2025-11-13/send", editor, "application/json", at(2*time.Second))
	c.waitState("2025-11-13", editor, "finished", n)
	if d := allDelivered(t, h.db, h.smtp, n); d != 0 {
		t.Fatalf("%d copies sent twice", d)
	}
	audit := h.must("audit")
	if got := strings.Count(audit, "scheduler\tsend\t2025-11-13"); got != 1 {
		t.Fatalf("the scheduled send was started %d times:\n%s", got, audit)
	}
	for _, want := range []string{"ed@news.example\tschedule\t2025-11-13", "ed@news.example\tunschedule\t2025-11-13"} {
		if !strings.Contains(audit, want) {
			t.Errorf("the audit record has no %q:\n%s", want, audit)
		}
	}
	if strings.Count(audit, "\tschedule\t2025-11-13") != 3 {
		t.Errorf("want three schedule entries (one replaced):\n%s", audit)
	}

	// An "at" in the past sends now; the cancel comes half way.
	ed := c.json(200, "GET", "/editions/2025-11-13", editor, "", "")
	next := strings.Replace(editionJSON(t, ed), `"date":"2025-11-13`, `"date":"2025-11-14`, 1)
	c.json(201, "POST", "/editions", editor, "application/json", next)
	for i := range n {
		h.smtp.Stall(fmt.Sprintf("reader%06d@example.com", i), 20*time.Millisecond)
	}
	c.json(202, "POST", "/editions/2025-11-14/send", editor, "application/json", `{"at": "2020-01-01T00:00:00Z"}`)
	waitAccepted(t, h.smtp, n+n/3)
	if out := h.must("cancel", "--date", "2025-11-14"); !strings.Contains(out, "cancelled") {
		t.Fatalf("cancel: %s", out)
	}
	var st status14
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := json.Unmarshal([]byte(h.must("status", "--date", "2025-11-14", "--json")), &st); err != nil {
			t.Fatal(err)
		}
		if st.Counts.Queued+st.Counts.Sending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cancelled send still has recipients in flight: %+v", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	accepted := h.smtp.Accepted() - n
	if st.State != "cancelled" || st.CancelledBy != "cli" || st.Counts.Total != n || st.Counts.Cancelled == 0 ||
		st.Counts.Sent+st.Counts.Cancelled != n || st.Counts.Sent != int64(accepted) {
		t.Fatalf("after the cancel: %+v, the relay took %d", st, accepted)
	}
	time.Sleep(3 * time.Second)
	if h.smtp.Accepted()-n != accepted {
		t.Fatalf("%d messages went out after the cancel took effect", h.smtp.Accepted()-n-accepted)
	}
	c.refused(409, "conflict", "POST", "/editions/2025-11-14/resume", editor, "", "")
	c.refused(409, "conflict", "POST", "/editions/2025-11-14/send", editor, "", "")
	if out := h.must("status", "--date", "2025-11-14"); !strings.Contains(out, fmt.Sprintf("cancelled %d,", st.Counts.Cancelled)) ||
		!strings.Contains(out, "cancelled: ") {
		t.Fatalf("status text:\n%s", out)
	}
}

// status14 is what the test reads of `status --json`.
type status14 struct {
	State       string `json:"state"`
	CancelledBy string `json:"cancelled_by"`
	Counts      struct {
		Total, Sent, Queued, Sending, Cancelled int64
	} `json:"counts"`
}

// editorToken adds an editor's account and returns an API token of it.
func (h *harness) editorToken(email string) string {
	h.t.Helper()
	orig := passwordInput
	h.t.Cleanup(func() { passwordInput = orig })
	passwordInput = strings.NewReader("a long enough password\n")
	h.must("editors", "add", email, "--role", "editor")
	out := strings.TrimSpace(h.must("editors", "token", email, "--name", "cms"))
	return out[strings.LastIndex(out, "\n")+1:]
}
