package mailer

import (
	"crypto/rand"
	"encoding/hex"
	"net/mail"
	"net/textproto"
	"net/url"
	"strings"
	"unicode/utf8"
)

// The checks and formats of a message's header fields: what each may hold
// (RFC 5322, RFC 2369, RFC 2919) and how a value is written.

// checkHeaderText rejects what could break out of a header field: CR and LF end
// the field (RFC 5322 section 2.2), NUL is never allowed (section 4.1 lists it
// only as obsolete), and an unbreakable run longer than maxToken could not be
// folded under 998 octets.
func checkHeaderText(what, v string) error {
	if strings.ContainsAny(v, "\r\n") {
		return invalid("%s contains a line break (CR or LF)", what)
	}
	if strings.ContainsRune(v, 0) {
		return invalid("%s contains a NUL byte", what)
	}
	if !utf8.ValidString(v) {
		return invalid("%s is not valid UTF-8", what)
	}
	for _, tok := range strings.Fields(v) {
		if len(tok) > maxToken {
			return invalid("%s has a word longer than %d bytes", what, maxToken)
		}
	}
	return nil
}

func checkAddress(field string, a *mail.Address) error {
	if a == nil || a.Address == "" {
		return invalid("%s address is missing", field)
	}
	if err := checkHeaderText(field+" name", a.Name); err != nil {
		return err
	}
	if field == "From" && netMailMisencodes(a.Name) {
		// go-mail writes From through net/mail, which would break this
		// name (see netMailMisencodes); To is written around it.
		return invalid("From name: a name with non-ASCII characters and a backslash can't be written; drop the backslash")
	}
	if err := checkHeaderText(field+" address", a.Address); err != nil {
		return err
	}
	if len(a.Address) > maxAddrLen {
		return invalid("%s address is longer than %d bytes", field, maxAddrLen)
	}
	parsed, err := mail.ParseAddress("<" + a.Address + ">")
	if err != nil || parsed.Address != a.Address {
		return invalid("%s address is not a valid addr-spec (RFC 5322 section 3.4.1)", field)
	}
	return nil
}

// checkMessageID accepts id-left "@" id-right with dot-atom-text on both sides
// (RFC 5322 section 3.6.4), without the angle brackets.
func checkMessageID(id string) error {
	if strings.HasPrefix(id, "<") || strings.HasSuffix(id, ">") {
		return invalid("MessageID must be given without angle brackets")
	}
	left, right, ok := strings.Cut(id, "@")
	if !ok || !isDotAtom(left) || !isDotAtom(right) || len(id) > maxToken {
		return invalid("MessageID must look like left@right using letters, digits and .-_+ (RFC 5322 section 3.6.4)")
	}
	return nil
}

func randomMessageID(fromAddr string) string {
	domain := "localhost"
	if i := strings.LastIndexByte(fromAddr, '@'); i >= 0 && isDotAtom(fromAddr[i+1:]) {
		domain = fromAddr[i+1:]
	}
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:]) + "@" + domain
}

// isDotAtom reports RFC 5322 section 3.2.3 dot-atom-text.
func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '.' && !isAtext(s[i]) {
			return false
		}
	}
	return true
}

