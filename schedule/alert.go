package schedule

import (
	"context"
	"fmt"
	"net/mail"

	"newsletter/mailer"
	"newsletter/smtpclient"
)

// MailAlert emails a run's failure to an operator, through the relay and
// path the confirmation emails take (mailer.Build, one SMTP connection).
type MailAlert struct {
	SMTP smtpclient.Config
	From *mail.Address
	To   *mail.Address
	DKIM *mailer.DKIM
}

// Send is a Scheduler's Alert.
func (m *MailAlert) Send(ctx context.Context, subject, body string) error {
	msg, err := mailer.Build(mailer.Message{
		From: m.From, To: m.To, Subject: subject, Text: body, DKIM: m.DKIM,
		Transactional: true,
		// A machine wrote it: auto-responders must not answer (RFC 3834
		// section 5).
		Headers: map[string]string{"Auto-Submitted": "auto-generated"},
	})
	if err != nil {
		return fmt.Errorf("build the alert email: %w", err)
	}
	conn, err := smtpclient.DialMsg(ctx, m.SMTP)
	if err != nil {
		return fmt.Errorf("send the alert email: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Send(ctx, msg); err != nil {
		return fmt.Errorf("send the alert email to %s: %w", m.To.Address, err)
	}
	return nil
}
