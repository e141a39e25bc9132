package delivery

import (
	"context"
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
	Now            func() time.Time
}

// Message is the message for one recipient. messageID is without angle
// brackets.
func (c *Composer) Message(to *mail.Address, messageID, unsubscribeURL string) mailer.Message {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	rc := templates.Recipient{Name: to.Name, Email: to.Address, UnsubscribeURL: unsubscribeURL}
	return mailer.Message{
		From:              c.From,
		To:                to,
		Subject:           c.Rendered.Subject(),
		Text:              c.Rendered.Text(rc),
		HTML:              c.Rendered.HTML(rc),
		MessageID:         messageID,
		Date:              now(),
		ListID:            c.ListID,
		UnsubscribeURL:    unsubscribeURL,
		UnsubscribeMailto: c.UnsubscribeMailto,
	}
}

// ForJob is the message of a leased delivery.
func (c *Composer) ForJob(j Job) mailer.Message {
	return c.Message(&mail.Address{Name: j.Name, Address: j.Email}, j.MessageID, c.UnsubscribeURL(j.SubscriberUUID))
}

// SMTPDialer opens go-mail connections to the relay, each sending the
// composer's messages.
func SMTPDialer(cfg mailer.Config, c *Composer) Dialer {
	return func(ctx context.Context) (Mailer, error) {
		conn, err := mailer.Dial(ctx, cfg)
		if err != nil {
			return nil, err
		}
		return &smtpMailer{conn: conn, compose: c}, nil
	}
}

type smtpMailer struct {
	conn    *mailer.Conn
	compose *Composer
}

func (m *smtpMailer) Send(ctx context.Context, j Job) Outcome {
	msg, err := mailer.Build(m.compose.ForJob(j))
	if err != nil {
		// The message itself is bad (an address the relay would refuse, a
		// header that can't be written): retrying can't help.
		return Outcome{Permanent: true, Reply: "build message: " + err.Error()}
	}
	reply, err := m.conn.Send(ctx, msg)
	if err == nil {
		return Outcome{Sent: true, Reply: reply}
	}
	e := mailer.Classify(err)
	return Outcome{
		Permanent:  e.Permanent,
		HardBounce: e.IsHardBounce(),
		ConnLost:   e.ConnLost,
		Code:       e.Code,
		Enhanced:   e.Enhanced,
		Reply:      e.Error(),
	}
}

func (m *smtpMailer) Close() error { return m.conn.Close() }
