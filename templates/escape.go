package templates

import "strings"

// The edition is rendered once with marker strings in place of the recipient
// fields, and each recipient's values are spliced in afterwards. For the
// spliced message to be byte-for-byte what html/template would have produced
// with the real values, each splice point must be escaped the way
// html/template escaped it there. The escapers below reproduce html/template's
// own (html/template/html.go and url.go) for the contexts a recipient field
// can sensibly appear in; RenderEdition finds out which context each splice
// point is in by rendering a probe (see classify in render.go), and any other
// context is refused rather than guessed at.

// escClass is how one splice point is escaped.
type escClass uint8

const (
	// escRaw is text/template output: the value as it is.
	escRaw escClass = iota
	// escHTML is HTML text, RCDATA (<title>) or a quoted attribute value:
	// html/template's htmlEscaper / attrEscaper / rcdataEscaper.
	escHTML
	// escURLStart is the start of a quoted URL attribute (href="{{.X}}"):
	// html/template's urlFilter, then urlNormalizer, then attrEscaper.
	escURLStart
	// escURL is the path of a quoted URL attribute (href="/u/{{.X}}"):
	// urlNormalizer, then attrEscaper.
	escURL
	// escURLQuery is the query or fragment of a quoted URL attribute
	// (href="/u?e={{.X}}"): urlEscaper (then attrEscaper, which has
	// nothing left to do).
	escURLQuery
)

// filterFailsafe is what html/template's urlFilter puts in place of a URL
// whose scheme is not http, https or mailto.
const filterFailsafe = "#ZgotmplZ"

// probe is appended to each marker in the probe render. Every escaper above
// turns it into something different (see probeOutput), so the escaped probe
// after a marker tells which escaper html/template applied there: '+' tells
// HTML apart from raw, 'é', ' ' and '"' tell URLs apart from HTML, '=' and
// ':' tell a URL query apart from a URL path, ' ' and '=' make an unquoted
// attribute (htmlNospaceEscaper) match nothing, and ':' with no '/' before it
// makes urlFilter reject the whole value at the start of a URL.
const probe = "+=\u00e9 \":"

// probeOutput is the probe as each class escapes it, in the order classify
// tries them. escURLStart is absent: there the filter replaces marker and
// probe alike with filterFailsafe, which classify checks for separately.
var probeOutput = []struct {
	class escClass
	out   string
}{
	{escRaw, probe},
	{escHTML, "&#43;=\u00e9 &#34;:"},
	{escURL, "&#43;=%c3%a9%20%22:"},
	{escURLQuery, "%2b%3d%c3%a9%20%22%3a"},
}

// appendEscaped appends s to dst escaped as class c.
func appendEscaped(dst []byte, s string, c escClass) []byte {
	switch c {
	case escHTML:
		return appendHTMLEscaped(dst, s)
	case escURLStart:
		if !isSafeURL(s) {
			return append(dst, filterFailsafe...)
		}
		return appendURLNormalized(dst, s)
	case escURL:
		return appendURLNormalized(dst, s)
	case escURLQuery:
		return appendURLQueryEscaped(dst, s)
	default:
		return append(dst, s...)
	}
}

// appendHTMLEscaped is html/template's htmlReplacer with
// htmlReplacementTable. It works byte by byte: the table holds only ASCII
// and NUL, and html/template leaves every other rune, valid or not, as it is.
func appendHTMLEscaped(dst []byte, s string) []byte {
	last := 0
	for i := 0; i < len(s); i++ {
		var repl string
		switch s[i] {
		case 0:
			repl = "\uFFFD"
		case '"':
			repl = "&#34;"
		case '&':
			repl = "&amp;"
		case '\'':
			repl = "&#39;"
		case '+':
			repl = "&#43;"
		case '<':
			repl = "&lt;"
		case '>':
			repl = "&gt;"
		default:
			continue
		}
		dst = append(dst, s[last:i]...)
		dst = append(dst, repl...)
		last = i + 1
	}
	return append(dst, s[last:]...)
}

// appendURLNormalized is html/template's urlNormalizer followed by its
// attrEscaper, in one pass: of the bytes the normalizer keeps, only '&' and
// '+' need escaping in an attribute, and its %xx escapes never do.
func appendURLNormalized(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '&':
			dst = append(dst, "&amp;"...)
		case c == '+':
			dst = append(dst, "&#43;"...)
		case isUnreserved(c):
			dst = append(dst, c)
		case strings.IndexByte("!#$*,/:;=?@[]", c) >= 0:
			dst = append(dst, c)
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			// An existing escape is kept, not escaped again.
			dst = append(dst, c)
		default:
			dst = appendPercent(dst, c)
		}
	}
	return dst
}

// appendURLQueryEscaped is html/template's urlEscaper: everything but the
// RFC 3986 unreserved bytes is percent-encoded.
func appendURLQueryEscaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; isUnreserved(c) {
			dst = append(dst, c)
		} else {
			dst = appendPercent(dst, c)
		}
	}
	return dst
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// appendPercent writes %xx in lower case, as html/template does.
func appendPercent(dst []byte, c byte) []byte {
	const hex = "0123456789abcdef"
	return append(dst, '%', hex[c>>4], hex[c&15])
}

// isSafeURL is html/template's test: a relative URL, or one whose scheme is
// http, https or mailto. Anything that looks like another scheme, including
// "java\tscript:" (browsers drop the tab), is unsafe.
func isSafeURL(s string) bool {
	if protocol, _, ok := strings.Cut(s, ":"); ok && !strings.Contains(protocol, "/") {
		if !strings.EqualFold(protocol, "http") && !strings.EqualFold(protocol, "https") && !strings.EqualFold(protocol, "mailto") {
			return false
		}
	}
	return true
}
