package templates

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"newsletter/edition"
)

// EditionData is what an edition's email needs beyond the edition itself.
// None of it is personal: it is the same for every recipient.
type EditionData struct {
	// BaseURL is where the public reader pages are served, without a
	// trailing slash, e.g. https://news.example.com/newsletter.
	BaseURL string
	// WebURL is the "view in browser" address of this edition; the link is
	// left out when it is empty.
	WebURL string
	// ListName names the mailing list; the default templates don't show it,
	// it is there for overrides.
	ListName string
	// Reason tells readers why they get the email. Empty means
	// "You are receiving this because you subscribed to the <site> newsletter."
	Reason string
	// PostalAddress is the sender's postal address for the footer (one
	// line; optional, but some jurisdictions require it in bulk mail).
	PostalAddress string
}

// Recipient is the per-recipient data spliced into a rendered edition.
type Recipient struct {
	Name           string // may be empty
	Email          string
	UnsubscribeURL string
}

// RecipientFields is .Recipient in the edition templates.
//
// In the email the fields are markers replaced per recipient after
// rendering, not the recipient's values: a template sees the same strings
// for every recipient, so it cannot branch on them ({{if .Recipient.Name}}
// is always true) or pass them through functions (RenderEdition refuses a
// template that does). Greeting is there for the one case that would need a
// branch. A field may appear in HTML text, in a quoted attribute, or in a
// quoted URL attribute (href="{{.Recipient.UnsubscribeURL}}"); anything else,
// such as a script, a style or an unquoted attribute, is refused at Load.
// The subject is per edition and can't use them at all.
//
// In the web edition, which is not sent to anyone, all fields are empty.
type RecipientFields struct {
	Name           string
	Email          string
	UnsubscribeURL string
	// Greeting is "Hello <Name>," or, with no name, "Hello,".
	Greeting string
}

// View is the data the edition templates (email/edition.html,
// email/edition.txt, email/subject.txt and web/edition.html) execute with.
// The edition's fields are promoted: .Date, .Site, .Lead, .Related.
type View struct {
	*edition.Edition
	EditionData
	// SiteName is .Site.Name, under the name the web layout uses for
	// every page.
	SiteName string
	// DateText is the edition's date as readers see it:
	// "Thursday, 13 November 2025".
	DateText string
	// Preheader is the inbox preview text: the editor's, or the start of
	// the lead story's first paragraph (see the function Preheader).
	Preheader string
	Recipient RecipientFields
}

// The recipient fields, numbered as in the markers.
const (
	fieldName = iota
	fieldEmail
	fieldUnsubscribeURL
	fieldGreeting
	numFields
)

var fieldNames = [numFields]string{"Name", "Email", "UnsubscribeURL", "Greeting"}

// markerPrefix starts every marker. A marker is markerPrefix, the render's
// nonce (hex), the field's digit and markerSuffix: letters and digits only,
// which html/template and URL escaping leave untouched in every context a
// field may appear in.
const (
	markerPrefix = "zqNLR"
	markerSuffix = "zq"
	nonceBytes   = 12
)

// Rendered is an edition rendered once, ready to be personalised for each
// recipient. It is immutable, so any number of goroutines may use it at once.
type Rendered struct {
	subject string
	html    spliced
	text    spliced
	nonce   string // this render's marker nonce; tests check it varies
}

// spliced is a rendered part cut at its splice points: lits[0], hole 0,
// lits[1], ..., lits[len(holes)].
type spliced struct {
	lits  []string
	holes []hole
	size  int // total length of lits
}

type hole struct {
	field int
	class escClass
}

// Subject is the Subject header text: subject.txt on one line.
func (r *Rendered) Subject() string { return r.subject }

// HTML is the HTML part for rc.
func (r *Rendered) HTML(rc Recipient) string { return r.html.string(cleanRecipient(rc)) }

// Text is the plain-text part for rc. Lines end in "\n"; the mailer turns
// them into CRLF.
func (r *Rendered) Text(rc Recipient) string { return r.text.string(cleanRecipient(rc)) }

