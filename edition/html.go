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
	var (
		out  []Block
		buf  strings.Builder
		kind = Paragraph
	)
	flush := func() {
		out = append(out, plainBlocks(html.UnescapeString(buf.String()), kind)...)
		buf.Reset()
	}
	for s != "" {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			buf.WriteString(s)
			break
		}
		buf.WriteString(s[:i])
		name, closing, rest, ok := readTag(s[i:])
		if !ok {
			buf.WriteByte('<') // a lone "<", as in "a < b"
			s = s[i+1:]
			continue
		}
		s = rest
		switch {
		case skipTags[name] && !closing:
			if j := indexFold(s, "</"+name); j >= 0 {
				s = s[j:]
			} else {
				s = ""
			}
		case len(name) == 2 && name[0] == 'h' && name[1] >= '1' && name[1] <= '6':
			flush()
			kind = Heading
			if closing {
				kind = Paragraph
			}
		case name == "figcaption":
			flush()
			kind = Caption
			if closing {
				kind = Paragraph
			}
		case blockTags[name]:
			flush()
		}
	}
	flush()
	return out
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

// readTag reads the tag s starts with ('<' included) and returns its
// lowercased local name ("!" for comments, doctypes and processing
// instructions), whether it is a closing tag, and what follows it. ok is
// false when the '<' does not start a tag.
func readTag(s string) (name string, closing bool, rest string, ok bool) {
	switch {
	case strings.HasPrefix(s, "<!--"):
		if j := strings.Index(s[4:], "-->"); j >= 0 {
			return "!", false, s[4+j+3:], true
		}
		return "!", false, "", true
	case strings.HasPrefix(s, "<!") || strings.HasPrefix(s, "<?"):
		if j := strings.IndexByte(s, '>'); j >= 0 {
			return "!", false, s[j+1:], true
		}
		return "!", false, "", true
	}
	p := 1
	if strings.HasPrefix(s, "</") {
		closing, p = true, 2
	}
	start := p
	for p < len(s) && (isASCIILetter(s[p]) || s[p] >= '0' && s[p] <= '9' || s[p] == ':' || s[p] == '-') {
		p++
	}
	if p == start || !isASCIILetter(s[start]) {
		return "", false, "", false
	}
	name = strings.ToLower(s[start:p])
	if j := strings.LastIndexByte(name, ':'); j >= 0 {
		name = name[j+1:] // "xhtml:p" in Atom xhtml content
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
			return name, closing, s[p+1:], true
		}
	}
	return name, closing, "", true // an unterminated tag eats the rest
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
