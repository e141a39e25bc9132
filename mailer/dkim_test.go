package mailer

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"newsletter/templates"
)

// dkimKey is a key pair for the tests, the private key as PEM and the TXT
// record a domain would publish for it (RFC 6376 section 3.6.1).
type dkimKey struct {
	pem []byte
	txt string
}

func newRSAKey(t testing.TB) dkimKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	return dkimKey{
		pem: pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}),
		txt: "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(pub),
	}
}

func newEd25519Key(t testing.TB) dkimKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	return dkimKey{
		pem: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		txt: "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub),
	}
}

// verifyDKIM checks msg's signatures with an independent verifier
// (go-msgauth), the public key served as DNS would, and returns the one
// verification.
func verifyDKIM(t testing.TB, msg []byte, key dkimKey) *dkim.Verification {
	t.Helper()
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{
		LookupTXT: func(domain string) ([]string, error) {
			if domain != "news2025._domainkey.news.example.com" {
				return nil, fmt.Errorf("no TXT record at %s", domain)
			}
			return []string{key.txt}, nil
		},
	})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if len(vs) != 1 {
		t.Fatalf("%d DKIM signatures, want 1", len(vs))
	}
	return vs[0]
}

func mustDKIM(t testing.TB, key dkimKey) *DKIM {
	t.Helper()
	d, err := NewDKIM("news.example.com", "news2025", key.pem)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Both paths sign what a receiver can verify, and the signature covers the
// unsubscribe fields (RFC 8058 section 4) and what a reader sees.
func TestDKIMSignaturesVerify(t *testing.T) {
	for name, key := range map[string]dkimKey{"rsa-2048": newRSAKey(t), "ed25519": newEd25519Key(t)} {
		t.Run(name, func(t *testing.T) {
			d := mustDKIM(t, key)
			// go-mail (confirmations, test copies).
			m := sampleMessage()
			m.DKIM = d
			raw := render(t, m)
			checkSigned(t, "go-mail", raw, key)

			// The bulk path, dot-stuffed lines included.
			for _, r := range []*templates.Rendered{demo(t), renderCustom(t, ".a", "..", ".", "x")} {
				p := mustPrepare(t, prepareInput(r))
				var parts Parts
				for _, rc := range testRecipients {
					rc.Date = testDate
					if err := p.AppendParts(&parts, rc); err != nil {
						t.Fatal(err)
					}
					if err := d.SignParts(&parts); err != nil {
						t.Fatal(err)
					}
					checkSigned(t, "bulk "+rc.Name, unstuff(t, bytes.Join(parts.Data, nil)), key)
				}
			}
		})
	}
}

func checkSigned(t *testing.T, what string, msg []byte, key dkimKey) {
	t.Helper()
	if !bytes.HasPrefix(msg, []byte("DKIM-Signature: ")) && !bytes.Contains(msg, []byte("\r\nDKIM-Signature: ")) {
		t.Fatalf("%s: no DKIM-Signature field", what)
	}
	v := verifyDKIM(t, msg, key)
	if v.Err != nil {
		t.Fatalf("%s: signature does not verify: %v", what, v.Err)
	}
	if v.Domain != "news.example.com" {
		t.Errorf("%s: signed for %q", what, v.Domain)
	}
	signed := strings.Join(v.HeaderKeys, ":")
	for _, h := range []string{"from", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post", "to"} {
		if !slices.ContainsFunc(v.HeaderKeys, func(k string) bool { return strings.EqualFold(k, h) }) {
			t.Errorf("%s: %s not signed (h=%s)", what, h, signed)
		}
	}
}

// A signed message changed on the way fails: a different unsubscribe link,
// subject or sender, a changed body.
func TestDKIMDetectsTampering(t *testing.T) {
	key := newRSAKey(t)
	m := sampleMessage()
	m.DKIM = mustDKIM(t, key)
	raw := render(t, m)
	for name, change := range map[string]func([]byte) []byte{
		"unsubscribe link": func(b []byte) []byte {
			return bytes.Replace(b, []byte("https://news.example.com/u/one-click"), []byte("https://evil.example.net/u/one-click"), 1)
		},
		"From": func(b []byte) []byte {
			return bytes.Replace(b, []byte(`From: "London Daily"`), []byte(`From: "London Dai1y"`), 1)
		},
		"Subject": func(b []byte) []byte { return bytes.Replace(b, []byte("Londres_"), []byte("Londra_"), 1) },
		"body":    func(b []byte) []byte { return bytes.Replace(b, []byte("rain"), []byte("sun!"), 1) },
	} {
		changed := change(bytes.Clone(raw))
		if bytes.Equal(changed, raw) {
			t.Fatalf("%s: the test changed nothing", name)
		}
		if v := verifyDKIM(t, changed, key); v.Err == nil {
			t.Errorf("%s changed, and the signature still verifies", name)
		}
	}
}

func TestNewDKIMRejects(t *testing.T) {
	key := newRSAKey(t)
	for name, tc := range map[string]struct {
		domain, selector string
		pem              []byte
		want             string
	}{
		"selector with a space": {"news.example.com", "news 2025", key.pem, "selector"},
		"selector with ;":       {"news.example.com", "a;b", key.pem, "selector"},
		"empty domain":          {"", "s", key.pem, "domain"},
		"long selector":         {"news.example.com", strings.Repeat("s", 61), key.pem, "selector"},
		"not PEM":               {"news.example.com", "s", []byte("not a key"), "private key"},
		"a certificate":         {"news.example.com", "s", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}), "private key"},
	} {
		if _, err := NewDKIM(tc.domain, tc.selector, tc.pem); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error about the %s", name, err, tc.want)
		}
	}
}

func TestUnstuffData(t *testing.T) {
	for _, s := range []string{"", "a\r\n", "..a\r\n", "a\r\n..\r\n..b\r\n", "a\r\n...\r\nx.y\r\n", ".."} {
		want := string(unstuff(t, []byte(s+"\r\n")))
		if got := string(unstuffData([]byte(s + "\r\n"))); got != want {
			t.Errorf("unstuffData(%q) = %q, want %q", s, got, want)
		}
	}
}

// BenchmarkSignParts is the cost DKIM adds to each bulk message: putting it
// together, the body hash and one signature.
func BenchmarkSignParts(b *testing.B) {
	for name, key := range map[string]dkimKey{"rsa-2048": newRSAKey(b), "ed25519": newEd25519Key(b)} {
		b.Run(name, func(b *testing.B) {
			d := mustDKIM(b, key)
			p := mustPrepare(b, prepareInput(demo(b)))
			var parts Parts
			rc := testRecipients[0]
			b.ReportAllocs()
			for b.Loop() {
				if err := p.AppendParts(&parts, rc); err != nil {
					b.Fatal(err)
				}
				if err := d.SignParts(&parts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