// string is append into a string of exactly the right size: the values are
// escaped first, into a buffer that usually stays on the stack, so that the
// message itself is allocated once and never copied.
func (s *spliced) string(rc Recipient) string {
	var scratch [1024]byte
	var endsArr [16]int
	esc, ends := scratch[:0], endsArr[:0]
	for _, h := range s.holes {
		esc = appendField(esc, rc, h)
		ends = append(ends, len(esc))
	}
	var b strings.Builder
	b.Grow(s.size + len(esc))
	b.WriteString(s.lits[0])
	start := 0
	for i := range s.holes {
		b.Write(esc[start:ends[i]])
		start = ends[i]
		b.WriteString(s.lits[i+1])
	}
	return b.String()
}

// appendField appends the value of h's field for rc, escaped for h.
func appendField(dst []byte, rc Recipient, h hole) []byte {
	switch h.field {
	case fieldName:
		return appendEscaped(dst, rc.Name, h.class)
	case fieldEmail:
		return appendEscaped(dst, rc.Email, h.class)
	case fieldUnsubscribeURL:
		return appendEscaped(dst, rc.UnsubscribeURL, h.class)
	}
	if h.class == escURLStart {
		// The URL filter looks at the value as a whole.
		return appendEscaped(dst, greeting(rc.Name), h.class)
	}
	// Every other escaper works byte by byte, and escaping the greeting
	// in pieces saves building it for each recipient.
	if rc.Name == "" {
		return appendEscaped(dst, greetingNoName, h.class)
	}
	dst = appendEscaped(dst, "Hello ", h.class)
	dst = appendEscaped(dst, rc.Name, h.class)
	return appendEscaped(dst, ",", h.class)
}

const greetingNoName = "Hello,"

func greeting(name string) string {
	if name == "" {
		return greetingNoName
	}
	return "Hello " + name + ","
}

// maxNameBytes caps a recipient's name: names come from sign-up forms, and a
// megabyte "name" must not become a megabyte greeting or a plain-text line
// longer than SMTP allows.
const maxNameBytes = 128

// cleanRecipient is rc as it is spliced: whitespace (CR and LF included)
// collapsed and the name capped.
func cleanRecipient(rc Recipient) Recipient {
	return Recipient{
		Name:           clean(rc.Name, maxNameBytes),
		Email:          clean(rc.Email, 0),
		UnsubscribeURL: clean(rc.UnsubscribeURL, 0),
	}
}

// clean collapses whitespace runs to one space, trims, and cuts s to at most
// limit bytes (0: no limit) on a rune boundary. Almost every value is clean
// already, and is returned without allocating.
func clean(s string, limit int) string {
	if needsCleaning(s) {
		s = oneLine(s)
	}
	if limit > 0 && len(s) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = strings.TrimRight(s[:cut], " ")
	}
	return s
}

func needsCleaning(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == ' ' || s[len(s)-1] == ' ' {
		return true
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == ' ':
			if s[i+1] == ' ' { // safe: s doesn't end in a space
				return true
			}
		case c < ' ' || c == 0x7f:
			return true
		case c >= utf8.RuneSelf:
			// Names are often non-ASCII; only Unicode white space
			// (U+00A0, U+2028, ...) needs cleaning.
			if r, _ := utf8.DecodeRuneInString(s[i:]); unicode.IsSpace(r) {
				return true
			}
		}
	}
	return false
}

