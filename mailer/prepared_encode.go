package mailer

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Encoders for the bulk path. They append to a []byte and never allocate, so
// that personalising a Prepared message costs only the bytes it writes. The
// general-purpose ones (mime/quotedprintable, mime.WordEncoder, net/mail) are
// what Build uses through go-mail; these produce the same decoded result.

const upperHex = "0123456789ABCDEF"

// Character classes for quoted-printable, RFC 2045 section 6.7.
const (
	qpLiteral = iota // rule (2): octets 33-60 and 62-126 stand for themselves
	qpSpace          // rule (3): SPACE and TAB are literal except at the end of a line
	qpEscape         // rule (1): everything else, '=' included, becomes "=XX"
	qpCR             // rule (4): a line break in the text is a line break in the encoding
	qpLF
)

var qpClass = func() (t [256]uint8) {
	for c := range t {
		switch {
		case c == '\r':
			t[c] = qpCR
		case c == '\n':
			t[c] = qpLF
		case c == ' ' || c == '\t':
			t[c] = qpSpace
		case c >= 33 && c <= 126 && c != '=':
			t[c] = qpLiteral
		default:
			t[c] = qpEscape
		}
	}
	return t
}()

const (
	// qpMaxLine is RFC 2045 section 6.7 rule (5): encoded lines are at most
	// 76 characters, not counting the CRLF.
	qpMaxLine = 76
	// qpSoftLimit leaves room on every line for the "=" of a soft line break:
	// the encoder doesn't know whether more text follows on the line.
	qpSoftLimit = qpMaxLine - 1
)

// qpLine is a quoted-printable encoder's state on the current output line.
// Quoted-printable is line-local (a hard line break resets it), so a line can be
// encoded on its own, at any time, and the result is the same as if the whole
// text had been encoded at once: that is what lets Prepare encode the lines
// without holes once per edition.
//
// The output is also dot-stuffed for SMTP DATA (RFC 5321 section 4.5.2): a line
// that starts with "." gets another one. The extra dot is not counted in col; it
// is transport, removed by the receiving SMTP server before anyone decodes.
type qpLine struct {
	col    int  // encoded characters on the current line
	lastWS bool // the last character written is a literal SPACE or TAB
	cr     bool // the last input byte was CR, so an LF now is part of that break
}

// qpAppend encodes s and appends it. Line breaks in s (CRLF, LF or a lone CR, as
// mime/quotedprintable's Writer treats them) become CRLF.
func qpAppend[S ~string | ~[]byte](q *qpLine, dst []byte, s S) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch qpClass[c] {
		case qpLiteral, qpSpace:
			if q.col >= qpSoftLimit {
				// Rule (5): soft line break.
				dst = append(dst, '=', '\r', '\n')
				q.col = 0
			}
			if c == '.' && q.col == 0 {
				dst = append(dst, '.') // RFC 5321 section 4.5.2 transparency
			}
			dst = append(dst, c)
			q.col++
			q.lastWS = c == ' ' || c == '\t'
		case qpEscape:
			if q.col+3 > qpSoftLimit {
				// Never split an "=XX" across lines (rule (5)).
				dst = append(dst, '=', '\r', '\n')
				q.col = 0
			}
			dst = append(dst, '=', upperHex[c>>4], upperHex[c&15]) // rule (1)
			q.col += 3
			q.lastWS = false
		case qpCR:
			dst = q.end(dst, true)
			q.cr = true
			continue
		case qpLF:
			if !q.cr {
				dst = q.end(dst, true)
			}
		}
		q.cr = false
	}
	return dst
}

// end finishes the current line: with a CRLF (a hard line break, rule (4)) or,
// at the end of a body part, without (the CRLF before the boundary delimiter
// belongs to the delimiter, RFC 2046 section 5.1.1).
func (q *qpLine) end(dst []byte, crlf bool) []byte {
	if q.lastWS {
		// Rule (3): white space at the end of an encoded line must be
		// encoded, or a gateway may strip it (and decoders do: RFC 2045
		// asks them to).
		c := dst[len(dst)-1]
		dst = dst[:len(dst)-1]
		q.col--
		if q.col+3 > qpMaxLine {
			dst = append(dst, '=', '\r', '\n')
		}
		dst = append(dst, '=', upperHex[c>>4], upperHex[c&15])
	}
	if crlf {
		dst = append(dst, '\r', '\n')
	}
	q.col, q.lastWS = 0, false
	return dst
}

// Header encoding.

