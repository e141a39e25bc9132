package edition

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The text format is a news page copied as plain text, as in
// demo/london-daily-2025-11-13.txt. Lines are trimmed; a "block" is a run of
// non-blank lines and its "gap" the number of blank lines after it.
//
// Header:
//   - the first non-blank line is the site name;
//   - the date line is one of the next four non-blank lines, in one of the
//     layouts of dateLayouts ("Thursday, Nov 13, 2025", "13 November 2025",
//     "2025-11-13"...); the lines between the name and the date are the
//     tagline. No date line means this is not a news page: an error, even
//     with ParseOptions.Date, since the date line is what marks the header;
//   - the next block is the lead headline (usually one line). Pages repeat
//     it as the first block of the body: that copy is dropped.
//
// Body, up to a "Related Articles" line (see relatedMarkers) or the end:
//   - a block followed by one blank line is a paragraph; a block of several
//     lines is one paragraph, its lines joined by spaces;
//   - a block followed by TWO blank lines is a photo caption ("A group of
//     migrants walk along ... on November 12, 2021.");
//   - a heading-like line (at most maxHeading characters, not ending in
//     sentence punctuation once closing quotes are set aside) is a heading,
//     whatever its gap: "'This will not succeed'";
//   - a block whose first line is heading-like and that has more lines is
//     a heading followed by the rest, classified as above: "The human cost"
//     then the caption "Migrants gather ... 2021." (so a hard-wrapped
//     paragraph whose first line is short and unpunctuated would read as a
//     heading: the format has one line per paragraph, as the seed does);
//   - page furniture (isFurniture: "Newsletter", "Close", "0:00", "×"...) is
//     left out wherever it is, and so are headings at the end of the body,
//     since a heading with nothing under it is a label, not a heading.
//
// Related headlines, after the marker: one per line. Furniture and lines of
// fewer than three words without a link (buttons, player labels) are left
// out. A line may end with its link, see splitLink.

const maxHeading = 80

// relatedMarkers, lowercased, are the lines that end the body and start the
// related headlines.
var relatedMarkers = map[string]bool{
	"related articles": true, "related stories": true, "related news": true,
	"related": true, "more stories": true, "more news": true, "read next": true,
}

func isMarker(line string) bool {
	return relatedMarkers[strings.TrimRight(strings.ToLower(oneLine(line)), ":")]
}

// furnitureLines, lowercased, are labels a page carries around the story.
var furnitureLines = map[string]bool{
	"newsletter": true, "newsletters": true, "close": true, "advertisement": true,
	"advert": true, "share": true, "share this article": true, "subscribe": true,
	"sign up": true, "sign in": true, "log in": true, "read more": true,
	"skip to content": true, "menu": true, "search": true, "play": true,
	"pause": true, "mute": true, "unmute": true, "replay": true, "watch": true,
	"listen": true, "loading": true, "back to top": true, "related articles": true,
}

// mediaTime matches a media player's clock: "0:00", "1:02:03", "0:12 / 3:45".
var mediaTime = regexp.MustCompile(`^\d{1,2}(:\d{2}){1,2}( ?/ ?\d{1,2}(:\d{2}){1,2})?$`)

// isFurniture tells page furniture: known labels, media player times, lines
// without a letter or digit (close buttons such as "×", bullets) and
// copyright lines.
func isFurniture(line string) bool {
	t := strings.TrimRight(strings.ToLower(oneLine(line)), ":")
	return furnitureLines[t] || mediaTime.MatchString(t) ||
		!strings.ContainsFunc(t, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) ||
		strings.HasPrefix(t, "©") || strings.HasPrefix(t, "copyright ")
}

// headingLike: short, with a letter, and not ending like a sentence.
func headingLike(s string) bool {
	if utf8.RuneCountInString(s) > maxHeading || !strings.ContainsFunc(s, unicode.IsLetter) {
		return false
	}
	t := strings.TrimRight(s, `"'’”)]»`)
	last, _ := utf8.DecodeLastRuneInString(t)
	return t != "" && !strings.ContainsRune(".,;:!?…", last)
}

