package edition_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"newsletter/edition"
)

func TestJSONRoundTrip(t *testing.T) {
	for _, path := range []string{seedPath, "testdata/daily.rss", "testdata/daily.atom"} {
		for _, site := range []string{"", "https://news.example"} {
			e, _ := parseFile(t, path, edition.ParseOptions{SiteURL: site})
			data, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			got, f, err := edition.Parse(data, edition.ParseOptions{})
			if err != nil {
				t.Fatalf("%s: Parse(json): %v", path, err)
			}
			if f != edition.FormatJSON {
				t.Errorf("format = %q, want json", f)
			}
			if !reflect.DeepEqual(got, e) {
				t.Errorf("%s (site %q): round trip changed the edition:\n%+v\nwant\n%+v", path, site, got, e)
			}
		}
	}
}

func TestJSONDateForm(t *testing.T) {
	e, _ := parseFile(t, seedPath, edition.ParseOptions{})
	data, err := json.Marshal(e) // a pointer: the value method must apply too
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	if raw["date"] != "2025-11-13" {
		t.Errorf(`"date" = %v, want "2025-11-13"`, raw["date"])
	}
	var back edition.Edition
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !back.Date.Equal(date(2025, 11, 13)) || !reflect.DeepEqual(&back, e) {
		t.Errorf("Unmarshal gave date %v, equal %v", back.Date, reflect.DeepEqual(&back, e))
	}
}

func TestParseJSONCleansText(t *testing.T) {
	src := `{"date": "2025-11-13", "site": {"name": "Gazette", "url": "https://gazette.example"},
		"lead": {"title": "Council <script>alert(1)</script>\r\nbans\tbarbecues",
		         "url": "javascript:alert(1)",
		         "body": [{"kind": "paragraph", "text": "First line\nsecond line."}, {"kind": "caption", "text": "  "}]},
		"related": [{"title": "Ferry\r\nnews", "url": "https://gazette.example/ferry"}]}`
	e, _, err := edition.Parse([]byte(src), edition.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := edition.Story{
		Title: "Council <script>alert(1)</script> bans barbecues",
		// The javascript: link is dropped for a slug link.
		URL:  "https://gazette.example/council-script-alert-1-script-bans-barbecues",
		Body: []edition.Block{{Kind: edition.Paragraph, Text: "First line second line."}},
	}
	if !reflect.DeepEqual(e.Lead, want) {
		t.Errorf("lead = %+v, want %+v", e.Lead, want)
	}
	if e.Related[0].Title != "Ferry news" {
		t.Errorf("related title = %q", e.Related[0].Title)
	}
}

func TestParseJSONErrors(t *testing.T) {
	for name, c := range map[string]struct{ src, want string }{
		"no lead title":  {`{"date": "2025-11-13", "site": {"name": "Gazette"}, "lead": {"title": " "}}`, "lead title is required"},
		"unknown kind":   {`{"date": "2025-11-13", "site": {"name": "Gazette"}, "lead": {"title": "T", "body": [{"kind": "quote", "text": "x"}]}}`, `unknown kind "quote"`},
		"no kind":        {`{"date": "2025-11-13", "site": {"name": "Gazette"}, "lead": {"title": "T", "body": [{"text": "x"}]}}`, `unknown kind ""`},
		"bad date":       {`{"date": "13/11/2025", "site": {"name": "Gazette"}, "lead": {"title": "T"}}`, "want YYYY-MM-DD"},
		"no date":        {`{"site": {"name": "Gazette"}, "lead": {"title": "T"}}`, "--date"},
		"unknown field":  {`{"date": "2025-11-13", "site": {"name": "Gazette"}, "lead": {"titel": "T"}}`, `unknown field "titel"`},
		"not an object":  {`{"date": [1, 2]}`, "want an edition object"},
		"trailing data":  {`{"date": "2025-11-13", "site": {"name": "G"}, "lead": {"title": "T"}} {}`, "after the edition object"},
		"truncated":      {`{"date": "2025-11-13", "site": {"name": "G"}, "lead": {"ti`, "want an edition object"},
		"bad site URL":   {`{"date": "2025-11-13", "site": {"name": "G"}, "lead": {"title": "T"}}`, "site URL"},
		"invalid UTF-8":  {"{\"date\": \"2025-11-13\", \"site\": {\"name\": \"G\xff\"}, \"lead\": {\"title\": \"T\"}}", "not UTF-8"},
		"no site name":   {`{"date": "2025-11-13", "site": {}, "lead": {"title": "T"}}`, "site name is required"},
		"untitled story": {`{"date": "2025-11-13", "site": {"name": "G"}, "lead": {"title": "T"}, "related": [{"url": "https://x.example/"}]}`, "related story 1: title is required"},
	} {
		opts := edition.ParseOptions{}
		if name == "bad site URL" {
			opts.SiteURL = "javascript:alert(1)"
		}
		e, f, err := edition.Parse([]byte(c.src), opts)
		if err == nil || e != nil || f != "" || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, %q, %v; want an error saying %q", name, e, f, err, c.want)
		}
	}
}
