package doctor_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"newsletter/doctor"
	"newsletter/internal/dnstest"
	"newsletter/internal/smtptest"
)

// dkimRecord is the TXT record publishing pub at name, split into
// 255-byte strings as DNS requires (RFC 1035 section 3.3.14).
func dkimRecord(t *testing.T, name string, pub any) dns.RR {
	t.Helper()
	var kt string
	var der []byte
	switch k := pub.(type) {
	case *rsa.PublicKey:
		kt = "rsa"
		var err error
		if der, err = x509.MarshalPKIXPublicKey(k); err != nil {
			t.Fatal(err)
		}
	case ed25519.PublicKey:
		kt, der = "ed25519", k
	}
	v := "v=DKIM1; k=" + kt + "; p=" + base64.StdEncoding.EncodeToString(der)
	var parts []string
	for len(v) > 255 {
		parts, v = append(parts, v[:255]), v[255:]
	}
	parts = append(parts, v)
	return &dns.TXT{Hdr: dns.RR_Header{Name: dns.Fqdn(name), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300}, Txt: parts}
}

const goodMessage = "From: London Daily <daily@london-daily.example>\r\n" +
	"List-Unsubscribe: <https://news.london-daily.example/u/abc>, <mailto:unsubscribe+abc@london-daily.example>\r\n" +
	"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" +
	"Subject: x\r\n\r\nbody\r\n"

func byCheck(fs []doctor.Finding) map[string][]doctor.Finding {
	m := map[string][]doctor.Finding{}
	for _, f := range fs {
		m[f.Check] = append(m[f.Check], f)
	}
	return m
}

// A setup as a newsroom should have it passes every check: DNS from an
// in-process server, the relay a real SMTP server with STARTTLS and a
// certificate the checker trusts.
func TestGoodSetupPasses(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	d := dnstest.Start(t,
		`london-daily.example. 300 IN TXT "google-site-verification=xyz"`,
		`london-daily.example. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 include:_spf.relay.example ~all"`,
		`_dmarc.london-daily.example. 300 IN TXT "v=DMARC1; p=quarantine; rua=mailto:dmarc@london-daily.example"`,
		`london-daily.example. 300 IN MX 10 mx.london-daily.example.`,
	)
	d.AddRR(dkimRecord(t, "news._domainkey.london-daily.example", &rsaKey.PublicKey))
	d.AddRR(dkimRecord(t, "ed._domainkey.london-daily.example", edPub))
	srv := smtptest.Start(t, smtptest.WithTLS())
	c := &doctor.Checker{Resolver: doctor.Resolver(d.Addr), TLS: srv.ClientTLSConfig()}
	fs := c.Run(context.Background(), doctor.Setup{
		FromDomain: "london-daily.example", EnvelopeDomain: "london-daily.example",
		DKIM: []doctor.Key{
			{Domain: "london-daily.example", Selector: "news", Public: &rsaKey.PublicKey},
			{Domain: "london-daily.example", Selector: "ed", Public: edPub},
		},
		SMTP:    doctor.Relay{Host: srv.Host(), Port: srv.Port()},
		BaseURL: "https://news.london-daily.example/newsletter",
		Message: []byte(goodMessage),
	})
	for _, f := range fs {
		if !f.OK {
			t.Errorf("%s failed: %s (%s)", f.Check, f.Detail, f.Rule)
		}
	}
	m := byCheck(fs)
	for _, check := range []string{"spf", "dkim", "dmarc", "dkim-alignment", "spf-alignment", "mx", "relay-tls", "base-url", "list-unsubscribe", "list-unsubscribe-post", "from-domain"} {
		if len(m[check]) == 0 {
			t.Errorf("no %s finding", check)
		}
	}
	if len(m["dkim"]) != 2 {
		t.Errorf("%d DKIM findings for two keys", len(m["dkim"]))
	}
	if doctor.Failed(fs) {
		t.Error("Failed says a good setup failed")
	}
}

