package edition

import (
	"html"
	"strings"
	"unicode/utf8"
)

// Feeds carry their stories as HTML. The newsletter wants plain text
// blocks, so htmlBlocks strips the markup: block elements (<p>, <br>,
// <div>, <li>...) and blank lines end a block, <h1>-<h6> become headings and
// <figcaption> captions, <script>/<style> and the like vanish with their
// content, every other tag is dropped keeping its text, and entities are
// unescaped last, so "&lt;b&gt;" in the source stays the text "<b>".
// This is a tag stripper, not an HTML parser: good enough for the small,
// mostly well-formed fragments feeds carry, and it never fails.

var blockTags = map[string]bool{
	"p": true, "br": true, "div": true, "li": true, "ul": true, "ol": true,
	"blockquote": true, "figure": true, "section": true, "article": true,
	"header": true, "footer": true, "aside": true, "table": true, "tr": true,
	"hr": true, "pre": true, "dd": true, "dt": true, "dl": true, "img": true,
}

// skipTags lose their content along with the tags.
var skipTags = map[string]bool{
	"script": true, "style": true, "noscript": true, "template": true,
	"iframe": true, "object": true, "svg": true, "head": true, "title": true,
}

func htmlBlocks(s string) []Block {
	b, _ := cleanHTML(s)
	return b
}

// cleanHTML is htmlBlocks that also counts the skipped elements that held
// text (dropped), so an import can say that content was left out.
func cleanHTML(s string) (blocks []Block, dropped int) {
	var (
		buf  strings.Builder
		kind = Paragraph
		skip = skipper{src: s}
	)
	flush := func() {
		blocks = append(blocks, plainBlocks(html.UnescapeString(buf.String()), kind)...)
		buf.Reset()
	}
	for s != "" {
		text, t, found := nextTag(s)
		buf.WriteString(text)
		if !found {
			break
		}
		s = t.rest
		switch name := t.name; {
		case skipTags[name] && !t.closing && !t.selfClosing:
			skipped, after := skip.skip(name, len(skip.src)-len(s))
			s = skip.src[after:]
			if strings.TrimFunc(html.UnescapeString(stripTags(skipped)), isSpaceOrControl) != "" {
				dropped++
			}
		case len(name) == 2 && name[0] == 'h' && name[1] >= '1' && name[1] <= '6':
			flush()
			kind = Heading
			if t.closing {
				kind = Paragraph
			}
		case name == "figcaption":
			flush()
			kind = Caption
			if t.closing {
				kind = Paragraph
			}
		case blockTags[name]:
			flush()
		}
	}
	flush()
	return blocks, dropped
}

// skipper finds where skipped elements end. It remembers, per search
// string, where the next match is, so a story of many stray "<svg>" tags
// is read once, not once per tag.
type skipper struct {
	src  string
	next map[string]int // search string -> offset of its next match, -1 for none
}

// index is the offset of the first match of sub (ASCII, any case) at or
// after from, or -1.
func (k *skipper) index(from int, sub string) int {
	if k.next == nil {
		k.next = map[string]int{}
	}
	if at, ok := k.next[sub]; ok && (at < 0 || at >= from) {
		return at
	}
	at := indexFold(k.src[from:], sub)
	if at >= 0 {
		at += from
	}
	k.next[sub] = at
	return at
}

// skip takes the content of a skipped element whose start tag ends at
// offset from and returns the content and the offset after the element. An
// element left unclosed (no end tag before the next start tag of the same
// name) ends where the next block starts, so one stray "<svg>" or
// "<iframe>" costs its own text, not the rest of the story.
func (k *skipper) skip(name string, from int) (content string, after int) {
	if end := k.index(from, "</"+name); end >= 0 && k.startTag(name, from, end) < 0 {
		if t, ok := readTag(k.src[end:]); ok {
			return k.src[from:end], len(k.src) - len(t.rest)
		}
		return k.src[from:end], end + len(name) + 2
	}
	for off := from; ; {
		text, t, found := nextTag(k.src[off:])
		if !found {
			return k.src[from:], len(k.src)
		}
		if i := off + len(text); startsBlock(t.name) {
			return k.src[from:i], i
		}
		off = len(k.src) - len(t.rest)
	}
}

