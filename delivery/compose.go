package delivery

import (
	"net/mail"
	"time"

	"newsletter/mailer"
	"newsletter/templates"
)

// Composer turns an edition rendered once into each recipient's message:
// only the name, the address and the links differ between recipients.
type Composer struct {
	Rendered          *templates.Rendered
	From              *mail.Address
	ListID            string
	UnsubscribeMailto string
	// UnsubscribeURL is the subscriber's one-click link, made from their UUID.
	UnsubscribeURL func(uuid string) string
	// UnsubscribeToken, when set with UnsubscribeDomain, is the token the
	// one-click link carries: it names the subscriber's own unsubscribe
	// mailbox, unsubscribe+TOKEN@UnsubscribeDomain, in List-Unsubscribe, so
	// a mailed request is matched by the token, not by its forgeable From.
	UnsubscribeToken  func(uuid string) string
	UnsubscribeDomain string
	// UnsubscribePrefix, when set with UnsubscribeToken, makes the one-click
	// link as UnsubscribePrefix + token, so the bulk path computes each
	// recipient's token once for the link and the mailbox.
	UnsubscribePrefix string
	FeedbackID        string       // the Feedback-ID field, for every copy
	DKIM              *mailer.DKIM // signs every message when set
	// ReturnPath appends delivery id's envelope sender (MAIL FROM) to dst:
	// a per-recipient address (VERP, see bounces.VERP), so that a bounce
	// names its delivery. Nil: the From address, for every message.
	ReturnPath func(dst []byte, id int64) []byte
}

// Message is the message for one recipient, built whole by go-mail: a test
// copy or a preview. An edition's send uses Prepare instead, and
// mailer.Build stays the reference that path is tested against. messageID
// is without angle brackets.
func (c *Composer) Message(to *mail.Address, messageID, unsubscribeURL string) mailer.Message {
	rc := templates.Recipient{Name: to.Name, Email: to.Address, UnsubscribeURL: unsubscribeURL}
	return mailer.Message{
		From:              c.From,
		To:                to,
		Subject:           c.Rendered.Subject(),
		Text:              c.Rendered.Text(rc),
		HTML:              c.Rendered.HTML(rc),
		MessageID:         messageID,
		Date:              time.Now(),
		ListID:            c.ListID,
		UnsubscribeURL:    unsubscribeURL,
		UnsubscribeMailto: c.UnsubscribeMailto,
		FeedbackID:        c.FeedbackID,
		DKIM:              c.DKIM,
	}
}

// unsubscribe is the recipient's one-click link and the token of their
// unsubscribe mailbox ("" when there is none), the token computed once.
func (c *Composer) unsubscribe(uuid string) (url, token string) {
	if c.UnsubscribeToken == nil {
		return c.UnsubscribeURL(uuid), ""
	}
	token = c.UnsubscribeToken(uuid)
	if c.UnsubscribePrefix != "" {
		return c.UnsubscribePrefix + token, token
	}
	return c.UnsubscribeURL(uuid), token
}
