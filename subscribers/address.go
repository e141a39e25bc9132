package subscribers

import (
	"fmt"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// NormalizeAddress checks that s is one bare mailbox (local@domain) that a
// mail server would accept and returns it with the domain lower-cased; the
// local part keeps its case (RFC 5321 section 2.4: it may be case-sensitive).
func NormalizeAddress(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("email address is empty")
	}
	if strings.ContainsAny(s, "\r\n\x00") {
		return "", fmt.Errorf("email address %q contains a line break", s)
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return "", fmt.Errorf("%q is not an email address like name@example.com", s)
	}
	at := strings.LastIndexByte(s, '@')
	local, domain := s[:at], strings.ToLower(s[at+1:])
	if !isASCII(domain) {
		// An internationalised domain (RFC 5890) is kept in its Unicode
		// form, mapped the way a resolver would (UTS #46: case, width and
		// NFC), so one domain typed two ways is one address.
		a, err := idnaProfile.ToASCII(domain)
		if err != nil {
			return "", fmt.Errorf("email address %q: the domain is not a valid internationalised domain name", s)
		}
		if domain, err = idnaProfile.ToUnicode(a); err != nil {
			return "", fmt.Errorf("email address %q: the domain is not a valid internationalised domain name", s)
		}
	}
	// RFC 5321 section 4.5.3.1.1 and 4.5.3.1.2: size limits of the parts.
	if len(local) > 64 {
		return "", fmt.Errorf("email address %q: the part before @ is longer than 64 characters", s)
	}
	if len(s) > 254 {
		return "", fmt.Errorf("email address %q is longer than 254 characters", s)
	}
	if err := checkDomain(domain); err != nil {
		return "", fmt.Errorf("email address %q: %w", s, err)
	}
	return local + "@" + domain, nil
}

// checkDomain accepts a dotted host name whose labels are letters, digits
// and hyphens (RFC 5321 section 4.1.2), Unicode letters included so
// internationalised domains (RFC 6531) are accepted. Address literals are
// refused: no newsletter reader has one.
func checkDomain(d string) error {
	if !utf8.ValidString(d) {
		return fmt.Errorf("the domain is not valid UTF-8")
	}
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
			if r != '-' && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
				return fmt.Errorf("the domain %q contains %q", d, r)
			}
		}
	}
	if tld := labels[len(labels)-1]; len(tld) < 2 {
		return fmt.Errorf("the domain %q ends in a one-letter part", d)
	}
	return nil
}

// CleanName makes a display name safe to store and put in a header: line
// breaks and other control characters become spaces, runs of space collapse.
func CleanName(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
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
