package bounces

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"regexp"
	"strings"
)

// Kind is what an inbound message says about a delivery.
type Kind string

const (
	Hard        Kind = "hard"        // the address does not work, for good
	Soft        Kind = "soft"        // a failure that may pass (mailbox full, delayed)
	Complaint   Kind = "complaint"   // the reader reported the mail as spam (ARF abuse)
	Unsubscribe Kind = "unsubscribe" // a mail to the mailto unsubscribe address
	AutoReply   Kind = "auto-reply"  // out of office and the like: ignored
	Ignored     Kind = "ignored"     // a report that needs no action (delivered, relayed, not abuse)
)

// Report is what Parse read from an inbound message.
type Report struct {
	Kind Kind
	// Shape is the format it was read from: dsn (RFC 3464), arf (RFC 5965),
	// text (a bounce in prose), auto-reply.
	Shape string
	// Status is the enhanced status code (RFC 3463), like 5.1.1, or a
	// basic reply code (550) when the bounce gives no other; "" if none.
	Status string
	// Diagnostic is the remote server's explanation, one line, at most
	// MaxDiagnostic bytes, with every address in it replaced by <address>.
	Diagnostic string
}

// Limits on what Parse reads: a bounce is a few KB, and quotes at most the
// message it is about; anything much larger or deeper is not one.
const (
	MaxMessage    = 10 << 20 // bytes read of a message
	MaxDepth      = 5        // multipart nesting
	MaxParts      = 50       // parts of a message, all levels
	MaxDiagnostic = 200      // bytes kept of a diagnostic
)

// ErrNotReport is the error of a message that is neither a bounce, a
// complaint nor an auto-reply.
var ErrNotReport = errors.New("not a bounce, complaint or auto-reply")

// ErrTooLarge is the error of a message over MaxMessage.
var ErrTooLarge = fmt.Errorf("message over %d bytes", MaxMessage)

// Parse reads an inbound message sent to a bounce address: a delivery
// status notification, a complaint feedback report, a bounce in prose as
// some servers still write them, or an auto-reply. Hostile input gives an
// error, never a panic: sizes, depth and parts are bounded.
func Parse(r io.Reader) (*Report, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxMessage+1))
	if err != nil {
		return nil, fmt.Errorf("read message: %w", err)
	}
	if len(data) > MaxMessage {
		return nil, ErrTooLarge
	}
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("read message header: %w", err)
	}
	p := parser{}
	rep, err := p.entity(textproto.MIMEHeader(msg.Header), msg.Body, 0)
	if err != nil {
		return nil, err
	}
	if rep != nil {
		return rep, nil
	}
	if rep := prose(msg.Header, p.text.String()); rep != nil {
		return rep, nil
	}
	if isAutoReply(msg.Header) {
		return &Report{Kind: AutoReply, Shape: "auto-reply"}, nil
	}
	return nil, ErrNotReport
}

// parser walks a message's MIME tree, keeping the text it meets for the
// bounces written in prose.
type parser struct {
	parts int
	text  strings.Builder
}

// entity reads one MIME entity: a report when it is or holds one, nil when
// not.
func (p *parser) entity(h textproto.MIMEHeader, body io.Reader, depth int) (*Report, error) {
	if p.parts++; p.parts > MaxParts {
		return nil, fmt.Errorf("more than %d MIME parts", MaxParts)
	}
	ct := h.Get("Content-Type")
	if ct == "" {
		ct = "text/plain"
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return nil, fmt.Errorf("content type %q: %w", clip(ct, 60), err)
	}
	switch {
	case strings.HasPrefix(mt, "multipart/"):
		if depth >= MaxDepth {
			return nil, fmt.Errorf("MIME parts nested deeper than %d", MaxDepth)
		}
		if params["boundary"] == "" {
			return nil, errors.New("multipart without a boundary")
		}
		return p.multipart(params["boundary"], body, depth)
	case mt == "message/delivery-status":
		return deliveryStatus(body)
	case mt == "message/feedback-report":
		return feedbackReport(body)
	case mt == "text/plain" && p.text.Len() < 64<<10:
		b, err := io.ReadAll(io.LimitReader(decode(h, body), 64<<10))
		if err != nil {
			return nil, fmt.Errorf("read text part: %w", err)
		}
		p.text.Write(b)
		p.text.WriteByte('\n')
	}
	return nil, nil
}

// multipart reads the parts of a multipart entity, in order, until one is
// or holds a report: in a multipart/report (RFC 6522 section 3) that is the
// second part, the machine-readable one, after the text for people.
func (p *parser) multipart(boundary string, body io.Reader, depth int) (*Report, error) {
	mr := multipart.NewReader(body, boundary)
	for {
		part, err := mr.NextRawPart()
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read MIME part: %w", err)
		}
		rep, err := p.entity(part.Header, part, depth+1)
		if err != nil || rep != nil {
			return rep, err
		}
	}
}

// decode undoes a part's transfer encoding for the text search.
func decode(h textproto.MIMEHeader, body io.Reader) io.Reader {
	switch strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))) {
	case "quoted-printable":
		return quotedPrintable(body)
	case "base64":
		return base64Reader(body)
	}
	return body
}

