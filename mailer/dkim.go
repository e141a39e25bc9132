package mailer

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/emersion/go-msgauth/dkim"
	gomail "github.com/wneessen/go-mail"
)

// DKIM signs outgoing mail for a domain (RFC 6376), as Gmail and Yahoo
// require of bulk senders, and as RFC 8058 section 4 requires for one-click
// unsubscription: List-Unsubscribe and List-Unsubscribe-Post must be covered
// by a valid signature. go-msgauth does the canonicalization and the
// signing, for Build (the whole message, rendered once to be signed) and for
// the bulk path (SignParts, on the spliced message).
//
// With two keys, typically RSA and Ed25519 (RFC 8463 section 4: sign with
// both until Ed25519 is verified everywhere), every message carries one
// signature per key; a verifier that does not know an algorithm ignores
// that signature (RFC 6376 section 6.1).
//
// A DKIM is safe for concurrent use once NewDKIM returned it.
type DKIM struct {
	Domain string
	keys   []dkim.SignOptions
}

// DKIMKey is one private key (PEM) and the selector its public key is
// published under.
type DKIMKey struct {
	Selector string
	PEM      []byte
}

// dkimHeaders are the fields signed: From (RFC 6376 section 5.4 requires
// it) named twice, so that a second From added on the way breaks the
// signature instead of being shown to the reader (RFC 6376 section 8.15,
// "oversigning"); what a reader sees and the MIME structure; the list
// fields, List-Unsubscribe with List-Unsubscribe-Post as RFC 8058 section 4
// requires; and Feedback-ID, which mailbox providers attribute complaints
// by. A field a message does not have (a confirmation has no List-Id) is
// signed as absent, so it cannot be added either.
var dkimHeaders = []string{
	"From", "From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
	"List-Id", "List-Unsubscribe", "List-Unsubscribe-Post", "Feedback-ID",
}

// NewDKIM reads a PEM private key (RSA, PKCS #1 or #8, at least 1024 bits
// as RFC 8301 section 3.2 requires and 2048 recommended; or Ed25519, RFC
// 8463) for domain's selector, whose public key is published at
// selector._domainkey.domain.
func NewDKIM(domain, selector string, keyPEM []byte) (*DKIM, error) {
	return NewDKIMKeys(domain, DKIMKey{Selector: selector, PEM: keyPEM})
}

// NewDKIMKeys is NewDKIM for one or two keys, each under its own selector
// (a selector's DNS record holds one key).
func NewDKIMKeys(domain string, keys ...DKIMKey) (*DKIM, error) {
	if !isDNSLabels(domain) {
		return nil, fmt.Errorf("DKIM domain %q is not a domain name", domain)
	}
	if len(keys) == 0 || len(keys) > 2 {
		return nil, fmt.Errorf("DKIM: %d keys given, want one or two (RSA and Ed25519, RFC 8463)", len(keys))
	}
	d := &DKIM{Domain: domain}
	for i, k := range keys {
		if !isDNSLabels(k.Selector) {
			return nil, fmt.Errorf("DKIM selector %q is not made of DNS labels (RFC 6376 section 3.1)", k.Selector)
		}
		if i > 0 && strings.EqualFold(k.Selector, keys[0].Selector) {
			return nil, fmt.Errorf("DKIM: both keys under selector %q; a selector publishes one key, give each its own", k.Selector)
		}
		key, err := ParseDKIMKey(k.PEM)
		if err != nil {
			return nil, err
		}
		d.keys = append(d.keys, dkim.SignOptions{
			Domain: domain, Selector: k.Selector, Signer: key,
			// relaxed/relaxed (RFC 6376 section 3.4.2 and 3.4.4): a relay
			// may refold header fields or touch white space at line ends
			// without breaking the signature.
			HeaderCanonicalization: dkim.CanonicalizationRelaxed,
			BodyCanonicalization:   dkim.CanonicalizationRelaxed,
			HeaderKeys:             dkimHeaders,
		})
	}
	// A first signature checks that each key signs.
	if _, err := d.sign([]byte("From: a@" + domain + "\r\n\r\n")); err != nil {
		return nil, fmt.Errorf("DKIM: signing with the key: %w", err)
	}
	return d, nil
}

// ParseDKIMKey reads a PEM private key DKIM can sign with: RSA of at least
// 1024 bits (RFC 8301 section 3.2) or Ed25519 (RFC 8463).
func ParseDKIMKey(keyPEM []byte) (crypto.Signer, error) {
	key, err := gomail.PrivKeyFromPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("DKIM private key: %w", err)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < 1024 {
			return nil, fmt.Errorf("DKIM RSA key of %d bits: at least 1024 are required (RFC 8301 section 3.2), 2048 recommended", k.N.BitLen())
		}
		k.Precompute()
	case ed25519.PrivateKey:
	default:
		return nil, fmt.Errorf("DKIM private key of type %T: only RSA and Ed25519 are defined (RFC 8301, RFC 8463)", key)
	}
	return key, nil
}

