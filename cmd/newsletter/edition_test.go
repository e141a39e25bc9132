package main

import (
	"encoding/json"
	"html"
	"strings"
	"testing"

	"newsletter/edition"
)

// An edition over a limit is refused with the limit's name, and what was
// stored stays as it was.
func TestEditionImportLimits(t *testing.T) {
	h := newHarness(t)
	h.setup()
	var before string
	h.db.Get(&before, `SELECT content::text FROM editions WHERE date = '2025-11-13'`)

	// Small enough to read, too much HTML once rendered.
	e := map[string]any{"date": "2025-11-13", "site": map[string]string{"name": "London Daily"}}
	var body []map[string]string
	para := strings.Repeat("A long paragraph. ", 80)
	for range edition.MaxRenderedHTML/len(para) + 10 {
		body = append(body, map[string]string{"kind": "paragraph", "text": para})
	}
	e["lead"] = map[string]any{"title": "Lead", "body": body}
	big, _ := json.Marshal(e)
	if len(big) > edition.MaxInputBytes {
		t.Fatalf("test edition of %d bytes is over the input limit", len(big))
	}
	for name, c := range map[string]struct{ src, limit string }{
		"rendered": {string(big), "MaxRenderedHTML"},
		"input":    {strings.Repeat("x", edition.MaxInputBytes+1), "MaxInputBytes"},
	} {
		code, _, errs := h.run("edition", "import", h.file(name+".json", c.src))
		if code == 0 || !strings.Contains(errs, c.limit) {
			t.Errorf("%s: exit %d, stderr %q; want a refusal naming %s", name, code, errs, c.limit)
		}
	}
	var after string
	h.db.Get(&after, `SELECT content::text FROM editions WHERE date = '2025-11-13'`)
	if after != before {
		t.Error("a refused import changed the stored edition")
	}
}

// What the cleaner leaves out of a story, import says.
func TestEditionImportSaysWhatWasDropped(t *testing.T) {
	h := newHarness(t)
	h.must("migrate")
	feed := `<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>Gazette</title>
<item><title>Lead story</title><pubDate>Thu, 13 Nov 2025 06:00:00 GMT</pubDate>
<content:encoded>` + html.EscapeString(`<p>One</p><svg><text>Chart</text><p>Two</p><svg/><p>Three</p>`) + `</content:encoded></item></channel></rss>`
	code, out, errs := h.run("edition", "import", h.file("feed.rss", feed))
	if code != 0 || strings.TrimSpace(out) != "2025-11-13" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if !strings.Contains(errs, "kept_paragraphs=3") || !strings.Contains(errs, "dropped_elements=1") {
		t.Errorf("stderr %q does not say 3 paragraphs kept and 1 element dropped", errs)
	}
}
