package mailer

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"newsletter/templates"
)

// PrepareInput is what every copy of an edition shares.
type PrepareInput struct {
	From    *mail.Address
	Subject string
	// ListID, UnsubscribeMailto, FeedbackID and Headers are as in Message.
	ListID            string
	UnsubscribeMailto string
	FeedbackID        string
	Headers           map[string]string
	// UnsubscribeDomain, when set, gives each recipient with an
	// UnsubscribeToken their own unsubscribe mailbox at this domain
	// (UnsubscribeMailtoFor) in place of UnsubscribeMailto.
	UnsubscribeDomain string
	// Text is the text/plain part (required) and HTML the text/html part
	// (optional: the zero Part makes a text/plain-only message), from
	// templates.Rendered.Parts.
	Text templates.Part
	HTML templates.Part
}

// Recipient is what differs between two copies of a Prepared edition.
type Recipient struct {
	Name  string // display name, may be empty
	Email string
	// MessageID without angle brackets; empty means a random one at the
	// From domain (which allocates).
	MessageID string
	// UnsubscribeURL is the one-click link; empty leaves it (and
	// List-Unsubscribe-Post) out, as in Message.
	UnsubscribeURL string
	// UnsubscribeToken names the recipient's unsubscribe mailbox (see
	// PrepareInput.UnsubscribeDomain); empty means the shared
	// UnsubscribeMailto.
	UnsubscribeToken string
	Date             time.Time // zero means now
}

// Prepared is an edition's message encoded once, personalised per recipient
// by splicing into pre-encoded bytes. It is immutable and safe for concurrent
// use.
//
// The message has the structure and header fields Build gives a Message with
// the same values (multipart/alternative, text/plain then text/html, UTF-8,
// quoted-printable; see Build for the RFCs); only the MIME boundary and the
// way words are encoded and folded differ, not what a reader decodes.
//
// How it is fast: quoted-printable is line-local (RFC 2045 section 6.7: a
// hard line break resets the encoder), so Prepare encodes and dot-stuffs
// every line of the rendered parts that has no recipient field in it, once,
// into large static chunks; only the few lines with a field are kept as
// literal pieces and splice points, encoded per recipient.
type Prepared struct {
	parts [2]templates.Part // indexed by holeLine.part
	// headA follows Message-ID, headB follows List-Unsubscribe; body
	// follows To.
	headA, headB []byte
	mailto       string // UnsubscribeMailto, "" if none
	mailtoAt     string // "@" UnsubscribeDomain "?subject=unsubscribe", "" if none
	fromAddr     string // for random Message-IDs
	body         []bodySeg
	boundary     string
}

// bodySeg is a pre-encoded chunk or, when line is set, a line with holes.
type bodySeg struct {
	static []byte
	line   *holeLine
}

// holeLine is one line of a rendered part that has splice points.
type holeLine struct {
	part   int // index into Prepared.parts
	pieces []piece
	eol    bool // ends with a line break (false: ends the part)
}

// piece is literal text, or splice point hole when hole >= 0.
type piece struct {
	lit  string
	hole int
}

const (
	partText = iota
	partHTML
)

// Body part headers as go-mail writes them for Build.
const (
	partHeaderText = "Content-Transfer-Encoding: quoted-printable\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n"
	partHeaderHTML = "Content-Transfer-Encoding: quoted-printable\r\nContent-Type: text/html; charset=UTF-8\r\n\r\n"
)

