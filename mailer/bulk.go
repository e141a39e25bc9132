package mailer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The bulk transport: an SMTP client (RFC 5321) that sends many pre-built
// messages over one connection with command pipelining (RFC 2920), so that a
// message costs one round trip instead of go-mail's five, and writes each
// message's pre-dot-stuffed bytes with a few large writes instead of
// textproto's byte-at-a-time dot-stuffing writer. go-mail (Dial, Conn) stays
// the client for transactional mail.

// Envelope is one message for BulkConn.Send.
type Envelope struct {
	From string // MAIL FROM reverse-path without brackets; "" is the null path
	To   string // RCPT TO forward-path without brackets
	// Data is the message, CRLF line endings, already dot-stuffed (RFC 5321
	// section 4.5.2) and without the final ".\r\n", in pieces written in
	// order (Parts.Data of Prepared.AppendParts: the edition's shared chunks
	// and the recipient's lines, never put together), or in one. Send
	// checks the stuffing and refuses a message with a line that starts
	// with a single ".", which would end the data early and have the rest
	// read as commands.
	Data [][]byte
}

// size is the length of the message data.
func (e *Envelope) size() int {
	n := 0
	for _, p := range e.Data {
		n += len(p)
	}
	return n
}

// Result is what happened to one Envelope.
type Result struct {
	// OK: the server accepted the message (2yz to the end of data, RFC 5321
	// section 4.1.1.4) and is now responsible for it.
	OK bool
	// Reply is the text of the server's reply that decided this message,
	// without the reply code but with any enhanced status code, lines
	// joined by "\n": e.g. "2.0.0 Ok: queued as 4F2A", or "5.1.1 No such
	// user". "" when no reply came.
	Reply string
	// Err is set when !OK; see Error. With Code 0 (no reply decided it):
	//   - ConnLost, Stage StageData: its data was sent but the reply to it
	//     never came (connection lost): it may or may not have been
	//     delivered, and retrying may deliver it twice. That window, one
	//     message per lost connection, is inherent to SMTP (RFC 1047).
	//   - ConnLost, any other stage: the connection failed or closed before
	//     its data was sent; StageMail means nothing of it was sent at all.
	//   - not ConnLost, Stage StageMail: Send stopped because ctx was
	//     cancelled before this message (errors.Is(Err, ctx.Err())).
	//   - Stage StageMessage, Permanent: refused before sending (see Send).
	Err *Error
}

// Extensions are the SMTP service extensions a server advertised in its
// EHLO reply (RFC 5321 section 4.1.1.1), after STARTTLS when used.
type Extensions struct {
	Pipelining          bool     // RFC 2920
	StartTLS            bool     // RFC 3207
	EightBitMIME        bool     // RFC 6152
	SMTPUTF8            bool     // RFC 6531
	EnhancedStatusCodes bool     // RFC 2034
	Size                int64    // RFC 1870 message size limit; 0: none given
	Auth                []string // RFC 4954 SASL mechanisms, upper case
}

// BulkConn is one SMTP connection for the bulk path. Use it from one goroutine
// at a time (Send and Close are serialised anyway); open several for
// parallelism.
type BulkConn struct {
	cfg  Config
	conn net.Conn // TCP, or TLS over it
	br   *bufio.Reader
	bw   *wireWriter
	ext  Extensions
	helo string

	mu     sync.Mutex
	broken atomic.Bool
	closed atomic.Bool

	// Scratch, reused for every reply and command.
	text  []byte // the last reply's text: its lines, without codes, joined by "\n"
	num   []byte // SIZE= parameter
	long  []byte // the start of an overlong reply line
	valid []bool // per Send: which envelopes pass checkEnvelope

	// flushes counts Send's writes to the socket, each the start of a
	// round trip; the tests check pipelining needs one per message.
	flushes int
}

