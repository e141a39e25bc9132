package subscribers

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseRow feeds an import row's fields anything: a row it takes has an
// address in its one form (normalising it again changes nothing) with no
// control character, a name within the limit and already clean, and a
// status the table allows.
func FuzzParseRow(f *testing.F) {
	f.Add("ada@example.com", "Ada", "confirmed")
	f.Add("Dup@XN--BCHER-KVA.example", "=HYPERLINK(\"x\")", "")
	f.Add("\"a\x00b\"@example.com", "x\r\ny", "pending")
	f.Add("rene\u0301@example.com", strings.Repeat("n", 101), "UNSUBSCRIBED")
	cols := map[string]int{"email": 0, "name": 1, "status": 2}
	f.Fuzz(func(t *testing.T, email, name, status string) {
		e, n, st, err := parseRow([]string{email, name, status}, cols, Confirmed)
		if err != nil {
			return
		}
		if again, err := NormalizeAddress(e); err != nil || again != e {
			t.Fatalf("row %q took %q, which normalises to %q (%v)", email, e, again, err)
		}
		if strings.ContainsFunc(e+n, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("row %q/%q took a control character: %q %q", email, name, e, n)
		}
		if utf8.RuneCountInString(n) > MaxNameLen || n != CleanName(n) {
			t.Fatalf("name %q taken as %q", name, n)
		}
		if _, err := ParseStatus(string(st)); err != nil {
			t.Fatalf("status %q taken as %q", status, st)
		}
	})
}
