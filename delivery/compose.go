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

// Message is the message for one recipient. messageID is without angle
// brackets.
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

// ForJob is the message of a leased delivery.
func (c *Composer) ForJob(j Job) mailer.Message {
	return c.Message(&mail.Address{Name: j.Name, Address: j.Email}, j.MessageID, c.UnsubscribeURL(j.SubscriberUUID))
}

// SMTPDialer opens go-mail connections, each sending the composer's
// messages, to the first of the relays that answers.
func SMTPDialer(relays []smtpclient.Config, c *Composer) Dialer {
	return func(ctx context.Context) (Mailer, error) {
		conn, err := dialFirst(ctx, relays, smtpclient.DialMsg)
		if err != nil {
			return nil, err
		}
		return &smtpMailer{conn: conn, compose: c}, nil
	}
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

type smtpMailer struct {
	conn    *smtpclient.MsgConn
	compose *Composer
}

// Send sends the jobs one by one: go-mail's client is not pipelined.
func (m *smtpMailer) Send(ctx context.Context, jobs []Job, out []Outcome) {
	for i, j := range jobs {
		if m.conn.Broken() {
			out[i] = Outcome{ConnLost: true, NotTried: true, Reply: "not sent: the connection was lost"}
			continue
		}
		out[i] = m.send(ctx, j)
	}
}

func (m *smtpMailer) send(ctx context.Context, j Job) Outcome {
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
	return outcomeOf(smtpclient.Classify(err))
}

func (m *smtpMailer) Close() error { return m.conn.Close() }