// Prepare validates what the copies share, as Build does, and encodes it.
func Prepare(in PrepareInput) (*Prepared, error) {
	if in.Text.IsZero() {
		return nil, fmt.Errorf("preparing message: %w", invalid("Text part is missing; a text/plain part is required"))
	}
	for _, part := range []templates.Part{in.Text, in.HTML} {
		for _, l := range part.Lits() {
			if !utf8.ValidString(l) {
				return nil, fmt.Errorf("preparing message: %w", invalid("body is not valid UTF-8"))
			}
		}
	}
	// Message.prepare checks the shared fields exactly as Build does; the
	// recipient's fields are placeholders here and checked per message.
	shared, err := Message{
		From: in.From, To: &mail.Address{Address: "recipient@example.com"},
		Subject: in.Subject, Text: "-", MessageID: "placeholder@example.com", Date: time.Unix(0, 0),
		ListID: in.ListID, UnsubscribeMailto: in.UnsubscribeMailto, Headers: in.Headers,
		FeedbackID: in.FeedbackID,
	}.prepare()
	if err != nil {
		return nil, fmt.Errorf("preparing message: %w", err)
	}

	p := &Prepared{
		parts:    [2]templates.Part{partText: in.Text, partHTML: in.HTML},
		mailto:   in.UnsubscribeMailto,
		fromAddr: in.From.Address,
	}
	if in.UnsubscribeDomain != "" {
		if err := checkMailto(UnsubscribeMailtoFor(in.UnsubscribeDomain, "t")); err != nil {
			return nil, fmt.Errorf("preparing message: UnsubscribeDomain %q: %w", in.UnsubscribeDomain, err)
		}
		p.mailtoAt = "@" + in.UnsubscribeDomain + mailtoQuery
	}

	// Header fields in go-mail's order; Date, Message-ID, List-Unsubscribe
	// and To are written per recipient in between.
	p.headA = append(p.headA, "Precedence: bulk\r\n"...)
	p.headA = appendTextField(p.headA, "Subject", in.Subject)
	p.headA = append(p.headA, "X-Auto-Response-Suppress: All\r\n"...)
	if in.FeedbackID != "" {
		p.headA = append(p.headA, "Feedback-ID: "+in.FeedbackID+"\r\n"...)
	}
	slices.SortFunc(shared.extra, func(a, b header) int { return strings.Compare(a.key, b.key) })
	for _, h := range shared.extra {
		p.headA = appendTextField(p.headA, h.key, h.val)
	}
	if shared.listID != "" {
		// formatListID's output, as Build sets it (preformatted).
		p.headB = append(p.headB, "List-Id: "...)
		p.headB = append(p.headB, shared.listID...)
		p.headB = append(p.headB, '\r', '\n')
	}
	p.headB = appendAddressField(p.headB, "From", in.From.Name, in.From.Address)

	var b bodyBuilder
	if in.HTML.IsZero() {
		b.static(partHeaderText)
		if b.part(partText, in.Text) {
			b.static("\r\n") // the end of data "." must start a line
		}
	} else {
		p.boundary = newBoundary()
		// RFC 2046 section 5.1.1. A boundary starting "=_" can never occur
		// in quoted-printable text, where "=" is always followed by a hex
		// digit or a line break; it must be quoted in the parameter, since
		// "=" is a tspecial (RFC 2045 section 5.1).
		b.static("Content-Type: multipart/alternative;\r\n boundary=\"" + p.boundary + "\"\r\n\r\n")
		// RFC 2046 section 5.1.4: alternatives in increasing order of
		// preference, so plain text first and HTML last.
		b.static("--" + p.boundary + "\r\n" + partHeaderText)
		b.part(partText, in.Text)
		b.static("\r\n--" + p.boundary + "\r\n" + partHeaderHTML)
		b.part(partHTML, in.HTML)
		b.static("\r\n--" + p.boundary + "--\r\n")
	}
	p.body = b.done()
	return p, nil
}

