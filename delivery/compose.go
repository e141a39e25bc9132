package delivery

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"time"

	"newsletter/mailer"
	"newsletter/smtpclient"
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
	Now            func() time.Time
	DKIM           *mailer.DKIM // signs every message when set
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
		Date:              c.now(),
		ListID:            c.ListID,
		UnsubscribeURL:    unsubscribeURL,
		UnsubscribeMailto: c.UnsubscribeMailto,
		DKIM:              c.DKIM,
	}
}

func (c *Composer) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// dialFirst connects to the first relay that answers, in the order given:
// the first is the primary, the others take over while it is down.
func dialFirst[C any](ctx context.Context, relays []smtpclient.Config, dial func(context.Context, smtpclient.Config) (C, error)) (C, error) {
	var errs []error
	for _, cfg := range relays {
		c, err := dial(ctx, cfg)
		if err == nil {
			return c, nil
		}
		errs = append(errs, fmt.Errorf("%s:%d: %w", cfg.Host, cfg.Port, err))
		if ctx.Err() != nil {
			break
		}
	}
	var zero C
	if len(errs) == 0 {
		return zero, errors.New("no SMTP relay configured")
	}
	return zero, errors.Join(errs...)
}
