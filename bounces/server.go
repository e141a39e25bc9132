package bounces

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Server is the bounce domain's MX (bounces serve): it takes mail for the
// VERP and unsubscribe addresses only, never relays, and hands each
// message to the Handler.
type Server struct {
	Handler *Handler
	// TLS, when set, is offered with STARTTLS (RFC 3207).
	TLS *tls.Config
	// MaxSize is the largest message taken, announced as SIZE (RFC 1870)
	// and enforced while reading DATA; default MaxMessage.
	MaxSize int64
	// MaxConns is how many connections are served at once; more are told
	// 421 and closed at once (RFC 5321 section 3.8). Default 100.
	MaxConns int
	// Timeout bounds each read and write of a connection; default 60s.
	Timeout time.Duration
	Log     *slog.Logger
}

// Rejections at RCPT (RFC 5321 section 4.2.2, RFC 3463 codes).
var (
	errNotHere = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1},
		Message: "No such mailbox here; this server does not relay"}
	errBadToken = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1},
		Message: "No such mailbox here"}
	errTryLater = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "Could not process the message just now; try again later"}
)

// Serve answers SMTP on l until ctx ends, then stops taking connections
// and waits (a while) for the messages being read.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	srv := smtp.NewServer(&backend{s: s})
	srv.Domain = s.Handler.VERP.Domain()
	srv.MaxMessageBytes = s.maxSize()
	srv.MaxRecipients = 10
	srv.ReadTimeout, srv.WriteTimeout = s.timeout(), s.timeout()
	srv.TLSConfig = s.TLS
	srv.ErrorLog = slogAdapter{s.Log}
	maxConns := s.MaxConns
	if maxConns <= 0 {
		maxConns = 100
	}
	done := make(chan error, 1)
	go func() {
		done <- srv.Serve(&limitListener{Listener: l, slots: make(chan struct{}, maxConns), log: s.Log})
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
		srv.Close()
		return fmt.Errorf("stop the bounce listener: %w", err)
	}
	if err := <-done; err != nil && !errors.Is(err, smtp.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *Server) maxSize() int64 {
	if s.MaxSize > 0 {
		return s.MaxSize
	}
	return MaxMessage
}

func (s *Server) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return time.Minute
}

type backend struct{ s *Server }

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{s: b.s, peer: c.Conn().RemoteAddr().String()}, nil
}

// session is one SMTP transaction at a time: the recipients it accepted
// get the message.
type session struct {
	s    *Server
	peer string
	rcpt []string
}

func (ss *session) Reset()        { ss.rcpt = ss.rcpt[:0] }
func (ss *session) Logout() error { return nil }

// Mail takes any reverse-path: bounces come from the null one (RFC 5321
// section 4.5.5). The size a client declares is checked by go-smtp against
// MaxSize before this is called.
func (ss *session) Mail(string, *smtp.MailOptions) error { return nil }

// Rcpt takes the bounce domain's VERP and unsubscribe addresses only, and
// a VERP address only with a token of ours: its MAC is checked here, at no
// cost to the database.
func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	v := ss.s.Handler.VERP
	r := v.Classify(to)
	switch r.Kind {
	case ToVERP:
		if _, err := v.Delivery(r.Token); err != nil {
			ss.s.Log.Warn("bounce refused at RCPT: forged or damaged VERP token", "peer", ss.peer)
			return errBadToken
		}
	case ToUnsubscribe:
	default:
		ss.s.Log.Info("recipient refused: not an address of the bounce domain", "peer", ss.peer)
		return errNotHere
	}
	ss.rcpt = append(ss.rcpt, to)
	return nil
}

// Data hands the message to the handler once per recipient. What names
// nothing or can't be read was logged by the handler and is accepted: a
// refusal would only bounce back to the null path. A failure of our own
// (the database away) is 451, so the sending server tries again.
func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err // over MaxSize: go-smtp's 552
	}
	for _, to := range ss.rcpt {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := ss.s.Handler.Inbound(ctx, "inbound", to, bytes.NewReader(data))
		cancel()
		if err != nil && !Final(err) {
			ss.s.Log.Error("bounce not processed; the sender will retry", "peer", ss.peer, "err", err)
			return errTryLater
		}
	}
	return nil
}

// limitListener serves at most cap(slots) connections at once: one more
// is told 421 and closed, so a flood of connections can't hold the
// handler's resources.
type limitListener struct {
	net.Listener
	slots chan struct{}
	log   *slog.Logger
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &slotConn{Conn: c, free: func() { <-l.slots }}, nil
		default:
			l.log.Warn("connection refused: too many at once", "peer", c.RemoteAddr().String(), "limit", cap(l.slots))
			c.SetWriteDeadline(time.Now().Add(time.Second))
			io.WriteString(c, "421 4.7.0 Too many connections, try again later\r\n")
			c.Close()
		}
	}
}

// slotConn frees its slot when closed, once.
type slotConn struct {
	net.Conn
	once sync.Once
	free func()
}

func (c *slotConn) Close() error {
	c.once.Do(c.free)
	return c.Conn.Close()
}

// slogAdapter writes go-smtp's own errors (a connection's read failing,
// say) to the log.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Printf(format string, v ...any) {
	a.l.Warn("smtp server: " + fmt.Sprintf(format, v...))
}
func (a slogAdapter) Println(v ...any) { a.l.Warn("smtp server: " + fmt.Sprint(v...)) }
