package edition_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"newsletter/edition"
)

func TestParseRSS(t *testing.T) {
	e, f := parseFile(t, "testdata/daily.rss", edition.ParseOptions{})
	if f != edition.FormatRSS {
		t.Errorf("format = %q, want rss", f)
	}
	want := &edition.Edition{
		// pubDate is 23:30 on the 13th at -0500, already the 14th in UTC:
		// the edition's day is the one the feed wrote.
		Date: date(2025, 11, 13),
		Site: edition.Site{Name: "Harbour Gazette", Tagline: "News from the waterfront.", URL: "https://gazette.example/"},
		Lead: edition.Story{
			// Entities escaped twice are unescaped; <media:title> is not the title.
			Title:   `Ferry strike ends after "marathon" talks`,
			URL:     "https://gazette.example/news/ferry-strike-ends",
			Summary: "Crews return on Friday.",
			Body: []edition.Block{
				{Kind: edition.Paragraph, Text: "Ferry crews voted to accept the offer on Thursday night."},
				{Kind: edition.Caption, Text: "The 6:40 ferry leaves the harbour."},
				{Kind: edition.Heading, Text: "What changes"},
				{Kind: edition.Paragraph, Text: "Pay rises by 5% & rotas are fixed a month ahead."},
				{Kind: edition.Paragraph, Text: "Services resume on Friday."},
				// Escaped markup in the HTML is text, not tags.
				{Kind: edition.Paragraph, Text: "Talks <b>lasted</b> 19 hours."},
			},
		},
		Related: []edition.Story{
			{Title: "Harbour wall repairs to start in spring", URL: "https://gazette.example/news/harbour-wall", Summary: "The council approved £2m for the works."},
			{Title: "Lifeboat crew honoured for winter rescue", URL: "https://gazette.example/lifeboat-crew-honoured-for-winter-rescue"},
			{Title: "Fish market reopens", URL: "https://gazette.example/fish-market-reopens"},
			// The title-less item is skipped; a relative link resolves
			// against the channel's; RSS titles are text, markup and all.
			{Title: "<script>alert(1)</script> Council bans harbour barbecues", URL: "https://gazette.example/news/barbecues"},
		},
	}
	if !reflect.DeepEqual(e, want) {
		t.Errorf("got\n%+v\nwant\n%+v", e, want)
	}
}

func TestParseAtom(t *testing.T) {
	e, f := parseFile(t, "testdata/daily.atom", edition.ParseOptions{})
	if f != edition.FormatAtom {
		t.Errorf("format = %q, want atom", f)
	}
	want := &edition.Edition{
		// published, 00:30 on the 13th at +09:00, is still the 12th in UTC.
		Date: date(2025, 11, 13),
		Site: edition.Site{Name: "Valley Chronicle", Tagline: "Every day in the valley", URL: "https://chronicle.example/"},
		Lead: edition.Story{
			Title:   "Bridge reopens after <flood> repairs", // type="text": markup characters are text
			URL:     "https://chronicle.example/2025/11/bridge-reopens",
			Summary: "The old bridge is open again.",
			Body: []edition.Block{
				{Kind: edition.Paragraph, Text: "The bridge reopened at dawn & traffic flowed."},
				{Kind: edition.Paragraph, Text: "Engineers worked for six weeks."},
			},
		},
		Related: []edition.Story{
			{Title: "School wins robotics prize", URL: "https://chronicle.example/2025/11/robotics", Summary: "Pupils built a robot that sorts recycling."},
			{Title: "Market day moves to Saturday", URL: "https://chronicle.example/market-day-moves-to-saturday"},
		},
	}
	if !reflect.DeepEqual(e, want) {
		t.Errorf("got\n%+v\nwant\n%+v", e, want)
	}
}

func TestParseFeedSiteURLOption(t *testing.T) {
	e, _ := parseFile(t, "testdata/daily.rss", edition.ParseOptions{SiteURL: "https://mirror.example/gazette"})
	if e.Site.URL != "https://mirror.example/gazette" {
		t.Errorf("site URL = %q", e.Site.URL)
	}
	if got := e.Related[1].URL; got != "https://mirror.example/gazette/lifeboat-crew-honoured-for-winter-rescue" {
		t.Errorf("slug link = %q", got)
	}
	if got := e.Related[0].URL; got != "https://gazette.example/news/harbour-wall" {
		t.Errorf("the feed's own link must be kept, got %q", got)
	}
}

