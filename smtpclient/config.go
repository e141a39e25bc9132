package smtpclient

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"time"
)

// TLSMode says how the SMTP connection is protected.
type TLSMode string

const (
	// TLSStartTLS upgrades a plain connection with STARTTLS (RFC 3207) and refuses
	// to continue when the server does not offer it (no silent downgrade).
	TLSStartTLS TLSMode = "starttls"
	// TLSImplicit speaks TLS from the first byte ("submissions", RFC 8314 section 3.3).
	TLSImplicit TLSMode = "tls"
	// TLSNone sends everything, including credentials, in clear text. Only for local
	// catchers such as Mailpit; it must be asked for explicitly.
	TLSNone TLSMode = "none"
)

// Default ports: submission with STARTTLS (RFC 6409 section 3.1) and submissions
// with implicit TLS (RFC 8314 section 7.3).
const (
	DefaultPort         = 587
	DefaultImplicitPort = 465
	// DefaultTimeout bounds dialing and each message transaction. RFC 5321 section
	// 4.5.3.2 allows servers minutes per command, but a newsletter sender prefers
	// to fail fast and retry later over pinning a worker.
	DefaultTimeout = 30 * time.Second
)

// redacted replaces the password wherever a Config is shown.
const redacted = "xxxxx"

// Config describes how to reach the SMTP submission server.
type Config struct {
	Host     string
	Port     int
	Username string
	Password string `json:"-"`
	TLS      TLSMode
	// Timeout bounds the dial (TCP, greeting, EHLO, TLS, AUTH) and, separately,
	// every message transaction (MAIL..DATA..RSET). Zero means DefaultTimeout.
	Timeout time.Duration
	// HELO is the name sent with EHLO; empty means go-mail's default (the local
	// hostname).
	HELO string
	// CAFile is SMTP_URL's ca=FILE: PEM certificates trusted for this relay
	// besides the system's; ParseURL loads them into TLSConfig.
	CAFile string
	// TLSConfig optionally overrides certificate verification, e.g. a private CA or
	// a test server's self-signed certificate. ServerName defaults to Host.
	// From SMTP_URL only through ca=FILE.
	TLSConfig *tls.Config `json:"-"`
}

// validHost accepts an IP address or a DNS name made of letters, digits, '-',
// '_' and '.' (RFC 1123 section 2.1 host names; '_' shows up in internal names).
func validHost(h string) bool {
	if net.ParseIP(h) != nil {
		return true
	}
	if len(h) > 253 {
		return false
	}
	for _, r := range h {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.', r == '_':
		default:
			return false
		}
	}
	return true
}

// validHELO accepts a domain or an address literal (RFC 5321 section 4.1.1.1):
// letters, digits, '-', '.', and for literals '[', ']', ':'.
func validHELO(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9',
			r == '-', r == '.', r == '[', r == ']', r == ':':
		default:
			return false
		}
	}
	return true
}

// mode returns the effective TLS mode; the zero value means the safe default.
func (c Config) mode() TLSMode {
	if c.TLS == "" {
		return TLSStartTLS
	}
	return c.TLS
}

func (c Config) timeout() time.Duration {
	if c.Timeout <= 0 {
		return DefaultTimeout
	}
	return c.Timeout
}

// addr is the server's host:port.
func (c Config) addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.port())) }

// tlsConfig is the TLS configuration for the server: cfg.TLSConfig's, with
// the server name defaulting to Host and at least TLS 1.2.
func (c Config) tlsConfig() *tls.Config {
	conf := &tls.Config{}
	if c.TLSConfig != nil {
		conf = c.TLSConfig.Clone()
	}
	if conf.ServerName == "" {
		conf.ServerName = c.Host
	}
	if conf.MinVersion == 0 {
		conf.MinVersion = tls.VersionTLS12
	}
	return conf
}

func (c Config) port() int {
	if c.Port != 0 {
		return c.Port
	}
	if c.mode() == TLSImplicit {
		return DefaultImplicitPort
	}
	return DefaultPort
}

// validate checks a Config that may have been built by hand rather than parsed.
func (c Config) validate() error {
	if c.Host == "" {
		return errors.New("SMTP host is empty")
	}
	if !validHost(c.Host) {
		return errors.New("SMTP host is not a DNS name or IP address")
	}
	if p := c.port(); p < 1 || p > 65535 {
		return errors.New("SMTP port must be from 1 to 65535")
	}
	switch c.mode() {
	case TLSStartTLS, TLSImplicit, TLSNone:
	default:
		return errors.New("SMTP TLS mode must be starttls, tls or none")
	}
	if c.HELO != "" && !validHELO(c.HELO) {
		return errors.New("SMTP HELO name is invalid")
	}
	if c.Password != "" && c.Username == "" {
		return errors.New("SMTP password set without a user name")
	}
	return nil
}

// String renders the Config as an SMTP URL with the password replaced by "xxxxx",
// e.g. "smtp://user:xxxxx@host:587?tls=starttls". ParseURL of the result gives the
// same settings except the password.
func (c Config) String() string {
	u := url.URL{Scheme: "smtp", Host: c.addr()}
	q := url.Values{}
	if c.mode() == TLSImplicit {
		u.Scheme = "smtps"
	} else {
		q.Set("tls", string(c.mode()))
	}
	if c.Username != "" {
		if c.Password != "" {
			u.User = url.UserPassword(c.Username, redacted)
		} else {
			u.User = url.User(c.Username)
		}
	}
	if c.Timeout > 0 {
		q.Set("timeout", c.Timeout.String())
	}
	if c.HELO != "" {
		q.Set("helo", c.HELO)
	}
	if c.CAFile != "" {
		q.Set("ca", c.CAFile)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// GoString keeps %#v from printing the password.
func (c Config) GoString() string { return fmt.Sprintf("smtpclient.Config(%q)", c.String()) }

// LogValue implements slog.LogValuer with the password redacted.
func (c Config) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("host", c.Host),
		slog.Int("port", c.port()),
		slog.String("tls", string(c.mode())),
		slog.Duration("timeout", c.timeout()),
	}
	if c.Username != "" {
		attrs = append(attrs, slog.String("username", c.Username))
	}
	if c.Password != "" {
		attrs = append(attrs, slog.String("password", redacted))
	}
	if c.HELO != "" {
		attrs = append(attrs, slog.String("helo", c.HELO))
	}
	if c.CAFile != "" {
		attrs = append(attrs, slog.String("ca", c.CAFile))
	}
	return slog.GroupValue(attrs...)
}
