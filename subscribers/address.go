package subscribers

import (
	"fmt"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"
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