// newBoundary is "=_" and 48 random hex digits.
func newBoundary() string {
	var r [24]byte
	_, _ = rand.Read(r[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "=_" + hex.EncodeToString(r[:])
}

// angleAddr is addr as net/mail writes it, "<local@domain>", quoting the local
// part if it has to be.
func angleAddr(addr string) string {
	if addrFast(addr) {
		return "<" + addr + ">"
	}
	return (&mail.Address{Address: addr}).String()
}

// bodyBuilder collects the body as static chunks and hole lines. Static bytes go
// into one buffer; segments record offsets until it stops growing.
type bodyBuilder struct {
	buf   []byte
	segs  []bodySeg
	start int // start of the static chunk being collected
	ends  []int
}

func (b *bodyBuilder) static(s string) { b.buf = append(b.buf, s...) }

// closeStatic ends the current static chunk (if any) before a hole line.
func (b *bodyBuilder) closeStatic() {
	if len(b.buf) > b.start {
		b.segs = append(b.segs, bodySeg{})
		b.ends = append(b.ends, b.start, len(b.buf))
		b.start = len(b.buf)
	}
}

func (b *bodyBuilder) line(l *holeLine) {
	b.closeStatic()
	b.segs = append(b.segs, bodySeg{line: l})
}

func (b *bodyBuilder) done() []bodySeg {
	b.closeStatic()
	k := 0
	for i := range b.segs {
		if b.segs[i].line == nil {
			b.segs[i].static = b.buf[b.ends[k]:b.ends[k+1]:b.ends[k+1]]
			k += 2
		}
	}
	return b.segs
}

// part splits a rendered part into lines. Lines without a splice point are
// quoted-printable encoded and dot-stuffed now; lines with one are kept as
// pieces. Line breaks are CRLF, LF or a lone CR in the literal text (recipient
// values never contain one: templates.Clean collapses white space). It
// reports whether the part's last line is unterminated.
func (b *bodyBuilder) part(idx int, p templates.Part) (open bool) {
	var (
		cur     []piece
		hasHole bool
	)
	finish := func(eol bool) {
		if hasHole {
			b.line(&holeLine{part: idx, pieces: cur, eol: eol})
		} else {
			var q qpLine
			for _, pc := range cur {
				b.buf = qpAppend(&q, b.buf, pc.lit)
			}
			b.buf = q.end(b.buf, eol)
		}
		cur, hasHole = nil, false
	}
	lits, holes := p.Lits(), p.Holes()
	for k, lit := range lits {
		for {
			j := indexLineBreak(lit)
			if j < 0 {
				break
			}
			if j > 0 {
				cur = append(cur, piece{lit: lit[:j], hole: -1})
			}
			finish(true)
			if lit[j] == '\r' && j+1 < len(lit) && lit[j+1] == '\n' {
				j++
			}
			lit = lit[j+1:]
		}
		if lit != "" {
			cur = append(cur, piece{lit: lit, hole: -1})
		}
		if k < holes {
			cur = append(cur, piece{hole: k})
			hasHole = true
		}
	}
	open = len(cur) > 0
	finish(false)
	return open
}

func indexLineBreak(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' || s[i] == '\r' {
			return i
		}
	}
	return -1
}

// AppendMessage appends r's complete copy of the message to dst and returns the
// extended buffer: CRLF line endings, already dot-stuffed for SMTP DATA (RFC
// 5321 section 4.5.2), ending in CRLF but without the "." line that ends the
// data. With a reused dst it does not allocate (except for a random Message-ID
// when r.MessageID is empty, and for addresses and URLs unusual enough to need
// net/mail or net/url to check them).
//
// r's fields are checked as Build checks them: a value with CR or LF, an
// invalid address or Message-ID, or an unsubscribe URL that isn't http(s) is
// an error wrapping ErrInvalidMessage, and dst is returned unchanged.
func (p *Prepared) AppendMessage(dst []byte, r Recipient) ([]byte, error) {
	return p.appendMessage(dst, nil, r)
}

// Parts is one recipient's message in pieces, written as they are: the
// edition's pre-encoded chunks, shared by every copy, and
// the recipient's own lines in a buffer of their own. Reuse one Parts for
// many messages; its slices stay valid until the next AppendParts.
type Parts struct {
	// Data is the message, in order; together what AppendMessage writes.
	Data [][]byte
	own  []byte
	refs []partRef
}

// partRef is a piece of a message: shared when static is set, else
// own[start:end].
type partRef struct {
	static     []byte
	start, end int
}

// Len is the message's size in bytes.
func (m *Parts) Len() int {
	n := 0
	for _, d := range m.Data {
		n += len(d)
	}
	return n
}