// Limits. Replies are short (RFC 5321 section 4.5.3.1.5: reply lines are at
// most 512 octets); writes go through wireWriter, so that a message and the
// next message's commands leave in one system call.
const (
	bulkReadBuffer = 4 << 10
	// maxReplyLines bounds a multi-line reply; a server sending more is
	// broken or hostile.
	maxReplyLines = 200
	maxReplyText  = 16 << 10
)

// Reply codes the bulk client expects (RFC 5321 section 4.2.2, 4.2.3).
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

// DialBulk connects, reads the greeting, says EHLO, establishes TLS per
// cfg.TLS (STARTTLS is required in the default mode: a server that doesn't
// offer it is an error, never a downgrade, RFC 3207 section 6) and
// authenticates with AUTH PLAIN (RFC 4616) or LOGIN when cfg.Username is set -
// over TLS, or in clear text only when cfg.TLS is TLSNone, which must be
// chosen explicitly.
//
// Without PIPELINING the connection works in lock-step, one command per round
// trip. The error is an *Error with Stage "dial" and ConnLost set; it never
// contains the password. ctx and cfg.Timeout both bound the whole dial.
func DialBulk(ctx context.Context, cfg Config) (*BulkConn, error) {
	if err := cfg.validate(); err != nil {
		return nil, &Error{Stage: StageDial, Text: "invalid configuration: " + err.Error(), ConnLost: true,
			Err: fmt.Errorf("invalid SMTP configuration: %w", err)}
	}
	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.port()))
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout())
	defer cancel()

	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, bulkDialError(cfg, addr, err)
	}
	c := &BulkConn{cfg: cfg, conn: raw}
	// The handshake is bounded by ctx: its deadline on the socket, and an
	// expired one the moment ctx is cancelled.
	dl, _ := ctx.Deadline()
	_ = raw.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	err = c.handshake(ctx)
	if !stop() && err == nil {
		err = context.Cause(ctx)
	}
	if err != nil {
		_ = raw.Close()
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			err = errors.Join(ctxErr, err)
		}
		return nil, bulkDialError(cfg, addr, err)
	}
	_ = c.conn.SetDeadline(time.Time{})
	return c, nil
}

// bulkDialError is an *Error for a failed dial: ConnLost (there is no session),
// the reply's code and text when a reply caused it, never the password.
func bulkDialError(cfg Config, addr string, err error) *Error {
	err = redactError(fmt.Errorf("connecting to SMTP server %s (%s): %w", addr, cfg.mode(), err), cfg.Password)
	var e *Error
	if errors.As(err, &e) {
		// A reply: keep its classification, wrap the context around it.
		e = &Error{Code: e.Code, Enhanced: e.Enhanced, Text: e.Text, Permanent: e.Permanent,
			Throttled: e.Throttled, Timeout: e.Timeout, Err: err}
	} else {
		e = classify(err, nil)
	}
	e.Stage, e.ConnLost = StageDial, true
	e.Text = redactString(e.Text, cfg.Password)
	return e
}

func (c *BulkConn) tlsConfig() *tls.Config {
	conf := &tls.Config{}
	if c.cfg.TLSConfig != nil {
		conf = c.cfg.TLSConfig.Clone()
	}
	if conf.ServerName == "" {
		conf.ServerName = c.cfg.Host
	}
	if conf.MinVersion == 0 {
		conf.MinVersion = tls.VersionTLS12
	}
	return conf
}

func (c *BulkConn) setConn(nc net.Conn) {
	c.conn = nc
	c.br = bufio.NewReaderSize(nc, bulkReadBuffer)
	c.bw = newWireWriter(nc)
}

