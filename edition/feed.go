package edition

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"html"
	"net/url"
	"strings"
	"time"
)

// RSS 2.0 and Atom: the channel or feed is the site (title = name,
// description or subtitle = tagline, link = URL), the first item or entry is
// the lead story with its HTML turned into blocks, and the others are the
// related stories with a short plain-text summary. Items without a title
// have no headline to show and are skipped, except the first, which is an
// error. The edition's date is ParseOptions.Date, else the civil date of the
// first item as written in its own zone (RSS pubDate or dc:date, Atom
// published or else updated).

// xmlElem captures an element whatever it holds: its decoded text, its raw
// inner XML (for Atom xhtml content) and the attributes feeds use.
type xmlElem struct {
	XMLName     xml.Name
	Type        string `xml:"type,attr"`
	Rel         string `xml:"rel,attr"`
	Href        string `xml:"href,attr"`
	IsPermaLink string `xml:"isPermaLink,attr"`
	Text        string `xml:",chardata"`
	Inner       string `xml:",innerxml"`
}

// RSS elements carry no namespace, but a tag like "title" also matches
// <media:title>, so each is collected as a list and the one without a
// namespace picked by rssText.
type rssDoc struct {
	Channel struct {
		Title       []xmlElem `xml:"title"`
		Link        []xmlElem `xml:"link"`
		Description []xmlElem `xml:"description"`
		Items       []rssItem `xml:"item"`
	} `xml:"channel"`
}

type rssItem struct {
	Title       []xmlElem `xml:"title"`
	Link        []xmlElem `xml:"link"`
	GUID        []xmlElem `xml:"guid"`
	Description []xmlElem `xml:"description"`
	Content     string    `xml:"http://purl.org/rss/1.0/modules/content/ encoded"`
	PubDate     []xmlElem `xml:"pubDate"`
	DCDate      string    `xml:"http://purl.org/dc/elements/1.1/ date"`
}

func rssText(els []xmlElem) string {
	for _, e := range els {
		if e.XMLName.Space == "" {
			return strings.TrimSpace(e.Text)
		}
	}
	return ""
}

// parseRSS also returns how many skipped HTML elements with text the lead
// story's body lost (see cleanHTML).
func parseRSS(data []byte, opts ParseOptions) (e *Edition, dropped int, err error) {
	var doc rssDoc
	if err := decodeXML(data, &doc); err != nil {
		return nil, 0, err
	}
	ch := doc.Channel
	e = &Edition{Site: Site{
		// Titles are plain text in RSS, but many feeds escape entities
		// twice; markup characters stay text either way.
		Name:    html.UnescapeString(rssText(ch.Title)),
		Tagline: blocksText(htmlBlocks(rssText(ch.Description))),
		URL:     rssText(ch.Link),
	}}
	base := siteBase(opts, e.Site.URL)
	for i, it := range ch.Items {
		s := Story{Title: html.UnescapeString(rssText(it.Title)), URL: resolveURL(base, rssText(it.Link))}
		if guid := firstOf(it.GUID); s.URL == "" && guid != nil && !strings.EqualFold(guid.IsPermaLink, "false") {
			s.URL, _ = httpURL(guid.Text) // a permalink guid is the item's link
		}
		desc, descDropped := cleanHTML(rssText(it.Description))
		if i > 0 {
			if s.Title = oneLine(s.Title); s.Title != "" {
				s.Summary = shorten(blocksText(desc), maxSummary)
				e.Related = append(e.Related, s)
			}
			continue
		}
		if oneLine(s.Title) == "" {
			return nil, 0, errors.New("the first item, the lead story, has no title")
		}
		s.Body, dropped = desc, descDropped
		// The content, when it has any text, is the body, and the
		// description its summary.
		content, n := cleanHTML(it.Content)
		dropped += n
		if len(content) > 0 {
			s.Body, s.Summary, dropped = content, shorten(blocksText(desc), maxSummary), n
		}
		e.Lead = s
		raw := rssText(it.PubDate)
		if raw == "" {
			raw = strings.TrimSpace(it.DCDate)
		}
		d, err := feedDate(raw, "first item's pubDate", opts, parseRSSDate)
		if err != nil {
			return nil, 0, err
		}
		e.Date = d
	}
	if len(ch.Items) == 0 {
		return nil, 0, errors.New("the feed has no items: want at least one, the lead story")
	}
	return e, dropped, nil
}

type atomFeed struct {
	Title    xmlElem     `xml:"http://www.w3.org/2005/Atom title"`
	Subtitle xmlElem     `xml:"http://www.w3.org/2005/Atom subtitle"`
	Links    []xmlElem   `xml:"http://www.w3.org/2005/Atom link"`
	Entries  []atomEntry `xml:"http://www.w3.org/2005/Atom entry"`
}

type atomEntry struct {
	Title     xmlElem   `xml:"http://www.w3.org/2005/Atom title"`
	Links     []xmlElem `xml:"http://www.w3.org/2005/Atom link"`
	Summary   xmlElem   `xml:"http://www.w3.org/2005/Atom summary"`
	Content   xmlElem   `xml:"http://www.w3.org/2005/Atom content"`
	Published string    `xml:"http://www.w3.org/2005/Atom published"`
	Updated   string    `xml:"http://www.w3.org/2005/Atom updated"`
}

// atomBlocks reads an Atom text construct by its type attribute.
func atomBlocks(t xmlElem) []Block {
	b, _ := atomCleaned(t)
	return b
}

