// Package templates renders the newsletter: the edition email (HTML and plain
// text, rendered once per edition and personalised per recipient by
// splicing) and the web pages served by `newsletter serve`.
//
// The templates are embedded (email/ and web/ in this directory) and can be
// replaced file by file from an override directory, NEWSLETTER_TEMPLATES,
// laid out the same way: <dir>/email/subject.txt replaces the built-in
// subject. Load parses them all and runs each against sample data, so a
// broken override fails at start-up, naming the file, not at send time.
//
// The files:
//
//	email/subject.txt     text/template, data View: the Subject header
//	email/edition.html    html/template, data View: the HTML part
//	email/edition.txt     text/template, data View: the plain-text part
//	email/content.html    {{define "lead"}} and {{define "related"}}: the
//	                      story and headlines, shared by the HTML email and
//	                      the web edition so the content is written once
//	web/base.html         {{define "base"}}: the layout of every web page
//	web/edition.html      data View: an edition on the web
//	web/archive.html      data ArchivePage
//	web/unsubscribe.html  data UnsubscribePage: the List-Unsubscribe link's
//	                      page, where a reader also resubscribes and changes
//	                      their name or address
//	web/message.html      data MessagePage
//	web/subscribe.html    data SubscribePage: the sign-up form
//	web/confirm.html      data ConfirmPage: a confirmation link's page
//	email/confirm-subject.txt, email/confirm.txt, email/confirm.html
//	                      data ConfirmEmail: the double opt-in email (and the
//	                      one that confirms a new address)
//
// Text templates have wrap, hang, underline, oneLine, longDate and isoDate
// (see textfmt.go); HTML templates have longDate and isoDate.
package templates

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htemplate "html/template"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	ttemplate "text/template"
	"time"
	"unicode/utf8"

	"newsletter/edition"
)

//go:embed email web
var embedded embed.FS

// EnvVar names the override directory in the environment; Load's errors
// name it so an operator knows which setting to fix.
const EnvVar = "NEWSLETTER_TEMPLATES"

const (
	fileSubject   = "email/subject.txt"
	fileEmailHTML = "email/edition.html"
	fileEmailText = "email/edition.txt"
	fileContent   = "email/content.html"
	fileBase      = "web/base.html"

	fileConfirmSubject = "email/confirm-subject.txt"
	fileConfirmText    = "email/confirm.txt"
	fileConfirmHTML    = "email/confirm.html"
)

// pageNames are the pages Page renders, each web/<name>.
var pageNames = []string{"archive.html", "confirm.html", "edition.html", "message.html", "subscribe.html", "unsubscribe.html"}

// Set is a loaded, checked set of templates. It is safe for concurrent use.
type Set struct {
	subject   *ttemplate.Template
	emailText *ttemplate.Template
	emailHTML *htemplate.Template
	pages     map[string]*htemplate.Template

	confirmSubject *ttemplate.Template
	confirmText    *ttemplate.Template
	confirmHTML    *htemplate.Template
	// name is each file's template name: its path here for a built-in
	// file, its path on disk for an override, so that errors html/template
	// and text/template report (which name the template the failing node
	// was parsed from) say which file to fix.
	name map[string]string
}

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

var htmlFuncs = htemplate.FuncMap{
	"longDate": longDate,
	"isoDate":  isoDate,
}

var textFuncs = ttemplate.FuncMap{
	"longDate":  longDate,
	"isoDate":   isoDate,
	"wrap":      wrap,
	"hang":      hang,
	"underline": underline,
	"oneLine":   oneLine,
}

// Defaults is the built-in templates, laid out as an override directory
// expects: copy a file from here to start a customised version.
func Defaults() fs.FS { return embedded }

