// Package smtptest runs a real SMTP server in-process (github.com/emersion/go-smtp)
// for tests and for a local demo "catcher".
//
// It speaks the actual protocol over TCP, so the client side under test (go-mail in
// package mailer) exercises its real code paths: EHLO capability parsing, AUTH,
// STARTTLS, MAIL/RCPT/DATA, RSET and the reply-code handling. Faults (rejections,
// dropped connections, slow replies) are injected at the protocol level and can be
// changed at any time while clients are connected.
package smtptest

import (
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is one message the server accepted (it replied 250 to the end of DATA).
type Message struct {
	// From is the MAIL FROM reverse-path without angle brackets ("" for the null path).
	From string
	// To holds the RCPT TO forward-paths that were accepted, in order.
	To []string
	// Data is the message exactly as received after dot-unstuffing (CRLF line endings).
	Data []byte
}

// Option configures a Server.
type Option func(*options)

type options struct {
	dir          string
	relay        string
	user, pass   string
	authRequired bool
	startTLS     bool
	implicitTLS  bool
	debug        io.Writer
	domain       string
	discard      bool
}

// WithDir makes the server also write every accepted message to dir as an .eml file
// named "<sequence>-<sanitized first recipient>.eml" (e.g. "0001-ann_example.com.eml").
// The directory is created if needed.
func WithDir(dir string) Option { return func(o *options) { o.dir = dir } }

// WithRelay makes the server forward every accepted message to the SMTP server at addr
// (host:port, plain SMTP without TLS or AUTH), e.g. a local Mailpit on 127.0.0.1:1025.
// A message is acknowledged to the client only after the relay accepted it; a relay
// failure is reported to the client as 451 4.4.1 so that it retries instead of
// believing the message was delivered.
func WithRelay(addr string) Option { return func(o *options) { o.relay = addr } }

// WithAuth requires SMTP AUTH PLAIN (RFC 4954, RFC 4616) with these credentials before
// MAIL FROM is accepted. Insecure (non-TLS) AUTH is allowed, because tests run on
// loopback.
func WithAuth(user, pass string) Option {
	return func(o *options) { o.user, o.pass, o.authRequired = user, pass, true }
}

// WithTLS makes the server offer STARTTLS (RFC 3207) with a freshly generated
// self-signed certificate for 127.0.0.1, ::1 and localhost. Clients must trust it
// through Server.ClientTLSConfig.
func WithTLS() Option { return func(o *options) { o.startTLS = true } }

// WithImplicitTLS makes the server speak TLS from the first byte (RFC 8314 section 3,
// "submissions" on port 465 style) with a self-signed certificate, see WithTLS.
func WithImplicitTLS() Option { return func(o *options) { o.implicitTLS = true } }

// WithDiscard makes the server count accepted messages without keeping them in
// memory (for benchmarks and long-running catchers): Messages stays empty,
// Accepted and WaitFor still work. .eml files and relaying are unaffected.
func WithDiscard() Option { return func(o *options) { o.discard = true } }

// WithDebug writes the SMTP protocol trace and server-side errors to w.
func WithDebug(w io.Writer) Option { return func(o *options) { o.debug = w } }

// WithDomain sets the name the server announces in its 220 greeting.
func WithDomain(name string) Option { return func(o *options) { o.domain = name } }

// Server is a running in-process SMTP server. All methods are safe for concurrent use.
type Server struct {
	opts    options
	srv     *smtp.Server
	ln      net.Listener
	tlsConf *tls.Config // server side, nil without TLS
	certPEM []byte

	serveDone chan error
	done      chan struct{} // closed by Close; interrupts stalls
	closeOnce sync.Once
	closeErr  error

	conns atomic.Int64
	seq   atomic.Int64

	// sessMu guards closed and sessions.Add so that Close can Wait without racing Add.
	sessMu   sync.Mutex
	closed   bool
	sessions sync.WaitGroup

	mu         sync.Mutex
	msgs       []Message
	accepted   int            // accepted messages, including discarded ones
	perRcpt    map[string]int // accepted messages per recipient, kept even when discarding
	changed    chan struct{}  // closed and replaced whenever accepted grows
	rejectRcpt map[string]*smtp.SMTPError
	rejectData map[string]*smtp.SMTPError
	stall      map[string]time.Duration
	dropAfter  int // -1: disabled; 0: cut the next DATA; n: cut after n more accepted
}

// Start starts a server on 127.0.0.1 with a random port and closes it when the test
// ends. It fails the test if the server cannot be started.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s, err := Listen("127.0.0.1:0", opts...)
	if err != nil {
		t.Fatalf("smtptest: starting server: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("smtptest: closing server: %v", err)
		}
	})
	return s
}

