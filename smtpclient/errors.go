package smtpclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"syscall"

	gomail "github.com/wneessen/go-mail"
)

// Stages of an SMTP exchange at which an Error can happen.
const (
	StageDial    = "dial"    // TCP, greeting, EHLO, STARTTLS, AUTH
	StageMail    = "mail"    // MAIL FROM
	StageRcpt    = "rcpt"    // RCPT TO
	StageData    = "data"    // DATA command, message transfer, end-of-data reply
	StageReset   = "reset"   // RSET after a transaction
	StageMessage = "message" // the message itself is unusable (no sender, ...); not an SMTP failure
)

// SMTP reply codes this package acts on (RFC 5321 section 4.2.2, 4.2.3).
const (
	CodeServiceUnavailable  = 421 // service not available, closing channel (RFC 5321 section 3.8)
	CodeMailboxBusy         = 450 // mailbox unavailable (busy, greylisted)
	CodeLocalError          = 451 // local error in processing
	CodeInsufficientStorage = 452 // insufficient system storage / too many recipients
	CodeMailboxUnavailable  = 550 // mailbox unavailable (not found, no access, policy)
	CodeUserNotLocal        = 551
	CodeExceededStorage     = 552
	CodeMailboxNameInvalid  = 553
	CodeTransactionFailed   = 554
	CodeAuthRequired        = 530 // RFC 4954 section 6
	CodeAuthFailed          = 535 // RFC 4954 section 6
)

// Enhanced status codes with special meaning here (RFC 3463, RFC 5248 registry).
const (
	// EnhancedRateLimited is Gmail's "4.7.28 ... unusual rate of unsolicited mail"
	// / "our system has detected an unusual rate" deferral.
	EnhancedRateLimited = "4.7.28"
)

// ErrConnBroken is what a send on a connection that an earlier failure left
// unusable gets; the caller must Close it and dial again.
var ErrConnBroken = errors.New("SMTP connection is broken; close it and dial again")

