package smtpclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"sync"
	"sync/atomic"

	gomail "github.com/wneessen/go-mail"
	gosmtp "github.com/wneessen/go-mail/smtp"
)

// MsgConn is one authenticated SMTP connection that sends go-mail messages one
// at a time, lock-step, through go-mail's client: the client for confirmation
// mails and test copies, where a message is built with go-mail and speed
// doesn't matter. Sends on a MsgConn are serialised (SMTP is one transaction
// at a time per connection).
//
// After any error with ConnLost set (see Classify) the MsgConn reports Broken
// and refuses further sends: Close it and DialMsg again.
type MsgConn struct {
	cfg    Config
	client *gomail.Client
	smtp   *gosmtp.Client
	raw    atomic.Pointer[trackedConn]
	rec    *replyRecorder

	mu     sync.Mutex // serialises Send and Close
	broken atomic.Bool
	closed atomic.Bool
}

// Preferred SASL mechanisms. go-mail's SMTPAuthAutoDiscover decides "encrypted"
// from its own TLS handling, which knows nothing about a connection we wrap in
// TLS ourselves (implicit TLS), and on a plain connection it never picks PLAIN or
// LOGIN - not even for tls=none on loopback. So we pass an explicit preference
// list instead; go-mail's smtp layer still refuses PLAIN/LOGIN without TLS
// (ErrUnencrypted) unless the -NOENC variants are chosen.
var (
	authPrefTLS = []gomail.SMTPAuthType{
		gomail.SMTPAuthSCRAMSHA256PLUS, gomail.SMTPAuthSCRAMSHA256,
		gomail.SMTPAuthSCRAMSHA1PLUS, gomail.SMTPAuthSCRAMSHA1,
		gomail.SMTPAuthPlain, gomail.SMTPAuthLogin,
	}
	// tls=none was asked for explicitly (it is never a default), so the user
	// accepted clear-text credentials, e.g. for a local Mailpit.
	authPrefNoTLS = []gomail.SMTPAuthType{
		gomail.SMTPAuthSCRAMSHA256, gomail.SMTPAuthSCRAMSHA1,
		gomail.SMTPAuthPlainNoEnc, gomail.SMTPAuthLoginNoEnc,
	}
)

// DialMsg connects, says EHLO, establishes TLS per cfg.TLS and authenticates when
// cfg.Username is set. In the default mode STARTTLS is mandatory: a server (or a
// man in the middle, RFC 3207 section 6) that does not offer it gets an error,
// never a silent downgrade to clear text. The returned error
// is an *Error with Stage "dial"; it never contains the password.
//
// ctx bounds the whole dial including TLS and AUTH; cfg.Timeout bounds it too.
func DialMsg(ctx context.Context, cfg Config) (*MsgConn, error) {
	if err := cfg.validate(); err != nil {
		return nil, invalidConfig(err)
	}
	c := &MsgConn{cfg: cfg, rec: &replyRecorder{}}
	addr := cfg.addr()
	tlsConf := cfg.tlsConfig()

	client, err := gomail.NewClient(cfg.Host, gomailOptions(cfg, tlsConf, c.dialFunc(tlsConf))...)
	if err != nil {
		return nil, dialError(cfg, addr, fmt.Errorf("configuring SMTP client: %w", err))
	}
	// Record the first SMTP error reply of each transaction verbatim; go-mail's
	// *SendError only exposes it as part of a longer string.
	client.ErrorHandlerRegistry.SetDefaultHandler(c.rec)
	c.client = client

	// go-mail uses ctx only for the TCP connect; cancel the rest of the
	// handshake (greeting, EHLO, TLS, AUTH) by closing the socket.
	stop := context.AfterFunc(ctx, c.abort)
	sc, err := client.DialToSMTPClientWithContext(ctx)
	stopped := stop()
	if err == nil && !stopped {
		err = context.Cause(ctx)
	}
	if err != nil {
		// go-mail does not close the socket when EHLO/TLS/AUTH fail.
		c.abort()
		return nil, dialError(cfg, addr, withCtx(ctx, err))
	}
	c.smtp = sc
	return c, nil
}