// Listen starts a server on addr (host:port; port 0 picks a free one). Call Close to
// stop it. Intended for non-test use such as a demo mail catcher.
func Listen(addr string, opts ...Option) (*Server, error) {
	s := &Server{
		serveDone:  make(chan error, 1),
		done:       make(chan struct{}),
		changed:    make(chan struct{}),
		rejectRcpt: make(map[string]*smtp.SMTPError),
		rejectData: make(map[string]*smtp.SMTPError),
		stall:      make(map[string]time.Duration),
		dropAfter:  -1,
	}
	for _, o := range opts {
		if o != nil {
			o(&s.opts)
		}
	}
	if s.opts.startTLS && s.opts.implicitTLS {
		return nil, errors.New("smtptest: WithTLS (STARTTLS) and WithImplicitTLS are mutually exclusive")
	}
	if s.opts.dir != "" {
		if err := os.MkdirAll(s.opts.dir, 0o755); err != nil {
			return nil, fmt.Errorf("smtptest: creating message directory: %w", err)
		}
	}
	if s.opts.startTLS || s.opts.implicitTLS {
		conf, certPEM, err := selfSignedTLS()
		if err != nil {
			return nil, fmt.Errorf("smtptest: generating TLS certificate: %w", err)
		}
		s.tlsConf, s.certPEM = conf, certPEM
	}

	srv := smtp.NewServer(backend{s})
	srv.Domain = s.opts.domain
	if srv.Domain == "" {
		srv.Domain = "smtptest.localhost"
	}
	// Tests run on loopback; AUTH without TLS must work there (and WithAuth is
	// the only way credentials are ever checked).
	srv.AllowInsecureAuth = true
	// go-smtp always advertises PIPELINING, 8BITMIME, ENHANCEDSTATUSCODES and
	// CHUNKING; SMTPUTF8 (RFC 6531) must be enabled explicitly.
	srv.EnableSMTPUTF8 = true
	srv.MaxMessageBytes = 64 << 20
	srv.MaxRecipients = 1000
	// Bound how long an abandoned client can pin a goroutine.
	srv.ReadTimeout = 2 * time.Minute
	srv.WriteTimeout = 2 * time.Minute
	srv.ErrorLog = log.New(io.Discard, "", 0)
	if s.opts.debug != nil {
		srv.Debug = s.opts.debug
		srv.ErrorLog = log.New(s.opts.debug, "smtptest: ", log.LstdFlags)
	}
	if s.opts.startTLS {
		srv.TLSConfig = s.tlsConf
	}
	s.srv = srv

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("smtptest: listening on %s: %w", addr, err)
	}
	var l net.Listener = &countingListener{Listener: ln, n: &s.conns}
	if s.opts.implicitTLS {
		l = tls.NewListener(l, s.tlsConf)
	}
	s.ln = l
	go func() { s.serveDone <- srv.Serve(l) }()
	return s, nil
}

// Close stops the server, closes all client connections and waits until every
// session has ended. It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		s.sessMu.Lock()
		s.closed = true
		s.sessMu.Unlock()
		err := s.srv.Close()
		if errors.Is(err, smtp.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
			err = nil
		}
		// go-smtp only knows the listener once Serve has registered it; if Close
		// wins that race, Serve would block in Accept forever. Closing it here
		// makes Serve return in either order.
		if lerr := s.ln.Close(); lerr != nil && !errors.Is(lerr, net.ErrClosed) && err == nil {
			err = lerr
		}
		if serr := <-s.serveDone; serr != nil && !errors.Is(serr, net.ErrClosed) {
			err = errors.Join(err, serr)
		}
		s.sessions.Wait()
		s.closeErr = err
	})
	return s.closeErr
}

// Addr returns the listening address as host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Host returns the listening IP address.
func (s *Server) Host() string {
	host, _, _ := net.SplitHostPort(s.Addr())
	return host
}

// Port returns the listening TCP port.
func (s *Server) Port() int {
	_, port, _ := net.SplitHostPort(s.Addr())
	n, _ := strconv.Atoi(port)
	return n
}

// Connections returns how many TCP connections the server has accepted so far.
func (s *Server) Connections() int { return int(s.conns.Load()) }

// ClientTLSConfig returns a client TLS configuration that trusts the server's
// self-signed certificate (nil when the server runs without TLS).
func (s *Server) ClientTLSConfig() *tls.Config {
	if s.certPEM == nil {
		return nil
	}
	return clientTLSConfig(s.certPEM)
}

