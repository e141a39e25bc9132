package main

import (
	"strings"
	"testing"
)

// The desk's accounts from the command line: the password from standard
// input, the token as the last line, each change in the audit record.
func TestEditorsCommands(t *testing.T) {
	h := newHarness(t)
	h.must("migrate")
	orig := passwordInput
	t.Cleanup(func() { passwordInput = orig })
	passwordInput = strings.NewReader("a long enough password\n")
	h.must("editors", "add", "chief@news.example", "--role", "admin")
	passwordInput = strings.NewReader("short\n")
	if code, _, errs := h.run("editors", "add", "ed@news.example"); code == 0 || !strings.Contains(errs, "at least 12") {
		t.Fatalf("a short password: exit %d, %q", code, errs)
	}
	passwordInput = strings.NewReader("another long password\n")
	h.must("editors", "add", "ed@news.example")
	out := h.must("editors", "token", "ed@news.example", "--name", "cms")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	tok := lines[len(lines)-1]
	if !strings.HasPrefix(tok, "nlt_") || len(tok) < 40 {
		t.Fatalf("the token's line: %q", out)
	}
	if out := h.must("editors", "list"); !strings.Contains(out, "chief@news.example") || !strings.Contains(out, "admin") || !strings.Contains(out, "ed@news.example") {
		t.Fatalf("list: %q", out)
	}
	h.must("editors", "revoke", "cms")
	if code, _, _ := h.run("editors", "revoke", "cms"); code == 0 {
		t.Fatal("revoking twice succeeded")
	}
	if code, _, errs := h.run("editors", "remove", "chief@news.example"); code == 0 || !strings.Contains(errs, "last admin") {
		t.Fatalf("removing the last admin: exit %d %q", code, errs)
	}
	h.must("editors", "remove", "ed@news.example")
	audit := h.must("audit")
	for _, want := range []string{"editor.add\tchief@news.example", "token.add\tcms", "token.revoke\tcms", "editor.remove\ted@news.example"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit has no %q:\n%s", want, audit)
		}
	}
	if strings.Contains(audit, tok) || strings.Contains(audit, "long enough password") {
		t.Fatal("the audit record holds a secret")
	}
}