// gomailOptions are go-mail's client options for cfg: TLS as cfg says, done
// by dial for implicit TLS, and AUTH with the preferred mechanisms.
func gomailOptions(cfg Config, tlsConf *tls.Config, dial gomail.DialContextFunc) []gomail.Option {
	opts := []gomail.Option{
		gomail.WithPort(cfg.port()),
		gomail.WithTimeout(cfg.timeout()),
		gomail.WithTLSConfig(tlsConf),
		// We track connection health ourselves; go-mail's NOOP before every
		// Send would cost a round trip per message.
		gomail.WithoutNoop(),
		gomail.WithDialContextFunc(dial),
	}
	switch cfg.mode() {
	case TLSStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case TLSImplicit:
		// dialFunc already returns a *tls.Conn; go-mail must not try STARTTLS
		// on top (and does not do TLS itself when given a dial function).
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if cfg.HELO != "" {
		opts = append(opts, gomail.WithHELO(cfg.HELO))
	}
	if cfg.Username != "" {
		pref := authPrefTLS
		if cfg.mode() == TLSNone {
			pref = authPrefNoTLS
		}
		opts = append(opts,
			gomail.WithUsername(cfg.Username),
			gomail.WithPassword(cfg.Password),
			gomail.WithOpportunisticSMTPAuth(pref...))
	}
	return opts
}

// dialFunc dials TCP, remembers the raw connection (for health tracking and
// cancellation) and, for implicit TLS, performs the handshake.
func (c *MsgConn) dialFunc(tlsConf *tls.Config) gomail.DialContextFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: nc}
		c.raw.Store(tc)
		if c.cfg.mode() != TLSImplicit {
			return tc, nil
		}
		conn := tls.Client(tc, tlsConf)
		if err := conn.HandshakeContext(ctx); err != nil {
			_ = tc.Close()
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		return conn, nil
	}
}

// abort closes the socket under everything; any blocked read or write returns.
func (c *MsgConn) abort() {
	if tc := c.raw.Load(); tc != nil {
		_ = tc.Close()
	}
}

