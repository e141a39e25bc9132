package main

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"newsletter/mailer"
)

var dkimKeygen = &command{
	usage: "dkim keygen --domain D --selector S --out FILE [--type rsa|ed25519] [--bits 2048]\n\n" +
		"Writes a new DKIM private key (PEM, PKCS #8, mode 0600; an existing file is\n" +
		"never overwritten) for NEWSLETTER_DKIM_KEY_FILE, and prints the DNS TXT record\n" +
		"that publishes its public key: its name, S._domainkey.D, and its value split\n" +
		"into quoted strings of at most 255 bytes, ready to paste into a zone.\n" +
		"Ed25519 (RFC 8463) is a second key beside RSA, which every verifier knows.",
	setup: func(fs *flag.FlagSet) runFunc {
		var o keygenOptions
		fs.StringVar(&o.domain, "domain", "", "the signing domain (d=), usually NEWSLETTER_FROM's")
		fs.StringVar(&o.selector, "selector", "", "the selector (s=), e.g. news2025")
		fs.StringVar(&o.out, "out", "", "the file to write the private key to")
		fs.StringVar(&o.typ, "type", "rsa", "rsa or ed25519")
		fs.IntVar(&o.bits, "bits", 2048, "RSA key size: 1024 to 4096 (RFC 8301 section 3.2)")
		return func(_ context.Context, a *app, _ []string) error { return o.run(a.stdout) }
	},
}

type keygenOptions struct {
	domain, selector, out, typ string
	bits                       int
}

func (o keygenOptions) run(w io.Writer) error {
	if o.domain == "" || o.selector == "" || o.out == "" {
		return usageErr("--domain, --selector and --out are required")
	}
	key, err := o.generate()
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encoding the key: %w", err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	// The signer checks the domain, the selector and the key before
	// anything is written.
	if _, err := mailer.NewDKIM(o.domain, o.selector, pemBytes); err != nil {
		return usageErr("%v", err)
	}
	record, err := mailer.DKIMRecord(key.Public())
	if err != nil {
		return err
	}
	if err := writeNewFile(o.out, pemBytes); err != nil {
		return err
	}
	fmt.Fprintf(w, "Private key written to %s (keep it secret; NEWSLETTER_DKIM_KEY_FILE=%s, NEWSLETTER_DKIM_SELECTOR=%s).\n", o.out, o.out, o.selector)
	fmt.Fprintf(w, "Publish this TXT record:\n\n%s._domainkey.%s. IN TXT %s\n", o.selector, o.domain, quoteTXT(record))
	return nil
}

func (o keygenOptions) generate() (crypto.Signer, error) {
	switch o.typ {
	case "rsa":
		if o.bits < 1024 || o.bits > 4096 {
			return nil, usageErr("--bits %d: RSA keys for DKIM are 1024 to 4096 bits (RFC 8301 section 3.2), 2048 recommended", o.bits)
		}
		k, err := rsa.GenerateKey(rand.Reader, o.bits)
		if err != nil {
			return nil, fmt.Errorf("generating the RSA key: %w", err)
		}
		return k, nil
	case "ed25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generating the Ed25519 key: %w", err)
		}
		return k, nil
	}
	return nil, usageErr("--type %q: rsa or ed25519", o.typ)
}

// writeNewFile creates path with mode 0600, failing if it exists: a DKIM key
// already published must never be replaced by accident.
func writeNewFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists: not overwriting a key that may be in use; choose another --out", path)
	}
	if err != nil {
		return fmt.Errorf("writing the key: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing the key to %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing the key to %s: %w", path, err)
	}
	return nil
}

// quoteTXT splits a TXT record value into quoted character-strings of at
// most 255 bytes each (RFC 1035 section 3.3.14), which a verifier joins
// back without spaces (RFC 6376 section 3.6.2.2). The value is base64 and
// ASCII, with no quote or backslash to escape.
func quoteTXT(v string) string {
	var parts []string
	for len(v) > 255 {
		parts = append(parts, `"`+v[:255]+`"`)
		v = v[255:]
	}
	parts = append(parts, `"`+v+`"`)
	if len(parts) == 1 {
		return parts[0]
	}
	return "( " + strings.Join(parts, "\n\t") + " )"
}
