package smtptest

import "log/slog"

// Option configures a Server.
type Option func(*options)

type options struct {
	dir          string
	relay        string
	user, pass   string
	authRequired bool
	startTLS     bool
	implicitTLS  bool
	discard      bool
	log          *slog.Logger
}

// WithDir makes the server also write every accepted message to dir as an .eml file
// named "<sequence>-<sanitized first recipient>.eml" (e.g. "0001-ann_example.com.eml").
// The directory is created if needed.
func WithDir(dir string) Option { return func(o *options) { o.dir = dir } }

// WithRelay makes the server pass every accepted message on to the SMTP server at
// addr (host:port, plain SMTP without TLS or AUTH), e.g. a local Mailpit on
// 127.0.0.1:1025, in the background and in order. The client's 250 does not wait
// for the relay: the message is kept (Messages, the .eml folder) whatever the relay
// does, so a relay target that is down never makes the client retry. A relay
// failure is logged (WithLog) and counted (RelayFailed); one that can't be reached
// or answers 4xx is retried a few times first.
func WithRelay(addr string) Option { return func(o *options) { o.relay = addr } }

// WithLog makes the server log what goes wrong on its side (a relay failure, an
// .eml file that could not be written) to l. Without it, nothing is logged.
func WithLog(l *slog.Logger) Option { return func(o *options) { o.log = l } }

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
