package subscribers

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// What the reader pages do to the list: double opt-in sign-up, the
// confirmation and change-of-address tokens, resubscribing, changing a name.
// Every change of consent is written to the consent record in the same
// transaction as the change itself.

// Purpose is what a mailed token does when pressed.
type Purpose string

const (
	// PurposeConfirm confirms a sign-up or a resubscription.
	PurposeConfirm Purpose = "confirm"
	// PurposeChangeAddress moves a subscription to a new address, once
	// that address has shown it receives mail.
	PurposeChangeAddress Purpose = "change_address"
)

// ConfirmPolicy is how long confirmation links work and how many
// confirmation emails an address gets. The per-address limits are counted
// in the database, so they hold across processes and restarts, and they
// apply whoever asks: the form, a resubscribe or a change of address.
type ConfirmPolicy struct {
	TTL       time.Duration // a link works this long; default 7 days
	PerWindow int           // at most this many emails to one address per Window; default 3
	Window    time.Duration // default 24 hours
	Gap       time.Duration // and at least this long apart; default 1 minute
}

// Defaults of ConfirmPolicy.
const (
	DefaultConfirmTTL = 7 * 24 * time.Hour
	defaultPerWindow  = 3
	defaultWindow     = 24 * time.Hour
	defaultGap        = time.Minute
)

// WithDefaults is p with the defaults in place of zero values.
func (p ConfirmPolicy) WithDefaults() ConfirmPolicy {
	if p.TTL <= 0 {
		p.TTL = DefaultConfirmTTL
	}
	if p.PerWindow <= 0 {
		p.PerWindow = defaultPerWindow
	}
	if p.Window <= 0 {
		p.Window = defaultWindow
	}
	if p.Gap < 0 {
		p.Gap = 0
	} else if p.Gap == 0 {
		p.Gap = defaultGap
	}
	return p
}

// Mailing is a confirmation email to send: to whom, and the token its
// link carries. The token exists nowhere else: only its hash is stored.
type Mailing struct {
	SubscriberID int64
	Purpose      Purpose
	// To is the address to mail: the subscriber's, or the new one for a
	// change of address. There is no name: whoever typed the address in
	// the form typed the name too, and the owner hasn't confirmed it.
	To        string
	Token     string
	ExpiresAt time.Time
}

// SignUpResult says what a sign-up did. The page shows the same thing
// whatever it says: who is on the list is nobody's business.
type SignUpResult struct {
	SubscriberID int64
	// Outcome, for the log: "new", "pending", "returning" (had left or
	// bounced), "confirmed" (already on the list: nothing changes).
	Outcome string
	// Mailing is the confirmation email to send, nil when there is none:
	// the person is already confirmed, or the address had its share of
	// confirmation emails (ConfirmPolicy).
	Mailing *Mailing
}

var (
	// ErrTokenNotFound: no such token (mistyped, tampered with, or the
	// person was erased).
	ErrTokenNotFound = errors.New("token not found")
	// ErrTokenExpired: the token is older than ConfirmPolicy.TTL.
	ErrTokenExpired = errors.New("token expired")
	// ErrTokenUsed: the token was already pressed (or made void by a later
	// unsubscribe or confirmation).
	ErrTokenUsed = errors.New("token already used")
	// ErrAddressTaken: the new address of a change already has a
	// subscription of its own.
	ErrAddressTaken = errors.New("the address already has a subscription")
	// ErrSameAddress: the new address of a change is the current one.
	ErrSameAddress = errors.New("that is already the subscription's address")
)

const insertPending = `
INSERT INTO subscribers (uuid, email, name, status, unsub_token_hash)
VALUES ($1, $2, $3, 'pending', $4)
ON CONFLICT ((lower(email))) DO NOTHING
RETURNING ` + subscriberColumns

const lockSubscriberByEmail = `SELECT ` + subscriberColumns + ` FROM subscribers WHERE lower(email) = lower($1) FOR UPDATE`

const lockSubscriber = `SELECT ` + subscriberColumns + ` FROM subscribers WHERE id = $1 FOR UPDATE`

