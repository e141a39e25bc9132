package subscribers

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"
)

// Tokens makes and checks the tokens in a subscriber's links.
//
// The List-Unsubscribe link must work in every email ever sent (it never
// expires), yet the token may not be stored in the clear. So the token is
// derived, not stored: HMAC-SHA256 under the server secret (NEWSLETTER_SECRET,
// at least 256 bits from crypto/rand) of the subscriber's random UUID. The
// database keeps only SHA-256 of the token, to find the subscriber; someone
// who reads the database can't forge a link without the secret.
type Tokens struct {
	key []byte
}

// MinSecretLen is the shortest server secret accepted, in bytes.
const MinSecretLen = 32

// NewTokens uses secret as the HMAC key.
func NewTokens(secret []byte) (*Tokens, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("the secret is %d bytes, want at least %d (generate one with `newsletter secret`)", len(secret), MinSecretLen)
	}
	return &Tokens{key: append([]byte(nil), secret...)}, nil
}

const unsubscribePurpose = "list-unsubscribe\x00"

// Unsubscribe returns the subscriber's List-Unsubscribe token: 256 bits,
// URL-safe base64 without padding (43 characters).
func (t *Tokens) Unsubscribe(uuid string) string {
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte(unsubscribePurpose))
	m.Write([]byte(uuid))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkUnsubscribe tells, in constant time, whether token is uuid's token.
func (t *Tokens) checkUnsubscribe(uuid, token string) bool {
	return subtle.ConstantTimeCompare([]byte(t.Unsubscribe(uuid)), []byte(token)) == 1
}

// HashToken is what the database keeps of a token.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// Derive returns a key for another use of the server secret (the web
// pages' CSRF tokens, say), so that one secret can key several things
// without a value made for one being accepted by another.
func (t *Tokens) Derive(purpose string) []byte {
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte("derive\x00"))
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

const addressHashPurpose = "address-hash\x00"

// AddressHash is what the consent record and the suppression list keep of
// an address: HMAC-SHA256 under the server secret of the lower-cased
// address. Keyed rather than a plain SHA-256, so that a copy of the database
// alone can't confirm a guess that someone was on the list.
func (t *Tokens) AddressHash(email string) []byte {
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte(addressHashPurpose))
	m.Write([]byte(strings.ToLower(strings.TrimSpace(email))))
	return m.Sum(nil)
}

// tokenBytes is the randomness of a mailed token: 256 bits, twice the 128
// the confirmation link needs to be unguessable.
const tokenBytes = 32

// newRandomToken returns a fresh token from crypto/rand, URL-safe base64
// without padding (43 characters).
func newRandomToken() string {
	var b [tokenBytes]byte
	rand.Read(b[:]) // never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}