// Each mistake is found, with the rule it breaks and what to fix.
func TestBadSetupFails(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	d := dnstest.Start(t,
		`bad.example. 300 IN TXT "v=spf1 include:a.example -all"`,
		`bad.example. 300 IN TXT "v=spf1 include:b.example -all"`,
		`bounces.elsewhere.example. 300 IN TXT "v=spf1 +all"`,
		`bounces.elsewhere.example. 300 IN MX 0 .`,
	)
	d.AddRR(dkimRecord(t, "news._domainkey.bad.example", &other.PublicKey))
	plain := smtptest.Start(t) // no STARTTLS
	c := &doctor.Checker{Resolver: doctor.Resolver(d.Addr)}
	run := func(s doctor.Setup) map[string][]doctor.Finding {
		return byCheck(c.Run(context.Background(), s))
	}
	m := run(doctor.Setup{
		FromDomain: "bad.example", EnvelopeDomain: "bad.example",
		DKIM:    []doctor.Key{{Domain: "other.example", Selector: "news", Public: &rsaKey.PublicKey}},
		SMTP:    doctor.Relay{Host: plain.Host(), Port: plain.Port()},
		BaseURL: "http://bad.example/newsletter",
		Message: []byte("From: x@bad.example\r\nList-Unsubscribe: <mailto:u@bad.example>\r\n\r\n"),
	})
	want := map[string]string{
		"spf":                   "2 SPF records",
		"dkim":                  "no DKIM record at news._domainkey.other.example",
		"dmarc":                 "no DMARC record",
		"dkim-alignment":        "no DKIM key signs for bad.example",
		"mx":                    "no MX record",
		"relay-tls":             "does not offer STARTTLS",
		"base-url":              "is not HTTPS",
		"list-unsubscribe":      "no HTTPS URI",
		"list-unsubscribe-post": "want List-Unsubscribe=One-Click",
	}
	for check, detail := range want {
		fs := m[check]
		if len(fs) != 1 || fs[0].OK || !strings.Contains(fs[0].Detail, detail) || fs[0].Rule == "" {
			t.Errorf("%s: %+v, want a failure saying %q", check, fs, detail)
		}
	}
	if fs := m["spf-alignment"]; len(fs) != 1 || !fs[0].OK {
		t.Errorf("spf-alignment: %+v", fs)
	}
	// The key published is another one; +all; a null MX; free mail; a
	// certificate nobody vouches for.
	tlsSrv := smtptest.Start(t, smtptest.WithTLS())
	m = run(doctor.Setup{
		FromDomain: "gmail.com", EnvelopeDomain: "bounces.elsewhere.example",
		DKIM:    []doctor.Key{{Domain: "bad.example", Selector: "news", Public: &rsaKey.PublicKey}},
		SMTP:    doctor.Relay{Host: tlsSrv.Host(), Port: tlsSrv.Port()},
		BaseURL: "https://bad.example/", Message: []byte(goodMessage),
	})
	want = map[string]string{
		"spf":           "lets anyone send",
		"dkim":          "not the one in NEWSLETTER_DKIM_KEY_FILE",
		"mx":            "null MX",
		"from-domain":   "free mailbox provider",
		"relay-tls":     "certificate",
		"spf-alignment": "is not From's gmail.com",
	}
	for check, detail := range want {
		fs := m[check]
		if len(fs) != 1 || fs[0].OK || !strings.Contains(fs[0].Detail, detail) {
			t.Errorf("%s: %+v, want a failure saying %q", check, fs, detail)
		}
	}
	// No key at all, and a relay told to use no TLS.
	m = run(doctor.Setup{FromDomain: "bad.example", EnvelopeDomain: "bad.example",
		SMTP: doctor.Relay{Host: "127.0.0.1", Port: 25, NoTLS: true}, BaseURL: "https://bad.example/", Message: []byte(goodMessage)})
	if fs := m["dkim"]; len(fs) != 1 || fs[0].OK || !strings.Contains(fs[0].Detail, "dkim keygen") {
		t.Errorf("no key: %+v", fs)
	}
	if fs := m["relay-tls"]; len(fs) != 1 || fs[0].OK || !strings.Contains(fs[0].Detail, "tls=none") {
		t.Errorf("tls=none: %+v", fs)
	}
}
