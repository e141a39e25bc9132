package templates

import (
	"os"
	"testing"

	"newsletter/edition"
)

// demoSeed is the seed page the golden files are rendered from.
const demoSeed = "../demo/london-daily-2025-11-13.txt"

// demoSiteURL is the site the demo is parsed for; the parser builds the
// stories' links from it, so the golden files have linked headlines.
const demoSiteURL = "https://news.example.com"

// demoEdition is the seed page as the edition package parses it, so the
// golden files show what `newsletter` really sends for it. A parser change
// that alters the edition shows up as a golden diff here too.
func demoEdition(t testing.TB) *edition.Edition {
	t.Helper()
	data, err := os.ReadFile(demoSeed)
	if err != nil {
		t.Fatal(err)
	}
	e, _, err := edition.Parse(data, edition.ParseOptions{SiteURL: demoSiteURL})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestDemoEditionShape states what the other tests assume about the seed:
// if the parser reads it differently, this says so before they fail in
// more puzzling ways.
func TestDemoEditionShape(t *testing.T) {
	e := demoEdition(t)
	if got := e.DateString(); got != "2025-11-13" {
		t.Errorf("date %s", got)
	}
	if e.Site.Name != "London Daily" || e.Site.Tagline != "Focus on the big picture." {
		t.Errorf("site %+v", e.Site)
	}
	count := map[edition.BlockKind]int{}
	for _, b := range e.Lead.Body {
		count[b.Kind]++
	}
	if count[edition.Caption] != 3 || count[edition.Heading] != 2 || count[edition.Paragraph] < 20 {
		t.Errorf("blocks %v", count)
	}
	if len(e.Related) != 50 {
		t.Errorf("%d related headlines, want 50", len(e.Related))
	}
}
