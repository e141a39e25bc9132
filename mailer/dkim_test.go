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
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"newsletter/templates"
)

// dkimKey is a key pair for the tests, the private key as PEM and the TXT
// record a domain would publish for it (RFC 6376 section 3.6.1) under its
// selector.
type dkimKey struct {
	selector string
	pem      []byte
	txt      string
}

func newRSAKey(t testing.TB) dkimKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	return dkimKey{
		selector: "rsa2025",
		pem:      pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}),
		txt:      "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(pub),
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
		selector: "ed2025",
		pem:      pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		txt:      "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub),
	}
}

const testDKIMDomain = "news.example.com"

// testKeySets are the signers the tests use: each algorithm alone, and both
// (RFC 8463's two signatures).
func testKeySets(t testing.TB) map[string][]dkimKey {
	rsaKey, edKey := newRSAKey(t), newEd25519Key(t)
	return map[string][]dkimKey{"rsa-2048": {rsaKey}, "ed25519": {edKey}, "rsa+ed25519": {rsaKey, edKey}}
}

// verifyDKIM checks msg's signatures with go-msgauth, the public keys
// served as DNS would, and returns one verification per signature.
func verifyDKIM(t testing.TB, msg []byte, keys []dkimKey) []*dkim.Verification {
	t.Helper()
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{
		LookupTXT: func(domain string) ([]string, error) {
			for _, k := range keys {
				if domain == k.selector+"._domainkey."+testDKIMDomain {
					return []string{k.txt}, nil
				}
			}
			return nil, fmt.Errorf("no TXT record at %s", domain)
		},
	})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if len(vs) != len(keys) {
		t.Fatalf("%d DKIM signatures, want %d", len(vs), len(keys))
	}
	return vs
}

// verifyDKIMPy checks every signature of each message with Debian's dkimpy
// (python3-dkim, run by the system's /usr/bin/python3), an implementation
// independent of the signer, and returns for each message its line of
// results ("pass rsa2025 pass ed2025"). Without dkimpy the test fails: the
// signatures must be checked by something other than the code that made
// them.
func verifyDKIMPy(t testing.TB, keys []dkimKey, msgs ...[]byte) []string {
	t.Helper()
	args := []string{"testdata/dkimverify.py"}
	for _, k := range keys {
		args = append(args, k.selector+"._domainkey."+testDKIMDomain+"="+k.txt)
	}
	cmd := exec.Command("/usr/bin/python3", args...)
	cmd.Stdin = bytes.NewReader(bytes.Join(msgs, []byte{0}))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("dkimpy (Debian's python3-dkim and python3-nacl, run by /usr/bin/python3): %v\n%s", err, stderr.Bytes())
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(msgs) {
		t.Fatalf("dkimpy answered %d lines for %d messages:\n%s%s", len(lines), len(msgs), out, stderr.Bytes())
	}
	return lines
}

// dkimpyPasses is the line verifyDKIMPy gives a message signed by keys.
func dkimpyPasses(keys []dkimKey) string {
	var s []string
	for _, k := range keys {
		s = append(s, "pass "+k.selector)
	}
	return strings.Join(s, " ")
}

func mustDKIM(t testing.TB, keys ...dkimKey) *DKIM {
	t.Helper()
	var dk []DKIMKey
	for _, k := range keys {
		dk = append(dk, DKIMKey{Selector: k.selector, PEM: k.pem})
	}
	d, err := NewDKIMKeys(testDKIMDomain, dk...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// signedSamples are messages of both paths signed by d: a newsletter test
// copy and a confirmation through go-mail, and bulk copies, dot-stuffed
// lines included, for every test recipient.
func signedSamples(t *testing.T, d *DKIM) (names []string, msgs [][]byte) {
	t.Helper()
	m := sampleMessage()
	m.DKIM = d
	names, msgs = append(names, "go-mail"), append(msgs, render(t, m))
	c := sampleMessage()
	c.DKIM, c.Transactional, c.ListID, c.UnsubscribeURL, c.UnsubscribeMailto, c.FeedbackID = d, true, "", "", "", FeedbackID("confirm", "news.example.com")
	names, msgs = append(names, "go-mail confirmation"), append(msgs, render(t, c))
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
			names = append(names, "bulk "+rc.Email)
			msgs = append(msgs, unstuff(t, bytes.Join(parts.Data, nil)))
		}
	}
	return names, msgs
}

// Both paths sign what a receiver can verify, with RSA, Ed25519 or both,
// and the signatures cover the unsubscribe fields (RFC 8058 section 4),
// what a reader sees, and From twice.
func TestDKIMSignaturesVerify(t *testing.T) {
	for name, keys := range testKeySets(t) {
		t.Run(name, func(t *testing.T) {
			names, msgs := signedSamples(t, mustDKIM(t, keys...))
			py := verifyDKIMPy(t, keys, msgs...)
			for i, msg := range msgs {
				checkSigned(t, names[i], msg, keys)
				if py[i] != dkimpyPasses(keys) {
					t.Errorf("%s: dkimpy says %q, want %q", names[i], py[i], dkimpyPasses(keys))
				}
			}
		})
	}
}