const rssNoDate = `<rss version="2.0"><channel><title>Gazette</title>
<item><title>Lead story</title><description>Text.</description></item></channel></rss>`

func TestParseFeedDate(t *testing.T) {
	_, _, err := edition.Parse([]byte(rssNoDate), edition.ParseOptions{})
	if err == nil || !strings.Contains(err.Error(), "--date") {
		t.Errorf("no pubDate: err = %v, want one asking for --date", err)
	}
	bad := strings.Replace(rssNoDate, "</item>", "<pubDate>sometime soon</pubDate></item>", 1)
	if _, _, err := edition.Parse([]byte(bad), edition.ParseOptions{}); err == nil || !strings.Contains(err.Error(), "--date") {
		t.Errorf("unreadable pubDate: err = %v, want one asking for --date", err)
	}
	e, _, err := edition.Parse([]byte(bad), edition.ParseOptions{Date: date(2025, 11, 20)})
	if err != nil || !e.Date.Equal(date(2025, 11, 20)) {
		t.Errorf("with Date option: %v, %v", e, err)
	}
	for raw, want := range map[string]time.Time{
		"Thu, 13 Nov 2025 06:00:00 GMT":   date(2025, 11, 13),
		"Fri, 3 Oct 2025 23:59 +0200":     date(2025, 10, 3),
		"Wed, 01 Jan 2025 00:00:00 +1400": date(2025, 1, 1),
		"2025-11-13T22:00:00-08:00":       date(2025, 11, 13),
	} {
		src := strings.Replace(rssNoDate, "</item>", "<pubDate>"+raw+"</pubDate></item>", 1)
		e, _, err := edition.Parse([]byte(src), edition.ParseOptions{})
		if err != nil || !e.Date.Equal(want) {
			t.Errorf("pubDate %q: %v, %v; want %v", raw, e, err, want)
		}
	}
}

func TestParseFeedErrors(t *testing.T) {
	for name, c := range map[string]struct{ src, want string }{
		"no items":         {`<rss version="2.0"><channel><title>Gazette</title></channel></rss>`, "no items"},
		"untitled lead":    {`<rss version="2.0"><channel><title>Gazette</title><item><description>x</description></item></channel></rss>`, "lead story, has no title"},
		"no site name":     {`<rss version="2.0"><channel><item><title>Lead</title><pubDate>Thu, 13 Nov 2025 06:00:00 GMT</pubDate></item></channel></rss>`, "site name is required"},
		"malformed":        {`<rss version="2.0"><channel><title>Gazette</title><item><title>Lead</item></channel></rss>`, "malformed feed"},
		"no entries":       {`<feed xmlns="http://www.w3.org/2005/Atom"><title>Chronicle</title></feed>`, "no entries"},
		"feed without ns":  {`<feed><title>Chronicle</title></feed>`, "without the Atom namespace"},
		"other XML":        {`<?xml version="1.0"?><note><to>Tove</to></note>`, "root is <note>, not an RSS or Atom feed"},
		"unknown encoding": {`<?xml version="1.0" encoding="koi8-r"?><rss version="2.0"><channel/></rss>`, `encoding "koi8-r" is not supported`},
	} {
		e, f, err := edition.Parse([]byte(c.src), edition.ParseOptions{})
		if err == nil || e != nil || f != "" || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, %q, %v; want an error saying %q", name, e, f, err, c.want)
		}
	}
}

func TestParseRSSLatin1(t *testing.T) {
	src := "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><rss version=\"2.0\"><channel><title>Caf\xe9 News</title>" +
		"<item><title>Cr\xe8me br\xfbl\xe9e day</title><pubDate>Thu, 13 Nov 2025 06:00:00 GMT</pubDate></item></channel></rss>"
	e, _, err := edition.Parse([]byte(src), edition.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if e.Site.Name != "Café News" || e.Lead.Title != "Crème brûlée day" {
		t.Errorf("got %q, %q", e.Site.Name, e.Lead.Title)
	}
}
