package smtpclient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// envName is how errors refer to the setting so operators know what to fix.
const envName = "SMTP_URL"

// ParseURL parses an SMTP URL such as
//
//	smtp://user:pass@smtp.example.com:587?tls=starttls&timeout=30s&helo=news.example.com
//	smtps://user:pass@smtp.example.com          (implicit TLS, port 465)
//	smtp://127.0.0.1:1025?tls=none              (local catcher)
//	smtp://user:pass@relay.internal?ca=/etc/ssl/private-ca.pem
//
// ca=FILE adds the PEM certificates in FILE to the authorities trusted for
// this relay (besides the system's, which SSL_CERT_FILE and SSL_CERT_DIR
// replace for every TLS connection of the process).
//
// smtp:// defaults to port 587 with STARTTLS required; clear text must be requested
// with tls=none. Userinfo is percent-decoded, so special characters in the password
// must be percent-encoded (@ as %40, : as %3A, / as %2F, # as %23, % as %25).
//
// Errors name SMTP_URL and what to fix. They never echo any part of the input, so
// a password can never leak into logs through them, however the URL is mangled.
func ParseURL(raw string) (Config, error) {
	var cfg Config
	u, mode, err := parseShape(raw)
	cfg.TLS = mode
	if err == nil {
		err = cfg.setUser(u.User)
	}
	if err == nil {
		err = cfg.setHost(u.Hostname())
	}
	if err == nil {
		err = cfg.setQuery(u.RawQuery, pwOf(u.User))
	}
	if err == nil {
		err = cfg.setPort(u)
	}
	if err != nil {
		return cfg.clearSecret(), err
	}
	return cfg, nil
}

// parseShape parses raw as a URL of the form scheme://userinfo@host:port?query,
// without a path or fragment, and returns the TLS mode its scheme implies.
func parseShape(raw string) (*url.URL, TLSMode, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, "", fmt.Errorf("%s is empty: set it to smtp://user:password@host:587 or smtps://user:password@host:465", envName)
	}
	if strings.ContainsAny(raw, "\r\n\t\x00") {
		return nil, "", fmt.Errorf("%s contains control characters (a line break or tab?); remove them", envName)
	}
	// url.Parse errors quote the whole input, password included, so they are
	// replaced, never wrapped.
	u, err := url.Parse(raw)
	if err != nil {
		return nil, "", fmt.Errorf("%s is not a valid URL; expected smtp://user:password@host:port (percent-encode special characters in the user name and password, e.g. @ as %%40, / as %%2F, # as %%23)", envName)
	}
	if u.Scheme == "" {
		return nil, "", fmt.Errorf("%s has no scheme; start it with smtp:// or smtps://", envName)
	}
	mode, err := schemeTLS(u.Scheme)
	if err != nil {
		return nil, "", err
	}
	if u.Opaque != "" {
		return nil, "", fmt.Errorf("%s must look like smtp://host:port (two slashes after the scheme)", envName)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return nil, "", fmt.Errorf("%s contains '#'; if it is part of the password, percent-encode it as %%23", envName)
	}
	if u.Path != "" && u.Path != "/" {
		return nil, "", fmt.Errorf("%s must not have a path after host:port (a '/' in the password must be percent-encoded as %%2F)", envName)
	}
	return u, mode, nil
}

// schemeTLS is the TLS mode the scheme implies: smtp:// STARTTLS unless the
// query says otherwise, smtps:// implicit TLS.
func schemeTLS(scheme string) (TLSMode, error) {
	switch strings.ToLower(scheme) {
	case "smtp":
		return TLSStartTLS, nil
	case "smtps":
		return TLSImplicit, nil
	}
	return "", fmt.Errorf("%s has an unsupported scheme; use smtp:// (STARTTLS) or smtps:// (implicit TLS)", envName)
}

// setUser takes the user name and password: both or neither.
func (c *Config) setUser(user *url.Userinfo) error {
	if user == nil {
		return nil
	}
	c.Username = user.Username()
	pw, hasPW := user.Password()
	c.Password = pw
	if c.Username == "" {
		return fmt.Errorf("%s has a password but no user name; use smtp://user:password@host", envName)
	}
	if !hasPW || pw == "" {
		return fmt.Errorf("%s has a user name but no password; use smtp://user:password@host or drop the user name", envName)
	}
	return nil
}

