package edition

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzHTMLBlocks: whatever a feed's HTML holds, the cleaner does not
// panic and makes blocks an edition accepts (one line of valid text each,
// of a known kind); it counts at most one dropped element per tag; and a
// self-closing skipped element ("<svg/>") at a block boundary costs
// nothing at all.
func FuzzHTMLBlocks(f *testing.F) {
	for _, s := range []string{
		"<p>One</p><p>Two</p>",
		"<h2>Head</h2><figure><img src=x><figcaption>Cap</figcaption></figure><p>a &lt;b&gt; c</p>",
		"<p>One</p><svg><text>x</text><p>Two</p>",
		"<p>One</p><script>if (a < b) { x = '</p>' }</script><p>Two</p>",
		"<iframe src='a'><p>x</p><iframe>y</iframe>",
		"<!-- c --><!doctype x><?pi?><xhtml:p>ns</xhtml:p>",
		"a < b <<p>c",
		"<p title='>'>quoted</p><br/>",
		"<svg/><svg><svg></svg></svg>",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		blocks, dropped := cleanHTML(s)
		for i, b := range blocks {
			switch b.Kind {
			case Paragraph, Caption, Heading:
			default:
				t.Fatalf("block %d: kind %q", i, b.Kind)
			}
			if b.Text == "" || !utf8.ValidString(b.Text) || oneLine(b.Text) != b.Text {
				t.Fatalf("block %d: text %q is not one line of valid text", i, b.Text)
			}
			if err := checkLine("block", b.Text); err != nil {
				t.Fatalf("block %d: %v", i, err)
			}
		}
		if dropped < 0 || dropped > strings.Count(s, "<") {
			t.Fatalf("dropped %d with %d tags", dropped, strings.Count(s, "<"))
		}
		// A self-closing skipped element between two paragraphs
		// changes nothing.
		if !strings.ContainsAny(s, "<>\"'&") {
			plain, _ := cleanHTML("<p>" + s + "</p><p>" + s + "</p>")
			withSVG, n := cleanHTML("<p>" + s + "</p><svg/><iframe src='x'/><p>" + s + "</p>")
			if n != 0 || len(plain) != len(withSVG) {
				t.Fatalf("self-closing elements changed %q: %d blocks, %d dropped; want %d, 0", s, len(withSVG), n, len(plain))
			}
			for i := range plain {
				if plain[i] != withSVG[i] {
					t.Fatalf("self-closing elements changed block %d: %q, want %q", i, withSVG[i].Text, plain[i].Text)
				}
			}
		}
	})
}
