package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
)

// With NEWSLETTER_DKIM_* set, every message of a send (the bulk path) and a
// test copy (go-mail) carries a DKIM signature that an independent verifier
// accepts, with the key published for the sender's domain.
func TestSendSignsWithDKIM(t *testing.T) {
	h := newHarness(t)
	h.setup()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	txt := "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(pub)
	t.Setenv("NEWSLETTER_DKIM_KEY_FILE", h.file("dkim.pem", string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))))
	t.Setenv("NEWSLETTER_DKIM_SELECTOR", "daily2025")

	h.must("send", "--date", "2025-11-13")
	h.must("send", "--date", "2025-11-13", "--to", "editor@example.com")
	msgs := h.smtp.Messages()
	if len(msgs) != len(confirmedAddrs)+1 {
		t.Fatalf("%d messages, want %d", len(msgs), len(confirmedAddrs)+1)
	}
	lookup := func(domain string) ([]string, error) {
		if domain != "daily2025._domainkey.london-daily.example" {
			return nil, fmt.Errorf("no TXT record at %s", domain)
		}
		return []string{txt}, nil
	}
	for _, m := range msgs {
		checkMessage(t, m.Data)
		vs, err := dkim.VerifyWithOptions(bytes.NewReader(m.Data), &dkim.VerifyOptions{LookupTXT: lookup})
		if err != nil || len(vs) != 1 {
			t.Fatalf("message to %v: %d signatures, %v", m.To, len(vs), err)
		}
		if vs[0].Err != nil || vs[0].Domain != "london-daily.example" {
			t.Errorf("message to %v: signature for %q: %v", m.To, vs[0].Domain, vs[0].Err)
		}
		if keys := strings.ToLower(strings.Join(vs[0].HeaderKeys, ":")); !strings.Contains(keys, "list-unsubscribe:list-unsubscribe-post") {
			t.Errorf("message to %v: the unsubscribe fields are not signed (h=%s)", m.To, keys)
		}
	}
}

func TestDKIMConfigErrorsSayWhatToFix(t *testing.T) {
	h := newHarness(t)
	h.setup()
	for _, tc := range []struct {
		name      string
		file, sel string
		domain    string
		want      string
	}{
		{"no such file", "/no/such/key.pem", "s1", "", "NEWSLETTER_DKIM_KEY_FILE"},
		{"not a key", h.file("notakey.pem", "hello"), "s1", "", "NEWSLETTER_DKIM_KEY_FILE"},
		{"no selector", h.file("k.pem", "x"), "", "", "NEWSLETTER_DKIM_SELECTOR"},
		{"selector without key", "", "s1", "", "NEWSLETTER_DKIM_KEY_FILE"},
		{"bad domain", h.file("k2.pem", "x"), "s1", "not a domain", "NEWSLETTER_DKIM_KEY_FILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("NEWSLETTER_DKIM_KEY_FILE", tc.file)
			t.Setenv("NEWSLETTER_DKIM_SELECTOR", tc.sel)
			t.Setenv("NEWSLETTER_DKIM_DOMAIN", tc.domain)
			code, _, errs := h.run("send", "--date", "2025-11-13")
			if code == 0 || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d, stderr %q; want an error naming %s", code, errs, tc.want)
			}
			if n := len(h.smtp.Messages()); n != 0 {
				t.Fatalf("%d messages sent with a bad DKIM configuration", n)
			}
		})
	}
}
