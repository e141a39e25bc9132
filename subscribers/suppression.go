package subscribers

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lib/pq"
)

// Reason is why an address is on the suppression list.
type Reason string

const (
	ReasonErased     Reason = "erased"     // the person's data was erased on request: only a keyed hash is kept
	ReasonBounced    Reason = "bounced"    // the mailbox does not exist (a hard bounce)
	ReasonComplained Reason = "complained" // the person reported the mail as spam
	ReasonManual     Reason = "manual"     // put there by someone running the list
)

// ParseReason accepts the reasons an operator may give; erased is not one:
// only an erasure puts it there.
func ParseReason(s string) (Reason, error) {
	switch r := Reason(s); r {
	case ReasonBounced, ReasonComplained, ReasonManual:
		return r, nil
	}
	return "", fmt.Errorf("reason %q: want manual, bounced or complained", s)
}

// MaxNote bounds the note kept with a suppression, as the column's CHECK:
// with its reason it fits the consent record's 200-character detail.
const MaxNote = 180

// Suppression is one entry of the suppression list.
type Suppression struct {
	// Email is the address; empty for an erasure, which keeps only a hash.
	Email string `json:"email,omitempty"`
	// Hash starts the keyed hash of the address, to tell erasures apart.
	Hash   string    `json:"hash"`
	Reason Reason    `json:"reason"`
	Note   string    `json:"note,omitempty"`
	At     time.Time `json:"at"`
	// Subscriber is a bounced subscriber's id: one the send marked bounced
	// (its status), listed here as suppressed because no send mails it.
	Subscriber int64 `json:"subscriber,omitempty"`
}

// Suppressed is what Suppress did.
type Suppressed struct {
	// Added is false when the address was already on the list (the entry
	// there is kept: an erasure stays an erasure).
	Added bool
	// Subscriber is the id of the subscriber with that address, 0 if none;
	// Stopped tells whether it was confirmed or pending and is now out of
	// every send.
	Subscriber int64
	Stopped    bool
}

const insertSuppression = `
INSERT INTO suppressions (email_hash, reason, email, note) VALUES ($1, $2, $3, $4)
ON CONFLICT (email_hash) DO NOTHING`

// stopSubscriber takes a suppressed subscriber out of every send: a bounced
// address is marked bounced, any other unsubscribed. A send under way skips
// them, as it skips anyone who leaves mid-send (the lease reads the status).
const stopSubscriber = `
UPDATE subscribers SET
    status = CASE WHEN $2 = 'bounced' THEN 'bounced' ELSE 'unsubscribed' END,
    unsubscribed_at = coalesce(unsubscribed_at, now()), updated_at = now()
WHERE id = $1 AND status IN ('pending', 'confirmed')`

// Suppress puts an address on the suppression list: no send, import or
// `subscribers add` mails or adds it again, and its subscriber, if any, is
// taken out of every send. Only the person can come back, by signing up on
// the form and confirming (double opt-in), which lifts the suppression.
func (s *Store) Suppress(ctx context.Context, email string, reason Reason, note string, src Source) (*Suppressed, error) {
	addr, err := NormalizeAddress(email)
	if err != nil {
		return nil, err
	}
	if _, err := ParseReason(string(reason)); err != nil {
		return nil, err
	}
	if err := checkNote(note); err != nil {
		return nil, err
	}
	tx, err := s.DB.BeginTxx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("suppress: begin: %w", err)
	}
	defer tx.Rollback()
	var sub Subscriber
	switch err := tx.GetContext(ctx, &sub, lockSubscriberByEmail, addr); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return nil, fmt.Errorf("suppress: find subscriber: %w", err)
	default:
		addr = sub.Email // as the list spells it (the hash ignores case)
	}
	r, err := tx.ExecContext(ctx, insertSuppression, s.Tokens.AddressHash(addr), reason, addr, note)
	if err != nil {
		return nil, fmt.Errorf("suppress: %w", err)
	}
	n, _ := r.RowsAffected()
	res := &Suppressed{Added: n == 1, Subscriber: sub.ID}
	if sub.ID != 0 {
		r, err := tx.ExecContext(ctx, stopSubscriber, sub.ID, reason)
		if err != nil {
			return nil, fmt.Errorf("suppress subscriber %d: %w", sub.ID, err)
		}
		n, _ := r.RowsAffected()
		res.Stopped = n == 1
		if err := s.recordConsent(ctx, tx, sub.ID, addr, ActionSuppress, src, consentDetail(reason, note)); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("suppress: commit: %w", err)
	}
	return res, nil
}

// Unsuppress takes an address off the suppression list, under every form
// it may be kept (see hashForms), erasures included. It does not mail the
// person nor make them confirmed again: they come back only by confirming
// a sign-up, and an import can now add them back. It tells whether the
// address was on the list.
func (s *Store) Unsuppress(ctx context.Context, email string, src Source) (bool, error) {
	addr := LookupForm(email)
	tx, err := s.DB.BeginTxx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("unsuppress: begin: %w", err)
	}
	defer tx.Rollback()
	r, err := tx.ExecContext(ctx, `DELETE FROM suppressions WHERE email_hash = ANY($1::bytea[])`, pq.ByteaArray(s.suppressionKeys(addr)))
	if err != nil {
		return false, fmt.Errorf("unsuppress: %w", err)
	}
	n, _ := r.RowsAffected()
	if n == 0 {
		return false, nil
	}
	var sub Subscriber
	switch err := tx.GetContext(ctx, &sub, lockSubscriberByEmail, addr); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return false, fmt.Errorf("unsuppress: find subscriber: %w", err)
	default:
		if err := s.recordConsent(ctx, tx, sub.ID, addr, ActionUnsuppress, src, ""); err != nil {
			return false, err
		}
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("unsuppress: commit: %w", err)
	}
	return true, nil
}

// listSuppressions is the list: its entries, then the subscribers a send
// marked bounced whose address is not on it under its own entry.
const listSuppressions = `
SELECT coalesce(email, '') AS email, email_hash, reason, note, created_at, 0 AS subscriber
FROM suppressions
UNION ALL
SELECT email, ''::bytea, 'bounced', '', updated_at, id
FROM subscribers s
WHERE status = 'bounced' AND NOT EXISTS (SELECT 1 FROM suppressions p WHERE p.email = s.email)
ORDER BY 5, 1`

// EachSuppression calls fn for every entry of the suppression list, oldest
// first, streaming the rows.
func (s *Store) EachSuppression(ctx context.Context, fn func(Suppression) error) error {
	rows, err := s.DB.QueryContext(ctx, listSuppressions)
	if err != nil {
		return fmt.Errorf("list suppressions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e Suppression
		var hash []byte
		if err := rows.Scan(&e.Email, &hash, &e.Reason, &e.Note, &e.At, &e.Subscriber); err != nil {
			return fmt.Errorf("list suppressions: %w", err)
		}
		if len(hash) > 0 {
			e.Hash = hex.EncodeToString(hash[:6])
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list suppressions: %w", err)
	}
	return nil
}

// checkNote refuses a note the list can't keep on one line.
func checkNote(note string) error {
	switch {
	case !utf8.ValidString(note):
		return errors.New("note: not valid UTF-8")
	case len(note) > MaxNote:
		return fmt.Errorf("note: %d bytes, at most %d", len(note), MaxNote)
	case strings.ContainsAny(note, "\r\n"):
		return errors.New("note: contains a line break")
	}
	return nil
}

func consentDetail(reason Reason, note string) string {
	if note == "" {
		return string(reason)
	}
	return string(reason) + ": " + note
}