// SignUp records a sign-up from the form: double opt-in, so a new address
// is pending and gets a confirmation email; a pending one gets another; one
// that left or bounced gets a confirmation and stays as it is until it is
// pressed; a confirmed one is left alone and gets nothing. An address
// erased on request may sign up again this way: the confirmation is the
// person's own, fresh consent.
//
// The name is kept only for a new address: anyone may type any address in
// the form, so a sign-up of a known one must not change the name its owner
// (or an editor) gave.
//
// Concurrent sign-ups of one address are serialised on its row, so a
// double-submitted form makes one subscriber and one email.
func (s *Store) SignUp(ctx context.Context, email, name string, src Source) (SignUpResult, error) {
	var res SignUpResult
	addr, err := NormalizeAddress(email)
	if err != nil {
		return res, err
	}
	if err := CheckName(name); err != nil {
		return res, err
	}
	tx, err := s.DB.BeginTxx(ctx, nil)
	if err != nil {
		return res, fmt.Errorf("sign up: begin: %w", err)
	}
	defer tx.Rollback()

	id := newUUID()
	var sub Subscriber
	err = tx.GetContext(ctx, &sub, insertPending, id, addr, CleanName(name), HashToken(s.Tokens.Unsubscribe(id)))
	inserted := err == nil
	if errors.Is(err, sql.ErrNoRows) {
		// The address is known. ON CONFLICT waited for any transaction
		// inserting it to finish, so the row is there to lock.
		err = tx.GetContext(ctx, &sub, lockSubscriberByEmail, addr)
	}
	if err != nil {
		return res, fmt.Errorf("sign up: store subscriber: %w", err)
	}
	res.SubscriberID = sub.ID
	switch {
	case inserted:
		res.Outcome = "new"
	case sub.Status == Confirmed:
		res.Outcome = "confirmed"
	case sub.Status == Pending:
		res.Outcome = "pending"
	default:
		// Left or bounced: nothing changes until the link is pressed.
		res.Outcome = "returning"
	}
	if res.Mailing, err = s.signUpRecord(ctx, tx, &sub, src, res.Outcome == "confirmed"); err != nil {
		return res, err
	}
	if err := tx.Commit(); err != nil {
		return res, fmt.Errorf("sign up: commit: %w", err)
	}
	return res, nil
}

// signUpRecord writes a sign-up's consent entry and confirmation token.
// For a confirmed subscriber it does the same work and then undoes it
// (a savepoint rolled back): the form answers every address in the same
// time, so timing tells nobody who is subscribed.
func (s *Store) signUpRecord(ctx context.Context, tx *sqlx.Tx, sub *Subscriber, src Source, undo bool) (*Mailing, error) {
	if _, err := tx.ExecContext(ctx, `SAVEPOINT sign_up`); err != nil {
		return nil, fmt.Errorf("sign up: savepoint: %w", err)
	}
	if err := s.recordConsent(ctx, tx, sub.ID, sub.Email, ActionSignUp, src, "status="+string(sub.Status)); err != nil {
		return nil, err
	}
	m, err := s.newToken(ctx, tx, sub, PurposeConfirm, sub.Email)
	if err != nil {
		return nil, err
	}
	end := `RELEASE SAVEPOINT sign_up`
	if undo {
		end, m = `ROLLBACK TO SAVEPOINT sign_up`, nil
	}
	if _, err := tx.ExecContext(ctx, end); err != nil {
		return nil, fmt.Errorf("sign up: %s: %w", end, err)
	}
	return m, nil
}

// RequestConfirmation is "subscribe again" on the page of someone who left
// (or bounced): a confirmation email to their address. They stay as they
// are until they press it. A confirmed subscriber gets nothing (nil).
func (s *Store) RequestConfirmation(ctx context.Context, subscriberID int64, src Source) (*Mailing, error) {
	tx, err := s.DB.BeginTxx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("resubscribe: begin: %w", err)
	}
	defer tx.Rollback()
	var sub Subscriber
	if err := tx.GetContext(ctx, &sub, lockSubscriber, subscriberID); errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	} else if err != nil {
		return nil, fmt.Errorf("resubscribe %d: %w", subscriberID, err)
	}
	if sub.Status == Confirmed {
		return nil, tx.Commit()
	}
	if err := s.recordConsent(ctx, tx, sub.ID, sub.Email, ActionResubscribe, src, "status="+string(sub.Status)); err != nil {
		return nil, err
	}
	m, err := s.newToken(ctx, tx, &sub, PurposeConfirm, sub.Email)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("resubscribe %d: commit: %w", subscriberID, err)
	}
	return m, nil
}

// RequestAddressChange mails a link to newEmail that, when pressed, moves
// the subscription there: the old address stays until the new one has
// shown it receives mail. Whether newEmail already has a subscription of
// its own is not said here (only its owner learns it, on pressing the
// link). Nil means the address had its share of emails.
func (s *Store) RequestAddressChange(ctx context.Context, subscriberID int64, newEmail string) (*Mailing, error) {
	addr, err := NormalizeAddress(newEmail)
	if err != nil {
		return nil, err
	}
	tx, err := s.DB.BeginTxx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("change address: begin: %w", err)
	}
	defer tx.Rollback()
	var sub Subscriber
	if err := tx.GetContext(ctx, &sub, lockSubscriber, subscriberID); errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	} else if err != nil {
		return nil, fmt.Errorf("change address of %d: %w", subscriberID, err)
	}
	if strings.EqualFold(addr, sub.Email) {
		return nil, ErrSameAddress
	}
	m, err := s.newToken(ctx, tx, &sub, PurposeChangeAddress, addr)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("change address of %d: commit: %w", subscriberID, err)
	}
	return m, nil
}

// Confirmation says what pressing a token did.
type Confirmation struct {
	SubscriberID int64
	Purpose      Purpose
	Email        string // the subscription's address now
	// Already: the subscriber was already confirmed (a second link of the
	// same sign-up, say); nothing changed but the token is spent.
	Already bool
}

