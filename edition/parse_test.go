package edition_test

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"newsletter/edition"
)

func TestParseNotAnEdition(t *testing.T) {
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	png := "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10"
	for name, c := range map[string]struct{ src, want string }{
		"empty":        {"", "empty input"},
		"blank":        {" \n\t\r\n ", "empty input"},
		"binary":       {png, "binary data"},
		"latin-1 text": {"Caf\xe9 News\n2025-11-13\n\nHeadline\n", "not UTF-8"},
		"HTML page":    {read("testdata/page.html"), "an HTML page"},
		"HTML no type": {"<html><body><p>Hello</p></body></html>", "an HTML page"},
		"CSV":          {read("testdata/subscribers.csv"), "no date line"},
		"prose":        {"Dear diary,\nToday was long.\nThe end.\n", "no date line"},
		"no lead":      {"London Daily\nFocus.\nThursday, Nov 13, 2025\n\n", "no lead headline"},
		"date first":   {"2025-11-13\nLondon Daily\n\nHeadline\n", "first line is a date"},
		"JSON array":   {`[{"date": "2025-11-13"}]`, "no date line"},
		"controls":     {"\x01\x02\x03", "no text"},
	} {
		e, f, err := edition.Parse([]byte(c.src), edition.ParseOptions{})
		if err == nil || e != nil || f != "" {
			t.Errorf("%s: got %v, %q, %v; want an error", name, e, f, err)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not say %q", name, err, c.want)
		}
		// Every "what is this" error names what would have worked.
		if c.want != "no lead headline" && c.want != "first line is a date" && !strings.Contains(err.Error(), "want ") {
			t.Errorf("%s: error %q does not say what was expected", name, err)
		}
	}
}

func TestParseRejectsBadSiteURL(t *testing.T) {
	data, _ := os.ReadFile(seedPath)
	for _, u := range []string{"javascript:alert(1)", "ftp://files.example", "news.example", "https://user:pw@news.example"} {
		if _, _, err := edition.Parse(data, edition.ParseOptions{SiteURL: u}); err == nil || !strings.Contains(err.Error(), "site URL") {
			t.Errorf("SiteURL %q: err = %v", u, err)
		}
	}
}

func validEdition() *edition.Edition {
	return &edition.Edition{
		Date: date(2025, 11, 13),
		Site: edition.Site{Name: "Gazette", URL: "https://gazette.example"},
		Lead: edition.Story{Title: "Lead <script>alert(1)</script>", URL: "https://gazette.example/lead",
			Body: []edition.Block{{Kind: edition.Paragraph, Text: "Text with <b>markup</b> kept as text."}}},
		Related: []edition.Story{{Title: "Related", URL: "http://gazette.example/related"}},
	}
}

func TestValidate(t *testing.T) {
	if err := validEdition().Validate(); err != nil {
		t.Fatalf("valid edition: %v", err)
	}
	for name, c := range map[string]struct {
		change func(e *edition.Edition)
		want   string
	}{
		"no date":            {func(e *edition.Edition) { e.Date = time.Time{} }, "date is required"},
		"no site name":       {func(e *edition.Edition) { e.Site.Name = "" }, "site name is required"},
		"no lead title":      {func(e *edition.Edition) { e.Lead.Title = "" }, "lead title is required"},
		"CRLF in lead title": {func(e *edition.Edition) { e.Lead.Title = "Lead\r\nBcc: x@example.com" }, "lead title contains a control character"},
		"LF in related":      {func(e *edition.Edition) { e.Related[0].Title = "a\nb" }, "related story 1 title"},
		"NUL in body":        {func(e *edition.Edition) { e.Lead.Body[0].Text = "a\x00b" }, "lead block 1"},
		"LF in body":         {func(e *edition.Edition) { e.Lead.Body[0].Text = "a\nb" }, "lead block 1"},
		"line separator":     {func(e *edition.Edition) { e.Site.Tagline = "a\u2028b" }, "site tagline"},
		"invalid UTF-8":      {func(e *edition.Edition) { e.Lead.Summary = "a\xffb" }, "not valid UTF-8"},
		"empty block":        {func(e *edition.Edition) { e.Lead.Body[0].Text = "" }, "empty text"},
		"unknown kind":       {func(e *edition.Edition) { e.Lead.Body[0].Kind = "quote" }, `unknown kind "quote"`},
		"javascript URL":     {func(e *edition.Edition) { e.Lead.URL = "javascript:alert(1)" }, "lead URL"},
		"relative URL":       {func(e *edition.Edition) { e.Related[0].URL = "/related" }, "related story 1 URL"},
		"spaced URL":         {func(e *edition.Edition) { e.Site.URL = " https://gazette.example" }, "site URL"},
		"untitled related":   {func(e *edition.Edition) { e.Related[0].Title = "" }, "related story 1: title is required"},
	} {
		e := validEdition()
		c.change(e)
		if err := e.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one saying %q", name, err, c.want)
		}
	}
	var nilEdition *edition.Edition
	if nilEdition.Validate() == nil {
		t.Error("nil edition validated")
	}
}

func TestSubject(t *testing.T) {
	if got := validEdition().Subject(); got != "Gazette: Lead <script>alert(1)</script>" {
		t.Errorf("Subject() = %q", got)
	}
}

// FuzzParse: whatever the input, Parse does not panic, and what it accepts
// is a valid edition that survives a JSON round trip unchanged (so the
// cleaning is stable and the stored form is faithful).
func FuzzParse(f *testing.F) {
	for _, p := range []string{seedPath, "testdata/daily.rss", "testdata/daily.atom", "testdata/page.html", "testdata/subscribers.csv"} {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"date": "2025-11-13", "site": {"name": "G"}, "lead": {"title": "T", "body": [{"kind": "caption", "text": "c"}]}}`))
	f.Add([]byte("Site\nTagline\n2025-11-13\n\nLead | https://x.example/a\n\nP.\n\n\nShort heading\nCaption.\n\n\nRelated\n\nOne two three\n"))
	f.Add([]byte(rssNoDate))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, format, err := edition.Parse(data, edition.ParseOptions{SiteURL: "https://fuzz.example"})
		if err != nil {
			if e != nil || format != "" {
				t.Fatalf("error %v came with an edition or format", err)
			}
			return
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("parsed edition is invalid: %v", err)
		}
		switch format {
		case edition.FormatText, edition.FormatRSS, edition.FormatAtom, edition.FormatJSON:
		default:
			t.Fatalf("format %q", format)
		}
		js, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		back, _, err := edition.Parse(js, edition.ParseOptions{})
		if err != nil {
			t.Fatalf("JSON of a parsed edition does not parse: %v\n%s", err, js)
		}
		if !reflect.DeepEqual(back, e) {
			t.Fatalf("JSON round trip changed the edition:\n%+v\n%+v", back, e)
		}
	})
}
