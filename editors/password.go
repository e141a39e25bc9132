package editors

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Argon2id's cost, OWASP's password storage advice for Argon2id (19 MiB of
// memory, two passes, one lane): about 30 ms a sign-in on one core, a
// guess costs an attacker with the table as much.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024 // KiB
	argonThreads = 1
	argonKeyLen  = 32
	saltLen      = 16
)

// Password length: NIST SP 800-63B section 5.1.1.2 asks for at least 8
// characters and room for 64; a desk's account sends to every reader, so
// 12, and argon2's input bounded.
const (
	MinPassword = 12
	MaxPassword = 256
)

// ErrBadPassword is the answer to a sign-in with a wrong password, and to
// one for an account that does not exist: the same answer for both.
var ErrBadPassword = errors.New("unknown account or wrong password")

// CheckPassword refuses a password too short or too long to keep.
func CheckPassword(pw string) error {
	n := utf8.RuneCountInString(pw)
	switch {
	case !utf8.ValidString(pw):
		return errors.New("the password is not valid UTF-8")
	case n < MinPassword:
		return fmt.Errorf("the password has %d characters; at least %d", n, MinPassword)
	case len(pw) > MaxPassword:
		return fmt.Errorf("the password is over %d bytes", MaxPassword)
	}
	return nil
}

// hashPassword returns the password's Argon2id hash (RFC 9106) in the PHC
// string format, with a random salt and its cost, so the cost can grow
// and old hashes still verify.
func hashPassword(pw string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// verifyPassword tells whether pw is the password of the PHC hash,
// comparing in constant time.
func verifyPassword(hash, pw string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var version int
	var memory uint32
	var time uint32
	var threads uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &memory, &time, &threads); err != nil || memory == 0 || time == 0 || threads == 0 {
		return false
	}
	enc := base64.RawStdEncoding
	salt, err1 := enc.DecodeString(parts[4])
	key, err2 := enc.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(key) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, time, memory, threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1
}

// dummyHash is verified against when the account does not exist, so a
// sign-in takes as long for an unknown account as for a wrong password.
var dummyHash = sync.OnceValue(func() string {
	h, err := hashPassword("not anyone's password at all")
	if err != nil {
		panic(err)
	}
	return h
})
