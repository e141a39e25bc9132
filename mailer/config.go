// Package mailer builds newsletter messages and sends them over SMTP with go-mail,
// classifying failures so the delivery loop can decide between retry, bounce and
// reconnect.
package mailer

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
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
	// TLSConfig optionally overrides certificate verification, e.g. a private CA or
	// a test server's self-signed certificate. ServerName defaults to Host. It
	// cannot be set from SMTP_URL.
	TLSConfig *tls.Config `json:"-"`
}

// envName is how errors refer to the setting so operators know what to fix.
const envName = "SMTP_URL"

// ParseURL parses an SMTP URL such as
//
//	smtp://user:pass@smtp.example.com:587?tls=starttls&timeout=30s&helo=news.example.com
//	smtps://user:pass@smtp.example.com          (implicit TLS, port 465)
//	smtp://127.0.0.1:1025?tls=none              (local catcher)
//
// smtp:// defaults to port 587 with STARTTLS required; clear text must be requested
// with tls=none. Userinfo is percent-decoded, so special characters in the password
// must be percent-encoded (@ as %40, : as %3A, / as %2F, # as %23, % as %25).
//
// Errors name SMTP_URL and what to fix. They never echo any part of the input, so
// a password can never leak into logs through them, however the URL is mangled.
func ParseURL(raw string) (Config, error) {
	var cfg Config
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return cfg, fmt.Errorf("%s is empty: set it to smtp://user:password@host:587 or smtps://user:password@host:465", envName)
	}
	if strings.ContainsAny(raw, "\r\n\t\x00") {
		return cfg, fmt.Errorf("%s contains control characters (a line break or tab?); remove them", envName)
	}
	// url.Parse errors quote the whole input, password included, so they are
	// replaced, never wrapped.
	u, err := url.Parse(raw)
	if err != nil {
		return cfg, fmt.Errorf("%s is not a valid URL; expected smtp://user:password@host:port (percent-encode special characters in the user name and password, e.g. @ as %%40, / as %%2F, # as %%23)", envName)
	}
	switch strings.ToLower(u.Scheme) {
	case "smtp":
		cfg.TLS = TLSStartTLS
	case "smtps":
		cfg.TLS = TLSImplicit
	case "":
		return cfg, fmt.Errorf("%s has no scheme; start it with smtp:// or smtps://", envName)
	default:
		return cfg, fmt.Errorf("%s has an unsupported scheme; use smtp:// (STARTTLS) or smtps:// (implicit TLS)", envName)
	}
	if u.Opaque != "" {
		return cfg, fmt.Errorf("%s must look like smtp://host:port (two slashes after the scheme)", envName)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return cfg, fmt.Errorf("%s contains '#'; if it is part of the password, percent-encode it as %%23", envName)
	}
	if u.Path != "" && u.Path != "/" {
		return cfg, fmt.Errorf("%s must not have a path after host:port (a '/' in the password must be percent-encoded as %%2F)", envName)
	}

	if u.User != nil {
		cfg.Username = u.User.Username()
		pw, hasPW := u.User.Password()
		cfg.Password = pw
		if cfg.Username == "" {
			return cfg.clearSecret(), fmt.Errorf("%s has a password but no user name; use smtp://user:password@host", envName)
		}
		if !hasPW || pw == "" {
			return cfg.clearSecret(), fmt.Errorf("%s has a user name but no password; use smtp://user:password@host or drop the user name", envName)
		}
	}

	cfg.Host = u.Hostname()
	if cfg.Host == "" {
		return cfg.clearSecret(), fmt.Errorf("%s has no host; use smtp://user:password@host:port", envName)
	}
	if !validHost(cfg.Host) {
		return cfg.clearSecret(), fmt.Errorf("%s has an invalid host; use a DNS name (punycode for international names) or an IP address (IPv6 in brackets)", envName)
	}

	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return cfg.clearSecret(), fmt.Errorf("%s has a malformed query string; use ?tls=starttls|tls|none&timeout=30s&helo=name", envName)
	}
	for key, vals := range q {
		if len(vals) != 1 {
			return cfg.clearSecret(), fmt.Errorf("%s repeats the query parameter %s; give it once", envName, knownParam(key))
		}
		switch key {
		case "tls":
			mode := TLSMode(strings.ToLower(vals[0]))
			switch mode {
			case TLSStartTLS, TLSNone:
				if cfg.TLS == TLSImplicit {
					return cfg.clearSecret(), fmt.Errorf("%s uses smtps://, which is always implicit TLS; drop tls= or use smtp:// with tls=starttls or tls=none", envName)
				}
				cfg.TLS = mode
			case TLSImplicit:
				cfg.TLS = mode
			default:
				return cfg.clearSecret(), fmt.Errorf("%s has an invalid tls= value; use tls=starttls, tls=tls or tls=none", envName)
			}
		case "timeout":
			d, err := time.ParseDuration(vals[0])
			if err != nil || d <= 0 {
				return cfg.clearSecret(), fmt.Errorf("%s has an invalid timeout= value; use a positive Go duration such as timeout=30s", envName)
			}
			cfg.Timeout = d
		case "helo":
			if !validHELO(vals[0]) {
				return cfg.clearSecret(), fmt.Errorf("%s has an invalid helo= value; use a host name such as helo=news.example.com", envName)
			}
			cfg.HELO = vals[0]
		default:
			return cfg.clearSecret(), fmt.Errorf("%s has an unknown query parameter; only tls, timeout and helo are supported", envName)
		}
	}

	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return cfg.clearSecret(), fmt.Errorf("%s has an invalid port; use a number from 1 to 65535", envName)
		}
		cfg.Port = n
	} else if strings.HasSuffix(u.Host, ":") {
		return cfg.clearSecret(), fmt.Errorf("%s has an empty port after ':'; give a port or drop the ':'", envName)
	} else {
		cfg.Port = DefaultPort
		if cfg.TLS == TLSImplicit {
			cfg.Port = DefaultImplicitPort
		}
	}
	return cfg, nil
}

// clearSecret makes sure a Config returned next to an error holds no password.
func (c Config) clearSecret() Config {
	c.Password = ""
	return c
}

// knownParam names a repeated query parameter only when it is one of ours, so that
// arbitrary input is never echoed.
func knownParam(key string) string {
	switch key {
	case "tls", "timeout", "helo":
		return key
	}
	return "(unknown)"
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
	u := url.URL{Scheme: "smtp", Host: net.JoinHostPort(c.Host, strconv.Itoa(c.port()))}
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
	u.RawQuery = q.Encode()
	return u.String()
}

// GoString keeps %#v from printing the password.
func (c Config) GoString() string { return fmt.Sprintf("mailer.Config(%q)", c.String()) }

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
	return slog.GroupValue(attrs...)
}
