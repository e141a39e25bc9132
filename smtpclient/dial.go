package smtpclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Dial connects, reads the greeting, says EHLO, establishes TLS per cfg.TLS
// (STARTTLS is required in the default mode: a server that doesn't offer it
// is an error, never a downgrade, RFC 3207 section 6) and authenticates with
// AUTH PLAIN (RFC 4616) or LOGIN when cfg.Username is set - over TLS, or in
// clear text only when cfg.TLS is TLSNone, which must be chosen explicitly.
//
// Without PIPELINING the connection works in lock-step, one command per round
// trip. The error is an *Error with Stage "dial" and ConnLost set; it never
// contains the password. ctx and cfg.Timeout both bound the whole dial.
func Dial(ctx context.Context, cfg Config) (*Conn, error) {
	if err := cfg.validate(); err != nil {
		return nil, invalidConfig(err)
	}
	addr := cfg.addr()
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout())
	defer cancel()

	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, dialError(cfg, addr, err)
	}
	c := &Conn{cfg: cfg, conn: raw}
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
		return nil, dialError(cfg, addr, withCtx(ctx, err))
	}
	_ = c.conn.SetDeadline(time.Time{})
	return c, nil
}

func (c *Conn) setConn(nc net.Conn) {
	c.conn = nc
	c.br = bufio.NewReaderSize(nc, readBuffer)
	c.bw = newWireWriter(nc)
}

// handshake reads the greeting, says EHLO, starts TLS and authenticates.
func (c *Conn) handshake(ctx context.Context) error {
	if c.cfg.mode() == TLSImplicit {
		// RFC 8314 section 3.3: TLS from the first byte.
		tc := tls.Client(c.conn, c.cfg.tlsConfig())
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
		if err := c.startTLS(ctx); err != nil {
			return err
		}
	}
	if c.cfg.Username != "" {
		return c.auth()
	}
	return nil
}

// startTLS upgrades the connection (RFC 3207), refusing to go on in clear
// text when the server doesn't offer it (section 6).
func (c *Conn) startTLS(ctx context.Context) error {
	if !c.ext.StartTLS {
		return errNoStartTLS
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
	tc := tls.Client(c.conn, c.cfg.tlsConfig())
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	c.setConn(tc)
	// RFC 3207 section 4.2: discard what was learnt before TLS and say
	// EHLO again.
	return c.hello()
}

// hello sends EHLO and records the extensions, falling back to HELO (no
// extensions) when the server does not know EHLO (RFC 5321 section 4.1.4).
func (c *Conn) hello() error {
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
	c.ext = parseExtensions(string(c.text))
	return nil
}

// parseExtensions reads an EHLO reply's text: the first line greets, each
// further line is "keyword [params]" (RFC 5321 section 4.1.1.1).
func parseExtensions(text string) Extensions {
	var ext Extensions
	lines := strings.Split(text, "\n")
	for _, l := range lines[1:] {
		f := strings.Fields(strings.ToUpper(l))
		if len(f) == 0 {
			continue
		}
		switch kw, params := f[0], f[1:]; {
		case kw == "PIPELINING":
			ext.Pipelining = true
		case kw == "STARTTLS":
			ext.StartTLS = true
		case kw == "8BITMIME":
			ext.EightBitMIME = true
		case kw == "SMTPUTF8":
			ext.SMTPUTF8 = true
		case kw == "ENHANCEDSTATUSCODES":
			ext.EnhancedStatusCodes = true
		case kw == "SIZE":
			if len(params) > 0 {
				if n, err := strconv.ParseInt(params[0], 10, 64); err == nil && n > 0 {
					ext.Size = n
				}
			}
		case kw == "AUTH" || strings.HasPrefix(kw, "AUTH="):
			// "AUTH=" is the pre-RFC 4954 form some servers still send.
			if m, ok := strings.CutPrefix(kw, "AUTH="); ok {
				params = append([]string{m}, params...)
			}
			for _, m := range params {
				if !slices.Contains(ext.Auth, m) {
					ext.Auth = append(ext.Auth, m)
				}
			}
		}
	}
	return ext
}

// auth authenticates with PLAIN (RFC 4616, sent as the initial response, RFC
// 4954 section 4) or, failing that, LOGIN. The connection is TLS at this
// point unless TLSNone was chosen explicitly.
func (c *Conn) auth() error {
	if len(c.ext.Auth) == 0 {
		return errNoAuth
	}
	user, pass := c.cfg.Username, c.cfg.Password
	switch {
	case slices.Contains(c.ext.Auth, "PLAIN"):
		// RFC 4616 section 2: authzid NUL authcid NUL passwd; an empty
		// authzid means "act as authcid".
		resp := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
		code, err := c.command("AUTH PLAIN " + resp)
		return c.authDone("AUTH PLAIN", code, err)
	case slices.Contains(c.ext.Auth, "LOGIN"):
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
		return c.authDone("AUTH LOGIN", code, err)
	}
	return fmt.Errorf("server offers AUTH %s but none of PLAIN, LOGIN", strings.Join(c.ext.Auth, " "))
}

// authDone checks the final reply of an AUTH exchange: 235 (RFC 4954 section 6).
func (c *Conn) authDone(what string, code int, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if code != codeAuthOK {
		return c.replyError(StageDial, code, what)
	}
	return nil
}
