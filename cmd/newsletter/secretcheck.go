package main

import (
	"fmt"
	"strings"
)

// Secrets a person typed rather than generated: the length check alone
// (subscribers.MinSecretLen) lets through 32 identical characters or the
// alphabet, which anyone can guess. These thresholds are far from what
// `newsletter secret` prints (64 hex digits: about 16 different ones, a
// run or repeat at about one place in five), so a generated secret never
// trips them.
const (
	// minSecretDistinct is the fewest different characters a secret may
	// have.
	minSecretDistinct = 8
	// minSecretFresh is the fewest characters that are neither the one
	// before them nor its neighbour in the character set ("aa", "ab",
	// "ba"). A secret that repeats a shorter one is refused apart.
	minSecretFresh = 16
)

// weakSecret says why s is obviously guessable, or "" when it is not.
// It never quotes s.
func weakSecret(s string) string {
	distinct := map[rune]bool{}
	for _, r := range s {
		distinct[r] = true
	}
	if len(distinct) < minSecretDistinct {
		return fmt.Sprintf("it has only %d different characters", len(distinct))
	}
	if p := period(s); p > 0 && p < len(s) {
		return fmt.Sprintf("it repeats the same %d characters", p)
	}
	fresh := 0
	for i := range len(s) {
		if i == 0 {
			fresh++
			continue
		}
		if d := int(s[i]) - int(s[i-1]); d < -1 || d > 1 {
			fresh++
		}
	}
	if fresh < minSecretFresh {
		return "it is mostly runs of repeated or consecutive characters (like aaaa or abcd)"
	}
	return ""
}

// period is the length of the shortest prefix s is made of by repeating it
// (the last repetition may be cut short), when it repeats at least twice;
// 0 otherwise.
func period(s string) int {
	for p := 1; p <= len(s)/2; p++ {
		if strings.HasPrefix(s, s[p:]) {
			return p
		}
	}
	return 0
}