// Send transmits one message (MAIL FROM, RCPT TO, DATA, then RSET) and returns
// the server's reply text to the end of DATA, e.g. "2.0.0 OK: queued as 4F2A".
//
// Errors are *Error values (see Classify). If ctx ends during the transaction
// the connection is closed (an SMTP dialogue cannot be abandoned halfway) and
// the error has ConnLost set.
//
// If the message was accepted but the RSET that follows failed, Send still
// reports success (the message must not be sent twice) and Broken becomes true.
func (c *MsgConn) Send(ctx context.Context, msg *gomail.Msg) (string, error) {
	if msg == nil {
		return "", &Error{Stage: StageMessage, Permanent: true, Text: "nil message", Err: errors.New("nil message")}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() || c.broken.Load() {
		return "", &Error{Stage: StageMail, ConnLost: true, Text: ErrConnBroken.Error(), Err: ErrConnBroken}
	}
	if err := ctx.Err(); err != nil {
		// Nothing was sent and the connection is still fine.
		return "", &Error{Stage: StageMail, Text: "not sent: " + err.Error(),
			Timeout: errors.Is(err, context.DeadlineExceeded), Err: fmt.Errorf("sending message: %w", err)}
	}
	tc := c.raw.Load()
	c.rec.reset()
	stop := context.AfterFunc(ctx, c.abort)
	err := c.client.SendWithSMTPClient(c.smtp, msg)
	ctxFired := !stop()
	ioErr := tc.Err()
	if ctxFired || ioErr != nil {
		c.broken.Store(true)
	}

	if err == nil {
		return msg.ServerResponse(), nil
	}
	var se *gomail.SendError
	if errors.As(err, &se) && se.Reason == gomail.ErrSMTPReset && msg.IsDelivered() {
		// 250 to end of DATA means the server took responsibility for the
		// message (RFC 5321 section 4.1.1.4); only the clean-up RSET failed.
		c.broken.Store(true)
		return msg.ServerResponse(), nil
	}

	chain, cause := err, error(nil)
	if ioErr != nil {
		chain, cause = errors.Join(err, ioErr), ioErr
	}
	if ctxFired {
		ctxErr := context.Cause(ctx)
		chain, cause = errors.Join(ctxErr, chain), ctxErr
	}
	e := classify(chain, cause)
	if first, cmd := c.rec.get(); first != nil && first.Code == e.Code && stageOfCmd(cmd) == e.Stage {
		e.Enhanced, e.Text = splitEnhanced(first.Msg)
	}
	if ioErr != nil || ctxFired {
		e.ConnLost = true
	}
	if e.ConnLost {
		c.broken.Store(true)
	}
	e.Text = redactString(e.Text, c.cfg.Password)
	return "", e
}

// Broken reports whether the connection can no longer be used (an earlier error
// lost it, or Close was called). The caller should Close and DialMsg again.
func (c *MsgConn) Broken() bool { return c.broken.Load() || c.closed.Load() }

// Close ends the session with QUIT when the connection is healthy and closes the
// socket in any case. It waits for a Send in progress to finish.
func (c *MsgConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Swap(true) {
		return nil
	}
	defer c.abort()
	if c.broken.Load() || c.smtp == nil {
		return nil
	}
	// The deadline go-mail set for the last transaction may have passed.
	if err := c.smtp.UpdateDeadline(c.cfg.timeout()); err != nil {
		return fmt.Errorf("closing SMTP connection: %w", err)
	}
	if err := c.client.CloseWithSMTPClient(c.smtp); err != nil {
		return redactError(fmt.Errorf("closing SMTP connection: %w", err), c.cfg.Password)
	}
	return nil
}

// trackedConn remembers the first I/O error on the raw socket. go-mail's
// *SendError flattens its cause to a string, so this is how Send learns, reliably,
// that the connection itself failed (EOF, reset, timeout) rather than the server
// replying with an error.
type trackedConn struct {
	net.Conn
	mu  sync.Mutex
	err error
}

func (t *trackedConn) Read(p []byte) (int, error) {
	n, err := t.Conn.Read(p)
	if err != nil {
		t.record(err)
	}
	return n, err
}

func (t *trackedConn) Write(p []byte) (int, error) {
	n, err := t.Conn.Write(p)
	if err != nil {
		t.record(err)
	}
	return n, err
}

func (t *trackedConn) record(err error) {
	t.mu.Lock()
	if t.err == nil {
		t.err = err
	}
	t.mu.Unlock()
}

// Err returns the first I/O error seen, or nil.
func (t *trackedConn) Err() error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// replyRecorder is a go-mail smtp.ResponseErrorHandler that notes the first SMTP
// error reply of a transaction and passes every error through unchanged.
type replyRecorder struct {
	mu    sync.Mutex
	first *textproto.Error
	cmd   string
}

func (r *replyRecorder) HandleError(_, cmd string, _ *textproto.Conn, err error) error {
	var tpe *textproto.Error
	if errors.As(err, &tpe) {
		r.mu.Lock()
		if r.first == nil {
			r.first, r.cmd = tpe, cmd
		}
		r.mu.Unlock()
	}
	return err // a nil return would make go-mail read another reply
}

func (r *replyRecorder) reset() {
	r.mu.Lock()
	r.first, r.cmd = nil, ""
	r.mu.Unlock()
}

func (r *replyRecorder) get() (*textproto.Error, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.first, r.cmd
}

// stageOfCmd maps the lower-cased command verb go-mail reports to a stage.
func stageOfCmd(cmd string) string {
	switch cmd {
	case "mail":
		return StageMail
	case "rcpt":
		return StageRcpt
	case "data":
		return StageData
	case "rset":
		return StageReset
	}
	return StageDial
}
