// Package doctor checks a newsletter's sending setup the way mailbox
// providers will judge it: DNS (SPF, DKIM, DMARC, MX), the relay's TLS,
// the base URL and the headers of the mail as the send writes it. Each
// finding names the rule it comes from (an RFC, or Gmail's and Yahoo's
// sender guidelines for bulk senders, in force since February 2024) and
// says what to fix.
package doctor

import (
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"time"
)

// Setup is what is checked: the configuration as the send uses it.
type Setup struct {
	FromDomain     string // the From address's domain
	EnvelopeDomain string // the MAIL FROM (bounce) domain
	DKIM           []Key  // the keys the newsletter signs with; none: unsigned
	SMTP           Relay
	BaseURL        string
	// Message is a message as the send writes it to the relay: its
	// header fields are checked.
	Message []byte
}

// Key is a DKIM signing key: its public half, and where it is published
// (selector._domainkey.domain, RFC 6376 section 3.6.2.1).
type Key struct {
	Domain, Selector string
	Public           crypto.PublicKey
}

// Relay is the SMTP relay the send uses.
type Relay struct {
	Host     string
	Port     int
	Implicit bool // TLS from the first byte (port 465), not STARTTLS
	NoTLS    bool // SMTP_URL asked for no TLS
}

// Finding is the outcome of one check.
type Finding struct {
	Check  string `json:"check"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	Rule   string `json:"rule"`
}

// Checker runs the checks.
type Checker struct {
	// Resolver answers the DNS questions; nil: the system's.
	Resolver *net.Resolver
	// TLS is the base of the TLS configuration checked against the relay
	// (its RootCAs, say); nil: the system's roots.
	TLS *tls.Config
	// Timeout bounds each network check; zero: 10 s.
	Timeout time.Duration
}

// Resolver returns a resolver that asks the DNS server at addr (host:port)
// and no other, over UDP and TCP as the answer needs.
func Resolver(addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}

// Run runs every check, in the order of the table it is shown as.
func (c *Checker) Run(ctx context.Context, s Setup) []Finding {
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	var out []Finding
	out = append(out, c.spf(ctx, s.EnvelopeDomain))
	out = append(out, c.dkim(ctx, s.DKIM)...)
	dmarc := c.dmarc(ctx, s.FromDomain)
	out = append(out, dmarc)
	out = append(out, alignment(s)...)
	out = append(out, c.mx(ctx, s.EnvelopeDomain))
	out = append(out, c.relayTLS(ctx, s.SMTP))
	out = append(out, baseURL(s.BaseURL))
	out = append(out, unsubscribeHeaders(s.Message)...)
	out = append(out, fromDomain(s.FromDomain))
	return out
}

// Failed tells whether any finding failed.
func Failed(fs []Finding) bool {
	for _, f := range fs {
		if !f.OK {
			return true
		}
	}
	return false
}

// txt looks up the TXT records of name; a name that does not exist is no
// records, not an error.
func (c *Checker) txt(ctx context.Context, name string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	recs, err := c.Resolver.LookupTXT(ctx, name)
	if isNotFound(err) {
		return nil, nil
	}
	return recs, err
}

func isNotFound(err error) bool {
	var de *net.DNSError
	if err != nil && errors.As(err, &de) {
		return de.IsNotFound
	}
	return false
}

// withPrefix keeps the records that start with the version tag v (case
// insensitive), as SPF (RFC 7208 section 4.5) and DMARC (RFC 7489 section
// 6.6.3) select theirs among a name's TXT records.
func withPrefix(recs []string, v string) []string {
	var out []string
	for _, r := range recs {
		t := strings.TrimSpace(r)
		if len(t) >= len(v) && strings.EqualFold(t[:len(v)], v) && (len(t) == len(v) || t[len(v)] == ' ' || t[len(v)] == ';') {
			out = append(out, t)
		}
	}
	return out
}

func pass(check, rule, detail string) Finding {
	return Finding{Check: check, OK: true, Detail: detail, Rule: rule}
}

func fail(check, rule, detail string) Finding {
	return Finding{Check: check, Detail: detail, Rule: rule}
}
