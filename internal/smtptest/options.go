package smtptest

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
