package main

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
)

func TestWeakSecret(t *testing.T) {
	for _, s := range []string{
		strings.Repeat("a", 32),
		strings.Repeat("ab", 20),
		strings.Repeat("abcdefghij", 4),
		"abcdefghijklmnopqrstuvwxyz0123456789",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaabcdefgh",
		"zyxwvutsrqponmlkjihgfedcba9876543210",
		"aabbccddeeffgghhiijjkkllmmnnoopp",
	} {
		if weakSecret(s) == "" {
			t.Errorf("%q passes as a secret", s)
		}
	}
	for _, s := range []string{testSecret, "correct horse battery staple, and then some"} {
		if why := weakSecret(s); why != "" {
			t.Errorf("%q refused: %s", s, why)
		}
	}
	// What `newsletter secret` prints, and its shortest acceptable form.
	for range 2000 {
		for _, n := range []int{32, 16} {
			b := make([]byte, n)
			rand.Read(b)
			if s := hex.EncodeToString(b); weakSecret(s) != "" {
				t.Fatalf("a random secret %q refused: %s", s, weakSecret(s))
			}
		}
	}
}

// A guessable secret is refused at start, without being quoted, with the
// way to a good one.
func TestWeakSecretRefusedAtStart(t *testing.T) {
	h := newHarness(t)
	weak := strings.Repeat("x", 32)
	t.Setenv("NEWSLETTER_SECRET", weak)
	code, _, errs := h.run("serve")
	if code == 0 || !strings.Contains(errs, "NEWSLETTER_SECRET") || !strings.Contains(errs, "newsletter secret") {
		t.Fatalf("exit %d, stderr %q; want a refusal pointing to `newsletter secret`", code, errs)
	}
	if strings.Contains(errs, weak) {
		t.Fatal("the error quotes the secret")
	}
}
