// Package bounces reads what comes back after a send (delivery status
// notifications, complaint feedback reports, auto-replies, mailto
// unsubscribes), ties each to the delivery it is about, and acts on it by
// one policy, whatever way it came back.
package bounces

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"hash"
	"strings"
	"sync"
)

// VERP makes and reads the per-recipient envelope senders (variable
// envelope return path): bounces+TOKEN@Domain, where TOKEN names one
// delivery. A bounce goes to the envelope sender (RFC 5321 section 4.5.5),
// so the address it comes to says which delivery failed, whatever the
// bounce's own text says or leaves out.
//
// TOKEN is the delivery's id and a MAC of it, so that nobody can make one
// for a delivery they were not sent: 8 bytes of id (big-endian) and the
// first 12 bytes (96 bits) of HMAC-SHA256 of them under a key derived from
// the server secret, 20 bytes in base32, lower case without padding: 32
// characters, a local part of 40, under the 64 RFC 5321 section 4.5.3.1.1
// allows. Base32 in lower case because some relays lower-case local parts,
// and a token must survive that. The id alone finds the row: ids come from
// one sequence across the partitions of deliveries.
//
// A VERP is safe for concurrent use.
type VERP struct {
	key    []byte
	domain string
	macs   sync.Pool // of *macState: a message's MAC costs no allocation
}

// macState is one HMAC and the buffer it reads from and sums into: both on
// the heap already, so that passing them to the hash.Hash interface does
// not move a stack buffer there at every message.
type macState struct {
	h   hash.Hash
	buf [sha256.Size]byte
}

// VERPLocal is the local part's prefix of the envelope senders.
const VERPLocal = "bounces"

// UnsubscribeLocal is the local part's prefix of the mailto unsubscribe
// addresses (unsubscribe+TOKEN@domain, TOKEN the one-click link's).
const UnsubscribeLocal = "unsubscribe"

const (
	idLen    = 8
	macLen   = 12
	rawLen   = idLen + macLen
	TokenLen = 32 // base32 of rawLen bytes
)

var tokenEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewVERP makes envelope senders in domain, their tokens keyed with key
// (subscribers.Tokens.Derive("verp"): a key for this use alone).
func NewVERP(key []byte, domain string) *VERP {
	v := &VERP{key: append([]byte(nil), key...), domain: strings.ToLower(domain)}
	v.macs.New = func() any { return &macState{h: hmac.New(sha256.New, v.key)} }
	return v
}

// Domain is the bounce domain the addresses are in.
func (v *VERP) Domain() string { return v.domain }

// sum puts the raw token of id into raw.
func (v *VERP) sum(raw *[rawLen]byte, id int64) {
	binary.BigEndian.PutUint64(raw[:idLen], uint64(id))
	m := v.macs.Get().(*macState)
	m.h.Reset()
	copy(m.buf[:], raw[:idLen])
	m.h.Write(m.buf[:idLen])
	copy(raw[idLen:], m.h.Sum(m.buf[:0]))
	v.macs.Put(m)
}

// AppendAddress appends the envelope sender of delivery id to dst.
func (v *VERP) AppendAddress(dst []byte, id int64) []byte {
	var raw [rawLen]byte
	v.sum(&raw, id)
	dst = append(dst, VERPLocal+"+"...)
	dst = tokenEncoding.AppendEncode(dst, raw[:])
	dst = append(dst, '@')
	return append(dst, v.domain...)
}

// Address is the envelope sender of delivery id.
func (v *VERP) Address(id int64) string { return string(v.AppendAddress(nil, id)) }

// ErrBadToken is the error of a VERP token that is not one of ours: made
// up, cut short, or made under another secret.
var ErrBadToken = errors.New("not a valid VERP token")

// Delivery checks a VERP token and returns the delivery id it names. The
// MAC is compared in constant time.
func (v *VERP) Delivery(token string) (int64, error) {
	if len(token) != TokenLen {
		return 0, ErrBadToken
	}
	var raw [rawLen]byte
	n, err := tokenEncoding.Decode(raw[:], []byte(strings.ToLower(token)))
	if err != nil || n != rawLen {
		return 0, ErrBadToken
	}
	var want [rawLen]byte
	id := int64(binary.BigEndian.Uint64(raw[:idLen]))
	v.sum(&want, id)
	if subtle.ConstantTimeCompare(raw[idLen:], want[idLen:]) != 1 || id <= 0 {
		return 0, ErrBadToken
	}
	return id, nil
}

// Recipient is what an address of the bounce domain is for.
type Recipient struct {
	Kind  RecipientKind
	Token string // the part after the '+'
}

// RecipientKind tells the bounce domain's addresses apart.
type RecipientKind int

const (
	NotOurs       RecipientKind = iota // another domain or local part: refused (never a relay)
	ToVERP                             // bounces+TOKEN@: a bounce or a complaint
	ToUnsubscribe                      // unsubscribe+TOKEN@: the List-Unsubscribe mailto
)

// Classify tells what an RCPT TO address is for. Only the two forms above,
// in the bounce domain, with a token of a plausible length, are ours; the
// token itself is checked when the message is handled.
func (v *VERP) Classify(addr string) Recipient {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || !strings.EqualFold(addr[at+1:], v.domain) {
		return Recipient{}
	}
	prefix, token, ok := strings.Cut(addr[:at], "+")
	if !ok || token == "" || len(token) > 64 {
		return Recipient{}
	}
	switch {
	case strings.EqualFold(prefix, VERPLocal):
		return Recipient{Kind: ToVERP, Token: token}
	case strings.EqualFold(prefix, UnsubscribeLocal):
		return Recipient{Kind: ToUnsubscribe, Token: token}
	}
	return Recipient{}
}
