package mailer

import (
	"bytes"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"
	"sync"

	gomail "github.com/wneessen/go-mail"
)

// DKIM signs outgoing mail for a domain (RFC 6376), as Gmail and Yahoo
// require of bulk senders, and as RFC 8058 section 4 requires for one-click
// unsubscription: List-Unsubscribe and List-Unsubscribe-Post must be covered
// by a valid signature. go-mail's signer does the canonicalization and the
// signing; Build passes it to go-mail, and the bulk path (SignParts) calls
// it on the spliced message.
//
// A DKIM is safe for concurrent use once NewDKIM returned it.
type DKIM struct {
	Domain, Selector string
	signer           *gomail.DKIMSigner
}

// dkimHeaders are the fields signed: From (RFC 6376 section 5.4 requires
// it), what a reader sees, and List-Unsubscribe with List-Unsubscribe-Post
// (RFC 8058 section 4 requires both).
//
// No more than these, and no oversigning, because of go-mail v0.8.1: it
// folds a DKIM-Signature tag longer than a line in the middle of a token but
// signs the unfolded value, so under relaxed canonicalization (RFC 6376
// section 3.4.2: folds become spaces) a verifier sees a space the signer
// did not, and the signature fails. This h= tag is 74 characters, the most
// that fits on go-mail's 76-character line; the tests check every
// signature with an independent verifier (go-msgauth). For the same reason
// the domain and the selector are limited to 60 characters.
var dkimHeaders = []string{"From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post"}

const dkimMaxName = 60

// NewDKIM reads a PEM private key (RSA, PKCS #1 or #8, at least 1024 bits
// as RFC 8301 section 3.2 requires and 2048 recommended; or Ed25519, RFC
// 8463) for domain's selector, whose public key is published at
// selector._domainkey.domain.
func NewDKIM(domain, selector string, keyPEM []byte) (*DKIM, error) {
	if !isDNSLabels(domain) || len(domain) > dkimMaxName {
		return nil, fmt.Errorf("DKIM domain %q is not a domain name of at most %d characters", domain, dkimMaxName)
	}
	if !isDNSLabels(selector) || len(selector) > dkimMaxName {
		return nil, fmt.Errorf("DKIM selector %q is not made of DNS labels (RFC 6376 section 3.1) of at most %d characters", selector, dkimMaxName)
	}
	key, err := gomail.PrivKeyFromPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("DKIM private key: %w", err)
	}
	if k, ok := key.(*rsa.PrivateKey); ok && k.N.BitLen() < 1024 {
		return nil, fmt.Errorf("DKIM RSA key of %d bits: at least 1024 are required (RFC 8301 section 3.2), 2048 recommended", k.N.BitLen())
	}
	s := gomail.NewDKIMSigner(domain, selector, key)
	// relaxed/simple: headers may be refolded by a relay; the body is
	// quoted-printable with short lines, which relays leave alone.
	s.HeaderCanonicalization(gomail.CanonicalizationRelaxed)
	s.BodyCanonicalization(gomail.CanonicalizationSimple)
	s.SignHeaders(dkimHeaders...)
	d := &DKIM{Domain: domain, Selector: selector, signer: s}
	// A first signature checks the key and settles the signer's algorithm,
	// which it would otherwise set on first use (a data race when several
	// connections start at once).
	if _, err := s.Sign([]byte("From: a@"+domain+"\r\n"), []byte("\r\n")); err != nil {
		return nil, fmt.Errorf("DKIM: signing with the key: %w", err)
	}
	return d, nil
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

// signature returns the DKIM-Signature field (with its CRLF) for a whole
// message, not dot-stuffed.
func (d *DKIM) signature(msg []byte) ([]byte, error) {
	i := bytes.Index(msg, []byte("\r\n\r\n"))
	if i < 0 {
		return nil, errNoBody
	}
	sig, err := d.signer.Sign(msg[:i+2], msg[i+4:])
	if err != nil {
		return nil, fmt.Errorf("DKIM sign: %w", err)
	}
	return []byte(sig), nil
}

// SignParts signs the message laid out in m (by Prepared.AppendParts) and
// puts the DKIM-Signature field first. The signature is over the message
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
	sig, err := d.signature(plain)
	if err != nil {
		return err
	}
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
