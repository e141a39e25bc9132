package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// The operator's round trip: add by hand (the subscriber leaves the list
// of those mailed), see it listed with its note, remove it; an erasure is
// listed without its address; bad input is refused with what to fix.
func TestSuppressionCommands(t *testing.T) {
	h := newHarness(t)
	h.must("migrate")
	h.must("subscribers", "import", "--status", "confirmed", writeCSV(t, "email,name\nann@example.com,Ann\nbob@example.com,Bob\n"))
	if out := h.must("suppression", "add", "Ann@Example.com", "--note", "asked by phone"); !strings.Contains(out, "added to the suppression list (manual)") || !strings.Contains(out, "taken out of every send") {
		t.Fatalf("add: %q", out)
	}
	if out := h.must("subscribers", "list", "--status", "confirmed"); strings.Contains(out, "ann@") || !strings.Contains(out, "bob@example.com") {
		t.Fatalf("confirmed after suppression: %q", out)
	}
	h.must("subscribers", "erase", "bob@example.com")
	out := h.must("suppression", "list")
	if !strings.Contains(out, "manual\tann@example.com\tasked by phone") || !strings.Contains(out, "erased\t(erased) ") || strings.Contains(out, "bob@") {
		t.Fatalf("list: %q", out)
	}
	js := h.must("suppression", "list", "--json")
	for _, line := range strings.Split(strings.TrimSpace(js), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil || e["reason"] == nil {
			t.Fatalf("--json line %q: %v", line, err)
		}
	}
	for _, args := range [][]string{
		{"suppression", "add", "not-an-address"},
		{"suppression", "add", "c@example.com", "--reason", "erased"},
		{"suppression", "remove", "nobody@example.com"},
	} {
		if code, _, errs := h.run(args...); code == 0 || errs == "" {
			t.Errorf("%v: exit %d, %q", args, code, errs)
		}
	}
	h.must("suppression", "remove", "ann@example.com")
	if out := h.must("suppression", "list"); strings.Contains(out, "ann@") {
		t.Fatalf("after remove: %q", out)
	}
	if out := h.must("subscribers", "list", "--status", "unsubscribed"); !strings.Contains(out, "ann@example.com") {
		t.Fatalf("remove re-subscribed them: %q", out)
	}
}
