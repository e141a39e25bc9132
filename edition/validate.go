package edition

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Validate reports the first thing that makes e unfit to send: a missing
// date, site name or lead title, a title or text with control characters
// or line breaks (they would break mail headers and the one-line-per-block
// layout; the parsers collapse them, so only hand-built editions trip
// this), an unknown block kind, a link that is not http(s), or more
// paragraphs or related stories than the limits allow (limits.go).
// Markup characters such as "<script>" are plain text here: escaping them
// is the templates' job.
func (e *Edition) Validate() error {
	if e == nil {
		return errors.New("edition: nil")
	}
	if e.Date.IsZero() {
		return errors.New("edition: date is required")
	}
	if e.Site.Name == "" {
		return errors.New("edition: site name is required")
	}
	if err := checkLine("site name", e.Site.Name); err != nil {
		return err
	}
	if err := checkLine("site tagline", e.Site.Tagline); err != nil {
		return err
	}
	if err := checkURL("site URL", e.Site.URL); err != nil {
		return err
	}
	if e.Lead.Title == "" {
		return errors.New("edition: lead title is required")
	}
	if err := checkStory("lead", e.Lead); err != nil {
		return err
	}
	if err := e.checkCounts(); err != nil {
		return fmt.Errorf("edition: %w", err)
	}
	for i, s := range e.Related {
		if err := checkStory(fmt.Sprintf("related story %d", i+1), s); err != nil {
			return err
		}
	}
	return nil
}

// Subject is the mail subject as editions are listed: the editor's
// (Edits.Subject), or "<site name>: <lead title>".
func (e *Edition) Subject() string {
	if e.Edits.Subject != "" {
		return e.Edits.Subject
	}
	return e.Site.Name + ": " + e.Lead.Title
}

func checkStory(what string, s Story) error {
	if s.Title == "" {
		return fmt.Errorf("edition: %s: title is required", what)
	}
	if err := checkLine(what+" title", s.Title); err != nil {
		return err
	}
	if err := checkLine(what+" summary", s.Summary); err != nil {
		return err
	}
	if err := checkURL(what+" URL", s.URL); err != nil {
		return err
	}
	for i, b := range s.Body {
		switch b.Kind {
		case Paragraph, Caption, Heading:
		default:
			return fmt.Errorf("edition: %s block %d: unknown kind %q (want %q, %q or %q)", what, i+1, b.Kind, Paragraph, Caption, Heading)
		}
		if b.Text == "" {
			return fmt.Errorf("edition: %s block %d: empty text", what, i+1)
		}
		if err := checkLine(fmt.Sprintf("%s block %d", what, i+1), b.Text); err != nil {
			return err
		}
	}
	return nil
}

func checkLine(what, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("edition: %s is not valid UTF-8", what)
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return fmt.Errorf("edition: %s contains a control character or line break (%U)", what, r)
		}
	}
	return nil
}

func checkURL(what, u string) error {
	if u == "" {
		return nil
	}
	if s, ok := httpURL(u); !ok || s != u {
		return fmt.Errorf("edition: %s %q: want an http or https URL", what, u)
	}
	return nil
}
