package smtptest

import (
	"crypto/tls"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// The faults a test injects (rejections, slow replies, dropped
// connections) act at the protocol level and may change while clients are
// connected.

// RejectRcpt makes RCPT TO for addr (case-insensitive) fail with the given reply,
// e.g. RejectRcpt("gone@example.com", 550, "5.1.1", "No such user"). A 421 reply also
// closes the connection afterwards, as RFC 5321 section 3.8 requires of a server that
// sends 421. A code of 0 removes the rule. enhanced may be "" (then go-smtp derives
// "<class>.0.0"). The addr "*" is every recipient without a rule of its own: a relay
// answering 451 to everyone.
func (s *Server) RejectRcpt(addr string, code int, enhanced, msg string) {
	s.setRule(s.rejectRcpt, addr, code, enhanced, msg)
}

// RejectData makes the reply to the end of DATA fail with the given reply for any
// message that has addr among its recipients. The message data is read completely
// first, as a real server would. A 421 reply also closes the connection. A code of 0
// removes the rule.
func (s *Server) RejectData(addr string, code int, enhanced, msg string) {
	s.setRule(s.rejectData, addr, code, enhanced, msg)
}

// DropAfter arms a one-shot connection drop: after n more messages have been
// accepted, the server cuts the next DATA transfer by closing the TCP connection in
// the middle of reading the message, without sending any reply. n = 0 cuts the very
// next DATA; a negative n disarms.
func (s *Server) DropAfter(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n < 0 {
		n = -1
	}
	s.dropAfter = n
}

// Stall delays the reply to RCPT TO for addr by d (then the normal reply, or the
// RejectRcpt rule, follows); "*" stalls every recipient without a rule of its
// own, as a distant relay's round trip would. d <= 0 removes the rule.
func (s *Server) Stall(addr string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(addr)
	if d <= 0 {
		delete(s.stall, key)
		return
	}
	s.stall[key] = d
}

// HoldNth makes the server's n-th RCPT TO (counted from its start) wait
// until release is called or the server closes, so that a test can look at
// what the client did meanwhile.
func (s *Server) HoldNth(n int) (release func()) {
	ch := make(chan struct{})
	s.mu.Lock()
	s.holdAt, s.hold = n, ch
	s.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

func (s *Server) setRule(m map[string]*smtp.SMTPError, addr string, code int, enhanced, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(addr)
	if code == 0 {
		delete(m, key)
		return
	}
	m[key] = &smtp.SMTPError{Code: code, EnhancedCode: parseEnhanced(enhanced), Message: msg}
}

// parseEnhanced turns "5.1.1" into an EnhancedCode (RFC 3463 section 2). Anything
// unparsable means "not set", so go-smtp derives one from the reply code class.
func parseEnhanced(s string) smtp.EnhancedCode {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return smtp.EnhancedCodeNotSet
	}
	var ec smtp.EnhancedCode
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return smtp.EnhancedCodeNotSet
		}
		ec[i] = n
	}
	return ec
}

// countingListener counts accepted connections and wraps them so faults can act on
// the raw TCP connection even underneath TLS.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.n.Add(1)
	return &faultConn{Conn: c}, nil
}

// faultConn closes itself after the next successful write when closeAfterWrite is
// set; go-smtp writes a whole reply line with one Write (one TLS record under TLS).
type faultConn struct {
	net.Conn
	closeAfterWrite atomic.Bool
}

func (c *faultConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if c.closeAfterWrite.Load() {
		_ = c.Conn.Close()
	}
	return n, err
}

func faultConnOf(c net.Conn) *faultConn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	fc, _ := c.(*faultConn)
	return fc
}
