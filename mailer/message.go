package mailer

import (
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	gomail "github.com/wneessen/go-mail"
)

// Message is one recipient's copy of an edition.
type Message struct {
	From    *mail.Address
	To      *mail.Address
	Subject string
	Text    string // text/plain body, required
	HTML    string // text/html body, optional (then the message is text/plain only)
	// MessageID without angle brackets, e.g. "20251113.ann@example.com". Empty
	// means a random one at the From domain.
	MessageID string
	Date      time.Time // zero means now
	// ListID is the RFC 2919 list identifier, "London Daily <london-daily.example.com>"
	// or just "london-daily.example.com".
	ListID string
	// UnsubscribeURL is the one-click unsubscribe endpoint. RFC 8058 wants
	// https; http is accepted for development (the configuration warns).
	UnsubscribeURL string
	// UnsubscribeMailto is e.g. "mailto:unsubscribe@example.com?subject=unsubscribe",
	// or a recipient's own mailbox (UnsubscribeMailtoFor).
	UnsubscribeMailto string
	// FeedbackID is the Feedback-ID field's value (see FeedbackID), empty
	// for none.
	FeedbackID string
	// Headers are extra header fields (e.g. "X-Edition": "2025-11-13"). They cannot
	// replace the fields this package sets itself.
	Headers map[string]string
	// DKIM, when set, signs the message (see DKIM).
	DKIM *DKIM
	// Transactional marks a message one person asked for (a confirmation
	// link), not the newsletter: it goes without the bulk-mail fields
	// (Precedence, X-Auto-Response-Suppress); Headers can say
	// Auto-Submitted instead (RFC 3834 section 5).
	Transactional bool
}

// Limits that keep every header line within RFC 5322 section 2.1.1 (998 octets
// excluding CRLF). go-mail folds header values only at spaces, so any single
// unbreakable token must fit on one line together with the field name.
const (
	maxToken     = 900
	maxAddrLen   = 254 // RFC 5321 section 4.5.3.1.3 path limit minus the brackets
	maxListIDLen = 255 // RFC 2919 section 2
)

// Header names this package owns; Message.Headers may not set them.
var reservedHeaders = map[string]bool{
	"From": true, "To": true, "Cc": true, "Bcc": true, "Reply-To": true, "Sender": true,
	"Subject": true, "Date": true, "Message-Id": true, "Mime-Version": true,
	"Content-Type": true, "Content-Transfer-Encoding": true, "Content-Disposition": true,
	"List-Unsubscribe": true, "List-Unsubscribe-Post": true, "List-Id": true,
	"Precedence": true, "X-Auto-Response-Suppress": true, "Return-Path": true,
	"Received": true, "Dkim-Signature": true, "Feedback-Id": true,
}

// ErrInvalidMessage is wrapped by every validation error from Build.
var ErrInvalidMessage = errors.New("invalid message")

// Build validates m and turns it into a go-mail message: multipart/alternative
// (RFC 2046 section 5.1.4) with text/plain first and text/html last (the last
// part is the preferred one), UTF-8, quoted-printable. Any header value with CR or
// LF is rejected, so header injection is impossible.
func Build(m Message) (*gomail.Msg, error) {
	p, err := m.prepare()
	if err != nil {
		return nil, fmt.Errorf("building message: %w", err)
	}
	// Quoted-printable keeps every body line <= 76 characters (RFC 2045 section
	// 6.7 rule 5), well inside the 998-octet limit of RFC 5322 section 2.1.1,
	// and works even when a relay lacks 8BITMIME.
	opts := []gomail.MsgOption{
		gomail.WithCharset(gomail.CharsetUTF8),
		gomail.WithEncoding(gomail.EncodingQP),
		gomail.WithNoDefaultUserAgent(), // no "go-mail vX.Y" advertisement
	}
	msg := gomail.NewMsg(opts...)
	// RFC 5322 section 3.6.2 From and 3.6.3 To; go-mail renders them with
	// net/mail, which RFC 2047-encodes non-ASCII display names (section 5(3)).
	from, to := *m.From, *m.To
	msg.FromMailAddress(&from)
	if netMailMisencodes(to.Name) {
		// net/mail would write this name as a "Q" encoded-word with a bare
		// backslash, which RFC 2047 section 5 rule (3) forbids in a phrase
		// and readers (net/mail among them) refuse. Write To as the bulk path
		// does, and give go-mail the recipient as Bcc, which it uses for the
		// envelope (RFC 5321 section 3.3 RCPT) and never writes.
		field := string(appendAddressField(nil, "To", to.Name, to.Address))
		msg.SetGenHeaderPreformatted("To", strings.TrimSuffix(strings.TrimPrefix(field, "To: "), "\r\n"))
		msg.BccMailAddress(&to)
	} else {
		msg.ToMailAddress(&to)
	}
	// RFC 5322 section 3.6.5 Subject; RFC 2047 encoded-words when non-ASCII.
	msg.Subject(m.Subject)
	// RFC 5322 section 3.6.1 Date (the origination date).
	msg.SetDateWithValue(p.date)
	// RFC 5322 section 3.6.4 Message-ID: "<" id-left "@" id-right ">".
	msg.SetMessageIDWithValue(p.messageID)
	// MIME-Version: 1.0 (RFC 2045 section 4) is added by go-mail when writing.

	// RFC 2369 section 3.2 List-Unsubscribe: comma-separated URIs in angle
	// brackets, most preferred first; the https URI first so RFC 8058 one-click
	// is found. Set preformatted so go-mail neither encodes nor re-folds it.
	if len(p.unsub) > 0 {
		msg.SetGenHeaderPreformatted(gomail.HeaderListUnsubscribe, listUnsubscribeValue(p.unsub))
	}
	// RFC 8058 section 3.1: exactly "List-Unsubscribe=One-Click" whenever
	// List-Unsubscribe has an http(s) URI (the receiver POSTs to it). The RFC
	// requires HTTPS, which production configuration gives; a development
	// setup on plain http keeps the header so it can be tried. Both fields
	// must be covered by the DKIM signature (RFC 8058 section 4): m.DKIM
	// signs both, or the relay or ESP must.
	if p.oneClick {
		msg.SetGenHeaderPreformatted(gomail.HeaderListUnsubscribePost, "List-Unsubscribe=One-Click")
	}
	// RFC 2919 section 3 List-Id: [phrase] "<" list-id ">".
	if p.listID != "" {
		msg.SetGenHeaderPreformatted("List-Id", p.listID)
	}
	// Precedence: bulk and X-Auto-Response-Suppress: All keep vacation
	// auto-responders quiet (RFC 3834 section 2 asks responders not to answer
	// list/bulk mail; Precedence itself is a de-facto convention, Exchange
	// honours X-Auto-Response-Suppress). It does not affect Gmail filtering.
	if !m.Transactional {
		msg.SetBulk()
	}
	if m.FeedbackID != "" {
		msg.SetGenHeaderPreformatted("Feedback-ID", m.FeedbackID)
	}
	for _, h := range p.extra {
		// go-mail RFC 2047-encodes non-ASCII values and folds at spaces.
		msg.SetGenHeader(gomail.Header(h.key), h.val)
	}

	msg.SetBodyString(gomail.TypeTextPlain, oneBreak(m.Text))
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, oneBreak(m.HTML))
	}
	if m.DKIM != nil {
		if err := signMsg(msg, m.DKIM); err != nil {
			return nil, fmt.Errorf("building message: %w", err)
		}
	}
	return msg, nil
}

