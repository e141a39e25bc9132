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
}

const subscriberColumns = `id, uuid, email, name, status, created_at, updated_at, confirmed_at, unsubscribed_at`

const insertSubscriber = `
INSERT INTO subscribers (uuid, email, name, status, unsub_token_hash, confirmed_at, unsubscribed_at)
VALUES ($1, $2, $3, $4, $5,
        CASE WHEN $4 = 'confirmed' THEN now() END,
        CASE WHEN $4 = 'unsubscribed' THEN now() END)
RETURNING ` + subscriberColumns

// Add puts a new person on the list. It returns ErrExists if the address is
// already there.
func (s *Store) Add(ctx context.Context, email, name string, status Status) (*Subscriber, error) {
	addr, err := NormalizeAddress(email)
	if err != nil {
		return nil, err
	}
	id := newUUID()
	var sub Subscriber
	err = s.DB.GetContext(ctx, &sub, insertSubscriber, id, addr, CleanName(name), status, HashToken(s.Tokens.Unsubscribe(id)))
	var pqErr *pq.Error
	if errors.As(err, &pqErr) && pqErr.Code == "23505" {
		return nil, fmt.Errorf("add subscriber: %w", ErrExists)
	}
	if err != nil {
		return nil, fmt.Errorf("add subscriber: %w", err)
	}
	return &sub, nil
}

// Get returns the subscriber with the given id.
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

// ByEmail returns the subscriber with that address (case-insensitive).
func (s *Store) ByEmail(ctx context.Context, email string) (*Subscriber, error) {
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

// Unsubscribe marks the subscriber unsubscribed. It is idempotent, and
// effective at once: the send skips anyone no longer confirmed, even when
// they were already queued.
func (s *Store) Unsubscribe(ctx context.Context, id int64) error {
	_, err := s.DB.ExecContext(ctx, `UPDATE subscribers
		SET status = 'unsubscribed', unsubscribed_at = coalesce(unsubscribed_at, now()), updated_at = now()
		WHERE id = $1 AND status <> 'unsubscribed'`, id)
	if err != nil {
		return fmt.Errorf("unsubscribe %d: %w", id, err)
	}
	return nil
}

// UnsubscribeURL is the subscriber's List-Unsubscribe link under baseURL.
func (s *Store) UnsubscribeURL(baseURL, uuid string) string {
	return baseURL + "/u/" + s.Tokens.Unsubscribe(uuid)
}

// newUUID returns a random (version 4) UUID from crypto/rand.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
