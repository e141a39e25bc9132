package templates

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"newsletter/edition"
)

// UnsubscribePage is the data for "unsubscribe.html": the page of the
// List-Unsubscribe link, which is also where a reader manages the
// subscription.
type UnsubscribePage struct {
	SiteName string
	// Action is where the unsubscribe form posts: the unsubscribe URL
	// itself, which also takes the RFC 8058 one-click POST the form
	// imitates.
	Action string
	// MaskedEmail, if set, names the subscription without giving the
	// address away to whoever holds the link: use MaskEmail.
	MaskedEmail string
	// Done shows the confirmation of an unsubscribe instead of the form.
	Done bool
	// Left: the reader is not subscribed (unsubscribed, or their address
	// bounced). Pending: the subscription waits for its confirmation.
	Left, Pending bool
	// CSRF is the anti-forgery token of the forms below (hidden field
	// "csrf"). Empty means the page can't have them (the answer to a
	// one-click POST sets no cookie): link to ManageURL instead.
	CSRF string
	// ManageURL is this page's address (the GET of the link).
	ManageURL string
	// Where the forms post: subscribe again, change the name, change the
	// address.
	ResubscribeAction, NameAction, EmailAction string
	// Name is the name the subscription has, NewEmail what was typed in
	// the address form when it is shown again with EmailError.
	Name, NewEmail        string
	NameError, EmailError string
	// Notice is a line of feedback at the top ("Your name is saved.").
	Notice string
}

// SubscribePage is the data for "subscribe.html", the sign-up form.
type SubscribePage struct {
	SiteName string
	Action   string // where the form posts
	CSRF     string // the form's anti-forgery token (hidden field "csrf")
	// Email and Name are what was typed, when the form is shown again with
	// Error (about the address) or NameError.
	Email, Name      string
	Error, NameError string
	// ArchiveURL links to the past editions; empty leaves the link out.
	ArchiveURL string
}

// ConfirmPage is the data for "confirm.html": the page of a confirmation
// link, whose button (a POST to Action) confirms.
type ConfirmPage struct {
	SiteName    string
	Action      string
	CSRF        string
	MaskedEmail string // the address being confirmed (MaskEmail)
	// ChangeAddress: the link moves a subscription to MaskedEmail rather
	// than confirming a sign-up.
	ChangeAddress bool
}

// MessagePage is the data for "message.html": a title and a sentence, for
// outcomes such as "This link is not valid", and an optional link onwards.
type MessagePage struct {
	SiteName string
	Title    string
	Message  string
	LinkURL  string // empty: no link
	LinkText string
}

// ArchivePage is the data for "archive.html".
type ArchivePage struct {
	SiteName string
	// BaseURL prefixes the edition links, BaseURL/editions/YYYY-MM-DD;
	// empty gives root-relative links.
	BaseURL  string
	Editions []ArchiveEntry // newest first, as shown
}

// ArchiveEntry is one edition in the archive.
type ArchiveEntry struct {
	Date  time.Time
	Title string // the lead story's title
}

// Page renders the web page name ("unsubscribe.html", "message.html",
// "archive.html" or "edition.html") with data of the page's type
// (UnsubscribePage, MessagePage, ArchivePage, View). Nothing is written to
// w unless the whole page rendered, so a failure can still become an error
// response.
func (s *Set) Page(w io.Writer, name string, data any) error {
	t, ok := s.pages[name]
	if !ok {
		return fmt.Errorf("templates: no page %q (pages: %s)", name, strings.Join(pageNames, ", "))
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, s.name["web/"+name], data); err != nil {
		return fmt.Errorf("templates: %s: %w", s.name["web/"+name], err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// WebEdition renders e as a web page: the email's content without anything
// personal.
func (s *Set) WebEdition(w io.Writer, e *edition.Edition, d EditionData) error {
	if e == nil {
		return errors.New("templates: WebEdition: nil edition")
	}
	return s.Page(w, "edition.html", newView(e, d))
}

// MaskEmail hides most of an address's local part, "ada@example.com" →
// "a***@example.com", for pages that anyone holding a link can see.
func MaskEmail(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 {
		return "***"
	}
	_, n := utf8.DecodeRuneInString(addr)
	return addr[:n] + "***" + addr[at:]
}