func checkSigned(t *testing.T, what string, msg []byte, keys []dkimKey) {
	t.Helper()
	if !bytes.HasPrefix(msg, []byte("DKIM-Signature: ")) && !bytes.Contains(msg, []byte("\r\nDKIM-Signature: ")) {
		t.Fatalf("%s: no DKIM-Signature field", what)
	}
	for _, v := range verifyDKIM(t, msg, keys) {
		if v.Err != nil {
			t.Fatalf("%s: signature does not verify: %v", what, v.Err)
		}
		if v.Domain != testDKIMDomain {
			t.Errorf("%s: signed for %q", what, v.Domain)
		}
		signed := strings.ToLower(strings.Join(v.HeaderKeys, ":"))
		if want := "from:from:to:subject:date:message-id:mime-version:content-type:list-id:list-unsubscribe:list-unsubscribe-post:feedback-id"; signed != want {
			t.Errorf("%s: h=%s, want %s", what, signed, want)
		}
	}
}

// A signed message changed on the way fails, in both paths and for both
// algorithms, as go-msgauth and dkimpy see it: a second From added above
// the signed one (oversigning), a different subject, unsubscribe link or
// sender, a changed body.
func TestDKIMDetectsTampering(t *testing.T) {
	keys := testKeySets(t)["rsa+ed25519"]
	d := mustDKIM(t, keys...)
	m := sampleMessage()
	m.DKIM = d
	p := mustPrepare(t, prepareInput(demo(t)))
	var parts Parts
	rc := testRecipients[0]
	rc.Date = testDate
	if err := p.AppendParts(&parts, rc); err != nil {
		t.Fatal(err)
	}
	if err := d.SignParts(&parts); err != nil {
		t.Fatal(err)
	}
	for path, raw := range map[string][]byte{"go-mail": render(t, m), "bulk": unstuff(t, bytes.Join(parts.Data, nil))} {
		changes := map[string]func([]byte) []byte{
			"second From": func(b []byte) []byte {
				return append([]byte("From: \"London Daily\" <daily@evil.example.net>\r\n"), b...)
			},
			"List-Unsubscribe": func(b []byte) []byte {
				return regexp.MustCompile(`https://news\.example\.com/[a-z/-]*u/`).ReplaceAll(b, []byte("https://evil.example.net/u/"))
			},
			"From": func(b []byte) []byte {
				return bytes.Replace(b, []byte(`From: "London Daily"`), []byte(`From: "London Dai1y"`), 1)
			},
			"Subject": func(b []byte) []byte {
				return regexp.MustCompile(`(?m)^Subject:[^\r]*\r\n( [^\r]*\r\n)*`).ReplaceAll(b, []byte("Subject: You won a prize\r\n"))
			},
			"body": func(b []byte) []byte {
				i := bytes.Index(b, []byte("\r\n\r\n"))
				return append(b[:i+4:i+4], append([]byte("Click here!\r\n"), b[i+4:]...)...)
			},
		}
		var names []string
		var changed [][]byte
		for name, change := range changes {
			c := change(bytes.Clone(raw))
			if bytes.Equal(c, raw) {
				t.Fatalf("%s %s: the test changed nothing", path, name)
			}
			names, changed = append(names, name), append(changed, c)
			for _, v := range verifyDKIM(t, c, keys) {
				if v.Err == nil {
					t.Errorf("%s: %s changed, and go-msgauth still verifies the signature", path, name)
				}
			}
		}
		for i, line := range verifyDKIMPy(t, keys, changed...) {
			if line != "fail rsa2025 fail ed2025" {
				t.Errorf("%s: %s changed, and dkimpy says %q", path, names[i], line)
			}
		}
	}
	// The untouched messages pass, so the failures above are the changes'.
	if got := verifyDKIMPy(t, keys, render(t, m)); got[0] != dkimpyPasses(keys) {
		t.Fatalf("unchanged message: dkimpy says %q", got[0])
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
		"not PEM":               {"news.example.com", "s", []byte("not a key"), "private key"},
		"a certificate":         {"news.example.com", "s", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}), "private key"},
	} {
		if _, err := NewDKIM(tc.domain, tc.selector, tc.pem); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error about the %s", name, err, tc.want)
		}
	}
}

func TestNewDKIMKeysRejects(t *testing.T) {
	rsaKey, edKey := newRSAKey(t), newEd25519Key(t)
	a, b := DKIMKey{Selector: "s1", PEM: rsaKey.pem}, DKIMKey{Selector: "s1", PEM: edKey.pem}
	if _, err := NewDKIMKeys("news.example.com", a, b); err == nil || !strings.Contains(err.Error(), "selector") {
		t.Errorf("two keys under one selector: %v", err)
	}
	b.Selector = "s2"
	if _, err := NewDKIMKeys("news.example.com", a, b, DKIMKey{Selector: "s3", PEM: rsaKey.pem}); err == nil {
		t.Error("three keys accepted")
	}
	if _, err := NewDKIMKeys("news.example.com", a, b); err != nil {
		t.Errorf("RSA and Ed25519 under their own selectors: %v", err)
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
// together, the body hash and the signatures (one per key).
func BenchmarkSignParts(b *testing.B) {
	sets := testKeySets(b)
	for _, name := range []string{"rsa-2048", "ed25519", "rsa+ed25519"} {
		b.Run(name, func(b *testing.B) {
			d := mustDKIM(b, sets[name]...)
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
