package smtptest

import (
	"crypto/subtle"
	"errors"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// backend creates one session per SMTP connection (per EHLO, after STARTTLS again).
type backend struct{ s *Server }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	s := b.s
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	if s.closed {
		return nil, &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "shutting down"}
	}
	s.sessions.Add(1)
	return &session{s: s, c: c}, nil
}

type session struct {
	s      *Server
	c      *smtp.Conn
	authed bool
	from   string
	to     []string
	ended  sync.Once
}

var _ smtp.AuthSession = (*session)(nil)

// AuthMechanisms advertises PLAIN only when WithAuth was given; an empty list makes
// go-smtp leave AUTH out of the EHLO reply.
func (ss *session) AuthMechanisms() []string {
	if !ss.s.opts.authRequired {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if !ss.s.opts.authRequired || mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if identity != "" && identity != user {
			return smtp.ErrAuthFailed
		}
		okUser := subtle.ConstantTimeCompare([]byte(user), []byte(ss.s.opts.user)) == 1
		okPass := subtle.ConstantTimeCompare([]byte(pass), []byte(ss.s.opts.pass)) == 1
		if !okUser || !okPass {
			return smtp.ErrAuthFailed
		}
		ss.authed = true
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.s.opts.authRequired && !ss.authed {
		// RFC 4954 section 6: 530 5.7.0 Authentication required.
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	ss.from = from
	ss.to = ss.to[:0]
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	key := strings.ToLower(to)
	ss.s.mu.Lock()
	d, ok := ss.s.stall[key]
	if !ok {
		d = ss.s.stall["*"]
	}
	ss.s.rcpts++
	var hold chan struct{}
	if ss.s.rcpts == ss.s.holdAt {
		hold = ss.s.hold
	}
	rule := ss.s.rejectRcpt[key]
	if rule == nil {
		rule = ss.s.rejectRcpt["*"]
	}
	ss.s.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ss.s.done:
		}
	}
	if d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ss.s.done:
			t.Stop()
		}
	}
	if rule != nil {
		ss.closeAfterReplyIf421(rule)
		return rule
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	ss.s.mu.Lock()
	drop := ss.s.dropAfter == 0
	if drop {
		ss.s.dropAfter = -1 // one-shot
	}
	var rule *smtp.SMTPError
	for _, rcpt := range ss.to {
		if e := ss.s.rejectData[strings.ToLower(rcpt)]; e != nil {
			rule = e
			break
		}
	}
	ss.s.mu.Unlock()

	if drop {
		// Read a little so the cut really happens in the middle of the transfer,
		// then hang up without a reply. Whatever the client still sends hits a
		// closed socket (EOF or connection reset on its side).
		_, _ = io.CopyN(io.Discard, r, 64)
		if fc := faultConnOf(ss.c.Conn()); fc != nil {
			_ = fc.Close()
		} else {
			_ = ss.c.Conn().Close()
		}
		return errors.New("smtptest: connection dropped on purpose")
	}

	data, err := io.ReadAll(r)
	if err != nil {
		return err // go-smtp turns non-SMTPError errors into 554 5.0.0
	}
	if rule != nil {
		ss.closeAfterReplyIf421(rule)
		return rule
	}
	return ss.s.accept(Message{From: ss.from, To: append([]string(nil), ss.to...), Data: data, At: time.Now()})
}

// closeAfterReplyIf421 arranges for the connection to be closed right after the
// reply is written when that reply is 421 (RFC 5321 section 3.8: the server closes
// the transmission channel after 421).
func (ss *session) closeAfterReplyIf421(e *smtp.SMTPError) {
	if e.Code != 421 {
		return
	}
	if fc := faultConnOf(ss.c.Conn()); fc != nil {
		fc.closeAfterWrite.Store(true)
	}
}

func (ss *session) Reset() {
	ss.from = ""
	ss.to = ss.to[:0]
}

func (ss *session) Logout() error {
	ss.ended.Do(ss.s.sessions.Done)
	return nil
}
