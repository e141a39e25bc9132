package edition

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Format is the source format an edition was read from. The strings are
// what editions.source_format stores.
type Format string

const (
	FormatText Format = "text"
	FormatRSS  Format = "rss"
	FormatAtom Format = "atom"
	FormatJSON Format = "json"
)

func (f Format) valid() bool {
	switch f {
	case FormatText, FormatRSS, FormatAtom, FormatJSON:
		return true
	}
	return false
}

// ParseOptions are what the operator knows that the source may not say.
type ParseOptions struct {
	// SiteURL is the site's address (http or https). When set it is the
	// edition's site URL, and stories the source gives no link for get one
	// built from it and a slug of their title.
	SiteURL string
	// Date, when set, is the edition's date, overriding the source's. Its
	// civil date in its own location is used.
	Date time.Time
}

// wantInput ends every "this is not an edition" error, so whoever imported
// the wrong file learns what would have worked.
const wantInput = "want a news page as text (site name, tagline, date line, lead headline, paragraphs), an RSS 2.0 or Atom feed, or edition JSON"

const atomNS = "http://www.w3.org/2005/Atom"

// Parse reads an edition and tells which format it was in: JSON when the
// first non-space byte is '{', RSS 2.0 or Atom when the document's root
// element is <rss> or an Atom <feed>, otherwise the plain-text page format
// (see text.go). The edition it returns is cleaned (whitespace collapsed,
// unsafe links dropped, slug links built) and valid.
func Parse(data []byte, opts ParseOptions) (*Edition, Format, error) {
	im, err := parse(data, opts)
	if err != nil {
		return nil, "", err
	}
	return im.Edition, im.Format, nil
}

