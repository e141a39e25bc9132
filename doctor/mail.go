package doctor

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/mail"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"

	"github.com/emersion/go-smtp"
)

const (
	ruleTLS      = "RFC 3207; Gmail/Yahoo sender guidelines: TLS for transmitting mail"
	ruleHTTPS    = "RFC 8058 section 3: the one-click unsubscribe URI must be HTTPS"
	ruleUnsub    = "RFC 8058 section 3.1; Gmail/Yahoo sender guidelines: one-click unsubscribe in bulk mail"
	ruleFreeMail = "Gmail/Yahoo sender guidelines: don't send bulk mail From a free mailbox domain (their DMARC p=reject)"
)

// relayTLS connects to the relay and checks that it offers TLS with a
// certificate that verifies for its name: STARTTLS (RFC 3207) after EHLO,
// or TLS from the first byte (RFC 8314 section 3.3).
func (c *Checker) relayTLS(ctx context.Context, r Relay) Finding {
	const check = "relay-tls"
	if r.Host == "" {
		return fail(check, ruleTLS, "no SMTP relay configured (SMTP_URL)")
	}
	if r.NoTLS {
		return fail(check, ruleTLS, fmt.Sprintf("SMTP_URL asks for no TLS (tls=none) to %s: the relay's password and every message cross the network in clear", r.Host))
	}
	addr := net.JoinHostPort(r.Host, strconv.Itoa(r.Port))
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fail(check, ruleTLS, fmt.Sprintf("connecting to %s: %v", addr, err))
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	conf := &tls.Config{ServerName: r.Host, MinVersion: tls.VersionTLS12}
	if c.TLS != nil {
		conf = c.TLS.Clone()
		conf.ServerName, conf.InsecureSkipVerify = r.Host, false
	}
	if r.Implicit {
		tc := tls.Client(conn, conf)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail(check, ruleTLS, fmt.Sprintf("TLS with %s: %v", addr, err))
		}
		return pass(check, ruleTLS, fmt.Sprintf("%s: TLS, certificate valid for %s", addr, r.Host))
	}
	cl, err := smtp.NewClientStartTLS(conn, conf)
	if err != nil {
		if strings.Contains(err.Error(), "support STARTTLS") {
			return fail(check, ruleTLS, fmt.Sprintf("%s does not offer STARTTLS: messages would cross the network in clear", addr))
		}
		return fail(check, ruleTLS, fmt.Sprintf("STARTTLS with %s: %v", addr, err))
	}
	defer cl.Close()
	// The handshake happens at the first command after STARTTLS.
	if err := cl.Noop(); err != nil {
		return fail(check, ruleTLS, fmt.Sprintf("STARTTLS with %s: %v", addr, err))
	}
	return pass(check, ruleTLS, fmt.Sprintf("%s: STARTTLS, certificate valid for %s", addr, r.Host))
}

func baseURL(s string) Finding {
	const check = "base-url"
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fail(check, ruleHTTPS, fmt.Sprintf("NEWSLETTER_BASE_URL %q is not an absolute URL", s))
	}
	if u.Scheme != "https" {
		return fail(check, ruleHTTPS, fmt.Sprintf("NEWSLETTER_BASE_URL %s is not HTTPS: the unsubscribe links and one-click unsubscribe need https://", s))
	}
	return pass(check, ruleHTTPS, s)
}

// unsubscribeHeaders checks the message's List-Unsubscribe (an HTTPS URI,
// RFC 2369 section 3.2 and RFC 8058 section 3.1) and List-Unsubscribe-Post.
func unsubscribeHeaders(msg []byte) []Finding {
	const check = "list-unsubscribe"
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(msg)))
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		return []Finding{fail(check, ruleUnsub, fmt.Sprintf("reading the sample message's header: %v", err))}
	}
	var out []Finding
	lu := h.Get("List-Unsubscribe")
	var https bool
	for _, part := range strings.Split(lu, ",") {
		p := strings.Trim(strings.TrimSpace(part), "<>")
		https = https || strings.HasPrefix(p, "https://")
	}
	switch {
	case lu == "":
		out = append(out, fail(check, ruleUnsub, "the mail has no List-Unsubscribe header"))
	case !https:
		out = append(out, fail(check, ruleUnsub, fmt.Sprintf("List-Unsubscribe has no HTTPS URI: %s", lu)))
	default:
		out = append(out, pass(check, ruleUnsub, "List-Unsubscribe with an HTTPS URI"))
	}
	if v := h.Get("List-Unsubscribe-Post"); v != "List-Unsubscribe=One-Click" {
		out = append(out, fail("list-unsubscribe-post", ruleUnsub, fmt.Sprintf("List-Unsubscribe-Post is %q, want List-Unsubscribe=One-Click", v)))
	} else {
		out = append(out, pass("list-unsubscribe-post", ruleUnsub, "List-Unsubscribe-Post: List-Unsubscribe=One-Click"))
	}
	if from, err := mail.ParseAddress(h.Get("From")); err != nil || from.Address == "" {
		out = append(out, fail("from", "RFC 5322 section 3.6.2", fmt.Sprintf("the mail's From %q is not one address", h.Get("From"))))
	}
	return out
}

// freeMail are mailbox providers whose domains publish DMARC p=reject (or
// quarantine): mail From them sent through another relay is refused.
var freeMail = map[string]bool{
	"gmail.com": true, "googlemail.com": true, "yahoo.com": true, "ymail.com": true, "rocketmail.com": true,
	"outlook.com": true, "hotmail.com": true, "live.com": true, "msn.com": true, "aol.com": true,
	"icloud.com": true, "me.com": true, "mac.com": true, "gmx.com": true, "gmx.net": true, "gmx.de": true,
	"web.de": true, "mail.ru": true, "yandex.ru": true, "yandex.com": true, "proton.me": true,
	"protonmail.com": true, "zoho.com": true, "yahoo.co.uk": true, "hotmail.co.uk": true, "btinternet.com": true,
}

func fromDomain(d string) Finding {
	const check = "from-domain"
	if freeMail[strings.ToLower(d)] {
		return fail(check, ruleFreeMail, fmt.Sprintf("From is at %s, a free mailbox provider: send From your own domain", d))
	}
	return pass(check, ruleFreeMail, d)
}