// ConfirmToken does what the token is for, once: it confirms the
// subscription (and voids the person's other confirmation links, so that a
// stale one can't bring them back after they leave again), or moves the
// subscription to the new address, refusing with ErrAddressTaken when that
// address has a subscription of its own.
func (s *Store) ConfirmToken(ctx context.Context, token string, src Source) (*Confirmation, error) {
	tx, err := s.DB.BeginTxx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("confirm: begin: %w", err)
	}
	defer tx.Rollback()
	t, err := findToken(ctx, tx, token, " FOR UPDATE OF t, s")
	if err != nil {
		return nil, err
	}
	res := &Confirmation{SubscriberID: t.SubscriberID, Purpose: t.Purpose, Email: t.Email}
	switch t.Purpose {
	case PurposeConfirm:
		r, err := tx.ExecContext(ctx, `UPDATE subscribers
			SET status = 'confirmed', confirmed_at = now(), unsubscribed_at = NULL, updated_at = now()
			WHERE id = $1 AND status <> 'confirmed'`, t.SubscriberID)
		if err != nil {
			return nil, fmt.Errorf("confirm subscriber %d: %w", t.SubscriberID, err)
		}
		n, _ := r.RowsAffected()
		res.Already = n == 0
	case PurposeChangeAddress:
		newEmail := *t.NewEmail
		_, err := tx.ExecContext(ctx, `UPDATE subscribers SET email = $2, updated_at = now() WHERE id = $1`, t.SubscriberID, newEmail)
		var pqErr *pq.Error
		if errors.As(err, &pqErr) && pqErr.Code == "23505" {
			return nil, ErrAddressTaken
		}
		if err != nil {
			return nil, fmt.Errorf("change address of subscriber %d: %w", t.SubscriberID, err)
		}
		res.Email = newEmail
	default:
		return nil, fmt.Errorf("token of subscriber %d has unknown purpose %q", t.SubscriberID, t.Purpose)
	}
	// The person has just asked, from the address, to be on the list: an
	// erasure's suppression of it no longer applies.
	if _, err := tx.ExecContext(ctx, `DELETE FROM suppressions WHERE email_hash = ANY($1::bytea[])`, pq.ByteaArray(s.suppressionKeys(res.Email))); err != nil {
		return nil, fmt.Errorf("confirm subscriber %d: lift suppression: %w", t.SubscriberID, err)
	}
	// Single use, and the person's other links of the same kind go with it.
	if _, err := tx.ExecContext(ctx, `UPDATE subscriber_tokens SET used_at = now()
		WHERE subscriber_id = $1 AND purpose = $2 AND used_at IS NULL`, t.SubscriberID, t.Purpose); err != nil {
		return nil, fmt.Errorf("spend tokens of subscriber %d: %w", t.SubscriberID, err)
	}
	action := ActionConfirm
	if t.Purpose == PurposeChangeAddress {
		action = ActionAddressChange
	}
	if !res.Already {
		if err := s.recordConsent(ctx, tx, t.SubscriberID, res.Email, action, src, "was="+string(t.Status)); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("confirm: commit: %w", err)
	}
	return res, nil
}

// ChangeName sets the subscriber's display name (cleaned by CleanName, so
// nothing in it can break a header).
func (s *Store) ChangeName(ctx context.Context, subscriberID int64, name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	_, err := s.DB.ExecContext(ctx, `UPDATE subscribers SET name = $2, updated_at = now() WHERE id = $1`, subscriberID, CleanName(name))
	if err != nil {
		return fmt.Errorf("change name of subscriber %d: %w", subscriberID, err)
	}
	return nil
}

// unsubscribeWithConsent unsubscribes, voids the person's pending
// confirmation links (pressing an old one later must not bring them back,
// also when they had asked to come back and changed their mind) and records
// it, in one statement; nothing is recorded when they had already left.
const unsubscribeWithConsent = `
WITH u AS (
    UPDATE subscribers
    SET status = 'unsubscribed', unsubscribed_at = coalesce(unsubscribed_at, now()), updated_at = now()
    WHERE id = $1 AND status <> 'unsubscribed'
    RETURNING id
), t AS (
    UPDATE subscriber_tokens SET used_at = now()
    WHERE subscriber_id = $1 AND purpose = 'confirm' AND used_at IS NULL
), c AS (
    INSERT INTO consents (subscriber_id, email_hash, action, method, ip, user_agent)
    SELECT id, $2, 'unsubscribe', $3, $4, $5 FROM u
)
SELECT count(*) FROM u`

// UnsubscribeBy unsubscribes sub, recording how. It is idempotent and
// effective at once (the send skips anyone no longer confirmed, even when
// already queued); it reports whether anything changed. The consent entry
// names the address sub was read with.
func (s *Store) UnsubscribeBy(ctx context.Context, sub *Subscriber, src Source) (bool, error) {
	var n int
	err := s.DB.GetContext(ctx, &n, unsubscribeWithConsent, sub.ID, s.Tokens.AddressHash(sub.Email), src.Method, ipParam(src.IP), cleanUserAgent(src.UserAgent))
	if err != nil {
		return false, fmt.Errorf("unsubscribe %d: %w", sub.ID, err)
	}
	return n > 0, nil
}