func parse(data []byte, opts ParseOptions) (*Imported, error) {
	if len(data) > MaxInputBytes {
		return nil, fmt.Errorf("parse: %w", inputTooLarge(int64(len(data))))
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("parse: empty input: %s", wantInput)
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return nil, fmt.Errorf("parse: binary data, not text: %s", wantInput)
	}
	im := &Imported{}
	var err error
	switch trimmed[0] {
	case '{':
		im.Format = FormatJSON
		if err = requireUTF8(data); err == nil {
			im.Edition, err = parseJSON(data)
		}
	case '<':
		im.Format, err = markupFormat(data)
		if err != nil {
			return nil, fmt.Errorf("parse: %w", err)
		}
		if im.Format == FormatRSS {
			im.Edition, im.Dropped, err = parseRSS(data, opts)
		} else {
			im.Edition, im.Dropped, err = parseAtom(data, opts)
		}
	default:
		im.Format = FormatText
		if err = requireUTF8(data); err == nil {
			im.Edition, err = parseText(data)
		}
	}
	if err == nil {
		err = finish(im.Edition, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", im.Format, err)
	}
	im.Kept = len(im.Edition.Lead.Body)
	return im, nil
}

func requireUTF8(data []byte) error {
	if !utf8.Valid(data) {
		return fmt.Errorf("not UTF-8 text (binary data or a legacy encoding): %s", wantInput)
	}
	return nil
}

// markupFormat looks at the first element of a document that starts with
// '<' to tell a feed from an HTML page or some other XML.
func markupFormat(data []byte) (Format, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	// Lenient, so an HTML page gets as far as its <html> element and is
	// named as such instead of failing on its first unclosed tag.
	d.Strict = false
	d.AutoClose = xml.HTMLAutoClose
	d.Entity = xml.HTMLEntity
	d.CharsetReader = charsetReader
	for {
		tok, err := d.Token()
		if err != nil {
			return "", fmt.Errorf("unreadable markup (%v): %s", err, wantInput)
		}
		switch t := tok.(type) {
		case xml.Directive:
			if strings.HasPrefix(strings.ToLower(string(t)), "doctype html") {
				return "", fmt.Errorf("an HTML page, not an edition: %s", wantInput)
			}
		case xml.StartElement:
			switch {
			case t.Name.Local == "rss":
				return FormatRSS, nil
			case t.Name.Local == "feed" && t.Name.Space == atomNS:
				return FormatAtom, nil
			case t.Name.Local == "feed":
				return "", fmt.Errorf("a <feed> without the Atom namespace %q: %s", atomNS, wantInput)
			case strings.EqualFold(t.Name.Local, "html"):
				return "", fmt.Errorf("an HTML page, not an edition: %s", wantInput)
			default:
				return "", fmt.Errorf("an XML document whose root is <%s>, not an RSS or Atom feed: %s", t.Name.Local, wantInput)
			}
		}
	}
}

// charsetReader lets feeds declare Latin-1 or ASCII, the legacy encodings
// still seen in the wild; anything else must be converted first.
func charsetReader(label string, input io.Reader) (io.Reader, error) {
	switch strings.ToLower(label) {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return input, nil
	case "iso-8859-1", "iso8859-1", "latin1", "latin-1":
		b, err := io.ReadAll(input)
		if err != nil {
			return nil, err
		}
		var sb strings.Builder
		for _, c := range b {
			sb.WriteRune(rune(c)) // Latin-1 bytes are the first 256 code points
		}
		return strings.NewReader(sb.String()), nil
	}
	return nil, fmt.Errorf("feed encoding %q is not supported: convert the feed to UTF-8", label)
}

// finish applies the options and cleans what every parser produced the same
// way, so the rules for links and whitespace live in one place.
func finish(e *Edition, opts ParseOptions) error {
	if opts.SiteURL != "" {
		u, ok := httpURL(opts.SiteURL)
		if !ok {
			return fmt.Errorf("site URL %q: want an http or https URL", opts.SiteURL)
		}
		e.Site.URL = u
	} else {
		e.Site.URL, _ = httpURL(e.Site.URL)
	}
	if !opts.Date.IsZero() {
		e.Date = opts.Date
	}
	if e.Date.IsZero() {
		return errors.New("the source gives no date: pass the edition's date (--date YYYY-MM-DD)")
	}
	e.Date = civilDate(e.Date)
	e.Site.Name = oneLine(e.Site.Name)
	e.Site.Tagline = oneLine(e.Site.Tagline)
	cleanStory(&e.Lead, e.Site.URL)
	for i := range e.Related {
		cleanStory(&e.Related[i], e.Site.URL)
	}
	if len(e.Related) == 0 {
		e.Related = nil // one spelling of "none", so editions compare equal
	}
	return e.Validate()
}

func cleanStory(s *Story, siteURL string) {
	s.Title = oneLine(s.Title)
	s.Summary = oneLine(s.Summary)
	s.URL, _ = httpURL(s.URL)
	if s.URL == "" && siteURL != "" {
		s.URL = slugURL(siteURL, s.Title)
	}
	var body []Block
	for _, b := range s.Body {
		if b.Text = oneLine(b.Text); b.Text != "" {
			body = append(body, b)
		}
	}
	s.Body = body
}

func civilDate(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// oneLine collapses every run of whitespace and control characters (CR, LF,
// tabs, NUL...) to one space: titles and paragraphs are single lines of
// plain text, which keeps them safe to put in mail headers and templates.
func oneLine(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Join(strings.FieldsFunc(s, isSpaceOrControl), " ")
}

func isSpaceOrControl(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }

// httpURL returns raw trimmed if it is an absolute http or https URL with a
// host and no credentials; javascript:, data:, relative and malformed links
// are refused so no source can smuggle them into a mail.
func httpURL(raw string) (string, bool) {
	raw = strings.TrimSpace(raw)
	if raw == "" || strings.ContainsFunc(raw, isSpaceOrControl) {
		return "", false
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return "", false
	}
	if s := strings.ToLower(u.Scheme); s != "http" && s != "https" {
		return "", false
	}
	return raw, true
}

// slugURL is the link for a story its source gave none: the site URL's path
// plus "/" plus the title's slug. It is "" when the title has no ASCII
// letters or digits to make a slug of.
func slugURL(siteURL, title string) string {
	sl := slug(title)
	u, err := url.Parse(siteURL)
	if sl == "" || err != nil {
		return ""
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/" + sl
	u.RawPath, u.RawQuery, u.Fragment = "", "", ""
	return u.String()
}

const maxSlug = 80

// slug lowercases the title, folds common Latin accents to ASCII, drops
// apostrophes (so "Harry's" is "harrys"), turns every other run of
// non-alphanumerics into "-" and cuts it at a word boundary within maxSlug.
func slug(title string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(title) {
		if r == '\'' || r == '’' {
			continue
		}
		s := string(r)
		if f, ok := accentFold[r]; ok {
			s = f
		}
		for _, c := range []byte(s) {
			if c < utf8.RuneSelf && (c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
				if dash && b.Len() > 0 {
					b.WriteByte('-')
				}
				b.WriteByte(c)
				dash = false
			} else {
				dash = true
			}
		}
	}
	s := b.String()
	if len(s) > maxSlug {
		s = s[:maxSlug]
		if i := strings.LastIndexByte(s, '-'); i > maxSlug/2 {
			s = s[:i]
		}
		s = strings.TrimRight(s, "-")
	}
	return s
}

// accentFold maps the accented letters of Western and Central European
// languages to ASCII; that covers the simple cases without a Unicode
// normalisation library.
var accentFold = func() map[rune]string {
	m := map[rune]string{}
	for _, p := range []string{
		"a:àáâãäåāăą", "c:çćĉċč", "d:ďđð", "e:èéêëēĕėęě", "g:ĝğġģ", "h:ĥħ",
		"i:ìíîïĩīĭįı", "j:ĵ", "k:ķ", "l:ĺļľŀł", "n:ñńņňŉ", "o:òóôõöøōŏő",
		"r:ŕŗř", "s:śŝşšș", "t:ţťŧț", "u:ùúûüũūŭůűų", "w:ŵ", "y:ýÿŷ", "z:źżž",
		"ae:æ", "oe:œ", "ss:ß", "th:þ",
	} {
		to, from, _ := strings.Cut(p, ":")
		for _, r := range from {
			m[r] = to
		}
	}
	return m
}()
