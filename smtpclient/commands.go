package smtpclient

import (
	"bytes"
	"context"
	"strconv"
	"time"
)

// The commands of a mail transaction, written to c.bw; flush sends them.

// deadline bounds the next round trip by cfg.Timeout and ctx's deadline.
func (c *Conn) deadline(ctx context.Context) {
	d := time.Now().Add(c.cfg.timeout())
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		d = cd
	}
	_ = c.conn.SetDeadline(d)
}

// writeGroup writes MAIL FROM, RCPT TO and DATA for e. RFC 2920 section 3.1:
// RSET, MAIL and RCPT may appear anywhere in a group, DATA only last.
func (c *Conn) writeGroup(e *Envelope) {
	c.writeMail(e)
	c.writeRcpt(e)
	c.writeDataCommand()
}

// writeMail writes MAIL FROM (RFC 5321 section 4.1.1.2) with the parameters
// the server's extensions call for.
func (c *Conn) writeMail(e *Envelope) {
	c.bw.writeString("MAIL FROM:<")
	c.bw.writeString(e.From)
	c.bw.writeByte('>')
	if c.ext.Size > 0 {
		// RFC 1870 section 6: declare the size so an oversized message
		// is refused before its data is sent. The stuffed length is an
		// estimate at most a little too large, which section 6 allows.
		c.bw.writeString(" SIZE=")
		c.num = strconv.AppendInt(c.num[:0], int64(e.size()), 10)
		c.bw.write(c.num)
	}
	if c.ext.SMTPUTF8 && (!isASCII(e.From) || !isASCII(e.To)) {
		c.bw.writeString(" SMTPUTF8") // RFC 6531 section 3.4
	}
	c.bw.writeString("\r\n")
}

// writeRcpt writes RCPT TO (RFC 5321 section 4.1.1.3).
func (c *Conn) writeRcpt(e *Envelope) {
	c.bw.writeString("RCPT TO:<")
	c.bw.writeString(e.To)
	c.bw.writeString(">\r\n")
}

// writeDataCommand writes DATA (RFC 5321 section 4.1.1.4).
func (c *Conn) writeDataCommand() { c.bw.writeString("DATA\r\n") }

// writeRset writes RSET (RFC 5321 section 4.1.1.5).
func (c *Conn) writeRset() { c.bw.writeString("RSET\r\n") }

// writeData writes the message and the end of data, "<CRLF>.<CRLF>" (RFC 5321
// section 4.1.1.4), adding the CRLF if the data lacks it.
func (c *Conn) writeData(e *Envelope) {
	var last []byte
	for _, p := range e.Data {
		c.bw.write(p)
		if len(p) > 0 {
			last = p
		}
	}
	if !bytes.HasSuffix(last, []byte("\r\n")) {
		c.bw.writeString("\r\n")
	}
	c.writeEndOfData()
}

// writeEndOfData writes the "." that ends the data (RFC 5321 section 4.1.1.4).
func (c *Conn) writeEndOfData() { c.bw.writeString(".\r\n") }

// flush sends what was written since the last flush.
func (c *Conn) flush() error {
	c.flushes++
	return c.bw.flush()
}

// roundTrip sends what was written and reads the reply to the first command
// of it.
func (c *Conn) roundTrip() (int, error) {
	if err := c.flush(); err != nil {
		return 0, err
	}
	return c.readReply()
}

// command sends one command line and reads its reply (the dial phase, QUIT and
// lock-step mode).
func (c *Conn) command(line string) (int, error) {
	c.bw.writeString(line)
	c.bw.writeString("\r\n")
	return c.roundTrip()
}
