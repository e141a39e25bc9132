package smtpclient

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/textproto"
)

// Limits. Replies are short (RFC 5321 section 4.5.3.1.5: reply lines are at
// most 512 octets); writes go through wireWriter, so that a message and the
// next message's commands leave in one system call.
const (
	readBuffer = 4 << 10
	// maxReplyLines bounds a multi-line reply; a server sending more is
	// broken or hostile.
	maxReplyLines = 200
	maxReplyText  = 16 << 10
)

// Reply codes the client expects (RFC 5321 section 4.2.2, 4.2.3).
const (
	codeServiceReady  = 220 // greeting; also "ready to start TLS" (RFC 3207 section 4)
	codeOK            = 250
	codeStartMailData = 354
	codeAuthOK        = 235 // RFC 4954 section 6
	codeAuthContinue  = 334 // RFC 4954 section 4
	codeSyntaxError   = 500 // command unrecognized, e.g. EHLO on an old server
	codeNotImpl       = 502 // command not implemented
)

var errProtocol = errors.New("SMTP protocol error")

// positive reports a 2yz reply (RFC 5321 section 4.2.1).
func positive(code int) bool { return code >= 200 && code < 300 }

// readReply reads one reply, multi-line or not (RFC 5321 section 4.2.1: every
// line but the last has "-" after the code, all lines have the same code), and
// leaves its text in c.text. It allocates nothing once the buffers have grown.
func (c *Conn) readReply() (int, error) {
	c.text = c.text[:0]
	code := 0
	for n := 0; ; n++ {
		line, err := c.readLine()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF // mid-dialogue, EOF is always unexpected
			}
			return 0, err
		}
		if len(line) < 3 || line[0] < '1' || line[0] > '5' || !isDigit(line[1]) || !isDigit(line[2]) ||
			len(line) > 3 && line[3] != ' ' && line[3] != '-' {
			return 0, fmt.Errorf("%w: malformed reply line %q", errProtocol, truncateForError(line))
		}
		lc := int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
		if n == 0 {
			code = lc
		} else if lc != code {
			return 0, fmt.Errorf("%w: reply lines with different codes %d and %d", errProtocol, code, lc)
		}
		if n > 0 && len(c.text) < maxReplyText {
			c.text = append(c.text, '\n')
		}
		if len(line) > 4 && len(c.text) < maxReplyText {
			c.text = append(c.text, line[4:min(len(line), 4+maxReplyText-len(c.text))]...)
		}
		if len(line) == 3 || line[3] == ' ' {
			return code, nil
		}
		if n >= maxReplyLines {
			return 0, fmt.Errorf("%w: reply of more than %d lines", errProtocol, maxReplyLines)
		}
	}
}

// readLine reads a line without its CRLF (or bare LF); an overlong line is cut
// to the read buffer's size.
func (c *Conn) readLine() ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		// Keep the start for the error text, skip the rest. The slice
		// stays valid until the next read, so copy it first.
		c.long = append(c.long[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = c.br.ReadSlice('\n')
		}
		line = c.long
	}
	if err != nil {
		return nil, err
	}
	line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	return line, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func truncateForError(b []byte) string {
	if len(b) > 80 {
		b = b[:80]
	}
	return string(b)
}

// replyError turns the reply in c.text into an *Error for stage. The enhanced
// status code (RFC 3463) is split off when the server advertised
// ENHANCEDSTATUSCODES (RFC 2034 section 3: then every reply carries one).
func (c *Conn) replyError(stage string, code int, what string) *Error {
	text := string(c.text)
	e := &Error{Stage: stage, Code: code, Err: fmt.Errorf("%s: %w", what, &textproto.Error{Code: code, Msg: text})}
	if c.ext.EnhancedStatusCodes {
		e.Enhanced, e.Text = splitEnhanced(text)
	} else {
		e.Text = oneLine(text)
	}
	if e.Text == "" {
		e.Text = "(no text)"
	}
	e.Text = redactString(e.Text, c.cfg.Password)
	classifyReply(e)
	return e
}

// replyText is the text of the reply behind e, as the server sent it (codes
// included, lines joined by "\n").
func replyText(e *Error) string {
	var tpe *textproto.Error
	if errors.As(e.Err, &tpe) {
		return tpe.Msg
	}
	return ""
}
