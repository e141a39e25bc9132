package templates

import (
	"bytes"
	"fmt"
)

// ConfirmEmail is the data of the confirmation email templates.
type ConfirmEmail struct {
	SiteName string
	Name     string // the reader's name; may be empty
	Email    string // the address the email goes to
	// ConfirmURL is the link whose page confirms: BASE/confirm/TOKEN.
	ConfirmURL string
	// ChangeAddress: the email asks to confirm a new address for an
	// existing subscription, not a sign-up.
	ChangeAddress bool
	// ValidFor says how long the link works, like "7 days".
	ValidFor string
	BaseURL  string
}

// ConfirmMessage is a rendered confirmation email.
type ConfirmMessage struct {
	Subject, Text, HTML string
}

// ConfirmEmail renders the confirmation email. The subject is made one
// line (a header can't hold a line break, whatever an override writes).
func (s *Set) ConfirmEmail(d ConfirmEmail) (ConfirmMessage, error) {
	var m ConfirmMessage
	var buf bytes.Buffer
	if err := s.confirmSubject.Execute(&buf, d); err != nil {
		return m, fmt.Errorf("templates: %s: %w", s.name[fileConfirmSubject], err)
	}
	m.Subject = oneLine(buf.String())
	if m.Subject == "" {
		return m, fmt.Errorf("templates: %s: the subject is empty", s.name[fileConfirmSubject])
	}
	buf.Reset()
	if err := s.confirmText.Execute(&buf, d); err != nil {
		return m, fmt.Errorf("templates: %s: %w", s.name[fileConfirmText], err)
	}
	m.Text = buf.String()
	buf.Reset()
	if err := s.confirmHTML.Execute(&buf, d); err != nil {
		return m, fmt.Errorf("templates: %s: %w", s.name[fileConfirmHTML], err)
	}
	m.HTML = buf.String()
	return m, nil
}