// RenderEdition renders e once for all its recipients.
//
// The email templates run with a marker in place of each recipient field,
// and the output is cut at the markers. Each render draws a fresh random
// nonce for its markers after the edition's content is fixed, so whoever
// wrote the content can't know them: a story that quotes a marker, even one
// from an earlier render, is just text.
// The templates then run once more with a probe after each marker, which
// shows how html/template escaped each splice point, so that splicing a
// recipient's values escapes them exactly as rendering with those values
// would have.
func (s *Set) RenderEdition(e *edition.Edition, d EditionData) (*Rendered, error) {
	if e == nil {
		return nil, errors.New("templates: RenderEdition: nil edition")
	}
	v := newView(e, d)

	var nb [nonceBytes]byte
	rand.Read(nb[:]) // never fails: see crypto/rand.Read
	nonce := hex.EncodeToString(nb[:])
	var markers, probes RecipientFields
	set := func(f *RecipientFields, suffix string) {
		f.Name = marker(nonce, fieldName) + suffix
		f.Email = marker(nonce, fieldEmail) + suffix
		f.UnsubscribeURL = marker(nonce, fieldUnsubscribeURL) + suffix
		f.Greeting = marker(nonce, fieldGreeting) + suffix
	}
	set(&markers, "")
	set(&probes, probe)

	r := &Rendered{nonce: nonce}

	var buf bytes.Buffer
	v.Recipient = markers
	if err := s.subject.Execute(&buf, v); err != nil {
		return nil, fmt.Errorf("templates: %s: %w", s.name[fileSubject], err)
	}
	if strings.Contains(buf.String(), nonce) {
		return nil, fmt.Errorf("templates: %s: recipient fields can't be used in the subject: it is the same for every recipient", s.name[fileSubject])
	}
	r.subject = oneLine(buf.String())
	if e.Edits.Subject != "" {
		// An editor's subject line stands in for the template's; the
		// template still ran, so a broken one fails every edition alike.
		r.subject = oneLine(e.Edits.Subject)
	}

	type part struct {
		file string
		exec func(*bytes.Buffer, View) error
		dst  *spliced
		html bool
	}
	parts := []part{
		{fileEmailHTML, func(b *bytes.Buffer, v View) error { return s.emailHTML.ExecuteTemplate(b, s.name[fileEmailHTML], v) }, &r.html, true},
		{fileEmailText, func(b *bytes.Buffer, v View) error { return s.emailText.ExecuteTemplate(b, s.name[fileEmailText], v) }, &r.text, false},
	}
	for _, p := range parts {
		buf.Reset()
		v.Recipient = markers
		if err := p.exec(&buf, v); err != nil {
			return nil, fmt.Errorf("templates: %s: %w", s.name[p.file], err)
		}
		marked := buf.String()
		buf.Reset()
		v.Recipient = probes
		if err := p.exec(&buf, v); err != nil {
			return nil, fmt.Errorf("templates: %s: %w", s.name[p.file], err)
		}
		sp, err := split(marked, buf.String(), nonce, p.html)
		if err != nil {
			return nil, fmt.Errorf("templates: %s: %w", s.name[p.file], err)
		}
		*p.dst = sp
	}
	return r, nil
}

func marker(nonce string, field int) string {
	return markerPrefix + nonce + string(rune('0'+field)) + markerSuffix
}

