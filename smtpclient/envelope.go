package smtpclient

import (
	"bytes"
	"errors"
	"fmt"
)

// ErrInvalidEnvelope is wrapped by the error of an Envelope that Send refuses
// to send (Stage StageMessage).
var ErrInvalidEnvelope = errors.New("invalid message")

// maxPathLen is the longest address: RFC 5321 section 4.5.3.1.3's path limit
// minus the angle brackets.
const maxPathLen = 254

// size is the length of the message data.
func (e *Envelope) size() int {
	n := 0
	for _, p := range e.Data {
		n += len(p)
	}
	return n
}

// checkEnvelope refuses what must not be sent: addresses that would break the
// command line, non-ASCII addresses the server can't take, oversized or
// unstuffed data. Such a message fails permanently (Stage StageMessage) and
// is skipped; the connection is unaffected.
func (c *Conn) checkEnvelope(e *Envelope) *Error {
	bad := func(format string, args ...any) *Error {
		err := fmt.Errorf("%w: %s", ErrInvalidEnvelope, fmt.Sprintf(format, args...))
		return &Error{Stage: StageMessage, Permanent: true, Text: err.Error(), Err: err}
	}
	for _, a := range [2]struct{ what, addr string }{{"sender", e.From}, {"recipient", e.To}} {
		if a.addr == "" && a.what == "recipient" {
			return bad("empty recipient address")
		}
		if len(a.addr) > maxPathLen {
			return bad("%s address longer than %d bytes (RFC 5321 section 4.5.3.1.3)", a.what, maxPathLen)
		}
		for i := 0; i < len(a.addr); i++ {
			switch ch := a.addr[i]; {
			case ch <= ' ' || ch == 0x7f || ch == '<' || ch == '>':
				return bad("%s address contains a space, control character or angle bracket", a.what)
			case ch >= 0x80 && !c.ext.SMTPUTF8:
				return bad("%s address is not ASCII and the server does not offer SMTPUTF8 (RFC 6531)", a.what)
			}
		}
	}
	size := e.size()
	if size == 0 {
		return bad("empty message data")
	}
	if c.ext.Size > 0 && int64(size) > c.ext.Size {
		return bad("message of %d bytes exceeds the server's limit of %d (RFC 1870)", size, c.ext.Size)
	}
	if !dotStuffed(e.Data) {
		return bad("message data is not dot-stuffed (RFC 5321 section 4.5.2)")
	}
	return nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// dotStuffed reports whether every line of the data, in pieces, that starts
// with "." starts with ".." (RFC 5321 section 4.5.2). An unstuffed line "."
// would end the data early and have the server read the rest as commands.
// Checking is on the per-message path, so it looks at each "." (IndexByte,
// vectorised) rather than at each line start: dots are rarer than line
// breaks in mail. A line may start in one piece and go on in the next.
func dotStuffed(data [][]byte) bool {
	prev := byte('\n') // the message starts a line
	needDot := false   // the previous piece ended with a "." that starts a line
	for _, p := range data {
		if len(p) == 0 {
			continue
		}
		i := 0
		if needDot {
			if p[0] != '.' {
				return false
			}
			needDot, i = false, 1
		}
		for {
			j := bytes.IndexByte(p[i:], '.')
			if j < 0 {
				break
			}
			i += j
			before := prev
			if i > 0 {
				before = p[i-1]
			}
			// A bare CR counts as a line break too: some servers take
			// one as such (the "SMTP smuggling" ambiguity), and RFC 5321
			// section 2.3.8 doesn't allow it in data anyway.
			if before == '\n' || before == '\r' {
				if i+1 >= len(p) {
					needDot = true
					break
				}
				if p[i+1] != '.' {
					return false
				}
				i++
			}
			i++
		}
		prev = p[len(p)-1]
	}
	return !needDot
}
