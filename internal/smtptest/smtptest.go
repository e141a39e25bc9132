// Package smtptest runs a real SMTP server in-process (github.com/emersion/go-smtp)
// for tests and for a local demo "catcher".
//
// It speaks the actual protocol over TCP, so the SMTP clients under test (the
// newsletter's own and go-mail) exercise their real code paths: EHLO capability
// parsing, AUTH, STARTTLS, MAIL/RCPT/DATA, RSET and the reply-code handling. Faults
// (rejections, dropped connections, slow replies) are injected at the protocol level
// and can be changed at any time while clients are connected.
package smtptest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	// At is when its data had been received, for tests that measure a rate.
	At time.Time
}

// Server is a running in-process SMTP server. All methods are safe for concurrent use.
type Server struct {
	opts    options
	log     *slog.Logger
	relay   *relayer // nil without WithRelay
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
	rcpts      int // RCPT TO commands seen
	holdAt     int // the RCPT TO that waits for hold (see HoldNth)
	hold       chan struct{}
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
	srv.Domain = "smtptest.localhost"
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
	s.log = s.opts.log
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.opts.relay != "" {
		s.relay = startRelayer(s.opts.relay, s.log)
	}
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
		if s.relay != nil {
			s.relay.close()
		}
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

// Relayed returns how many messages the relay target accepted (WithRelay).
func (s *Server) Relayed() int {
	if s.relay == nil {
		return 0
	}
	return int(s.relay.relayed.Load())
}

// RelayFailed returns how many messages were kept but could not be passed on to
// the relay target (WithRelay).
func (s *Server) RelayFailed() int {
	if s.relay == nil {
		return 0
	}
	return int(s.relay.failed.Load())
}

// Connections returns how many TCP connections the server has accepted so far.
func (s *Server) Connections() int { return int(s.conns.Load()) }

// CertPEM returns the server's self-signed certificate in PEM, the file a
// client names to trust it (nil when the server runs without TLS).
func (s *Server) CertPEM() []byte { return s.certPEM }

// ClientTLSConfig returns a client TLS configuration that trusts the server's
// self-signed certificate (nil when the server runs without TLS).
func (s *Server) ClientTLSConfig() *tls.Config {
	if s.certPEM == nil {
		return nil
	}
	return clientTLSConfig(s.certPEM)
}