const (
	// maxHeaderLine is RFC 5322 section 2.1.1's SHOULD: 78 characters per line.
	maxHeaderLine = 78
	// maxEncodedWord is RFC 2047 section 2: an encoded-word is at most 75
	// characters, and a line holding encoded-words at most 76.
	maxEncodedWord = 75
	maxEncodedLine = 76
	ewPrefix       = "=?UTF-8?q?"
	ewSuffix       = "?="
)

// ewLiteral marks the characters an RFC 2047 "Q" encoded-word may carry as they
// are in every position, including a display name (section 5, rule (3): letters,
// digits, "!", "*", "+", "-", "/"). Space is written as "_" (section 4.2 (2));
// everything else as "=XX".
var ewLiteral = func() (t [256]bool) {
	for c := range t {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			t[c] = true
		case strings.IndexByte("!*+-/", byte(c)) >= 0:
			t[c] = true
		}
	}
	return t
}()

// needsEncodedWords reports whether s can't go into a header as it is: anything
// but printable ASCII and SPACE (RFC 5322 section 2.2: header bodies are
// printable US-ASCII; a TAB would be folding white space).
func needsEncodedWords(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return true
		}
	}
	return false
}

// appendEncodedWords appends s as RFC 2047 "Q" encoded-words in UTF-8, folded so
// every line stays within 76 characters; col is how many characters already
// precede on the first line. Words are split between characters, never inside
// one (section 5: each encoded-word holds whole characters), and white space
// between adjacent encoded-words is not part of the text (section 6.2), so
// folding between them changes nothing.
func appendEncodedWords(dst []byte, s string, col int) []byte {
	limit := min(maxEncodedWord, maxEncodedLine-col)
	const minWord = len(ewPrefix) + len(ewSuffix) + 12 // room for one 4-byte character
	if limit < minWord {
		dst = append(dst, '\r', '\n', ' ')
		limit = maxEncodedWord
	}
	dst = append(dst, ewPrefix...)
	n := len(ewPrefix)
	for i := 0; i < len(s); {
		_, size := utf8.DecodeRuneInString(s[i:])
		enc := 0
		for _, c := range []byte(s[i : i+size]) {
			if ewLiteral[c] || c == ' ' {
				enc++
			} else {
				enc += 3
			}
		}
		if n+enc+len(ewSuffix) > limit {
			dst = append(dst, ewSuffix...)
			dst = append(dst, '\r', '\n', ' ')
			dst = append(dst, ewPrefix...)
			n, limit = len(ewPrefix), maxEncodedWord
		}
		for _, c := range []byte(s[i : i+size]) {
			switch {
			case c == ' ':
				dst = append(dst, '_')
			case ewLiteral[c]:
				dst = append(dst, c)
			default:
				dst = append(dst, '=', upperHex[c>>4], upperHex[c&15])
			}
		}
		n += enc
		i += size
	}
	return append(dst, ewSuffix...)
}

// appendFolded appends printable ASCII s, folded at spaces (RFC 5322 section
// 2.2.3: a CRLF is inserted before a space) so lines keep to 78 characters
// where the words allow; col characters precede on the first line. It folds
// only at a single space between two words: unfolding readers (net/textproto)
// collapse the white space around a fold, so folding at a run of spaces would
// change the value.
func appendFolded(dst []byte, s string, col int) []byte {
	start, lineLen := 0, col
	for start < len(s) {
		end := start + 1
		for end < len(s) && !(s[end] == ' ' && s[end-1] != ' ' && end+1 < len(s) && s[end+1] != ' ') {
			end++
		}
		if start > 0 && lineLen+(end-start) > maxHeaderLine {
			dst = append(dst, '\r', '\n')
			lineLen = 0
		}
		dst = append(dst, s[start:end]...)
		lineLen += end - start
		start = end
	}
	return dst
}

// appendTextField appends an unstructured header field (RFC 5322 section 3.6.5
// Subject, or an extra field) with its CRLF: folded ASCII, or RFC 2047
// encoded-words when the value is not printable ASCII (section 5, rule (1)).
func appendTextField(dst []byte, name, value string) []byte {
	dst = append(dst, name...)
	dst = append(dst, ':', ' ')
	if needsEncodedWords(value) {
		dst = appendEncodedWords(dst, value, len(name)+2)
	} else {
		dst = appendFolded(dst, value, len(name)+2)
	}
	return append(dst, '\r', '\n')
}