// split cuts marked, the output rendered with markers, at its markers, and
// reads each splice point's escaping from probed, the same output rendered
// with the probe after each marker. Both outputs come from the same
// template and data except for the recipient fields, and templates can't
// branch on those, so their literal text must be identical; if it isn't,
// a template function transformed a field and splicing would be wrong.
func split(marked, probed, nonce string, html bool) (spliced, error) {
	misuse := func(field int) error {
		name := "a recipient field"
		if field >= 0 {
			name = "recipient field " + fieldNames[field]
		}
		if html {
			return fmt.Errorf("%s can't be spliced where it is used: recipient fields must be output as they are (not through a function) in HTML text, a quoted attribute or a quoted URL attribute, not in a script, a style or an unquoted attribute", name)
		}
		return fmt.Errorf("%s must be output as it is, not through a function", name)
	}
	prefix := markerPrefix + nonce
	var sp spliced
	rest := marked
	for {
		i := strings.Index(rest, prefix)
		if i < 0 {
			break
		}
		m := rest[i+len(prefix):]
		if len(m) < 1+len(markerSuffix) || m[0] < '0' || m[0] >= '0'+numFields || m[1:1+len(markerSuffix)] != markerSuffix {
			return spliced{}, misuse(-1)
		}
		sp.lits = append(sp.lits, rest[:i])
		sp.holes = append(sp.holes, hole{field: int(m[0] - '0')})
		rest = m[1+len(markerSuffix):]
	}
	sp.lits = append(sp.lits, rest)
	for _, l := range sp.lits {
		// The nonce left over outside a marker means a function
		// changed a marker (upper-cased it, say) so it wasn't found.
		if strings.Contains(strings.ToLower(l), nonce) {
			return spliced{}, misuse(-1)
		}
		sp.size += len(l)
	}

	// Walk the probe render in step with the literal text.
	p := probed
	for k := range sp.holes {
		h := &sp.holes[k]
		if !strings.HasPrefix(p, sp.lits[k]) {
			return spliced{}, misuse(h.field)
		}
		p = p[len(sp.lits[k]):]
		if html && strings.HasPrefix(p, filterFailsafe) {
			// urlFilter rejected marker and probe together: the
			// field starts a URL attribute.
			h.class = escURLStart
			p = p[len(filterFailsafe):]
			continue
		}
		m := marker(nonce, h.field)
		if !strings.HasPrefix(p, m) {
			return spliced{}, misuse(h.field)
		}
		p = p[len(m):]
		found := false
		for _, po := range probeOutput {
			if (po.class == escRaw) == html {
				// html/template never outputs a string as it is,
				// and text/template always does.
				continue
			}
			if strings.HasPrefix(p, po.out) {
				h.class, found = po.class, true
				p = p[len(po.out):]
				break
			}
		}
		if !found {
			return spliced{}, misuse(h.field)
		}
	}
	if p != sp.lits[len(sp.lits)-1] {
		return spliced{}, misuse(-1)
	}
	return sp, nil
}

// newView builds the templates' data for e. Story and site links with a
// scheme other than http, https or mailto are dropped, leaving their titles
// as plain text in both parts: html/template would turn such a link into a
// dead "#ZgotmplZ" one, and the plain-text part has no escaping at all, so a
// javascript: URL would otherwise be printed for the reader to follow.
func newView(e *edition.Edition, d EditionData) View {
	ec := *e
	ec.Site.URL = safeURL(ec.Site.URL)
	ec.Lead.URL = safeURL(ec.Lead.URL)
	if len(e.Related) > 0 {
		ec.Related = make([]edition.Story, len(e.Related))
		for i, st := range e.Related {
			st.URL = safeURL(st.URL)
			ec.Related[i] = st
		}
	}
	if d.Reason == "" {
		d.Reason = defaultReason(e.Site.Name)
	}
	return View{
		Edition:     &ec,
		EditionData: d,
		SiteName:    e.Site.Name,
		DateText:    longDate(e.Date),
		Preheader:   Preheader(e),
	}
}

func defaultReason(site string) string {
	if site == "" {
		return "You are receiving this because you subscribed to this newsletter."
	}
	return "You are receiving this because you subscribed to the " + site + " newsletter."
}

func safeURL(u string) string {
	if !isSafeURL(u) {
		return ""
	}
	return u
}

// Preheader is the inbox preview text of e: the editor's
// (Edits.Preheader), or else derived from the lead story.
func Preheader(e *edition.Edition) string {
	if e.Edits.Preheader != "" {
		return e.Edits.Preheader
	}
	return preheader(&e.Lead)
}

// preheader is the start of the lead's first paragraph, or failing that its
// summary or title.
func preheader(lead *edition.Story) string {
	for _, b := range lead.Body {
		if b.Kind == edition.Paragraph && strings.TrimSpace(b.Text) != "" {
			return excerpt(b.Text, preheaderLen)
		}
	}
	if strings.TrimSpace(lead.Summary) != "" {
		return excerpt(lead.Summary, preheaderLen)
	}
	return excerpt(lead.Title, preheaderLen)
}