// atomCleaned is atomBlocks with cleanHTML's count of dropped elements.
func atomCleaned(t xmlElem) ([]Block, int) {
	switch strings.ToLower(t.Type) {
	case "html", "text/html":
		return cleanHTML(t.Text)
	case "xhtml", "application/xhtml+xml":
		return cleanHTML(t.Inner)
	}
	return plainBlocks(t.Text, Paragraph), 0
}

// atomLink is the entry's or feed's alternate link: the one with no rel or
// rel="alternate".
func atomLink(links []xmlElem) string {
	for _, l := range links {
		if l.Rel == "" || l.Rel == "alternate" {
			return strings.TrimSpace(l.Href)
		}
	}
	return ""
}

// parseAtom also returns what parseRSS does.
func parseAtom(data []byte, opts ParseOptions) (e *Edition, dropped int, err error) {
	var f atomFeed
	if err := decodeXML(data, &f); err != nil {
		return nil, 0, err
	}
	e = &Edition{Site: Site{
		Name:    blocksText(atomBlocks(f.Title)),
		Tagline: blocksText(atomBlocks(f.Subtitle)),
		URL:     atomLink(f.Links),
	}}
	base := siteBase(opts, e.Site.URL)
	for i, en := range f.Entries {
		s := Story{Title: blocksText(atomBlocks(en.Title)), URL: resolveURL(base, atomLink(en.Links))}
		summary, summaryDropped := atomCleaned(en.Summary)
		if i > 0 {
			if s.Title != "" {
				s.Summary = shorten(blocksText(summary), maxSummary)
				e.Related = append(e.Related, s)
			}
			continue
		}
		if s.Title == "" {
			return nil, 0, errors.New("the first entry, the lead story, has no title")
		}
		s.Body, dropped = summary, summaryDropped
		// The content, when it has any text, is the body, and the
		// summary its summary.
		content, n := atomCleaned(en.Content)
		dropped += n
		if len(content) > 0 {
			s.Body, s.Summary, dropped = content, shorten(blocksText(summary), maxSummary), n
		}
		e.Lead = s
		what, raw := "first entry's published date", strings.TrimSpace(en.Published)
		if raw == "" {
			what, raw = "first entry's updated date", strings.TrimSpace(en.Updated)
		}
		d, err := feedDate(raw, what, opts, func(s string) (time.Time, error) { return time.Parse(time.RFC3339, s) })
		if err != nil {
			return nil, 0, err
		}
		e.Date = d
	}
	if len(f.Entries) == 0 {
		return nil, 0, errors.New("the feed has no entries: want at least one, the lead story")
	}
	return e, dropped, nil
}

// decodeXML decodes strictly, but knows HTML's named entities (&nbsp;,
// &eacute;) that feeds use without declaring, and Latin-1 feeds.
func decodeXML(data []byte, v any) error {
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Entity = xml.HTMLEntity
	d.CharsetReader = charsetReader
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("malformed feed: %w", err)
	}
	return nil
}

// feedDate is the edition date: the option, else the lead item's own date.
func feedDate(raw, what string, opts ParseOptions, parse func(string) (time.Time, error)) (time.Time, error) {
	if !opts.Date.IsZero() {
		return opts.Date, nil
	}
	if raw == "" {
		return time.Time{}, fmt.Errorf("the feed's %s is missing: pass the edition's date (--date YYYY-MM-DD)", what)
	}
	t, err := parse(raw)
	if err != nil {
		return time.Time{}, fmt.Errorf("the feed's %s %q is not a date this reads: pass the edition's date (--date YYYY-MM-DD)", what, raw)
	}
	return civilDate(t), nil
}

// rssDateLayouts are RFC 822 dates as feeds write them, the weekday
// removed first (feeds get it wrong, and it says nothing the date does not).
var rssDateLayouts = []string{
	"2 Jan 2006 15:04:05 -0700", "2 Jan 2006 15:04:05 MST", "2 Jan 2006 15:04 -0700",
	"2 Jan 2006 15:04 MST", "2 Jan 06 15:04:05 -0700", "2 Jan 06 15:04:05 MST",
	"2 Jan 2006 15:04:05", "2 Jan 2006", time.RFC3339, DateLayout,
}

func parseRSSDate(s string) (time.Time, error) {
	s = oneLine(s)
	if i := strings.IndexByte(s, ','); i >= 0 && i < 12 {
		s = strings.TrimSpace(s[i+1:])
	}
	for _, l := range rssDateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("date %q: not an RFC 822 or RFC 3339 date", s)
}

// siteBase is what relative links in a feed resolve against.
func siteBase(opts ParseOptions, feedLink string) string {
	if opts.SiteURL != "" {
		return opts.SiteURL
	}
	return feedLink
}

// resolveURL makes a feed's relative link absolute against base; finish
// drops whatever is still not an http(s) URL.
func resolveURL(base, ref string) string {
	ref = strings.TrimSpace(ref)
	r, err := url.Parse(ref)
	if ref == "" || err != nil || r.IsAbs() {
		return ref
	}
	b, ok := httpURL(base)
	if !ok {
		return ref
	}
	bu, _ := url.Parse(b)
	return bu.ResolveReference(r).String()
}

func firstOf(els []xmlElem) *xmlElem {
	if len(els) == 0 {
		return nil
	}
	return &els[0]
}