// Error is a classified SMTP delivery failure.
type Error struct {
	Code     int    // SMTP reply code, 0 when the server sent no reply
	Enhanced string // RFC 3463 enhanced status code ("5.1.1"), "" if none
	Text     string // server reply text without the codes, or a description
	// Permanent: the server said 5xx, so retrying the same transaction is
	// pointless. Only at StageRcpt (and StageData) is that about the recipient;
	// at StageDial or StageMail it is about our account or sender address
	// (e.g. 535 bad credentials, 530 auth required) and must not be held
	// against the subscriber. Use IsHardBounce to decide on suppression.
	Permanent bool
	Stage     string // StageDial, StageMail, StageRcpt, StageData, StageReset, StageMessage
	ConnLost  bool   // the connection is unusable: Close it and dial again
	Throttled bool   // the server asks us to slow down (back off, not just retry)
	Timeout   bool   // a deadline expired (network timeout or context deadline)
	// Misconfigured: the relay's configuration is wrong (credentials, TLS
	// mode, trust), not the moment; Fix says what to change in SMTP_URL.
	// errors.Is(err, ErrMisconfigured) finds it.
	Misconfigured bool
	Fix           string
	Err           error // underlying error chain (go-mail *SendError, net errors, ...)
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("smtp ")
	b.WriteString(e.Stage)
	b.WriteString(": ")
	if e.Code != 0 {
		b.WriteString(strconv.Itoa(e.Code))
		b.WriteByte(' ')
		if e.Enhanced != "" {
			b.WriteString(e.Enhanced)
			b.WriteByte(' ')
		}
	}
	b.WriteString(e.Text)
	var flags []string
	if e.Permanent {
		flags = append(flags, "permanent")
	} else {
		flags = append(flags, "temporary")
	}
	if e.Throttled {
		flags = append(flags, "throttled")
	}
	if e.Timeout {
		flags = append(flags, "timeout")
	}
	if e.ConnLost {
		flags = append(flags, "connection lost")
	}
	if e.Misconfigured {
		flags = append(flags, "relay misconfigured")
	}
	b.WriteString(" (")
	b.WriteString(strings.Join(flags, ", "))
	b.WriteByte(')')
	if e.Fix != "" {
		b.WriteString("; fix: ")
		b.WriteString(e.Fix)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether a later retry may succeed.
func (e *Error) Temporary() bool { return !e.Permanent }

// IsHardBounce reports a permanent "bad destination mailbox/system/address syntax"
// rejection of the recipient: enhanced status 5.1.x (RFC 3463 section 3.2,
// "Address Status") in reply to RCPT TO. The subscriber address should be
// suppressed. 5.1.7 and 5.1.8 are about the *sender* address and do not count.
// Without an enhanced code a bare 550 is not treated as a hard bounce, because
// servers also use 550 for policy and spam rejections (RFC 5321 section 4.2.2).
func (e *Error) IsHardBounce() bool {
	if e == nil || !e.Permanent || e.Stage != StageRcpt {
		return false
	}
	if !strings.HasPrefix(e.Enhanced, "5.1.") {
		return false
	}
	switch e.Enhanced {
	case "5.1.7", "5.1.8":
		return false
	}
	return true
}

// Classify turns any error from DialMsg, MsgConn.Send or go-mail into an *Error
// (nil for nil). An *Error already in the chain is returned as is.
//
// Rules:
//   - Reply codes (RFC 5321 section 4.2.1): 2yz/3yz success or intermediate, 4yz
//     transient negative ("try again later"), 5yz permanent negative. So 5xx is
//     Permanent, 4xx temporary.
//   - Enhanced codes (RFC 3463 section 3): class 4.x.x persistent transient, 5.x.x
//     permanent; the class agrees with the reply code, the reply code wins if not.
//   - 421 means the server is closing the channel (RFC 5321 section 3.8): temporary,
//     Throttled and ConnLost. 4.7.28 (Gmail rate limiting) and 451 4.7.x
//     (security/policy deferral, RFC 3463 section 3.8) are Throttled.
//   - No reply at all (EOF, reset, broken pipe, closed, timeouts, TLS failures,
//     dial failures): temporary and ConnLost, because the SMTP dialogue is out of
//     sync or gone and only a new connection helps.
//
// The Stage comes from go-mail's *SendError reason; an error without one (from
// a dial, or a bare network error) is taken to be StageDial.
func Classify(err error) *Error { return classify(err, nil) }

// classify is Classify with an optional cause: the most specific underlying error
// (e.g. the socket error MsgConn.Send observed), used for the text when there is no
// SMTP reply.
func classify(err, cause error) *Error {
	if err == nil {
		return nil
	}
	var me *Error
	if errors.As(err, &me) {
		return me
	}
	e := &Error{Err: err, Stage: StageDial}

	var se *gomail.SendError
	if errors.As(err, &se) {
		e.Stage = stageOf(se.Reason)
		e.Code = se.ErrorCode()
		e.Enhanced = se.EnhancedStatusCode()
		e.Text = sendErrorText(se)
	}
	// AUTH, EHLO and STARTTLS failures during dial keep the *textproto.Error in
	// the chain; go-mail's *SendError does not (it has no Unwrap).
	var tpe *textproto.Error
	if e.Code == 0 && errors.As(err, &tpe) {
		e.Code = tpe.Code
		e.Enhanced, e.Text = splitEnhanced(tpe.Msg)
	}
	if e.Code != 0 && e.Text == "" {
		e.Text = "(no text)"
	}
	classifyReply(e)
	if e.Code == 0 {
		label := classifyTransport(e, err, se)
		detail := err
		if cause != nil {
			detail = cause
		}
		e.Text = oneLine(detail.Error())
		if label != "" {
			e.Text = label + ": " + e.Text
		}
	}
	return e
}

// oneLine flattens multi-line error texts (errors.Join, multi-line replies) so a
// log line stays one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

// classifyReply fills Permanent/Throttled/ConnLost from the reply code and the
// enhanced status code.
func classifyReply(e *Error) {
	if e.Code == 0 {
		return
	}
	// RFC 5321 section 4.2.1: the first digit decides.
	switch e.Code / 100 {
	case 5:
		e.Permanent = true
	case 4:
		e.Permanent = false
	default:
		// A 1yz/2yz/3yz reply where success was expected: a protocol
		// mismatch; do not give up on the recipient.
		e.Permanent = false
	}
	if e.Code == CodeServiceUnavailable {
		// RFC 5321 section 3.8: after 421 the server closes the connection.
		e.Throttled, e.ConnLost = true, true
	}
	if e.Enhanced == EnhancedRateLimited ||
		(e.Code == CodeLocalError && strings.HasPrefix(e.Enhanced, "4.7.")) {
		e.Throttled = true
	}
	replyMisconfig(e)
}

// classifyTransport handles errors without an SMTP reply and returns a short
// label for the text.
func classifyTransport(e *Error, err error, se *gomail.SendError) (label string) {
	var (
		netErr  net.Error
		certErr *tls.CertificateVerificationError
		recErr  tls.RecordHeaderError
		alert   tls.AlertError
		unkAuth x509.UnknownAuthorityError
		hostErr x509.HostnameError
		invErr  x509.CertificateInvalidError
		opErr   *net.OpError
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		e.Timeout, e.ConnLost = true, true
		label = "timed out"
	case errors.Is(err, context.Canceled):
		e.ConnLost = true
		label = "canceled"
	case errors.As(err, &certErr), errors.As(err, &unkAuth), errors.As(err, &hostErr), errors.As(err, &invErr):
		// Not Permanent: once an operator fixes the certificate or the trust
		// store the same message goes through. A dial marks it
		// Misconfigured (see transportMisconfig): retrying before that fix
		// only repeats the failure.
		e.ConnLost = true
		label = "TLS certificate verification failed"
	case errors.As(err, &recErr), errors.As(err, &alert):
		e.ConnLost = true
		label = "TLS handshake failed"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED):
		e.ConnLost = true
		label = "connection lost"
	case errors.Is(err, syscall.ECONNREFUSED), errors.As(err, &opErr):
		e.ConnLost = true
		label = "network error"
	case se != nil:
		switch se.Reason {
		case gomail.ErrGetSender, gomail.ErrGetRcpts, gomail.ErrNoUnencoded:
			// The message cannot be sent as built; retrying will not help.
			e.Permanent = true
		default:
			// go-mail's *SendError hides the underlying error (no Unwrap),
			// but at these stages an error without a reply code can only
			// come from the connection, so treat it as lost (the string is
			// all we have; e.g. "i/o timeout" is recognisable).
			e.ConnLost = true
			label = "connection lost"
			if strings.Contains(se.Error(), "i/o timeout") {
				e.Timeout = true
				label = "timed out"
			}
		}
	default:
		if e.Stage == StageDial {
			// Anything else while dialing (no STARTTLS offered, no usable
			// AUTH mechanism, ...): no session exists.
			e.ConnLost = true
		}
	}
	return label
}

// stageOfReason is the stage of each reason go-mail gives for a *SendError;
// any other reason is about the data.
var stageOfReason = map[gomail.SendErrReason]string{
	gomail.ErrSMTPMailFrom: StageMail, gomail.ErrSMTPRcptTo: StageRcpt, gomail.ErrSMTPReset: StageReset,
	gomail.ErrSMTPData: StageData, gomail.ErrWriteContent: StageData, gomail.ErrSMTPDataClose: StageData,
	gomail.ErrConnCheck: StageDial,
	gomail.ErrGetSender: StageMessage, gomail.ErrGetRcpts: StageMessage, gomail.ErrNoUnencoded: StageMessage,
}

func stageOf(r gomail.SendErrReason) string {
	if s, ok := stageOfReason[r]; ok {
		return s
	}
	return StageData
}

// sendErrorText recovers the server's reply text from a go-mail *SendError, whose
// error list is unexported. Its Error() is
//
//	<reason>: <err1>, <err2>, affected recipient(s): <r1>, <r2>, affected message ID: <id>
//
// and each SMTP err prints as "<code> <text>" or, since Go 1.26, as
// "<code> <quoted text>" (textproto.Error).
func sendErrorText(se *gomail.SendError) string {
	s := se.Error()
	s = strings.TrimPrefix(s, se.Reason.String()+":")
	if id := se.MessageID(); id != "" {
		s = strings.TrimSuffix(s, ", affected message ID: "+id)
	}
	if i := strings.Index(s, ", affected recipient(s): "); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimSpace(s)
	if code := se.ErrorCode(); code != 0 {
		if i := strings.Index(s, strconv.Itoa(code)+" "); i >= 0 {
			s = s[i+4:]
		}
		// Since Go 1.26 textproto.Error prints its text with %q; older
		// versions print it raw.
		if q, err := strconv.QuotedPrefix(s); err == nil {
			if u, err := strconv.Unquote(q); err == nil {
				s = u
			}
		}
		_, s = splitEnhanced(s)
	}
	return s
}

// splitEnhanced splits "5.1.1 No such user" into the RFC 3463 code and the text.
// With multi-line replies textproto joins lines with "\n"; each line repeats the
// code, so only the first is kept as code and the rest is flattened.
func splitEnhanced(msg string) (enhanced, text string) {
	lines := strings.Split(msg, "\n")
	for i, l := range lines {
		code, rest, ok := strings.Cut(strings.TrimSpace(l), " ")
		if ok && isEnhanced(code) {
			if i == 0 {
				enhanced = code
			}
			l = rest
		}
		lines[i] = strings.TrimSpace(l)
	}
	return enhanced, strings.Join(lines, " ")
}

// isEnhanced matches class "." subject "." detail (RFC 3463 section 2):
// class 2, 4 or 5, subject and detail 1 to 3 digits.
func isEnhanced(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || !strings.ContainsAny(parts[0], "245") {
		return false
	}
	for _, p := range parts[1:] {
		if len(p) < 1 || len(p) > 3 {
			return false
		}
		for _, r := range p {
			if r < '0' || r > '9' {
				return false
			}
		}
	}
	return true
}

// invalidConfig is the *Error of a dial refused for its configuration.
func invalidConfig(err error) *Error {
	return &Error{Stage: StageDial, Text: "invalid configuration: " + err.Error(), ConnLost: true,
		Misconfigured: true, Fix: fixConfig, Err: fmt.Errorf("invalid SMTP configuration: %w", err)}
}

// dialError is an *Error for a failed dial: ConnLost (there is no session),
// the reply's code and text when a reply caused it, never the password.
func dialError(cfg Config, addr string, err error) *Error {
	err = redactError(fmt.Errorf("connecting to SMTP server %s (%s): %w", addr, cfg.mode(), err), cfg.Password)
	var e *Error
	if errors.As(err, &e) {
		// A reply: keep its classification, wrap the context around it.
		e = &Error{Code: e.Code, Enhanced: e.Enhanced, Text: e.Text, Permanent: e.Permanent,
			Throttled: e.Throttled, Timeout: e.Timeout, Misconfigured: e.Misconfigured, Fix: e.Fix, Err: err}
	} else {
		e = classify(err, nil)
		transportMisconfig(e, err, cfg.mode())
	}
	e.Stage, e.ConnLost = StageDial, true
	e.Text = redactString(e.Text, cfg.Password)
	return e
}

// redactError returns err unless its text contains secret, in which case the
// chain is dropped and only a redacted text survives: a server or library that
// echoes the password must not get it into our logs.
func redactError(err error, secret string) error {
	if err == nil {
		return nil
	}
	if s := err.Error(); secret != "" && strings.Contains(s, secret) {
		return errors.New(redactString(s, secret))
	}
	return err
}

// redactString replaces secret in s.
func redactString(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, redacted)
}
