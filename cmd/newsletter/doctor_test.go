package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"newsletter/internal/dnstest"
	"newsletter/internal/smtptest"
)

// doctor against an in-process DNS server and real SMTP servers: the
// harness's setup (no DKIM key, a relay without TLS) fails with exit 1 and
// says why; with a key published and a TLS relay whose certificate is
// trusted (SMTP_URL's ca=), every check passes.
func TestDoctor(t *testing.T) {
	h := newHarness(t)
	const domain = "london-daily.example"
	d := dnstest.Start(t,
		domain+`. 300 IN TXT "v=spf1 include:_spf.relay.example -all"`,
		`_dmarc.`+domain+`. 300 IN TXT "v=DMARC1; p=reject"`,
		domain+`. 300 IN MX 10 mx.`+domain+`.`,
	)
	t.Setenv("NEWSLETTER_DNS", d.Addr)
	code, out, _ := h.run("doctor", "--json")
	var fs []struct {
		Check string `json:"check"`
		OK    bool   `json:"ok"`
	}
	if err := json.Unmarshal([]byte(out), &fs); err != nil {
		t.Fatalf("doctor --json: %v: %q", err, out)
	}
	failed := map[string]bool{}
	for _, f := range fs {
		if !f.OK {
			failed[f.Check] = true
		}
	}
	if code != 1 || !failed["dkim"] || !failed["relay-tls"] || !failed["dkim-alignment"] || len(failed) != 3 {
		t.Fatalf("doctor on the harness: exit %d, failed %v", code, failed)
	}

	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "dkim.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	v := "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	d.AddRR(&dns.TXT{Hdr: dns.RR_Header{Name: "news._domainkey." + domain + ".", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300},
		Txt: []string{v[:200], v[200:]}})
	t.Setenv("NEWSLETTER_DKIM_KEY_FILE", keyFile)
	t.Setenv("NEWSLETTER_DKIM_SELECTOR", "news")
	srv := smtptest.Start(t, smtptest.WithTLS())
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, srv.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SMTP_URL", fmt.Sprintf("smtp://%s?ca=%s", srv.Addr(), ca))
	out = h.must("doctor")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 12 || !strings.HasPrefix(lines[0], "CHECK") {
		t.Fatalf("doctor's table: %q", out)
	}
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) < 2 || f[1] != "pass" {
			t.Errorf("line %q does not pass", l)
		}
	}
}