func (c *Config) setHost(host string) error {
	if host == "" {
		return fmt.Errorf("%s has no host; use smtp://user:password@host:port", envName)
	}
	if !validHost(host) {
		return fmt.Errorf("%s has an invalid host; use a DNS name (punycode for international names) or an IP address (IPv6 in brackets)", envName)
	}
	c.Host = host
	return nil
}

// setQuery takes the parameters tls, timeout, helo and ca, each at most
// once. password is only to keep it out of the error naming an unknown
// parameter.
func (c *Config) setQuery(rawQuery, password string) error {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return fmt.Errorf("%s has a malformed query string; use ?tls=starttls|tls|none&timeout=30s&helo=name&ca=FILE", envName)
	}
	for key, vals := range q {
		if len(vals) != 1 {
			return fmt.Errorf("%s repeats the query parameter %s; give it once", envName, paramName(key, password))
		}
		if err := c.setParam(key, vals[0]); err != nil {
			if errors.Is(err, errUnknownParam) {
				return fmt.Errorf("%s has an unknown query parameter %s; only tls, timeout, helo and ca are supported", envName, paramName(key, password))
			}
			return err
		}
	}
	return nil
}

var errUnknownParam = errors.New("unknown query parameter")

func pwOf(u *url.Userinfo) string {
	if u == nil {
		return ""
	}
	pw, _ := u.Password()
	return pw
}

func (c *Config) setParam(key, val string) error {
	switch key {
	case "tls":
		mode := TLSMode(strings.ToLower(val))
		switch mode {
		case TLSStartTLS, TLSNone:
			if c.TLS == TLSImplicit {
				return fmt.Errorf("%s uses smtps://, which is always implicit TLS; drop tls= or use smtp:// with tls=starttls or tls=none", envName)
			}
		case TLSImplicit:
		default:
			return fmt.Errorf("%s has an invalid tls= value; use tls=starttls, tls=tls or tls=none", envName)
		}
		c.TLS = mode
	case "timeout":
		d, err := time.ParseDuration(val)
		if err != nil || d <= 0 {
			return fmt.Errorf("%s has an invalid timeout= value; use a positive Go duration such as timeout=30s", envName)
		}
		c.Timeout = d
	case "helo":
		if !validHELO(val) {
			return fmt.Errorf("%s has an invalid helo= value; use a host name such as helo=news.example.com", envName)
		}
		c.HELO = val
	case "ca":
		return c.setCA(val)
	default:
		return errUnknownParam
	}
	return nil
}

// setCA trusts the PEM certificates in file for this relay, on top of the
// system's authorities: a private CA, without touching the process's
// SSL_CERT_FILE.
func (c *Config) setCA(file string) error {
	if file == "" {
		return fmt.Errorf("%s has an empty ca= value; use ca=/path/to/ca.pem", envName)
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("%s ca=%s: cannot read the CA file: %w", envName, file, err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("%s ca=%s: the file holds no PEM certificate (-----BEGIN CERTIFICATE-----)", envName, file)
	}
	c.CAFile = file
	c.TLSConfig = &tls.Config{RootCAs: pool}
	return nil
}

// setPort takes the port, or the default for the TLS mode: 587 for
// submission (RFC 6409 section 3.1), 465 for implicit TLS (RFC 8314 section
// 7.3).
func (c *Config) setPort(u *url.URL) error {
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%s has an invalid port; use a number from 1 to 65535", envName)
		}
		c.Port = n
		return nil
	}
	if strings.HasSuffix(u.Host, ":") {
		return fmt.Errorf("%s has an empty port after ':'; give a port or drop the ':'", envName)
	}
	c.Port = DefaultPort
	if c.TLS == TLSImplicit {
		c.Port = DefaultImplicitPort
	}
	return nil
}

// clearSecret makes sure a Config returned next to an error holds no password.
func (c Config) clearSecret() Config {
	c.Password = ""
	return c
}

// paramName names a query parameter in an error when it looks like a
// parameter name (a few letters, digits, '-' or '_') and has nothing in
// common with the password: a mangled URL can put part of a password in
// the query ("?" in a password not percent-encoded), and that must not
// reach a log.
func paramName(key, password string) string {
	plain := len(key) > 0 && len(key) <= 20
	for _, r := range key {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			plain = false
		}
	}
	if !plain || password != "" && (strings.Contains(password, key) || strings.Contains(key, password)) {
		return "(not shown)"
	}
	return strconv.Quote(key)
}
