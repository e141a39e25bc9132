package smtpclient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
)

// ErrMisconfigured matches (errors.Is) an *Error that the relay's
// configuration caused: a wrong password, a certificate this host does not
// trust, a relay without STARTTLS where it is required. Retrying cannot help
// until someone changes SMTP_URL (or the relay), so a sender stops at the
// first one and shows its Fix.
var ErrMisconfigured = errors.New("SMTP relay misconfigured")

// errNoStartTLS is the dial error of a relay that does not offer STARTTLS
// when the configuration requires it.
var errNoStartTLS = errors.New("server does not offer STARTTLS; refusing to continue in clear text (RFC 3207 section 6)")

// errNoAuth is the dial error of a relay that offers no AUTH while
// credentials are configured.
var errNoAuth = errors.New("SMTP credentials are configured but the server offers no AUTH (RFC 4954); refusing to send unauthenticated")

// Is makes errors.Is(err, ErrMisconfigured) find a misconfiguration
// anywhere in a chain or a join (several relays).
func (e *Error) Is(target error) bool { return target == ErrMisconfigured && e.Misconfigured }

// Fixes for the misconfigurations, each naming what to change in SMTP_URL.
const (
	fixCredentials = "correct the user name and password in SMTP_URL (smtp://user:password@host; percent-encode special characters in the password)"
	fixNeedsAuth   = "the relay requires authentication: put its user name and password in SMTP_URL (smtp://user:password@host)"
	fixNeedsTLS    = "the relay requires TLS: drop tls=none from SMTP_URL"
	fixNoStartTLS  = "the relay does not offer STARTTLS: for a plain local relay add ?tls=none to SMTP_URL; for implicit TLS use smtps:// (port 465)"
	fixNotTLS      = "the relay does not speak TLS on this port: use smtp:// (STARTTLS, port 587), or smtp://...?tls=none for a plain local relay"
	fixNoAuth      = "the relay offers no AUTH: drop user:password@ from SMTP_URL if it needs none"
	fixUntrusted   = "the relay's certificate is not signed by an authority this host trusts: to trust a private CA add ca=/path/to/ca.pem to SMTP_URL (or set SSL_CERT_FILE)"
	fixHostname    = "the relay's certificate is not valid for the host in SMTP_URL: use a host name the certificate names"
	fixExpired     = "the relay's certificate has expired or is not yet valid: its operator must renew it (or check this host's clock)"
	fixConfig      = "correct SMTP_URL"
)

// replyMisconfig marks replies about our account or the session's security
// (RFC 4954 section 6) given while connecting or to MAIL FROM: they hold for
// every message, whoever the recipient.
func replyMisconfig(e *Error) {
	if e.Stage != StageDial && e.Stage != StageMail {
		return
	}
	switch e.Code {
	case CodeAuthFailed: // 535 5.7.8 authentication credentials invalid
		e.Misconfigured, e.Fix = true, fixCredentials
	case CodeAuthRequired, codeEncryptionRequired: // 530 5.7.0, 538 5.7.11
		e.Misconfigured, e.Fix = true, fixNeedsAuth
		if e.Code == codeEncryptionRequired || strings.Contains(strings.ToUpper(e.Text), "TLS") {
			e.Misconfigured, e.Fix = true, fixNeedsTLS
		}
	}
}

// codeEncryptionRequired: "538 5.7.11 Encryption required for requested
// authentication mechanism" (RFC 4954 section 6).
const codeEncryptionRequired = 538

// transportMisconfig marks dial errors without a reply that only a change
// of configuration can cure: certificate verification, no STARTTLS, no TLS
// at all on an implicit-TLS port, no AUTH offered.
func transportMisconfig(e *Error, err error, mode TLSMode) {
	var (
		unkAuth x509.UnknownAuthorityError
		hostErr x509.HostnameError
		invErr  x509.CertificateInvalidError
		certErr *tls.CertificateVerificationError
		recErr  tls.RecordHeaderError
	)
	fix := ""
	switch {
	case errors.As(err, &hostErr):
		fix = fixHostname
	case errors.As(err, &invErr) && invErr.Reason == x509.Expired:
		fix = fixExpired
	case errors.As(err, &unkAuth), errors.As(err, &invErr), errors.As(err, &certErr):
		fix = fixUntrusted
	case errors.As(err, &recErr) && mode == TLSImplicit:
		fix = fixNotTLS
	case errors.Is(err, errNoStartTLS), strings.Contains(err.Error(), "does not support STARTTLS"):
		fix = fixNoStartTLS
	case errors.Is(err, errNoAuth), strings.Contains(err.Error(), "does not support SMTP AUTH"):
		fix = fixNoAuth
	}
	if fix != "" {
		e.Misconfigured, e.Fix = true, fix
	}
}
