package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
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
