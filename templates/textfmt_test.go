package templates

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestWrap(t *testing.T) {
	for _, c := range []struct {
		width int
		in    string
		want  string
	}{
		{20, "", ""},
		{20, "one", "one"},
		{20, "  the quick\n\nbrown   fox jumps over the lazy dog ", "the quick brown fox\njumps over the lazy\ndog"},
		// Exactly width fits.
		{9, "abcd efgh ijkl", "abcd efgh\nijkl"},
		// A long word, a URL say, has a line of its own and is not broken.
		{10, "see https://example.com/a/long/path now", "see\nhttps://example.com/a/long/path\nnow"},
		// Width counts runes, not bytes.
		{5, "ééé ééé", "ééé\nééé"},
	} {
		if got := wrap(c.width, c.in); got != c.want {
			t.Errorf("wrap(%d, %q) = %q, want %q", c.width, c.in, got, c.want)
		}
	}
}

func TestWrapHardBreaksOnlyPathologicalWords(t *testing.T) {
	url := "https://example.com/" + strings.Repeat("a", maxWordBytes-20)
	if got := wrap(72, url); got != url {
		t.Error("a URL of maxWordBytes was broken")
	}
	for _, word := range []string{strings.Repeat("x", 5000), strings.Repeat("é", 2000), strings.Repeat("🙂", 1000)} {
		got := hang(72, "  ", "a "+word+" b")
		if strings.ReplaceAll(strings.ReplaceAll(got, "\n", ""), " ", "") != "a"+word+"b" {
			t.Error("hard-breaking lost or changed text")
		}
		for _, line := range strings.Split(got, "\n") {
			if len(line) > 998 || !utf8.ValidString(line) {
				t.Errorf("line of %d bytes (valid UTF-8: %v)", len(line), utf8.ValidString(line))
			}
		}
	}
}

func TestHang(t *testing.T) {
	got := hang(20, "- ", "one two three four five six")
	want := "- one two three four\n  five six"
	if got != want {
		t.Errorf("hang = %q, want %q", got, want)
	}
	if got := hang(30, "View in browser: ", "https://example.com/a/long/edition/url"); got != "View in browser:\n                 https://example.com/a/long/edition/url" &&
		got != "View in browser: https://example.com/a/long/edition/url" {
		t.Errorf("hang with a long word = %q", got)
	}
}

func TestUnderline(t *testing.T) {
	if got, want := underline("=", "Headline"), "Headline\n========"; got != want {
		t.Errorf("underline = %q, want %q", got, want)
	}
	if got, want := underline("-", "a long first\nshort"), "a long first\nshort\n------------"; got != want {
		t.Errorf("underline = %q, want %q", got, want)
	}
	if got, want := underline("-", "Zoë"), "Zoë\n---"; got != want {
		t.Errorf("underline counts bytes: %q", got)
	}
}

func TestDates(t *testing.T) {
	d := time.Date(2025, 11, 13, 0, 0, 0, 0, time.UTC)
	if got := longDate(d); got != "Thursday, 13 November 2025" {
		t.Errorf("longDate = %q", got)
	}
	if got := isoDate(d); got != "2025-11-13" {
		t.Errorf("isoDate = %q", got)
	}
}

func TestExcerpt(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly ten", 11, "exactly ten"},
		{"one two three four", 10, "one two…"},
		{"word, word, word", 12, "word, word…"},
		{"unbrokenwordthatislong", 5, "unbro…"},
		{"ééééé ééééé", 8, "ééééé…"},
	} {
		if got := excerpt(c.in, c.n); got != c.want {
			t.Errorf("excerpt(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}
