package subscribers

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// The links mailed to a reader (confirmation, change of address): made
// under the per-address limit, looked up by their hash, pruned after expiry.

// tokenLockClass is the first key of the advisory locks that serialise the
// confirmation emails of one address (the two-key form, whose key space is
// apart from the migrations' one-key lock).
const tokenLockClass = 0x6e6c746b // "nltk"

const recentTokens = `
SELECT count(*) AS n,
       count(*) FILTER (WHERE created_at > now() - $3 * interval '1 second') AS recent
FROM subscriber_tokens
WHERE address_hash = $1 AND created_at > now() - $2 * interval '1 second'`

const insertToken = `
INSERT INTO subscriber_tokens (token_hash, subscriber_id, purpose, new_email, address_hash, expires_at)
VALUES ($1, $2, $3, $4, $5, now() + $6 * interval '1 second')
RETURNING expires_at`

// newToken makes a token for sub mailed to `to`, unless `to` had its share
// of emails (then nil). It holds a transaction-scoped advisory lock on the
// address while it counts and inserts, so two requests at once can't both
// pass the limit.
func (s *Store) newToken(ctx context.Context, tx *sqlx.Tx, sub *Subscriber, p Purpose, to string) (*Mailing, error) {
	pol := s.Confirm.WithDefaults()
	h := s.Tokens.AddressHash(to)
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, tokenLockClass, int32(binary.BigEndian.Uint32(h))); err != nil {
		return nil, fmt.Errorf("lock confirmation emails of subscriber %d: %w", sub.ID, err)
	}
	var c struct {
		N      int `db:"n"`
		Recent int `db:"recent"`
	}
	if err := tx.GetContext(ctx, &c, recentTokens, h, pol.Window.Seconds(), pol.Gap.Seconds()); err != nil {
		return nil, fmt.Errorf("count confirmation emails of subscriber %d: %w", sub.ID, err)
	}
	if c.N >= pol.PerWindow || c.Recent > 0 {
		return nil, nil
	}
	tok := newRandomToken()
	var newEmail any
	if p == PurposeChangeAddress {
		newEmail = to
	}
	m := &Mailing{SubscriberID: sub.ID, Purpose: p, To: to, Token: tok}
	if err := tx.GetContext(ctx, &m.ExpiresAt, insertToken, HashToken(tok), sub.ID, p, newEmail, h, pol.TTL.Seconds()); err != nil {
		return nil, fmt.Errorf("store %s token of subscriber %d: %w", p, sub.ID, err)
	}
	return m, nil
}

// TokenInfo is what a confirmation page shows before the button is pressed.
type TokenInfo struct {
	SubscriberID int64
	Purpose      Purpose
	Email        string  // the subscription's address now
	NewEmail     *string // for PurposeChangeAddress
	Status       Status
	ExpiresAt    time.Time
}

// The expiry is decided by the database's clock, the one that wrote
// expires_at.
const selectToken = `
SELECT t.token_hash, t.subscriber_id, t.purpose, t.new_email, t.expires_at, t.used_at,
       t.expires_at <= now() AS expired, s.email, s.status
FROM subscriber_tokens t JOIN subscribers s ON s.id = t.subscriber_id
WHERE t.token_hash = $1`

// tokenRow is TokenInfo as scanned (sqlx needs exported fields).
type tokenRow struct {
	Hash         []byte     `db:"token_hash"`
	SubscriberID int64      `db:"subscriber_id"`
	Purpose      Purpose    `db:"purpose"`
	NewEmail     *string    `db:"new_email"`
	ExpiresAt    time.Time  `db:"expires_at"`
	UsedAt       *time.Time `db:"used_at"`
	Expired      bool       `db:"expired"`
	Email        string     `db:"email"`
	Status       Status     `db:"status"`
}

// findToken looks the token up by its hash, then checks it against the
// stored hash in constant time, and says whether it can still be used.
func findToken(ctx context.Context, q sqlx.QueryerContext, token, suffix string) (*tokenRow, error) {
	if len(token) != 43 {
		return nil, ErrTokenNotFound
	}
	h := HashToken(token)
	var t tokenRow
	err := sqlx.GetContext(ctx, q, &t, selectToken+suffix, h)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrTokenNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("find token: %w", err)
	}
	if subtle.ConstantTimeCompare(t.Hash, h) != 1 {
		return nil, ErrTokenNotFound
	}
	switch {
	case t.UsedAt != nil:
		return &t, ErrTokenUsed
	case t.Expired:
		return &t, ErrTokenExpired
	}
	return &t, nil
}

// LookupToken tells what a mailed token would do, for the page whose
// button does it; it changes nothing (link scanners fetch links).
func (s *Store) LookupToken(ctx context.Context, token string) (*TokenInfo, error) {
	t, err := findToken(ctx, s.DB, token, "")
	if err != nil {
		return nil, err
	}
	return &TokenInfo{SubscriberID: t.SubscriberID, Purpose: t.Purpose, Email: t.Email, NewEmail: t.NewEmail, Status: t.Status, ExpiresAt: t.ExpiresAt}, nil
}

// PruneTokens deletes tokens that expired more than a day ago: they are
// kept that long after expiry only so the page can still say "expired"
// rather than "not valid", and the per-address limit never looks back past
// ConfirmPolicy.Window.
func (s *Store) PruneTokens(ctx context.Context) (int64, error) {
	pol := s.Confirm.WithDefaults()
	keep := max(24*time.Hour, pol.Window)
	r, err := s.DB.ExecContext(ctx, `DELETE FROM subscriber_tokens WHERE expires_at < now() - $1 * interval '1 second'`, keep.Seconds())
	if err != nil {
		return 0, fmt.Errorf("prune expired tokens: %w", err)
	}
	return r.RowsAffected()
}