// netMailMisencodes reports whether net/mail's Address.String would write
// name as an invalid phrase: it Q-encodes a name that is not printable ASCII
// unless the name has one of the specials it lists, and that list lacks the
// backslash (RFC 2047 section 5 rule (3) allows only letters, digits and
// !*+-/=_ in a phrase's encoded-word).
func netMailMisencodes(name string) bool {
	return strings.Contains(name, `\`) && needsEncodedWords(name) &&
		!strings.ContainsAny(name, "\"#$%&'(),.:;<>@[]^`{|}~")
}

// oneBreak makes every line break of a body a bare LF, for go-mail to write
// as CRLF: CRLF, a lone CR and a lone LF each count as one break, as in the
// bulk path's encoder (RFC 5322 section 2.3 allows CR and LF only together).
// go-mail on its own reads "\n\r" as a single break, so a lone CR after a
// line would make the two paths write different text.
func oneBreak(s string) string {
	if !strings.Contains(s, "\r") {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

// BuildTo builds m and writes the complete message (CRLF line endings, as it
// would go over SMTP DATA) to w, for previews and .eml files.
func BuildTo(w io.Writer, m Message) error {
	msg, err := Build(m)
	if err != nil {
		return err
	}
	if _, err := msg.WriteTo(w); err != nil {
		return fmt.Errorf("writing message: %w", err)
	}
	return nil
}

type prepared struct {
	date      time.Time
	messageID string
	unsub     []string
	oneClick  bool
	listID    string
	extra     []header
}

type header struct{ key, val string }

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidMessage, fmt.Sprintf(format, args...))
}

func (m Message) prepare() (prepared, error) {
	var p prepared
	if err := checkAddress("From", m.From); err != nil {
		return p, err
	}
	if err := checkAddress("To", m.To); err != nil {
		return p, err
	}
	if strings.TrimSpace(m.Subject) == "" {
		return p, invalid("Subject is empty")
	}
	if err := checkHeaderText("Subject", m.Subject); err != nil {
		return p, err
	}
	if m.Text == "" {
		return p, invalid("Text body is empty; a text/plain part is required")
	}
	if !utf8.ValidString(m.Text) || !utf8.ValidString(m.HTML) {
		return p, invalid("body is not valid UTF-8")
	}

	p.date = m.Date
	if p.date.IsZero() {
		p.date = time.Now()
	}

	p.messageID = m.MessageID
	if p.messageID == "" {
		p.messageID = randomMessageID(m.From.Address)
	} else if err := checkMessageID(p.messageID); err != nil {
		return p, err
	}

	if m.UnsubscribeURL != "" {
		if _, err := checkUnsubURL(m.UnsubscribeURL); err != nil {
			return p, err
		}
		p.unsub = append(p.unsub, m.UnsubscribeURL)
		p.oneClick = true // checkUnsubURL allows http(s) only
	}
	if m.UnsubscribeMailto != "" {
		if err := checkMailto(m.UnsubscribeMailto); err != nil {
			return p, err
		}
		p.unsub = append(p.unsub, m.UnsubscribeMailto)
	}

	if m.FeedbackID != "" {
		if err := checkFeedbackID(m.FeedbackID); err != nil {
			return p, err
		}
	}

	if m.ListID != "" {
		v, err := formatListID(m.ListID)
		if err != nil {
			return p, err
		}
		p.listID = v
	}

	for k, v := range m.Headers {
		key, err := checkFieldName(k)
		if err != nil {
			return p, err
		}
		if reservedHeaders[key] {
			return p, invalid("header %s is set by the mailer; use the Message field instead of Headers", key)
		}
		if err := checkHeaderText("header "+key, v); err != nil {
			return p, err
		}
		p.extra = append(p.extra, header{key, v})
	}
	return p, nil
}
