package templates

import (
	"strings"
	"time"
	"unicode/utf8"
)

// maxWordBytes is where wrap hard-breaks a word. RFC 5322 allows 998 octets
// per line; breaking well below that leaves room for an indent and the
// text around a word, so even a pathological run of non-spaces (a data: URL,
// a pasted hash) can't produce an over-long line. Anything shorter, URLs
// included, is never broken: a broken URL stops working.
const maxWordBytes = 900

// wrap fills text into lines of at most width runes. Runs of whitespace,
// newlines included, collapse to one space, so the source's own line breaks
// don't show. A word longer than width gets a line of its own, unbroken
// unless longer than maxWordBytes. Lines are joined with "\n" and there is
// no trailing newline.
func wrap(width int, text string) string {
	return hang(width, "", text)
}

// hang wraps text like wrap, with prefix before the first line and as many
// spaces before each later one, so "- " gives a list item whose continuation
// lines align under its text. width includes the prefix.
func hang(width int, prefix, text string) string {
	indent := strings.Repeat(" ", utf8.RuneCountInString(prefix))
	avail := width - utf8.RuneCountInString(prefix)
	if avail < 1 {
		avail = 1
	}
	var b strings.Builder
	b.Grow(len(text) + len(text)/width*(len(indent)+1) + len(prefix))
	b.WriteString(prefix)
	col := 0 // runes on the current line after the prefix or indent
	newline := func() {
		b.WriteByte('\n')
		b.WriteString(indent)
		col = 0
	}
	for _, word := range strings.Fields(text) {
		for _, piece := range splitLongWord(word) {
			n := utf8.RuneCountInString(piece)
			switch {
			case col == 0:
			case col+1+n <= avail:
				b.WriteByte(' ')
				col++
			default:
				newline()
			}
			b.WriteString(piece)
			col += n
		}
	}
	return b.String()
}

// splitLongWord returns word in pieces of at most maxWordBytes, cut on rune
// boundaries; nearly always just the word.
func splitLongWord(word string) []string {
	if len(word) <= maxWordBytes {
		return []string{word}
	}
	var pieces []string
	for len(word) > maxWordBytes {
		cut := maxWordBytes
		for cut > 0 && !utf8.RuneStart(word[cut]) {
			cut--
		}
		pieces = append(pieces, word[:cut])
		word = word[cut:]
	}
	return append(pieces, word)
}

// underline puts under text a line of ch as wide as its widest line: the
// plain-text way of marking a headline ("=") or a subhead ("-").
func underline(ch, text string) string {
	width := 0
	for line := range strings.Lines(text) {
		width = max(width, utf8.RuneCountInString(strings.TrimRight(line, "\n")))
	}
	if ch == "" {
		ch = "-"
	}
	return text + "\n" + strings.Repeat(ch, width)
}

// longDate writes an edition's date the way readers see it in both parts and
// on the web: "Thursday, 13 November 2025".
func longDate(t time.Time) string { return t.Format("Monday, 2 January 2006") }

// isoDate is the YYYY-MM-DD form used in edition URLs (/editions/2025-11-13).
func isoDate(t time.Time) string { return t.Format("2006-01-02") }

// oneLine collapses every run of whitespace, CR and LF included, to a single
// space and trims the ends: for the subject header and the preheader.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// preheaderLen is roughly how much of the preheader an inbox shows next to
// the subject; more is cut at a word boundary.
const preheaderLen = 100

// excerpt returns s on one line, cut at a word boundary to at most n runes
// plus an ellipsis.
func excerpt(s string, n int) string {
	s = oneLine(s)
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	// Byte offset of rune n.
	cut, i := 0, 0
	for off := range s {
		if i == n {
			cut = off
			break
		}
		i++
	}
	if sp := strings.LastIndexByte(s[:cut], ' '); sp > 0 {
		cut = sp
	}
	return strings.TrimRight(s[:cut], " ,;:.-") + "…"
}