// AppendParts lays out r's message as AppendMessage would write it, but in
// parts (see Parts): a copy then costs the recipient's lines (a few KB)
// instead of the whole message (~50 KB for a day's edition).
func (p *Prepared) AppendParts(m *Parts, r Recipient) error {
	m.refs = m.refs[:0]
	own, err := p.appendMessage(m.own[:0], &m.refs, r)
	m.own = own
	if err != nil {
		m.Data = m.Data[:0]
		return err
	}
	m.Data = m.Data[:0]
	for _, ref := range m.refs {
		if ref.static != nil {
			m.Data = append(m.Data, ref.static)
		} else if ref.end > ref.start {
			m.Data = append(m.Data, own[ref.start:ref.end])
		}
	}
	return nil
}

// appendMessage writes r's message to dst; with refs set, the static chunks
// of the body are not copied but listed in refs between the spans of dst
// written around them.
func (p *Prepared) appendMessage(dst []byte, refs *[]partRef, r Recipient) ([]byte, error) {
	if err := p.check(r); err != nil {
		return dst, fmt.Errorf("preparing message for recipient: %w", err)
	}
	start := len(dst) // of dst's current span (with refs)
	date := r.Date
	if date.IsZero() {
		date = time.Now()
	}

	// RFC 5322 section 3.6.1 Date.
	dst = append(dst, "Date: "...)
	dst = date.AppendFormat(dst, time.RFC1123Z)
	// RFC 2045 section 4 MIME-Version; RFC 5322 section 3.6.4 Message-ID.
	dst = append(dst, "\r\nMIME-Version: 1.0\r\nMessage-ID: <"...)
	if r.MessageID != "" {
		dst = append(dst, r.MessageID...)
	} else {
		dst = append(dst, randomMessageID(p.fromAddr)...)
	}
	dst = append(dst, '>', '\r', '\n')
	// Precedence, Subject, X-Auto-Response-Suppress, extra fields.
	dst = append(dst, p.headA...)
	dst = p.appendListUnsubscribe(dst, r.UnsubscribeURL, r.UnsubscribeToken)
	// List-Id, From.
	dst = append(dst, p.headB...)
	// RFC 5322 section 3.6.3 To.
	dst = appendAddressField(dst, "To", r.Name, r.Email)

	c := templates.Clean(templates.Recipient{Name: r.Name, Email: r.Email, UnsubscribeURL: r.UnsubscribeURL})
	var scratchArr [1024]byte
	scratch := scratchArr[:0]
	for i := range p.body {
		s := &p.body[i]
		if s.line == nil {
			if refs == nil {
				dst = append(dst, s.static...)
				continue
			}
			*refs = append(*refs, partRef{start: start, end: len(dst)}, partRef{static: s.static})
			start = len(dst)
			continue
		}
		part := p.parts[s.line.part]
		var q qpLine
		for _, pc := range s.line.pieces {
			if pc.hole < 0 {
				dst = qpAppend(&q, dst, pc.lit)
				continue
			}
			scratch = part.AppendHole(scratch[:0], pc.hole, c)
			dst = qpAppend(&q, dst, scratch)
		}
		dst = q.end(dst, s.line.eol)
	}
	if refs != nil {
		*refs = append(*refs, partRef{start: start, end: len(dst)})
	}
	return dst, nil
}

// check validates r's fields with the same rules and messages as Build,
// without allocating for ordinary values: the fast checks below only ever
// accept what Build's checks accept, and anything they are unsure of goes
// to Build's own checks.
func (p *Prepared) check(r Recipient) error {
	if !headerTextOK(r.Name) || !addrFast(r.Email) {
		if err := checkAddress("To", &mail.Address{Name: r.Name, Address: r.Email}); err != nil {
			return err
		}
	}
	if r.UnsubscribeToken != "" && p.mailtoAt != "" {
		if err := checkMailtoToken(r.UnsubscribeToken); err != nil {
			return err
		}
	}
	if r.MessageID != "" {
		if err := checkMessageID(r.MessageID); err != nil {
			return err
		}
	}
	if r.UnsubscribeURL != "" && !unsubURLFast(r.UnsubscribeURL) {
		if _, err := checkUnsubURL(r.UnsubscribeURL); err != nil {
			return err
		}
	}
	return nil
}