func (c *BulkConn) handshake(ctx context.Context) error {
	if c.cfg.mode() == TLSImplicit {
		// RFC 8314 section 3.3: TLS from the first byte.
		tc := tls.Client(c.conn, c.tlsConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("TLS handshake: %w", err)
		}
		c.conn = tc
	}
	c.setConn(c.conn)
	// RFC 5321 section 4.3.1: 220 greeting, or 554 "no service".
	code, err := c.readReply()
	if err != nil {
		return fmt.Errorf("reading greeting: %w", err)
	}
	if code != codeServiceReady {
		return c.replyError(StageDial, code, "greeting")
	}
	c.helo = c.cfg.HELO
	if c.helo == "" {
		c.helo = "localhost"
		if h, err := os.Hostname(); err == nil && validHELO(h) {
			c.helo = h
		}
	}
	if err := c.hello(); err != nil {
		return err
	}
	if c.cfg.mode() == TLSStartTLS {
		if !c.ext.StartTLS {
			return errors.New("server does not offer STARTTLS; refusing to continue in clear text (RFC 3207 section 6)")
		}
		code, err := c.command("STARTTLS")
		if err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
		if code != codeServiceReady {
			return c.replyError(StageDial, code, "STARTTLS")
		}
		// Anything the server sent after its 220 arrived in clear text and
		// would be read as if it came over TLS: a man in the middle
		// injecting replies (the client side of CVE-2011-0411).
		if c.br.Buffered() > 0 {
			return fmt.Errorf("%w: server sent data after its STARTTLS reply, before TLS", errProtocol)
		}
		tc := tls.Client(c.conn, c.tlsConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("TLS handshake: %w", err)
		}
		c.setConn(tc)
		// RFC 3207 section 4.2: discard what was learnt before TLS and
		// say EHLO again.
		if err := c.hello(); err != nil {
			return err
		}
	}
	if c.cfg.Username != "" {
		return c.auth()
	}
	return nil
}