// isAtext reports RFC 5322 section 3.2.3 atext (ASCII only).
func isAtext(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// checkURIText applies the rules every List-Unsubscribe URI shares: printable
// ASCII only (header fields are ASCII, RFC 5322 section 2.2), and no characters
// that would end the <...> or split the list (RFC 2369 section 2: literal commas
// and angle brackets must be percent-encoded).
func checkURIText(what, s string) error {
	if err := checkHeaderText(what, s); err != nil {
		return err
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f {
			return invalid("%s contains spaces, control or non-ASCII characters; percent-encode them", what)
		}
		switch c {
		case '<', '>', ',', '"':
			return invalid("%s contains %q; percent-encode it (RFC 2369 section 2)", what, c)
		}
	}
	return nil
}

func checkUnsubURL(s string) (*url.URL, error) {
	if err := checkURIText("UnsubscribeURL", s); err != nil {
		return nil, err
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Opaque != "" {
		return nil, invalid("UnsubscribeURL must be an absolute https:// (or http://) URL")
	}
	if u.User != nil {
		return nil, invalid("UnsubscribeURL must not contain user info")
	}
	return u, nil
}

func checkMailto(s string) error {
	if err := checkURIText("UnsubscribeMailto", s); err != nil {
		return err
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "mailto" || u.Opaque == "" {
		return invalid("UnsubscribeMailto must be a mailto: URI such as mailto:unsubscribe@example.com?subject=unsubscribe (RFC 6068)")
	}
	addr, err := url.PathUnescape(u.Opaque)
	if err != nil {
		return invalid("UnsubscribeMailto has a malformed percent-encoding")
	}
	if _, err := mail.ParseAddress("<" + addr + ">"); err != nil {
		return invalid("UnsubscribeMailto does not contain a valid address")
	}
	return nil
}

// listUnsubscribeValue joins the URIs in angle brackets. A single line is kept
// when it fits in 78 characters (RFC 5322 section 2.1.1 SHOULD); otherwise the
// field is folded after each comma (RFC 5322 section 2.2.3), never inside a URI.
func listUnsubscribeValue(uris []string) string {
	parts := make([]string, len(uris))
	total := len("List-Unsubscribe: ")
	for i, u := range uris {
		parts[i] = "<" + u + ">"
		total += len(parts[i]) + 2
	}
	if total <= 78 {
		return strings.Join(parts, ", ")
	}
	return strings.Join(parts, ",\r\n ")
}

// formatListID renders "Description <label.namespace>" per RFC 2919 section 3. The
// description is a phrase: left alone when it is plain atoms, quoted when it has
// specials, RFC 2047-encoded when non-ASCII (RFC 2047 section 5(3) allows
// encoded-words in a phrase; never inside the <list-id>).
func formatListID(v string) (string, error) {
	if err := checkHeaderText("ListID", v); err != nil {
		return "", err
	}
	desc, id := "", strings.TrimSpace(v)
	if i := strings.LastIndexByte(v, '<'); i >= 0 {
		if !strings.HasSuffix(strings.TrimSpace(v), ">") {
			return "", invalid("ListID must look like \"Name <list.example.com>\"")
		}
		desc = strings.TrimSpace(v[:i])
		id = strings.TrimSuffix(strings.TrimSpace(v[i+1:]), ">")
	}
	// RFC 2919 section 2: list-label "." list-id-namespace, dot-atom-text,
	// at most 255 octets.
	if !isDotAtom(id) || !strings.Contains(id, ".") || len(id) > maxListIDLen {
		return "", invalid("ListID identifier must look like list-name.example.com (RFC 2919 section 2)")
	}
	if desc == "" {
		return "<" + id + ">", nil
	}
	return formatPhrase(desc) + " <" + id + ">", nil
}

func formatPhrase(s string) string {
	ascii, atoms := true, true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 || c < 0x20 || c == 0x7f {
			ascii = false
			break
		}
		if c != ' ' && !isAtext(c) {
			atoms = false
		}
	}
	switch {
	case !ascii:
		// RFC 2047 section 5 rule (3): in a phrase, an encoded-word carries
		// only letters, digits and !*+-/ as they are (mime.QEncoding would
		// leave specials such as "(" bare).
		return string(appendEncodedWords(nil, s, len("List-Id: ")))
	case atoms:
		return s
	default:
		r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
		return `"` + r.Replace(s) + `"`
	}
}

// checkFieldName validates an extra header name (RFC 5322 section 3.6.8:
// printable ASCII except ':') and returns its canonical form.
func checkFieldName(k string) (string, error) {
	if k == "" || len(k) > 76 {
		return "", invalid("header name %q is empty or too long", k)
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 33 || k[i] > 126 || k[i] == ':' {
			return "", invalid("header name %q contains characters not allowed in a field name (RFC 5322 section 3.6.8)", k)
		}
	}
	return textproto.CanonicalMIMEHeaderKey(k), nil
}
