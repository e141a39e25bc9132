package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeCSV(t *testing.T, content string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "list.csv")
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// Cells a spreadsheet would run as formulas are written as text, and -h
// says so.
func TestSubscribersListNeutralisesFormulas(t *testing.T) {
	h := newHarness(t)
	h.must("migrate")
	h.must("subscribers", "import", writeCSV(t, "email,name\n"+
		"a@example.com,\"=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\"\n"+
		"b@example.com,+cmd|' /C calc'!A0\n"+
		"c@example.com,@SUM(1+1)\n"+
		"-minus@example.com,-2+3\n"+
		"=d@example.com,Plain\n"))
	out := h.must("subscribers", "list")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		for _, cell := range strings.Split(line, "\t") {
			if cell != "" && strings.ContainsRune("=+-@", rune(cell[0])) {
				t.Errorf("cell %q of %q starts a formula", cell, line)
			}
		}
	}
	if !strings.Contains(out, "'=HYPERLINK(") || !strings.Contains(out, "'-minus@example.com\t'-2+3") || !strings.Contains(out, "'=d@example.com") {
		t.Fatalf("list: %q", out)
	}
	_, stdout, stderr := h.run("subscribers", "list", "-h")
	if !strings.Contains(stdout+stderr, "formula") {
		t.Errorf("subscribers list -h says nothing of formulas: %q %q", stdout, stderr)
	}
}

// A re-import of the same people, in several batches, reports them
// unchanged, not added.
func TestSubscribersReimportCounts(t *testing.T) {
	h := newHarness(t)
	h.must("migrate")
	var b strings.Builder
	b.WriteString("email,name\n")
	for i := range 1200 {
		fmt.Fprintf(&b, "reader%d@example.com,Reader\n", i)
	}
	file := writeCSV(t, b.String())
	if out := h.must("subscribers", "import", file); !strings.Contains(out, "1200 added") {
		t.Fatalf("first import: %q", out)
	}
	if out := h.must("subscribers", "import", file); !strings.Contains(out, "0 added, 0 updated, 1200 unchanged") {
		t.Fatalf("re-import: %q", out)
	}
}
