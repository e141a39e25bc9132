package subscribers

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// Store reads and writes the subscribers table.
type Store struct {
	DB     *sqlx.DB
	Tokens *Tokens
	// Confirm is how long confirmation links work and how many an address
	// gets; the zero value means the defaults.
	Confirm ConfirmPolicy
}

const subscriberColumns = `id, uuid, email, name, status, created_at, updated_at, confirmed_at, unsubscribed_at`

// insertSubscriber adds a person and records that an editor did, unless
// the address is suppressed (then it returns no row).
const insertSubscriber = `
WITH s AS (
    INSERT INTO subscribers (uuid, email, name, status, unsub_token_hash, confirmed_at, unsubscribed_at)
    SELECT $1, $2, $3, $4::text, $5,
           CASE WHEN $4::text = 'confirmed' THEN now() END,
           CASE WHEN $4::text = 'unsubscribed' THEN now() END
    WHERE NOT EXISTS (SELECT 1 FROM suppressions WHERE email_hash = ANY($7::bytea[]))
    RETURNING ` + subscriberColumns + `
), c AS (
    INSERT INTO consents (subscriber_id, email_hash, action, method, detail)
    SELECT id, $6, 'add', 'editor', 'status=' || status FROM s
)
SELECT * FROM s`

// Add puts a new person on the list, as an editor does (the consent record
// says so). It returns ErrExists if the address is already there and
// ErrSuppressed if it is on the suppression list.
func (s *Store) Add(ctx context.Context, email, name string, status Status) (*Subscriber, error) {
	addr, err := NormalizeAddress(email)
	if err != nil {
		return nil, err
	}
	if err := CheckName(name); err != nil {
		return nil, err
	}
	id := newUUID()
	var sub Subscriber
	err = s.DB.GetContext(ctx, &sub, insertSubscriber, id, addr, CleanName(name), status, HashToken(s.Tokens.Unsubscribe(id)),
		s.Tokens.AddressHash(addr), pq.ByteaArray(s.suppressionKeys(addr)))
	var pqErr *pq.Error
	if errors.As(err, &pqErr) && pqErr.Code == "23505" {
		return nil, fmt.Errorf("add subscriber: %w", ErrExists)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("add subscriber: %w", ErrSuppressed)
	}
	if err != nil {
		return nil, fmt.Errorf("add subscriber: %w", err)
	}
	return &sub, nil
}

// Get returns the subscriber with the given id. Unsubscribe uses it, and
// the editor's desk (issue 12) will, to open a subscriber.
func (s *Store) Get(ctx context.Context, id int64) (*Subscriber, error) {
	var sub Subscriber
	err := s.DB.GetContext(ctx, &sub, `SELECT `+subscriberColumns+` FROM subscribers WHERE id = $1`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get subscriber %d: %w", id, err)
	}
	return &sub, nil
}

// ByEmail returns the subscriber with that address, however it is spelt
// (case-insensitive, in its canonical form: NormalizeAddress).
func (s *Store) ByEmail(ctx context.Context, email string) (*Subscriber, error) {
	email = LookupForm(email)
	var sub Subscriber
	err := s.DB.GetContext(ctx, &sub, `SELECT `+subscriberColumns+` FROM subscribers WHERE lower(email) = lower($1)`, email)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get subscriber by address: %w", err)
	}
	return &sub, nil
}

// Page returns up to limit subscribers with id > afterID in id order, of one
// status or of all when status is empty: keyset pagination, so a list of any
// size is read a page at a time.
func (s *Store) Page(ctx context.Context, status Status, afterID int64, limit int) ([]Subscriber, error) {
	var subs []Subscriber
	err := s.DB.SelectContext(ctx, &subs, `SELECT `+subscriberColumns+` FROM subscribers
		WHERE id > $1 AND ($2 = '' OR status = $2) ORDER BY id LIMIT $3`, afterID, status, limit)
	if err != nil {
		return nil, fmt.Errorf("list subscribers after %d: %w", afterID, err)
	}
	return subs, nil
}

// Each calls fn for every subscriber of the status (all when empty), a page
// at a time.
func (s *Store) Each(ctx context.Context, status Status, fn func(Subscriber) error) error {
	var after int64
	for {
		page, err := s.Page(ctx, status, after, 1000)
		if err != nil {
			return err
		}
		for _, sub := range page {
			if err := fn(sub); err != nil {
				return err
			}
		}
		if len(page) < 1000 {
			return nil
		}
		after = page[len(page)-1].ID
	}
}

// ByUnsubscribeToken finds the subscriber a List-Unsubscribe token belongs
// to. The lookup is by the token's hash; the token is then checked against
// the one derived from the subscriber's UUID in constant time.
func (s *Store) ByUnsubscribeToken(ctx context.Context, token string) (*Subscriber, error) {
	if len(token) != 43 {
		return nil, ErrNotFound
	}
	var sub Subscriber
	err := s.DB.GetContext(ctx, &sub, `SELECT `+subscriberColumns+` FROM subscribers WHERE unsub_token_hash = $1`, HashToken(token))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("find subscriber by token: %w", err)
	}
	if !s.Tokens.checkUnsubscribe(sub.UUID, token) {
		return nil, ErrNotFound
	}
	return &sub, nil
}

// Unsubscribe marks the subscriber unsubscribed, as an editor does (the
// consent record says so; the reader pages use UnsubscribeBy). It is
// idempotent, and effective at once: the send skips anyone no longer
// confirmed, even when they were already queued. An unknown id is no error.
// Only tests call it today: it is kept for the editor's desk and API of
// issue 12, where an admin unsubscribes a person.
func (s *Store) Unsubscribe(ctx context.Context, id int64) error {
	sub, err := s.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("unsubscribe %d: %w", id, err)
	}
	_, err = s.UnsubscribeBy(ctx, sub, Source{Method: MethodEditor})
	return err
}

// UnsubscribeURL is the subscriber's List-Unsubscribe link under baseURL.
func (s *Store) UnsubscribeURL(baseURL, uuid string) string {
	return UnsubscribePrefix(baseURL) + s.Tokens.Unsubscribe(uuid)
}

// UnsubscribePrefix is what comes before the unsubscribe token in the
// one-click link: a sender that has the token already (for the mailto
// unsubscribe too) makes the link without computing it again.
func UnsubscribePrefix(baseURL string) string { return baseURL + "/u/" }

// newUUID returns a random (version 4) UUID from crypto/rand.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// LookupForm is the canonical form of an address typed to look someone up,
// or the address as typed when it has none (an erased placeholder, say).
func LookupForm(email string) string {
	if a, err := NormalizeAddress(email); err == nil {
		return a
	}
	return email
}

// suppressionKeys are the keyed hashes under which the canonical address
// addr may be on the suppression list (see hashForms).
func (s *Store) suppressionKeys(addr string) [][]byte {
	var keys [][]byte
	for _, f := range hashForms(addr) {
		keys = append(keys, s.Tokens.AddressHash(f))
	}
	return keys
}