// fieldGroups reads the groups of header fields of a report body (RFC 3464
// section 2.1: per-message fields, then one group per recipient, separated
// by blank lines).
func fieldGroups(body io.Reader) ([]textproto.MIMEHeader, error) {
	r := textproto.NewReader(bufio.NewReader(io.LimitReader(body, 256<<10)))
	var groups []textproto.MIMEHeader
	for len(groups) < 100 {
		h, err := r.ReadMIMEHeader()
		if len(h) > 0 {
			groups = append(groups, h)
		}
		if err == io.EOF || (err == nil && len(h) == 0 && len(groups) > 0 && peekEOF(r)) {
			return groups, nil
		}
		if err != nil {
			return groups, fmt.Errorf("read report fields: %w", err)
		}
	}
	return groups, nil
}

func peekEOF(r *textproto.Reader) bool {
	_, err := r.R.Peek(1)
	return err != nil
}

// deliveryStatus reads a message/delivery-status part (RFC 3464 section
// 2.3): the first recipient that failed or was delayed decides. Action
// failed with a 5.x.x Status is a hard bounce (section 2.3.3, RFC 3463
// section 3.1: permanent failure), with 4.x.x a soft one; delayed is soft;
// delivered, relayed and expanded need nothing.
func deliveryStatus(body io.Reader) (*Report, error) {
	groups, err := fieldGroups(body)
	if err != nil && len(groups) == 0 {
		return nil, err
	}
	if len(groups) < 2 {
		return nil, errors.New("delivery status without a recipient's fields (RFC 3464 section 2.1)")
	}
	for _, g := range groups[1:] {
		action := strings.ToLower(strings.TrimSpace(stripComment(g.Get("Action"))))
		status := strings.TrimSpace(stripComment(g.Get("Status")))
		rep := &Report{Shape: "dsn", Status: enhanced(status), Diagnostic: diagnostic(g.Get("Diagnostic-Code"))}
		switch action {
		case "failed":
			rep.Kind = Soft
			if strings.HasPrefix(rep.Status, "5.") {
				rep.Kind = Hard
			}
			return rep, nil
		case "delayed":
			rep.Kind = Soft
			return rep, nil
		case "delivered", "relayed", "expanded":
		default:
			return nil, fmt.Errorf("delivery status with Action %q (RFC 3464 section 2.3.3)", clip(action, 20))
		}
	}
	return &Report{Kind: Ignored, Shape: "dsn"}, nil
}

// feedbackReport reads a message/feedback-report part (RFC 5965 section
// 3.1): Feedback-Type abuse is a complaint; the other types (fraud, virus,
// not-spam, other) are not the reader asking to stop.
func feedbackReport(body io.Reader) (*Report, error) {
	groups, err := fieldGroups(body)
	if len(groups) == 0 {
		if err == nil {
			err = errors.New("empty feedback report")
		}
		return nil, err
	}
	ft := strings.ToLower(strings.TrimSpace(groups[0].Get("Feedback-Type")))
	switch ft {
	case "":
		return nil, errors.New("feedback report without Feedback-Type (RFC 5965 section 3.1)")
	case "abuse":
		return &Report{Kind: Complaint, Shape: "arf", Status: "abuse"}, nil
	}
	return &Report{Kind: Ignored, Shape: "arf", Status: clip(ft, 20)}, nil
}

var (
	// An enhanced status code (RFC 3463 section 2) not inside a longer
	// dotted number (an IP address, a version).
	enhancedRe = regexp.MustCompile(`(?:^|[^\d.])([245]\.\d{1,3}\.\d{1,3})(?:[^\d.]|$)`)
	basicRe    = regexp.MustCompile(`(?m)(?:^|[\s:'"(])([45][0-5]\d)(?:[\s\-:]|$)`)
	addressRe  = regexp.MustCompile(`[^\s<>()\[\]"',;:]+@[^\s<>()\[\]"',;:]+`)
)

// enhanced is the enhanced status code in s (RFC 3463 section 2), "" if
// none.
func enhanced(s string) string {
	if m := enhancedRe.FindStringSubmatch(s); m != nil {
		return m[1]
	}
	return ""
}

// diagnostic makes a server's text fit to keep: the part after the
// diagnostic type (RFC 3464 section 2.3.6: "smtp; 550 ..."), one line,
// without addresses (the person's address is not evidence the record
// needs), at most MaxDiagnostic bytes.
func diagnostic(s string) string {
	if t, rest, ok := strings.Cut(s, ";"); ok && !strings.ContainsAny(t, " \t") {
		s = rest
	}
	s = addressRe.ReplaceAllString(s, "<address>")
	s = strings.ReplaceAll(s, "<<address>>", "<address>")
	s = strings.Join(strings.Fields(strings.ToValidUTF8(s, "?")), " ")
	return clip(s, MaxDiagnostic)
}

// clip cuts s to at most n bytes, at a character boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// stripComment drops a trailing RFC 5322 comment: "5.1.1 (bad mailbox)".
func stripComment(s string) string {
	if i := strings.IndexByte(s, '('); i >= 0 {
		return s[:i]
	}
	return s
}