// Messages returns a copy of all accepted messages in acceptance order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return copyMessages(s.msgs)
}

// RecipientCounts returns how many messages each recipient was sent (kept
// even WithDiscard), for tests that count duplicates in big sends.
func (s *Server) RecipientCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.perRcpt))
	for k, v := range s.perRcpt {
		out[k] = v
	}
	return out
}

// Accepted returns how many messages the server has accepted (replied 250 to the
// end of DATA), including those not kept because of WithDiscard.
func (s *Server) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// WaitFor waits until at least n messages have been accepted and returns a copy of
// the kept messages (all of them, or none with WithDiscard). It fails the test if
// that does not happen within timeout.
func (s *Server) WaitFor(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		if s.accepted >= n {
			msgs := copyMessages(s.msgs)
			s.mu.Unlock()
			return msgs
		}
		changed, got := s.changed, s.accepted
		s.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("smtptest: waited %v for %d messages, got %d", timeout, n, got)
			return nil
		}
	}
}

// RejectRcpt makes RCPT TO for addr (case-insensitive) fail with the given reply,
// e.g. RejectRcpt("gone@example.com", 550, "5.1.1", "No such user"). A 421 reply also
// closes the connection afterwards, as RFC 5321 section 3.8 requires of a server that
// sends 421. A code of 0 removes the rule. enhanced may be "" (then go-smtp derives
// "<class>.0.0").
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
// RejectRcpt rule, follows). d <= 0 removes the rule.
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

func copyMessages(in []Message) []Message {
	out := make([]Message, len(in))
	for i, m := range in {
		out[i] = Message{
			From: m.From,
			To:   append([]string(nil), m.To...),
			Data: append([]byte(nil), m.Data...),
		}
	}
	return out
}

// accept runs the side effects of an accepted message (relay, .eml file) and then
// records it. Returning an error makes the server reply 451 instead of 250.
func (s *Server) accept(m Message) error {
	if s.opts.relay != "" {
		if err := relay(s.opts.relay, m); err != nil {
			return &smtp.SMTPError{
				Code:         451,
				EnhancedCode: smtp.EnhancedCode{4, 4, 1},
				Message:      "relay failed, try again later",
			}
		}
	}
	seq := s.seq.Add(1)
	if s.opts.dir != "" {
		rcpt := ""
		if len(m.To) > 0 {
			rcpt = m.To[0]
		}
		name := fmt.Sprintf("%04d-%s.eml", seq, sanitize(rcpt))
		if err := os.WriteFile(filepath.Join(s.opts.dir, name), m.Data, 0o644); err != nil {
			s.srv.ErrorLog.Printf("writing %s: %v", name, err)
			return &smtp.SMTPError{
				Code:         451,
				EnhancedCode: smtp.EnhancedCode{4, 3, 0},
				Message:      "cannot store message",
			}
		}
	}
	s.mu.Lock()
	if !s.opts.discard {
		s.msgs = append(s.msgs, m)
	}
	s.accepted++
	if s.perRcpt == nil {
		s.perRcpt = map[string]int{}
	}
	for _, to := range m.To {
		s.perRcpt[to]++
	}
	close(s.changed)
	s.changed = make(chan struct{})
	if s.dropAfter > 0 {
		s.dropAfter--
	}
	s.mu.Unlock()
	return nil
}

// sanitize keeps a recipient address usable as part of a file name on any OS.
func sanitize(addr string) string {
	if addr == "" {
		return "unknown"
	}
	var b strings.Builder
	for _, r := range strings.ToLower(addr) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '-', r == '+', r == '@':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	out := strings.ReplaceAll(b.String(), "@", "_")
	if len(out) > 100 {
		out = out[:100]
	}
	return out
}

// relay forwards m to a plain SMTP server with the standard library client. A fixed
// deadline keeps a dead relay from blocking the catcher forever.
func relay(addr string, m Message) error {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return fmt.Errorf("dialing relay %s: %w", addr, err)
	}
	if err := conn.SetDeadline(time.Now().Add(time.Minute)); err != nil {
		conn.Close()
		return fmt.Errorf("setting relay deadline: %w", err)
	}
	return relayOn(conn, addr, m)
}

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
	d := ss.s.stall[key]
	rule := ss.s.rejectRcpt[key]
	ss.s.mu.Unlock()
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
	return ss.s.accept(Message{From: ss.from, To: append([]string(nil), ss.to...), Data: data})
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
