package mailer

import "strings"

// FeedbackID is a Feedback-ID field value in Gmail's format: identifiers
// joined by ":", most specific first and the sender's last (e.g. the
// edition's date, "edition", the list, the newsroom), so that Google
// Postmaster Tools reports complaint rates per value of each. None may be
// personal: the field is in every copy. Each identifier keeps letters,
// digits, ".", "-" and "_"; anything else becomes "-", so no identifier can
// contain the ":" that separates them, and the value is ASCII atext a
// header field carries unchanged (RFC 5322 section 3.2.3).
func FeedbackID(ids ...string) string {
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(':')
		}
		for j := 0; j < len(id); j++ {
			if c := id[j]; feedbackIDChar(c) {
				b.WriteByte(c)
			} else {
				b.WriteByte('-')
			}
		}
	}
	return b.String()
}

func feedbackIDChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_'
}

// maxFeedbackID keeps the field on one header line (RFC 5322 section 2.1.1).
const maxFeedbackID = 200

func checkFeedbackID(v string) error {
	if len(v) > maxFeedbackID {
		return invalid("FeedbackID is longer than %d bytes", maxFeedbackID)
	}
	for i := 0; i < len(v); i++ {
		if !feedbackIDChar(v[i]) && v[i] != ':' {
			return invalid("FeedbackID %q has characters other than letters, digits and .-_: (use FeedbackID to build it)", v)
		}
	}
	return nil
}

// The per-recipient unsubscribe mailbox, unsubscribe+TOKEN@domain: a mail
// to it is matched to the subscriber by the token, not by its From, which
// anyone can forge.
const (
	mailtoPrefix = "mailto:unsubscribe+"
	mailtoQuery  = "?subject=unsubscribe"
	// maxMailtoToken keeps the local part within 64 octets (RFC 5321
	// section 4.5.3.1.1).
	maxMailtoToken = 64 - len("unsubscribe+")
)

// UnsubscribeMailtoFor is the mailto URI (RFC 6068) of the recipient's
// unsubscribe mailbox at domain, for List-Unsubscribe (RFC 2369 section
// 3.2): "mailto:unsubscribe+TOKEN@domain?subject=unsubscribe". token is the
// recipient's unsubscribe token (the one the one-click link carries);
// Prepared writes the same URI from Recipient.UnsubscribeToken.
func UnsubscribeMailtoFor(domain, token string) string {
	return mailtoPrefix + token + "@" + domain + mailtoQuery
}

// checkMailtoToken accepts what can stand in a dot-atom local part without
// quoting or percent-encoding (RFC 5322 section 3.2.3, RFC 6068 section
// 2): the base64url tokens subscribers makes are letters, digits, "-" and
// "_".
func checkMailtoToken(token string) error {
	if token == "" || len(token) > maxMailtoToken {
		return invalid("UnsubscribeToken must be 1 to %d characters", maxMailtoToken)
	}
	for i := 0; i < len(token); i++ {
		if !feedbackIDChar(token[i]) || token[i] == '.' {
			return invalid("UnsubscribeToken may hold only letters, digits, - and _")
		}
	}
	return nil
}

// appendListUnsubscribe writes List-Unsubscribe (RFC 2369 section 3.2) and, with
// an https URL, List-Unsubscribe-Post (RFC 8058 section 3.1), exactly as
// listUnsubscribeValue lays them out for Build: one line when it fits in 78
// characters, else folded after each comma. With a token and an
// UnsubscribeDomain the mailto is the recipient's own mailbox, written
// piece by piece so that it costs no allocation.
func (p *Prepared) appendListUnsubscribe(dst []byte, url, token string) []byte {
	const name = "List-Unsubscribe: "
	own := token != "" && p.mailtoAt != ""
	mailtoLen := len(p.mailto)
	if own {
		mailtoLen = len(mailtoPrefix) + len(token) + len(p.mailtoAt)
	}
	if url == "" && mailtoLen == 0 {
		return dst
	}
	total := len(name)
	if url != "" {
		total += len(url) + 4
	}
	if mailtoLen > 0 {
		total += mailtoLen + 4
	}
	sep := ", "
	if total > maxHeaderLine {
		sep = ",\r\n "
	}
	dst = append(dst, name...)
	if url != "" {
		dst = append(dst, '<')
		dst = append(dst, url...)
		dst = append(dst, '>')
		if mailtoLen > 0 {
			dst = append(dst, sep...)
		}
	}
	if own {
		dst = append(dst, '<')
		dst = append(dst, mailtoPrefix...)
		dst = append(dst, token...)
		dst = append(dst, p.mailtoAt...)
		dst = append(dst, '>')
	} else if mailtoLen > 0 {
		dst = append(dst, '<')
		dst = append(dst, p.mailto...)
		dst = append(dst, '>')
	}
	dst = append(dst, '\r', '\n')
	if url != "" {
		dst = append(dst, "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"...)
	}
	return dst
}