// isDNSLabels reports whether s is dot-separated letters, digits, hyphens
// and underscores.
func isDNSLabels(s string) bool {
	if s == "" || len(s) > 253 || strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".") || strings.Contains(s, "..") {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

var errNoBody = errors.New("message has no header/body separator")

// sign returns the DKIM-Signature fields (each with its CRLF, one per key)
// for a whole message, not dot-stuffed.
func (d *DKIM) sign(msg []byte) ([]byte, error) {
	if !bytes.Contains(msg, []byte("\r\n\r\n")) {
		return nil, errNoBody
	}
	var out []byte
	for i := range d.keys {
		s, err := dkim.NewSigner(&d.keys[i])
		if err != nil {
			return nil, fmt.Errorf("DKIM sign: %w", err)
		}
		_, err = s.Write(msg)
		if cerr := s.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("DKIM sign with selector %s: %w", d.keys[i].Selector, err)
		}
		out = append(out, s.Signature()...)
	}
	return out, nil
}

// signMsg adds the DKIM-Signature fields (RFC 6376) to msg. go-mail's own
// signer folds a long h= tag inside a token, which breaks the signature
// under relaxed canonicalization, so the message is written once and signed
// with go-msgauth; the fields are then set preformatted, and go-mail
// writes the same bytes again around them: the MIME boundary is kept from
// the first write, and the Date and Message-ID are set, not generated.
// A header field's position does not matter to a verifier (RFC 6376
// section 5.4.2 picks fields by name), so go-mail may put them anywhere.
func signMsg(msg *gomail.Msg, d *DKIM) error {
	var buf bytes.Buffer
	if _, err := msg.WriteTo(&buf); err != nil {
		return fmt.Errorf("writing message to sign: %w", err)
	}
	sig, err := d.sign(buf.Bytes())
	if err != nil {
		return err
	}
	// One preformatted value holds every signature: go-mail keeps one value
	// per field name, and two keys make two DKIM-Signature fields. The
	// value is go-msgauth's own output, CRLF-separated fields.
	const name = "DKIM-Signature: "
	v := strings.TrimSuffix(strings.TrimPrefix(string(sig), name), "\r\n")
	msg.SetGenHeaderPreformatted("DKIM-Signature", v)
	return nil
}

// SignParts signs the message laid out in m (by Prepared.AppendParts) and
// puts the DKIM-Signature fields first. The signature is over the message
// as the receiver sees it, so the dot-stuffing of the parts is undone for
// the signer (RFC 5321 section 4.5.2).
//
// The message put together for the signer is a scratch buffer, given back
// once signed: a connection holds many messages ready to send (a lease), and
// a whole copy of each would multiply the memory of a send by their number.
func (d *DKIM) SignParts(m *Parts) error {
	buf := plainBufs.Get().(*[]byte)
	defer plainBufs.Put(buf)
	plain := (*buf)[:0]
	for _, p := range m.Data {
		plain = append(plain, p...)
	}
	plain = unstuffData(plain)
	*buf = plain
	sig, err := d.sign(plain)
	if err != nil {
		return err
	}
	// The signature fields never start a line with ".": no stuffing.
	m.Data = append(m.Data, nil)
	copy(m.Data[1:], m.Data)
	m.Data[0] = sig
	return nil
}

// plainBufs are SignParts' scratch buffers.
var plainBufs = sync.Pool{New: func() any { return new([]byte) }}

// unstuffData removes the dot added to each line that starts with one
// (RFC 5321 section 4.5.2), in place.
func unstuffData(b []byte) []byte {
	out, start := b[:0], 0
	if bytes.HasPrefix(b, []byte("..")) {
		start = 1
	}
	for {
		j := bytes.Index(b[start:], []byte("\n.."))
		if j < 0 {
			return append(out, b[start:]...)
		}
		// Writing never overtakes reading: append moves overlapping bytes.
		out = append(out, b[start:start+j+1]...)
		start += j + 2
	}
}

// DKIMRecord is the DNS TXT record value that publishes pub, an RSA or
// Ed25519 public key, for verifiers (RFC 6376 section 3.6.1; RFC 8463
// section 4.2: an Ed25519 key is its 32 bytes, not a SubjectPublicKeyInfo).
func DKIMRecord(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			return "", fmt.Errorf("DKIM record: %w", err)
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der), nil
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(k), nil
	}
	return "", fmt.Errorf("DKIM record: public key of type %T: only RSA and Ed25519 are defined", pub)
}