// hello sends EHLO and records the extensions, falling back to HELO (no
// extensions) when the server does not know EHLO (RFC 5321 section 4.1.4).
func (c *BulkConn) hello() error {
	c.ext = Extensions{}
	code, err := c.command("EHLO " + c.helo)
	if err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	if code == codeSyntaxError || code == codeNotImpl {
		code, err = c.command("HELO " + c.helo)
		if err != nil {
			return fmt.Errorf("HELO: %w", err)
		}
		if code != codeOK {
			return c.replyError(StageDial, code, "HELO")
		}
		return nil
	}
	if code != codeOK {
		return c.replyError(StageDial, code, "EHLO")
	}
	// The first line greets; each further line is "keyword [params]"
	// (RFC 5321 section 4.1.1.1).
	lines := strings.Split(string(c.text), "\n")
	for _, l := range lines[1:] {
		f := strings.Fields(strings.ToUpper(l))
		if len(f) == 0 {
			continue
		}
		switch kw, params := f[0], f[1:]; {
		case kw == "PIPELINING":
			c.ext.Pipelining = true
		case kw == "STARTTLS":
			c.ext.StartTLS = true
		case kw == "8BITMIME":
			c.ext.EightBitMIME = true
		case kw == "SMTPUTF8":
			c.ext.SMTPUTF8 = true
		case kw == "ENHANCEDSTATUSCODES":
			c.ext.EnhancedStatusCodes = true
		case kw == "SIZE":
			if len(params) > 0 {
				if n, err := strconv.ParseInt(params[0], 10, 64); err == nil && n > 0 {
					c.ext.Size = n
				}
			}
		case kw == "AUTH" || strings.HasPrefix(kw, "AUTH="):
			// "AUTH=" is the pre-RFC 4954 form some servers still send.
			if m, ok := strings.CutPrefix(kw, "AUTH="); ok {
				params = append([]string{m}, params...)
			}
			for _, m := range params {
				if !containsString(c.ext.Auth, m) {
					c.ext.Auth = append(c.ext.Auth, m)
				}
			}
		}
	}
	return nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// auth authenticates with PLAIN (RFC 4616, sent as the initial response, RFC
// 4954 section 4) or, failing that, LOGIN. The connection is TLS at this
// point unless TLSNone was chosen explicitly.
func (c *BulkConn) auth() error {
	if len(c.ext.Auth) == 0 {
		return errors.New("SMTP credentials are configured but the server offers no AUTH (RFC 4954); refusing to send unauthenticated")
	}
	user, pass := c.cfg.Username, c.cfg.Password
	switch {
	case containsString(c.ext.Auth, "PLAIN"):
		// RFC 4616 section 2: authzid NUL authcid NUL passwd; an empty
		// authzid means "act as authcid".
		resp := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
		code, err := c.command("AUTH PLAIN " + resp)
		if err != nil {
			return fmt.Errorf("AUTH PLAIN: %w", err)
		}
		if code != codeAuthOK {
			return c.replyError(StageDial, code, "AUTH PLAIN")
		}
		return nil
	case containsString(c.ext.Auth, "LOGIN"):
		// LOGIN (draft-murchison-sasl-login): the server prompts for the
		// user name and then the password, each base64 in a 334 reply.
		code, err := c.command("AUTH LOGIN")
		for _, v := range []string{user, pass} {
			if err != nil {
				return fmt.Errorf("AUTH LOGIN: %w", err)
			}
			if code != codeAuthContinue {
				return c.replyError(StageDial, code, "AUTH LOGIN")
			}
			code, err = c.command(base64.StdEncoding.EncodeToString([]byte(v)))
		}
		if err != nil {
			return fmt.Errorf("AUTH LOGIN: %w", err)
		}
		if code != codeAuthOK {
			return c.replyError(StageDial, code, "AUTH LOGIN")
		}
		return nil
	}
	return fmt.Errorf("server offers AUTH %s but none of PLAIN, LOGIN", strings.Join(c.ext.Auth, " "))
}

// command sends one command line and reads its reply (the dial phase, QUIT and
// lock-step mode).
func (c *BulkConn) command(line string) (int, error) {
	c.bw.writeString(line)
	c.bw.writeString("\r\n")
	if err := c.bw.flush(); err != nil {
		return 0, err
	}
	return c.readReply()
}

// readReply reads one reply, multi-line or not (RFC 5321 section 4.2.1: every
// line but the last has "-" after the code, all lines have the same code), and
// leaves its text in c.text. It allocates nothing once the buffers have grown.
func (c *BulkConn) readReply() (int, error) {
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
func (c *BulkConn) readLine() ([]byte, error) {
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
func (c *BulkConn) replyError(stage string, code int, what string) *Error {
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

// Broken reports whether the connection can no longer be used: a send lost
// it, the server closed it (421), or Close was called. Close it and dial again.
func (c *BulkConn) Broken() bool { return c.broken.Load() || c.closed.Load() }

// Extensions returns what the server advertised.
func (c *BulkConn) Extensions() Extensions {
	e := c.ext
	e.Auth = append([]string(nil), e.Auth...)
	return e
}

// Close sends QUIT (RFC 5321 section 4.1.1.10) when the connection is healthy,
// waiting at most cfg.Timeout for the reply, and closes it in any case.
func (c *BulkConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Swap(true) {
		return nil
	}
	defer c.conn.Close()
	if c.broken.Load() {
		return nil
	}
	_ = c.conn.SetDeadline(time.Now().Add(c.cfg.timeout()))
	if _, err := c.command("QUIT"); err != nil {
		return fmt.Errorf("closing SMTP connection: %w", err)
	}
	return nil
}

// Send sends envs[i] and stores its outcome in results[i] (results must be at
// least as long as envs). It never returns early without filling every
// result.
//
// With PIPELINING (RFC 2920) each message costs one round trip: the data of
// one message, its end-of-data dot and the next message's MAIL, RCPT and DATA
// go out in one write, and the replies to all of them come back together.
// Without it, Send works in lock-step.
//
// Failures are classified as by Classify: 5xx is Permanent, 4xx temporary;
// 421 (the server is closing, RFC 5321 section 3.8) is ConnLost and
// Throttled; 4.7.28 and 451 4.7.x are Throttled. When the connection is lost (421,
// EOF, reset, timeout, protocol error) the message in flight and all later
// ones get ConnLost errors (see Result.Err) and the BulkConn is Broken.
//
// ctx's deadline bounds the I/O (as does cfg.Timeout, per round trip). When
// ctx is cancelled, Send stops before the next message: the one in flight
// finishes, so that shutting down never creates a duplicate, and the rest
// are reported not sent (temporary, connection still usable).
func (c *BulkConn) Send(ctx context.Context, envs []Envelope, results []Result) {
	if len(results) < len(envs) {
		panic("mailer: BulkConn.Send: results is shorter than envs")
	}
	results = results[:len(envs)]
	clear(results)
	if len(envs) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() || c.broken.Load() {
		for i := range results {
			results[i].Err = &Error{Stage: StageMail, ConnLost: true, Text: "not sent: " + ErrConnBroken.Error(), Err: ErrConnBroken}
		}
		return
	}
	c.valid = c.valid[:0]
	for i := range envs {
		if err := c.checkEnvelope(&envs[i]); err != nil {
			results[i].Err = err
			c.valid = append(c.valid, false)
		} else {
			c.valid = append(c.valid, true)
		}
	}
	if c.ext.Pipelining {
		c.sendPipelined(ctx, envs, results)
	} else {
		c.sendLockStep(ctx, envs, results)
	}
}

// checkEnvelope refuses what must not be sent: addresses that would break the
// command line, non-ASCII addresses the server can't take, oversized or
// unstuffed data. Such a message fails permanently (Stage StageMessage) and
// is skipped; the connection is unaffected.
func (c *BulkConn) checkEnvelope(e *Envelope) *Error {
	bad := func(format string, args ...any) *Error {
		err := fmt.Errorf("%w: %s", ErrInvalidMessage, fmt.Sprintf(format, args...))
		return &Error{Stage: StageMessage, Permanent: true, Text: err.Error(), Err: err}
	}
	for _, a := range [2]struct{ what, addr string }{{"sender", e.From}, {"recipient", e.To}} {
		if a.addr == "" && a.what == "recipient" {
			return bad("empty recipient address")
		}
		if len(a.addr) > maxAddrLen {
			return bad("%s address longer than %d bytes (RFC 5321 section 4.5.3.1.3)", a.what, maxAddrLen)
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

// dotStuffed reports whether every line of the data, in pieces, that starts
// with "." starts with ".." (RFC 5321 section 4.5.2). An unstuffed line "."
// would end the data early and have the server read the rest as commands;
// checking costs a few microseconds per message. It looks at each "."
// (IndexByte, vectorised) rather than each line start: dots are rarer than
// line breaks in mail, so this is about four times faster than searching
// for "\n.". A line may start in one piece and go on in the next.
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

// nextValid is the first index from i whose envelope passed checkEnvelope.
func (c *BulkConn) nextValid(i int) int {
	for i < len(c.valid) && !c.valid[i] {
		i++
	}
	return i
}

// deadline bounds the next round trip by cfg.Timeout and ctx's deadline.
func (c *BulkConn) deadline(ctx context.Context) {
	d := time.Now().Add(c.cfg.timeout())
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		d = cd
	}
	_ = c.conn.SetDeadline(d)
}

// writeGroup writes MAIL FROM, RCPT TO and DATA for e, preceded by RSET when
// the previous transaction failed (RFC 5321 section 4.1.1.5: RSET aborts it,
// so MAIL can start a new one). RFC 2920 section 3.1: RSET, MAIL and RCPT may
// appear anywhere in a group, DATA only last.
func (c *BulkConn) writeGroup(e *Envelope, rset bool) {
	if rset {
		c.bw.writeString("RSET\r\n")
	}
	c.writeMail(e)
	c.writeRcpt(e)
	c.bw.writeString("DATA\r\n")
}

// writeMail writes MAIL FROM (RFC 5321 section 4.1.1.2) with the parameters
// the server's extensions call for.
func (c *BulkConn) writeMail(e *Envelope) {
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
func (c *BulkConn) writeRcpt(e *Envelope) {
	c.bw.writeString("RCPT TO:<")
	c.bw.writeString(e.To)
	c.bw.writeString(">\r\n")
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// writeData writes the message and the end of data, "<CRLF>.<CRLF>" (RFC 5321
// section 4.1.1.4), adding the CRLF if the data lacks it.
func (c *BulkConn) writeData(e *Envelope) {
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
	c.bw.writeString(".\r\n")
}

// flush sends what was written since the last flush.
func (c *BulkConn) flush() error {
	c.flushes++
	return c.bw.flush()
}

// positive reports a 2yz reply (RFC 5321 section 4.2.1).
func positive(code int) bool { return code >= 200 && code < 300 }

// sendPipelined is Send with PIPELINING. At the top of each iteration the
// group for message i (RSET if pending, MAIL, RCPT, DATA) has been written.
func (c *BulkConn) sendPipelined(ctx context.Context, envs []Envelope, results []Result) {
	n := len(envs)
	i := c.nextValid(0)
	if i == n {
		return
	}
	if err := ctx.Err(); err != nil {
		c.notSent(envs, results, i, ctxNotSent(err))
		return
	}
	c.deadline(ctx)
	c.writeGroup(&envs[i], false)
	if err := c.flush(); err != nil {
		c.lose(envs, results, i, StageMail, withCtx(ctx, err))
		return
	}
	rsetPending := false
	for {
		if rsetPending {
			if !c.readRset(ctx, envs, results, i) {
				return
			}
			rsetPending = false
		}
		// RFC 2920 section 3.1: the client MUST check every reply of the
		// group, and the first failure is the one that counts.
		var failed *Error
		stages := [3]string{StageMail, StageRcpt, StageData}
		var codes [3]int
		for k, stage := range stages {
			code, err := c.readReply()
			if err != nil {
				c.lose(envs, results, i, stage, withCtx(ctx, err))
				return
			}
			codes[k] = code
			ok := positive(code) || k == 2 && code == codeStartMailData
			if !ok && failed == nil {
				failed = c.replyError(stage, code, stage)
			}
			if code == CodeServiceUnavailable {
				// RFC 5321 section 3.8: the server is closing the
				// channel; nothing more will be read.
				c.closing(envs, results, i, failed, c.replyError(stage, code, stage))
				return
			}
		}
		dataAccepted := codes[2] == codeStartMailData
		if failed == nil && !dataAccepted {
			failed = c.replyError(StageData, codes[2], "DATA")
		}

		next := c.nextValid(i + 1)
		stopping := next < n && ctx.Err() != nil
		sendNext := next < n && !stopping
		c.deadline(ctx)
		if failed == nil {
			// RFC 2920 section 3.1: "The actual transfer of message
			// content is explicitly allowed to be the first 'command'
			// in a group", so the next message's MAIL, RCPT and DATA
			// follow the end of data in the same write.
			c.writeData(&envs[i])
			if sendNext {
				c.writeGroup(&envs[next], false)
			}
			if err := c.flush(); err != nil {
				c.lostAfterData(envs, results, i, next, withCtx(ctx, err))
				return
			}
			code, err := c.readReply()
			if err != nil {
				c.lostAfterData(envs, results, i, next, withCtx(ctx, err))
				return
			}
			if positive(code) {
				results[i] = Result{OK: true, Reply: string(c.text)}
			} else {
				e := c.replyError(StageData, code, "end of data")
				results[i] = Result{Reply: string(c.text), Err: e}
				if code == CodeServiceUnavailable {
					c.abandon(envs, results, next, e)
					return
				}
			}
		} else {
			results[i] = Result{Reply: replyText(failed), Err: failed}
			if dataAccepted {
				// RFC 2920 section 3.1: "if the DATA command was
				// accepted the client SMTP should send a single dot";
				// the server then fails the empty transaction.
				c.bw.writeString(".\r\n")
			}
			// RFC 5321 section 4.1.1.5: RSET before the next MAIL, as
			// the failed transaction may still be open (a rejected
			// RCPT leaves the accepted MAIL in place).
			c.writeGroupOrRset(envs, next, sendNext)
			if err := c.flush(); err != nil {
				c.lose(envs, results, next, StageMail, withCtx(ctx, err))
				return
			}
			if dataAccepted {
				code, err := c.readReply()
				if err != nil {
					c.lose(envs, results, next, StageMail, withCtx(ctx, err))
					return
				}
				if code == CodeServiceUnavailable {
					c.abandon(envs, results, next, c.replyError(StageData, code, "end of data"))
					return
				}
			}
			rsetPending = true
		}
		if !sendNext {
			if rsetPending && !c.readRset(ctx, envs, results, next) {
				return
			}
			if stopping {
				c.notSent(envs, results, next, ctxNotSent(ctx.Err()))
			}
			return
		}
		i = next
	}
}

// writeGroupOrRset writes RSET and, when there is a next message to send, its
// group.
func (c *BulkConn) writeGroupOrRset(envs []Envelope, next int, sendNext bool) {
	if sendNext {
		c.writeGroup(&envs[next], true)
	} else {
		c.bw.writeString("RSET\r\n")
	}
}

// readRset reads the reply to a RSET. Anything but 250 leaves the dialogue in
// an unknown state: the connection is given up and the messages from i on are
// not sent (a pipelined group after the RSET had no effect that counts).
func (c *BulkConn) readRset(ctx context.Context, envs []Envelope, results []Result, i int) bool {
	code, err := c.readReply()
	if err != nil {
		c.lose(envs, results, i, StageMail, withCtx(ctx, err))
		return false
	}
	if code != codeOK {
		e := c.replyError(StageReset, code, "RSET")
		e.ConnLost = true
		c.abandon(envs, results, i, e)
		return false
	}
	return true
}

// sendLockStep is Send without PIPELINING: each command waits for its reply.
func (c *BulkConn) sendLockStep(ctx context.Context, envs []Envelope, results []Result) {
	for i := c.nextValid(0); i < len(envs); i = c.nextValid(i + 1) {
		if err := ctx.Err(); err != nil {
			c.notSent(envs, results, i, ctxNotSent(err))
			return
		}
		e := &envs[i]
		var failed *Error
		for k, stage := range [3]string{StageMail, StageRcpt, StageData} {
			c.deadline(ctx)
			switch k {
			case 0:
				c.writeMail(e)
			case 1:
				c.writeRcpt(e)
			case 2:
				c.bw.writeString("DATA\r\n")
			}
			if err := c.flush(); err != nil {
				c.lose(envs, results, i, stage, withCtx(ctx, err))
				return
			}
			code, err := c.readReply()
			if err != nil {
				c.lose(envs, results, i, stage, withCtx(ctx, err))
				return
			}
			if code == CodeServiceUnavailable {
				c.closing(envs, results, i, nil, c.replyError(stage, code, stage))
				return
			}
			if !(positive(code) || k == 2 && code == codeStartMailData) {
				failed = c.replyError(stage, code, stage)
				break
			}
		}
		if failed != nil {
			results[i] = Result{Reply: replyText(failed), Err: failed}
			c.deadline(ctx)
			c.bw.writeString("RSET\r\n")
			if err := c.flush(); err != nil {
				c.lose(envs, results, c.nextValid(i+1), StageMail, withCtx(ctx, err))
				return
			}
			if !c.readRset(ctx, envs, results, c.nextValid(i+1)) {
				return
			}
			continue
		}
		c.deadline(ctx)
		c.writeData(e)
		next := c.nextValid(i + 1)
		if err := c.flush(); err != nil {
			c.lostAfterData(envs, results, i, next, withCtx(ctx, err))
			return
		}
		code, err := c.readReply()
		if err != nil {
			c.lostAfterData(envs, results, i, next, withCtx(ctx, err))
			return
		}
		if positive(code) {
			results[i] = Result{OK: true, Reply: string(c.text)}
			continue
		}
		ee := c.replyError(StageData, code, "end of data")
		results[i] = Result{Reply: string(c.text), Err: ee}
		if code == CodeServiceUnavailable {
			c.abandon(envs, results, next, ee)
			return
		}
	}
}

// lose handles an I/O or protocol error at stage of message i, before any of
// its data was sent: i and the rest are not sent, the connection is broken.
func (c *BulkConn) lose(envs []Envelope, results []Result, i int, stage string, err error) {
	c.broken.Store(true)
	_ = c.conn.Close()
	if i >= len(envs) {
		return
	}
	e := ioError(stage, err)
	e.Text = "not sent: " + e.Text
	results[i] = Result{Err: e}
	c.notSent(envs, results, c.nextValid(i+1), lostNotSent(err))
}

// lostAfterData handles an I/O error after message i's data was (at least
// partly) written: its fate is unknown, so it is not OK, and ConnLost tells the
// caller to retry it - the documented duplicate window. The rest, from next,
// were not sent.
func (c *BulkConn) lostAfterData(envs []Envelope, results []Result, i, next int, err error) {
	c.broken.Store(true)
	_ = c.conn.Close()
	e := ioError(StageData, err)
	e.Text = "no reply to the end of data, the message may or may not have been delivered: " + e.Text
	results[i] = Result{Err: e}
	c.notSent(envs, results, next, lostNotSent(err))
}

// closing handles a server that closes the connection (421, or a failed RSET)
// while message i is unresolved: i gets first (the first failure of its group)
// or the closing reply, the rest are not sent.
func (c *BulkConn) closing(envs []Envelope, results []Result, i int, first, closing *Error) {
	if i >= len(envs) {
		c.abandon(envs, results, i, closing)
		return
	}
	e := first
	if e == nil {
		e = closing
	}
	e.ConnLost = true
	results[i] = Result{Reply: replyText(e), Err: e}
	c.abandon(envs, results, c.nextValid(i+1), closing)
}

// abandon gives the connection up: the messages from i on are not sent.
func (c *BulkConn) abandon(envs []Envelope, results []Result, i int, cause *Error) {
	c.broken.Store(true)
	_ = c.conn.Close()
	c.notSent(envs, results, i, cause)
}

// notSent marks the valid messages from i on as not sent because of cause.
func (c *BulkConn) notSent(envs []Envelope, results []Result, i int, cause *Error) {
	for ; i < len(envs); i = c.nextValid(i + 1) {
		if !c.valid[i] {
			continue
		}
		e := &Error{Stage: StageMail, ConnLost: cause.ConnLost, Timeout: cause.Timeout, Err: cause}
		if cause.Code != 0 {
			e.Text = fmt.Sprintf("not sent: the server closed the connection (%d %s)", cause.Code, cause.Text)
		} else {
			e.Text = "not sent: " + cause.Text
		}
		results[i] = Result{Err: e}
	}
}

// ioError classifies an error without a reply (EOF, reset, timeout, protocol
// error): always ConnLost, the dialogue is out of step.
func ioError(stage string, err error) *Error {
	e := classify(err, nil)
	e.Stage, e.ConnLost = stage, true
	return e
}

func lostNotSent(err error) *Error {
	e := ioError(StageMail, err)
	e.Text = "the connection was lost before this message: " + e.Text
	e.Timeout = false // the timeout belongs to the message in flight
	return e
}

// withCtx adds ctx's error to an I/O error it caused (its deadline is on the
// socket), so that errors.Is(err, context.DeadlineExceeded) holds. The socket
// deadline may fire a moment before ctx's own timer marks ctx done.
func withCtx(ctx context.Context, err error) error {
	ctxErr := ctx.Err()
	if d, ok := ctx.Deadline(); ok && ctxErr == nil && !time.Now().Before(d) && errors.Is(err, os.ErrDeadlineExceeded) {
		ctxErr = context.DeadlineExceeded
	}
	if ctxErr != nil && !errors.Is(err, ctxErr) {
		return errors.Join(ctxErr, err)
	}
	return err
}

func ctxNotSent(err error) *Error {
	return &Error{Stage: StageMail, Text: "stopped before this message: " + err.Error(),
		Timeout: errors.Is(err, context.DeadlineExceeded), Err: err}
}
