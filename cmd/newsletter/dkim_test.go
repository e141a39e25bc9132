package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"newsletter/mailer"
)

// With NEWSLETTER_DKIM_* set to an RSA and an Ed25519 key, every message
// of a send (the bulk path) and a test copy (go-mail) carries two DKIM
// signatures that go-msgauth and dkimpy accept, with the keys published
// for the sender's domain; each carries the edition's Feedback-ID and the
// recipient's own unsubscribe mailbox, named by their one-click token.
func TestSendSignsWithDKIM(t *testing.T) {
	h := newHarness(t)
	h.setup()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	edDER, _ := x509.MarshalPKCS8PrivateKey(edKey)
	records := map[string]string{
		"daily2025._domainkey.london-daily.example": "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(pub),
		"ed2025._domainkey.london-daily.example":    "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(edPub),
	}
	t.Setenv("NEWSLETTER_DKIM_KEY_FILE", h.file("dkim.pem", string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})))+
		", "+h.file("ed.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: edDER}))))
	t.Setenv("NEWSLETTER_DKIM_SELECTOR", "daily2025,ed2025")

	h.must("send", "--date", "2025-11-13")
	h.must("send", "--date", "2025-11-13", "--to", "editor@example.com")
	msgs := h.smtp.Messages()
	if len(msgs) != len(confirmedAddrs)+1 {
		t.Fatalf("%d messages, want %d", len(msgs), len(confirmedAddrs)+1)
	}
	lookup := func(domain string) ([]string, error) {
		if txt, ok := records[domain]; ok {
			return []string{txt}, nil
		}
		return nil, fmt.Errorf("no TXT record at %s", domain)
	}
	pyArgs := []string{"../../mailer/testdata/dkimverify.py"}
	var datas [][]byte
	for name, txt := range records {
		pyArgs = append(pyArgs, name+"="+txt)
	}
	oneClick := regexp.MustCompile(`<https?://[^>]*/u/([A-Za-z0-9_-]{43})>`)
	mailbox := regexp.MustCompile(`<mailto:unsubscribe\+([A-Za-z0-9_-]+)@london-daily\.example\?subject=unsubscribe>`)
	for _, m := range msgs {
		checkMessage(t, m.Data)
		datas = append(datas, m.Data)
		vs, err := dkim.VerifyWithOptions(bytes.NewReader(m.Data), &dkim.VerifyOptions{LookupTXT: lookup})
		if err != nil || len(vs) != 2 {
			t.Fatalf("message to %v: %d signatures, %v", m.To, len(vs), err)
		}
		for _, v := range vs {
			if v.Err != nil || v.Domain != "london-daily.example" {
				t.Errorf("message to %v: signature for %q: %v", m.To, v.Domain, v.Err)
			}
			if keys := strings.ToLower(strings.Join(v.HeaderKeys, ":")); !strings.Contains(keys, "from:from:") || !strings.Contains(keys, "list-unsubscribe:list-unsubscribe-post:feedback-id") {
				t.Errorf("message to %v: h=%s", m.To, keys)
			}
		}
		if !bytes.Contains(m.Data, []byte("\r\nFeedback-ID: 2025-11-13:edition:")) {
			t.Errorf("message to %v: no Feedback-ID for the edition", m.To)
		}
		if c, b := oneClick.FindSubmatch(m.Data), mailbox.FindSubmatch(m.Data); m.To[0] != "editor@example.com" && (c == nil || b == nil || !bytes.Equal(c[1], b[1])) {
			t.Errorf("message to %v: the unsubscribe mailbox is not named by the one-click token (%q, %q)", m.To, c, b)
		}
	}
	cmd := exec.Command("/usr/bin/python3", pyArgs...)
	cmd.Stdin = bytes.NewReader(bytes.Join(datas, []byte{0}))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dkimpy (Debian's python3-dkim, /usr/bin/python3): %v\n%s", err, out)
	}
	for i, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line != "pass daily2025 pass ed2025" {
			t.Errorf("message %d: dkimpy says %q", i, line)
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
		{"two keys, one selector", h.file("k3.pem", "x") + "," + h.file("k4.pem", "x"), "s1", "", "each with its own selector"},
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

// keygen writes a key the signer takes, never over an existing file, and
// prints a record that verifies what that key signs, in strings of at most
// 255 bytes.
func TestDKIMKeygen(t *testing.T) {
	dir := t.TempDir()
	for _, typ := range []string{"rsa", "ed25519"} {
		out := filepath.Join(dir, typ+".pem")
		var stdout, stderr bytes.Buffer
		args := []string{"dkim", "keygen", "--domain", "news.example.com", "--selector", "s-" + typ, "--out", out, "--type", typ}
		if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
			t.Fatalf("%s: exit %d: %s", typ, code, stderr.String())
		}
		if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: key file %v, %v; want mode 0600", typ, st, err)
		}
		name, value, ok := strings.Cut(stdout.String(), "s-"+typ+"._domainkey.news.example.com. IN TXT ")
		if !ok {
			t.Fatalf("%s: no record name in %q", typ, name)
		}
		var txt string
		for _, s := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(value, -1) {
			if len(s[1]) > 255 {
				t.Errorf("%s: a string of %d bytes", typ, len(s[1]))
			}
			txt += s[1]
		}
		pemBytes, _ := os.ReadFile(out)
		d, err := mailer.NewDKIM("news.example.com", "s-"+typ, pemBytes)
		if err != nil {
			t.Fatal(err)
		}
		var msg bytes.Buffer
		if err := mailer.BuildTo(&msg, mailer.Message{From: &mail.Address{Address: "a@news.example.com"}, To: &mail.Address{Address: "b@example.org"}, Subject: "s", Text: "t", DKIM: d}); err != nil {
			t.Fatal(err)
		}
		vs, err := dkim.VerifyWithOptions(&msg, &dkim.VerifyOptions{LookupTXT: func(string) ([]string, error) { return []string{txt}, nil }})
		if err != nil || len(vs) != 1 || vs[0].Err != nil {
			t.Fatalf("%s: the printed record does not verify the key's signature: %v %v", typ, err, vs)
		}
		before, _ := os.ReadFile(out)
		if code := run(context.Background(), args, &stdout, &stderr); code == 0 || !strings.Contains(stderr.String(), "exists") {
			t.Errorf("%s: second keygen over the same file: exit %d, %q", typ, code, stderr.String())
		}
		if after, _ := os.ReadFile(out); !bytes.Equal(before, after) {
			t.Errorf("%s: the existing key was overwritten", typ)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"dkim", "keygen", "--domain", "news.example.com", "--selector", "s", "--out", filepath.Join(dir, "x.pem"), "--bits", "512"}, &stdout, &stderr); code != exitUsage {
		t.Errorf("a 512-bit key: exit %d", code)
	}
}
