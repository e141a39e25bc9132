package smtpclient

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// stuffedReference is the stuffing rule read literally, line start by line
// start (a bare CR starts a line too), as the oracle for dotStuffed.
func stuffedReference(s string) bool {
	for i := 0; i < len(s); i++ {
		if (i == 0 || s[i-1] == '\n' || s[i-1] == '\r') && s[i] == '.' {
			if i+1 >= len(s) || s[i+1] != '.' {
				return false
			}
			i++ // the stuffed dot; what follows does not start a line
		}
	}
	return true
}

// However the data is split into pieces, the stuffing check agrees with the
// rule.
func TestDotStuffedParts(t *testing.T) {
	samples := []string{
		"", "a\r\nb\r\n", "..a\r\n", ".a\r\n", "a\r\n.\r\nMAIL FROM:<x>", "a\r\n..\r\n",
		"a\r\n...\r\n", "a.b. c.\r\n", "a\n.\n", "a\r.\r\n", "a\r\n.", "a\r\n..", ".", "..",
		"x\r\n..y\r\n.z", "\r\n.\r\n", "a\r\n..\r\n..\r\n.",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		var b strings.Builder
		for range rng.IntN(20) {
			b.WriteString([]string{".", "..", "\r\n", "\n", "\r", "a"}[rng.IntN(6)])
		}
		samples = append(samples, b.String())
	}
	for _, s := range samples {
		want := stuffedReference(s)
		for range 20 {
			var parts [][]byte
			rest := []byte(s)
			for len(rest) > 0 {
				n := rng.IntN(len(rest) + 1)
				parts = append(parts, rest[:n]) // empty parts too
				rest = rest[n:]
			}
			if got := dotStuffed(parts); got != want {
				t.Fatalf("dotStuffed(%q) = %v, the rule says %v", parts, got, want)
			}
		}
	}
}
