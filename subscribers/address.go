package subscribers

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
)

// NormalizeAddress checks that s is one bare mailbox (local@domain) that a
// mail server would accept and returns its canonical form, the one every
// spelling of the mailbox maps to, so that uniqueness, the per-address
// limits and the suppression list all see one person as one address:
//
//   - the domain is mapped as a resolver maps it (UTS #46: case, width,
//     NFC) and written in its Unicode form, whether it came as Unicode or
//     as A-labels (xn--, RFC 5891 section 4.4);
//   - the local part is in Unicode NFC (RFC 6532 section 3.1) and keeps its
//     case (RFC 5321 section 2.4: it may be case-sensitive; uniqueness is
//     case-insensitive in the database all the same);
//   - a quoted local part whose content is a dot-atom is written without
//     the quotes, which RFC 5321 section 4.1.2 makes the same mailbox.
func NormalizeAddress(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("email address is empty")
	}
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("email address %q is not valid UTF-8", s)
	}
	if r, ok := forbiddenRune(s); ok {
		return "", fmt.Errorf("email address %q contains %s", s, describeRune(r))
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return "", fmt.Errorf("%q is not an email address like name@example.com", s)
	}
	local, err := canonicalLocal(s[:at])
	if err != nil && strings.HasPrefix(s, `"`) {
		return "", fmt.Errorf("email address %q: %w", s, err) // valid, so not "not an email address"
	}
	if err != nil {
		return "", fmt.Errorf("%q is not an email address like name@example.com: %w", s, err)
	}
	domain, err := canonicalDomain(s[at+1:])
	if err != nil {
		return "", fmt.Errorf("email address %q: %w", s, err)
	}
	// RFC 5321 section 4.5.3.1.1 and 4.5.3.1.3: size limits.
	if len(local) > 64 {
		return "", fmt.Errorf("email address %q: the part before @ is longer than 64 characters", s)
	}
	addr := local + "@" + domain
	if len(addr) > 254 || len(SMTPAddress(addr)) > 254 {
		return "", fmt.Errorf("email address %q is longer than 254 characters", s)
	}
	return addr, nil
}

// canonicalLocal is the local part in NFC, unquoted when it is a quoted
// dot-atom. A quoted string that needs its quotes (a space, say) is valid
// (RFC 5321 section 4.1.2) but refused: the SMTP client and the To header
// take the address as a bare local@domain, and section 4.1.2 itself asks
// hosts to avoid mailboxes that need the quoted form.
func canonicalLocal(l string) (string, error) {
	if l == "" {
		return "", fmt.Errorf("nothing before the @")
	}
	if strings.HasPrefix(l, `"`) {
		if len(l) < 2 || !strings.HasSuffix(l, `"`) {
			return "", fmt.Errorf("the part before @ opens a quote it does not close")
		}
		inner := l[1 : len(l)-1]
		if strings.ContainsAny(inner, `\"`) || !isDotAtom(norm.NFC.String(inner)) {
			return "", fmt.Errorf("the part before @ is a quoted string (%s) with characters a plain address can't have, such as a space; "+
				"RFC 5321 allows it but this list delivers only to addresses without quotes", l)
		}
		l = inner
	}
	l = norm.NFC.String(l)
	if !isDotAtom(l) {
		return "", fmt.Errorf("the part before @ (%s) has a character an address can't have unquoted, or a dot at its start, its end or twice in a row", l)
	}
	return l, nil
}

// isDotAtom reports whether s is a dot-atom (RFC 5322 section 3.2.3) of
// atext, non-ASCII letters included (RFC 6532 section 3.2).
func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("!#$%&'*+-/=?^_`{|}~.", r):
		case r >= utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsMark(r) || unicode.IsNumber(r) || unicode.IsPunct(r) || unicode.IsSymbol(r)):
		default:
			return false
		}
	}
	return true
}

// canonicalDomain maps d to its one Unicode form: through the A-labels and
// back, so that "bücher.example", "BÜCHER.example" and
// "xn--bcher-kva.example" are one domain.
func canonicalDomain(d string) (string, error) {
	if d == "" {
		return "", fmt.Errorf("nothing after the @")
	}
	if strings.HasPrefix(d, "[") {
		return "", fmt.Errorf("the domain is an address literal (%s); use the host name", d)
	}
	a, err := idnaProfile.ToASCII(d)
	if err != nil {
		if cerr := checkDomain(strings.ToLower(d)); cerr != nil {
			return "", cerr
		}
		return "", fmt.Errorf("the domain %q is not a valid domain name", d)
	}
	u, err := idnaProfile.ToUnicode(a)
	if err != nil {
		return "", fmt.Errorf("the domain %q is not a valid internationalised domain name", d)
	}
	if err := checkDomain(u); err != nil {
		return "", err
	}
	return u, nil
}