// Load parses the built-in templates, with any file of the same name in
// overrideDir (normally $NEWSLETTER_TEMPLATES) in place of the built-in one,
// and checks every template by running it against sample data. An empty
// overrideDir means the built-in templates only. A file in overrideDir that
// doesn't replace a built-in one is an error, so a misspelt name is caught
// rather than silently ignored; names starting with "." (editor and VCS
// files) are skipped.
func Load(overrideDir string) (*Set, error) {
	if overrideDir == "" {
		return load(nil, "")
	}
	fi, err := os.Stat(overrideDir)
	if err != nil {
		return nil, fmt.Errorf("templates: %s=%s: %w", EnvVar, overrideDir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("templates: %s=%s: not a directory", EnvVar, overrideDir)
	}
	return load(os.DirFS(overrideDir), overrideDir)
}

func load(override fs.FS, dir string) (*Set, error) {
	src := map[string]string{}
	name := map[string]string{}
	err := fs.WalkDir(embedded, ".", func(file string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(embedded, file)
		src[file], name[file] = string(b), file
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("templates: reading built-in templates: %w", err)
	}
	if override != nil {
		err := fs.WalkDir(override, ".", func(file string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if file != "." && strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if d.IsDir() {
				return nil
			}
			if _, ok := src[file]; !ok {
				return fmt.Errorf("unknown template file %s: an override must have the name of a built-in template (%s)",
					filepath.Join(dir, filepath.FromSlash(file)), strings.Join(slices.Sorted(maps.Keys(src)), ", "))
			}
			b, err := fs.ReadFile(override, file)
			src[file], name[file] = string(b), filepath.Join(dir, filepath.FromSlash(file))
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("templates: %s=%s: %w", EnvVar, dir, err)
		}
	}

	s := &Set{pages: map[string]*htemplate.Template{}, name: name}
	parseErr := func(file string, err error) error {
		return fmt.Errorf("templates: parsing %s: %w", name[file], err)
	}
	if s.subject, err = ttemplate.New(name[fileSubject]).Funcs(textFuncs).Parse(src[fileSubject]); err != nil {
		return nil, parseErr(fileSubject, err)
	}
	if s.emailText, err = ttemplate.New(name[fileEmailText]).Funcs(textFuncs).Parse(src[fileEmailText]); err != nil {
		return nil, parseErr(fileEmailText, err)
	}
	s.emailHTML = htemplate.New(name[fileEmailHTML]).Funcs(htmlFuncs)
	if _, err := s.emailHTML.New(name[fileContent]).Parse(src[fileContent]); err != nil {
		return nil, parseErr(fileContent, err)
	}
	if _, err := s.emailHTML.Parse(src[fileEmailHTML]); err != nil {
		return nil, parseErr(fileEmailHTML, err)
	}
	if s.confirmSubject, err = ttemplate.New(name[fileConfirmSubject]).Funcs(textFuncs).Parse(src[fileConfirmSubject]); err != nil {
		return nil, parseErr(fileConfirmSubject, err)
	}
	if s.confirmText, err = ttemplate.New(name[fileConfirmText]).Funcs(textFuncs).Parse(src[fileConfirmText]); err != nil {
		return nil, parseErr(fileConfirmText, err)
	}
	if s.confirmHTML, err = htemplate.New(name[fileConfirmHTML]).Funcs(htmlFuncs).Parse(src[fileConfirmHTML]); err != nil {
		return nil, parseErr(fileConfirmHTML, err)
	}
	// Each page gets its own copy of the layout and the shared content, so
	// pages can define the same blocks ("title", "main") differently.
	base := htemplate.New(name[fileBase]).Funcs(htmlFuncs)
	if _, err := base.Parse(src[fileBase]); err != nil {
		return nil, parseErr(fileBase, err)
	}
	if _, err := base.New(name[fileContent]).Parse(src[fileContent]); err != nil {
		return nil, parseErr(fileContent, err)
	}
	for _, p := range pageNames {
		t, err := base.Clone()
		if err != nil {
			return nil, err // only fails after execution, and nothing has run
		}
		if _, err := t.New(name["web/"+p]).Parse(src["web/"+p]); err != nil {
			return nil, parseErr("web/"+p, err)
		}
		s.pages[p] = t
	}

	if err := s.check(); err != nil {
		return nil, err
	}
	return s, nil
}

// check runs every template against sample data that takes every branch of
// the built-in templates, so that a reference to a missing field, a call to
// an undefined template, an escaping error or an unspliceable recipient
// field fails Load rather than a send.
func (s *Set) check() error {
	for _, e := range sampleEditions() {
		for _, d := range sampleEditionData() {
			if _, err := s.RenderEdition(e, d); err != nil {
				return err
			}
			if err := s.WebEdition(io.Discard, e, d); err != nil {
				return err
			}
		}
	}
	for _, d := range sampleConfirmEmails() {
		if _, err := s.ConfirmEmail(d); err != nil {
			return err
		}
	}
	for name, samples := range samplePages() {
		for _, data := range samples {
			if err := s.Page(io.Discard, name, data); err != nil {
				return err
			}
		}
	}
	return nil
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
