package edition_test

import (
	"bytes"
	"errors"
	"fmt"
	"html"
	"io"
	"strings"
	"testing"
	"time"

	"newsletter/edition"
)

// rssWithContent is a one-item feed whose lead story's body is content
// (HTML, escaped here as a feed carries it).
func rssWithContent(content string) string {
	return `<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>Gazette</title>
<item><title>Lead story</title><pubDate>Thu, 13 Nov 2025 06:00:00 GMT</pubDate><description>Summary.</description>
<content:encoded>` + html.EscapeString(content) + `</content:encoded></item></channel></rss>`
}

func bodyTexts(e *edition.Edition) []string {
	var out []string
	for _, b := range e.Lead.Body {
		out = append(out, b.Text)
	}
	return out
}

// A stray self-closing or unclosed <svg>, <iframe> or <script> costs its
// own content, not every paragraph after it, and Read counts what was
// dropped.
func TestHTMLStrayElementKeepsWhatFollows(t *testing.T) {
	for _, c := range []struct {
		name, html string
		want       []string
		dropped    int
	}{
		{"self-closing svg", `<p>One</p><svg/><p>Two</p><p>Three</p>`, []string{"One", "Two", "Three"}, 0},
		{"self-closing iframe", `<p>One</p><iframe src="https://x.example/"/><p>Two</p>`, []string{"One", "Two"}, 0},
		{"self-closing script", `<p>One</p><script/><p>Two</p>`, []string{"One", "Two"}, 0},
		{"unclosed iframe", `<p>One</p><iframe src="https://x.example/"><p>Two</p><p>Three</p>`, []string{"One", "Two", "Three"}, 0},
		{"unclosed svg with text", `<p>One <svg><text>Logo</text></p><p>Two</p>`, []string{"One", "Two"}, 1},
		{"unclosed, closed later", `<p>One</p><svg><p>Two</p><svg>x</svg><p>Three</p>`, []string{"One", "Two", "Three"}, 1},
		{"closed script", `<p>One</p><script>document.write("<p>x</p>")</script><p>Two</p>`, []string{"One", "Two"}, 1},
		{"unclosed at the end", `<p>One</p><script>alert(1)`, []string{"One"}, 1},
	} {
		im, err := edition.Read(strings.NewReader(rssWithContent(c.html)), edition.ParseOptions{})
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got := bodyTexts(im.Edition); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: body %q, want %q", c.name, got, c.want)
		}
		if im.Kept != len(c.want) || im.Dropped != c.dropped {
			t.Errorf("%s: kept %d, dropped %d; want %d, %d", c.name, im.Kept, im.Dropped, len(c.want), c.dropped)
		}
	}
}

// The same for Atom's html content.
func TestHTMLStrayElementAtom(t *testing.T) {
	src := `<feed xmlns="http://www.w3.org/2005/Atom"><title>Gazette</title>
<entry><title>Lead</title><published>2025-11-13T06:00:00Z</published>
<content type="html">` + html.EscapeString(`<p>One</p><svg/><p>Two</p>`) + `</content></entry></feed>`
	im, err := edition.Read(strings.NewReader(src), edition.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := bodyTexts(im.Edition); fmt.Sprint(got) != "[One Two]" {
		t.Errorf("body %q", got)
	}
}

// endless is an input that never ends: Read must stop at its limit.
type endless struct{ n int64 }

func (r *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	r.n += int64(len(p))
	return len(p), nil
}

func TestReadInputLimit(t *testing.T) {
	r := &endless{}
	_, err := edition.Read(io.MultiReader(strings.NewReader("Site\n2025-11-13\n\nLead\n\n"), r), edition.ParseOptions{})
	if !errors.Is(err, edition.ErrTooLarge) || !strings.Contains(err.Error(), "MaxInputBytes") {
		t.Fatalf("endless input: err = %v, want one naming MaxInputBytes", err)
	}
	if r.n > 2*edition.MaxInputBytes {
		t.Errorf("read %d bytes of an endless input, limit %d", r.n, edition.MaxInputBytes)
	}
	big := bytes.Repeat([]byte("a"), edition.MaxInputBytes+1)
	if _, _, err := edition.Parse(big, edition.ParseOptions{}); !errors.Is(err, edition.ErrTooLarge) {
		t.Errorf("Parse of %d bytes: err = %v", len(big), err)
	}
}

func TestReadCountLimits(t *testing.T) {
	var paras strings.Builder
	for range edition.MaxParagraphs + 1 {
		paras.WriteString("<p>P.</p>")
	}
	var items strings.Builder
	for i := range edition.MaxRelated + 2 {
		fmt.Fprintf(&items, "<item><title>Story %d</title></item>", i)
	}
	for name, c := range map[string]struct{ src, limit string }{
		"paragraphs": {rssWithContent(paras.String()), "MaxParagraphs"},
		"related":    {strings.Replace(rssWithContent("<p>P.</p>"), "</channel>", items.String()+"</channel>", 1), "MaxRelated"},
	} {
		_, err := edition.Read(strings.NewReader(c.src), edition.ParseOptions{})
		if !errors.Is(err, edition.ErrTooLarge) || !strings.Contains(err.Error(), c.limit) {
			t.Errorf("%s: err = %v, want one naming %s", name, err, c.limit)
		}
	}
	// Save refuses what Parse would, whoever built the edition.
	e := &edition.Edition{Date: time.Date(2025, 11, 13, 0, 0, 0, 0, time.UTC), Site: edition.Site{Name: "G"}, Lead: edition.Story{Title: "T"}}
	for range edition.MaxRelated + 1 {
		e.Related = append(e.Related, edition.Story{Title: "R"})
	}
	if err := e.Validate(); !errors.Is(err, edition.ErrTooLarge) {
		t.Errorf("Validate with %d related: %v", len(e.Related), err)
	}
}
