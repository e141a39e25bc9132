package subscribers

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
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