type textBlock struct {
	lines []string
	gap   int
}

func parseText(data []byte) (*Edition, error) {
	text := strings.ReplaceAll(string(data), "\r\n", "\n")
	lines := strings.Split(strings.ReplaceAll(text, "\r", "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimFunc(l, isSpaceOrControl)
	}
	next := func(i int) int {
		for i < len(lines) && lines[i] == "" {
			i++
		}
		return i
	}
	const wantHeader = `want the site name on the first line, then an optional tagline, then a date line such as "Thursday, Nov 13, 2025", "13 November 2025" or "2025-11-13", then the lead headline`

	e := &Edition{}
	i := next(0)
	if i == len(lines) {
		return nil, errors.New("no text: " + wantInput)
	}
	if _, ok, _ := parseDateLine(lines[i]); ok {
		return nil, fmt.Errorf("the first line is a date, not the site name: %s", wantHeader)
	}
	e.Site.Name = lines[i]
	var tagline []string
	dateAt := -1
	for j, n := i+1, 0; n < 4; j, n = j+1, n+1 {
		if j = next(j); j == len(lines) {
			break
		}
		d, ok, err := parseDateLine(lines[j])
		if err != nil {
			return nil, err
		}
		if ok {
			e.Date, dateAt = d, j
			break
		}
		tagline = append(tagline, lines[j])
	}
	if dateAt < 0 {
		return nil, fmt.Errorf("no date line near the top: %s (or use another format: %s)", wantHeader, wantInput)
	}
	e.Site.Tagline = strings.Join(tagline, " ")

	lead := next(dateAt + 1)
	if lead == len(lines) {
		return nil, errors.New("no lead headline after the date line: " + wantHeader)
	}
	// The headline is the whole block, so a headline broken over two lines
	// (a stray CR or LF) is still one headline.
	leadEnd := lead
	for leadEnd < len(lines) && lines[leadEnd] != "" && !isMarker(lines[leadEnd]) {
		leadEnd++
	}
	e.Lead.Title, e.Lead.URL = splitLink(strings.Join(lines[lead:leadEnd], " "))

	end := len(lines)
	for j := leadEnd; j < len(lines); j++ {
		if isMarker(lines[j]) {
			end = j
			break
		}
	}
	e.Lead.Body = bodyBlocks(splitBlocks(lines[leadEnd:end]), e.Lead.Title)
	if end < len(lines) {
		e.Related = relatedStories(lines[end+1:])
	}
	return e, nil
}

func splitBlocks(lines []string) []textBlock {
	var out []textBlock
	for _, l := range lines {
		switch {
		case l != "" && (len(out) == 0 || out[len(out)-1].gap > 0):
			out = append(out, textBlock{lines: []string{l}})
		case l != "":
			out[len(out)-1].lines = append(out[len(out)-1].lines, l)
		case len(out) > 0:
			out[len(out)-1].gap++
		}
	}
	return out
}

func bodyBlocks(blocks []textBlock, lead string) []Block {
	var out []Block
	for i, b := range blocks {
		var lines []string
		for _, l := range b.lines {
			if !isFurniture(l) {
				lines = append(lines, l)
			}
		}
		if len(lines) == 0 || i == 0 && sameTitle(strings.Join(lines, " "), lead) {
			continue // the page's second copy of the headline
		}
		if len(lines) > 1 && headingLike(lines[0]) {
			out = append(out, Block{Kind: Heading, Text: lines[0]})
			lines = lines[1:]
		}
		text := strings.Join(lines, " ")
		switch {
		case len(lines) == 1 && headingLike(text):
			out = append(out, Block{Kind: Heading, Text: text})
		case b.gap >= 2:
			out = append(out, Block{Kind: Caption, Text: text})
		default:
			out = append(out, Block{Kind: Paragraph, Text: text})
		}
	}
	for len(out) > 0 && out[len(out)-1].Kind == Heading {
		out = out[:len(out)-1]
	}
	return out
}

func sameTitle(line, title string) bool {
	t, _ := splitLink(line)
	return strings.EqualFold(oneLine(t), oneLine(title))
}

func relatedStories(lines []string) []Story {
	var out []Story
	for _, l := range lines {
		if l == "" || isFurniture(l) {
			continue
		}
		title, link := splitLink(l)
		if title == "" || link == "" && len(strings.Fields(title)) < 3 {
			continue
		}
		out = append(out, Story{Title: title, URL: link})
	}
	return out
}

// splitLink reads a headline line that may end with its link:
//
//	Title | https://example.com/story   (the documented form)
//	Title https://example.com/story     (a bare URL as the last word)
//
// The link is kept only if it is http(s); a javascript:, data: or other
// link is dropped (the story then gets a slug link) rather than left in
// the title.
func splitLink(line string) (title, link string) {
	if i := strings.LastIndexByte(line, '|'); i >= 0 {
		if tail := strings.TrimSpace(line[i+1:]); looksLikeLink(tail) {
			link, _ = httpURL(tail)
			return strings.TrimSpace(line[:i]), link
		}
	}
	if i := strings.LastIndexFunc(line, unicode.IsSpace); i >= 0 && looksLikeLink(line[i+1:]) {
		link, _ = httpURL(line[i+1:])
		return strings.TrimSpace(line[:i]), link
	}
	return line, ""
}

func looksLikeLink(s string) bool {
	s = strings.ToLower(s)
	if s == "" || strings.ContainsFunc(s, unicode.IsSpace) {
		return false
	}
	for _, p := range []string{"javascript:", "data:", "vbscript:", "file:"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	scheme, _, ok := strings.Cut(s, "://")
	return ok && scheme != "" && !strings.ContainsFunc(scheme, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.')
	})
}

// dateLayouts are the date lines the text format accepts: an optional
// weekday, then the month and day either way round, then the year; or ISO.
var dateLayouts = func() []string {
	out := []string{DateLayout}
	for _, wd := range []string{"", "Monday, ", "Mon, ", "Monday ", "Mon "} {
		for _, d := range []string{"January 2, 2006", "Jan 2, 2006", "January 2 2006", "Jan 2 2006", "2 January 2006", "2 Jan 2006", "2 January, 2006", "2 Jan, 2006"} {
			out = append(out, wd+d)
		}
	}
	return out
}()

var (
	ordinal = regexp.MustCompile(`(\d)(st|nd|rd|th)\b`)
	sept    = regexp.MustCompile(`(?i)\bsept\b`)
)

// parseDateLine reports whether line is a date line. A date line whose
// weekday does not match its date is an error: better to ask than to
// import the edition under the wrong day.
func parseDateLine(line string) (time.Time, bool, error) {
	if len(line) > 40 || !strings.ContainsFunc(line, unicode.IsDigit) {
		return time.Time{}, false, nil // cheap rejection of ordinary lines
	}
	s := oneLine(strings.ReplaceAll(line, ".", "")) // "Nov. 13" is "Nov 13"
	s = ordinal.ReplaceAllString(s, "$1")           // "13th" is "13"
	s = sept.ReplaceAllString(s, "Sep")             // an abbreviation Go does not know
	for _, layout := range dateLayouts {
		t, err := time.Parse(layout, s)
		if err != nil {
			continue
		}
		if strings.HasPrefix(layout, "Mon") {
			word := strings.TrimRight(strings.Fields(s)[0], ",")
			wd := t.Weekday().String()
			if !strings.EqualFold(word, wd) && !strings.EqualFold(word, wd[:3]) {
				return time.Time{}, false, fmt.Errorf("date line %q: %s is a %s", line, t.Format(DateLayout), wd)
			}
		}
		return t, true, nil
	}
	return time.Time{}, false, nil
}