// checkDomain accepts a dotted host name whose labels are letters, digits
// and hyphens (RFC 5321 section 4.1.2), Unicode letters included so
// internationalised domains (RFC 6531) are accepted. Address literals are
// refused: no newsletter reader has one.
func checkDomain(d string) error {
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return fmt.Errorf("the domain %q has no dot (a typo for %s.com?)", d, d)
	}
	for _, l := range labels {
		if l == "" {
			return fmt.Errorf("the domain %q has an empty part (two dots in a row?)", d)
		}
		if len(l) > 63 {
			return fmt.Errorf("the domain %q has a part longer than 63 characters", d)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("the domain %q has a part that starts or ends with a hyphen", d)
		}
		for _, r := range l {
			if r != '-' && !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.IsMark(r) {
				return fmt.Errorf("the domain %q contains %s", d, describeRune(r))
			}
		}
	}
	if tld := labels[len(labels)-1]; utf8.RuneCountInString(tld) < 2 {
		return fmt.Errorf("the domain %q ends in a one-letter part", d)
	}
	return nil
}

// forbiddenRune finds the first character an address must not hold: C0 and
// C1 controls, and the invisible format characters (bidi embeddings,
// overrides and isolates, zero-width characters, the BOM, the line and
// paragraph separators) with which an address can be made to look like
// another one, or to print as something else.
func forbiddenRune(s string) (rune, bool) {
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029' ||
			unicode.Is(unicode.Zl, r) || unicode.Is(unicode.Zp, r) {
			return r, true
		}
	}
	return 0, false
}

// runeNames are the names of the characters most often found where they
// should not be; the others are named by code point only.
var runeNames = map[rune]string{
	0x00: "NUL", 0x09: "CHARACTER TABULATION", 0x0A: "LINE FEED (a line break)", 0x0D: "CARRIAGE RETURN (a line break)",
	0x7F: "DELETE", 0x85: "NEXT LINE (a line break)", 0x9B: "CONTROL SEQUENCE INTRODUCER",
	0x200B: "ZERO WIDTH SPACE", 0x200C: "ZERO WIDTH NON-JOINER", 0x200D: "ZERO WIDTH JOINER",
	0x200E: "LEFT-TO-RIGHT MARK", 0x200F: "RIGHT-TO-LEFT MARK",
	0x2028: "LINE SEPARATOR", 0x2029: "PARAGRAPH SEPARATOR",
	0x202A: "LEFT-TO-RIGHT EMBEDDING", 0x202B: "RIGHT-TO-LEFT EMBEDDING", 0x202C: "POP DIRECTIONAL FORMATTING",
	0x202D: "LEFT-TO-RIGHT OVERRIDE", 0x202E: "RIGHT-TO-LEFT OVERRIDE",
	0x2060: "WORD JOINER", 0x2066: "LEFT-TO-RIGHT ISOLATE", 0x2067: "RIGHT-TO-LEFT ISOLATE",
	0x2068: "FIRST STRONG ISOLATE", 0x2069: "POP DIRECTIONAL ISOLATE", 0xFEFF: "ZERO WIDTH NO-BREAK SPACE (byte order mark)",
}

// describeRune names r for an error message: "U+202E RIGHT-TO-LEFT
// OVERRIDE", or "U+0085 (a control character)", or a printable r quoted.
func describeRune(r rune) string {
	if n, ok := runeNames[r]; ok {
		return fmt.Sprintf("U+%04X %s", r, n)
	}
	switch {
	case unicode.IsControl(r):
		return fmt.Sprintf("U+%04X (a control character)", r)
	case !unicode.IsPrint(r):
		return fmt.Sprintf("U+%04X (an invisible character)", r)
	}
	return fmt.Sprintf("%q", r)
}

// MaxNameLen bounds a subscriber's name, in characters, at every entrance:
// a name is only a greeting, and one too long for a header line makes every
// send to the person fail.
const MaxNameLen = 100

// CleanName makes a display name safe to store and put in a header: line
// breaks and other control characters become spaces, runs of space collapse.
func CleanName(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	return strings.Join(strings.Fields(s), " ")
}

// CheckName refuses a name longer than MaxNameLen characters once cleaned.
func CheckName(name string) error {
	if n := utf8.RuneCountInString(CleanName(name)); n > MaxNameLen {
		return fmt.Errorf("the name is %d characters long; at most %d are kept", n, MaxNameLen)
	}
	return nil
}

// idnaProfile validates internationalised domains as a lookup would
// (RFC 5891 section 5, UTS #46 mapping), with the DNS length limits.
var idnaProfile = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.VerifyDNSLength(true), idna.StrictDomainName(true))

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// SMTPAddress is addr as it goes in an SMTP envelope and the To header: a
// Unicode domain becomes its A-label (punycode, RFC 5891 section 4.4), so a
// reader at an internationalised domain with an ASCII local part gets mail
// through any server. A non-ASCII local part has no ASCII form; it is left
// as it is and needs a relay with SMTPUTF8 (RFC 6531), which go-mail asks
// for whenever the server offers it.
func SMTPAddress(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || isASCII(addr[at+1:]) {
		return addr
	}
	a, err := idnaProfile.ToASCII(addr[at+1:])
	if err != nil {
		return addr // NormalizeAddress let no such domain in
	}
	return addr[:at+1] + a
}

// hashForms are the spellings of a canonical address whose keyed hashes may
// be on the suppression list: the canonical one, and, for a Unicode domain,
// the A-label one, which addresses typed in ASCII were kept as before every
// address had one form.
func hashForms(addr string) []string {
	if a := SMTPAddress(addr); a != addr {
		return []string{addr, a}
	}
	return []string{addr}
}