// appendAddressField appends "Field: display-name <addr-spec>" with its CRLF
// (RFC 5322 section 3.4, as net/mail's Address.String writes it): the name as a
// quoted-string when it is printable ASCII and fits the line, as encoded-words
// otherwise (RFC 2047 section 5, rule (3)); the address moves to a continuation
// line when it would pass 78 characters.
func appendAddressField(dst []byte, field, name, addr string) []byte {
	lineStart := len(dst)
	dst = append(dst, field...)
	dst = append(dst, ':', ' ')
	fast := addrFast(addr)
	angleLen := len(addr) + 2
	var angle string
	if !fast {
		angle = angleAddr(addr) // quotes the local part; rare, allocates
		angleLen = len(angle)
	}
	if name != "" {
		if !needsEncodedWords(name) && len(field)+2+quotedLen(name) <= maxHeaderLine {
			dst = appendQuoted(dst, name)
		} else {
			dst = appendEncodedWords(dst, name, len(field)+2)
		}
		if i := lastLineStart(dst, lineStart); len(dst)-i+1+angleLen > maxHeaderLine {
			dst = append(dst, '\r', '\n')
		}
		dst = append(dst, ' ')
	}
	if fast {
		dst = append(dst, '<')
		dst = append(dst, addr...)
		dst = append(dst, '>')
	} else {
		dst = append(dst, angle...)
	}
	return append(dst, '\r', '\n')
}

// lastLineStart is the offset in dst where the last (unfinished) line starts,
// looking back no further than from.
func lastLineStart(dst []byte, from int) int {
	for i := len(dst) - 1; i >= from; i-- {
		if dst[i] == '\n' {
			return i + 1
		}
	}
	return from
}

// quotedLen is the length of s as a quoted-string.
func quotedLen(s string) int {
	n := len(s) + 2
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			n++
		}
	}
	return n
}

// appendQuoted writes s as an RFC 5322 section 3.2.4 quoted-string: DQUOTE and
// backslash as quoted-pairs, the rest (printable ASCII and SPACE) as qtext.
func appendQuoted(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			dst = append(dst, '\\')
		}
		dst = append(dst, s[i])
	}
	return append(dst, '"')
}

// headerTextOK reports, without allocating, whether checkHeaderText(what, s)
// would accept s: no CR, LF or NUL, valid UTF-8, no run of non-space longer
// than maxToken bytes (strings.Fields' notion of space, unicode.IsSpace).
func headerTextOK(s string) bool {
	run := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch c {
			case '\r', '\n', 0:
				return false
			case '\t', '\v', '\f', ' ':
				run = 0
			default:
				if run++; run > maxToken {
					return false
				}
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return false
		}
		if unicode.IsSpace(r) {
			run = 0
		} else if run += size; run > maxToken {
			return false
		}
		i += size
	}
	return true
}

// addrFast reports, without allocating, that addr certainly passes checkAddress
// and needs no quoting: a dot-atom local part and a host name of letters,
// digits, hyphens and dots (RFC 5322 section 3.4.1). Anything else goes through
// checkAddress itself, which decides.
func addrFast(addr string) bool {
	if len(addr) == 0 || len(addr) > maxAddrLen {
		return false
	}
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 {
		return false
	}
	local, domain := addr[:at], addr[at+1:]
	if !isDotAtom(local) || !isDotAtom(domain) {
		return false
	}
	for i := 0; i < len(domain); i++ {
		c := domain[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// unsubURLFast reports, without allocating, that u certainly passes
// checkUnsubURL: http(s)://host[:port] followed by path, query and fragment in
// RFC 3986 unreserved, sub-delims (less ',') and ":@/?#", with valid
// percent-escapes. Anything else goes through checkUnsubURL, which decides.
func unsubURLFast(u string) bool {
	var rest string
	switch {
	case strings.HasPrefix(u, "https://"):
		rest = u[len("https://"):]
	case strings.HasPrefix(u, "http://"):
		rest = u[len("http://"):]
	default:
		return false
	}
	if len(u) > maxToken {
		return false
	}
	i := 0
	for i < len(rest) && (isAlnum(rest[i]) || rest[i] == '.' || rest[i] == '-') {
		i++
	}
	if i == 0 {
		return false // no host
	}
	if i < len(rest) && rest[i] == ':' {
		for i++; i < len(rest) && rest[i] >= '0' && rest[i] <= '9'; i++ {
		}
	}
	if i < len(rest) && rest[i] != '/' && rest[i] != '?' && rest[i] != '#' {
		return false
	}
	for ; i < len(rest); i++ {
		c := rest[i]
		switch {
		case isAlnum(c), strings.IndexByte("-._~!$&'()*+;=:@/?#", c) >= 0:
		case c == '%' && i+2 < len(rest) && isHexDigit(rest[i+1]) && isHexDigit(rest[i+2]):
			i += 2
		default:
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isHexDigit(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