// startTag is the offset of the first start tag named name in
// src[from:to], or -1.
func (k *skipper) startTag(name string, from, to int) int {
	for off := from; ; {
		i := k.index(off, "<"+name)
		if i < 0 || i >= to {
			return -1
		}
		if t, ok := readTag(k.src[i:]); ok && t.name == name && !t.closing {
			return i
		}
		off = i + 1
	}
}

// startsBlock: the tag ends the block before it.
func startsBlock(name string) bool {
	return blockTags[name] || name == "figcaption" || len(name) == 2 && name[0] == 'h' && name[1] >= '1' && name[1] <= '6'
}

// stripTags is s without its tags, for telling whether skipped content
// held any text.
func stripTags(s string) string {
	var b strings.Builder
	for s != "" {
		text, t, found := nextTag(s)
		b.WriteString(text)
		if !found {
			break
		}
		s = t.rest
	}
	return b.String()
}

// nextTag finds the first tag in s and returns the text before it (a lone
// "<", as in "a < b", is text) and the tag; found is false when there is
// none, and text is then all of s.
func nextTag(s string) (text string, t tag, found bool) {
	for off := 0; ; {
		i := strings.IndexByte(s[off:], '<')
		if i < 0 {
			return s, tag{}, false
		}
		i += off
		if t, ok := readTag(s[i:]); ok {
			return s[:i], t, true
		}
		off = i + 1
	}
}

// plainBlocks splits plain text into blocks of one kind at blank lines.
func plainBlocks(s string, kind BlockKind) []Block {
	var out []Block
	var para []string
	end := func() {
		if t := oneLine(strings.Join(para, " ")); t != "" {
			out = append(out, Block{Kind: kind, Text: t})
		}
		para = para[:0]
	}
	for _, l := range strings.Split(strings.ReplaceAll(s, "\r", "\n"), "\n") {
		if strings.TrimFunc(l, isSpaceOrControl) == "" {
			end()
		} else {
			para = append(para, l)
		}
	}
	end()
	return out
}

// tag is a tag read by readTag: its lowercased local name ("!" for
// comments, doctypes and processing instructions), whether it is an end tag
// or self-closing ("<svg/>"), and what follows it.
type tag struct {
	name                 string
	closing, selfClosing bool
	rest                 string
}

// readTag reads the tag s starts with ('<' included). ok is false when the
// '<' does not start a tag.
func readTag(s string) (t tag, ok bool) {
	switch {
	case strings.HasPrefix(s, "<!--"):
		if j := strings.Index(s[4:], "-->"); j >= 0 {
			return tag{name: "!", rest: s[4+j+3:]}, true
		}
		return tag{name: "!"}, true
	case strings.HasPrefix(s, "<!") || strings.HasPrefix(s, "<?"):
		if j := strings.IndexByte(s, '>'); j >= 0 {
			return tag{name: "!", rest: s[j+1:]}, true
		}
		return tag{name: "!"}, true
	}
	p := 1
	if strings.HasPrefix(s, "</") {
		t.closing, p = true, 2
	}
	start := p
	for p < len(s) && (isASCIILetter(s[p]) || s[p] >= '0' && s[p] <= '9' || s[p] == ':' || s[p] == '-') {
		p++
	}
	if p == start || !isASCIILetter(s[start]) {
		return tag{}, false
	}
	t.name = strings.ToLower(s[start:p])
	if j := strings.LastIndexByte(t.name, ':'); j >= 0 {
		t.name = t.name[j+1:] // "xhtml:p" in Atom xhtml content
	}
	// Find the '>' that ends the tag, skipping quoted attribute values.
	var quote byte
	for ; p < len(s); p++ {
		switch c := s[p]; {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '>':
			t.selfClosing = s[p-1] == '/'
			t.rest = s[p+1:]
			return t, true
		}
	}
	return t, true // an unterminated tag eats the rest
}

func isASCIILetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

// indexFold is strings.Index ignoring ASCII case, for an ASCII sub.
func indexFold(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}

// blocksText joins blocks into one line, for summaries.
func blocksText(blocks []Block) string {
	parts := make([]string, len(blocks))
	for i, b := range blocks {
		parts[i] = b.Text
	}
	return strings.Join(parts, " ")
}

const maxSummary = 280

// shorten cuts s to at most max characters at a word boundary, marking
// the cut with an ellipsis.
func shorten(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)[:max-1]
	cut := string(r)
	if i := strings.LastIndexByte(cut, ' '); i > len(cut)/2 {
		cut = cut[:i]
	}
	return strings.TrimRight(cut, " ,;:.") + "…"
}
