package subscribers

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lib/pq"

	"newsletter/delivery"
)

// A person's rights over what is kept about them: a copy of all of it
// (GDPR art. 15 and 20) and its erasure (art. 17).

// Export is everything kept about one person.
type Export struct {
	Subscriber *Subscriber `json:"subscriber"`
	// Consents is the consent record: the subscriber's entries and any
	// made under the address before it was theirs (a change of address).
	Consents []Consent `json:"consents"`
	// Tokens are the confirmation and change-of-address links mailed to
	// them (only hashes of the links themselves are kept).
	Tokens []TokenRecord `json:"tokens"`
	// Deliveries are the editions sent, or tried, to them.
	Deliveries []DeliveryRecord `json:"deliveries"`
	// Suppressed: the address is on the suppression list.
	Suppressed bool `json:"suppressed"`
	// Bounces are the bounces, complaints and mailto unsubscribes that came
	// back about them and were acted on, with their evidence.
	Bounces []BounceRecord `json:"bounces"`
}

// BounceRecord is one bounce event as kept (bounce_events, which package
// bounces writes): what came back, from where, with the server's status
// and diagnostic (no address in it).
type BounceRecord struct {
	Delivery   *int64    `db:"delivery_id" json:"delivery,omitempty"`
	Kind       string    `db:"kind" json:"kind"`
	Source     string    `db:"source" json:"source"`
	Status     string    `db:"status" json:"status,omitempty"`
	Diagnostic string    `db:"diagnostic" json:"diagnostic,omitempty"`
	ReceivedAt time.Time `db:"received_at" json:"received_at"`
}

// TokenRecord is a mailed link as kept.
type TokenRecord struct {
	Purpose   Purpose    `db:"purpose" json:"purpose"`
	NewEmail  *string    `db:"new_email" json:"new_email,omitempty"`
	CreatedAt time.Time  `db:"created_at" json:"created_at"`
	ExpiresAt time.Time  `db:"expires_at" json:"expires_at"`
	UsedAt    *time.Time `db:"used_at" json:"used_at"`
}

// DeliveryRecord is one edition's delivery to the person, as the
// deliveries table keeps it.
type DeliveryRecord struct {
	Edition   string     `db:"edition" json:"edition"`
	Status    string     `db:"status" json:"status"`
	Attempts  int        `db:"attempts" json:"attempts"`
	SentAt    *time.Time `db:"sent_at" json:"sent_at"`
	SMTPCode  *int       `db:"smtp_code" json:"smtp_code,omitempty"`
	SMTPReply *string    `db:"smtp_reply" json:"smtp_reply,omitempty"`
}

const exportConsents = `SELECT ` + consentColumns + ` FROM consents
WHERE subscriber_id = $1 OR email_hash = $2 ORDER BY id`

const exportTokens = `SELECT purpose, new_email, created_at, expires_at, used_at
FROM subscriber_tokens WHERE subscriber_id = $1 ORDER BY created_at`

// The deliveries table belongs to package delivery; this reads the columns
// of the foundation schema only, for the person's copy.
const exportDeliveries = `SELECT to_char(e.date, 'YYYY-MM-DD') AS edition, d.status, d.attempts, d.sent_at, d.smtp_code, d.smtp_reply
FROM deliveries d JOIN editions e ON e.id = d.edition_id
WHERE d.subscriber_id = $1 ORDER BY e.date`

// ExportPerson returns everything kept about the person with that address.
// ErrNotFound when there is no such subscriber (an erased address is not
// one: its personal data is gone).
func (s *Store) ExportPerson(ctx context.Context, email string) (*Export, error) {
	sub, err := s.ByEmail(ctx, email)
	if err != nil {
		return nil, err
	}
	x := &Export{Subscriber: sub, Consents: []Consent{}, Tokens: []TokenRecord{}, Deliveries: []DeliveryRecord{}, Bounces: []BounceRecord{}}
	h := s.Tokens.AddressHash(sub.Email)
	if err := s.DB.SelectContext(ctx, &x.Consents, exportConsents, sub.ID, h); err != nil {
		return nil, fmt.Errorf("export subscriber %d: consents: %w", sub.ID, err)
	}
	if err := s.DB.SelectContext(ctx, &x.Tokens, exportTokens, sub.ID); err != nil {
		return nil, fmt.Errorf("export subscriber %d: tokens: %w", sub.ID, err)
	}
	if err := s.DB.SelectContext(ctx, &x.Deliveries, exportDeliveries, sub.ID); err != nil {
		return nil, fmt.Errorf("export subscriber %d: deliveries: %w", sub.ID, err)
	}
	if err := s.DB.SelectContext(ctx, &x.Bounces, `SELECT delivery_id, kind, source, status, diagnostic, received_at
		FROM bounce_events WHERE subscriber_id = $1 ORDER BY received_at`, sub.ID); err != nil {
		return nil, fmt.Errorf("export subscriber %d: bounces: %w", sub.ID, err)
	}
	if err := s.DB.GetContext(ctx, &x.Suppressed, `SELECT EXISTS (SELECT 1 FROM suppressions WHERE email_hash = ANY($1::bytea[]))`, pq.ByteaArray(s.suppressionKeys(sub.Email))); err != nil {
		return nil, fmt.Errorf("export subscriber %d: suppression: %w", sub.ID, err)
	}
	return x, nil
}

// Erasure says what Erase did.
type Erasure struct {
	SubscriberID   int64
	TokensDeleted  int64
	ConsentsKept   int64 // entries kept as proof, IP and user agent removed
	SuppressedKeys int64 // addresses (keyed hashes) now on the suppression list
	RepliesRemoved int64 // SMTP replies of their deliveries replaced
	PauseReasons   int64 // editions' pause reasons the address was cut out of
}

// erasedEmail is the placeholder address an erased subscriber keeps, so the
// row (which deliveries refer to) stays valid and unique. .invalid is
// reserved never to resolve (RFC 2606 section 2).
const eraseSubscriber = `
UPDATE subscribers SET
    email = 'erased-' || id || '@invalid', name = '',
    status = 'unsubscribed', unsubscribed_at = coalesce(unsubscribed_at, now()),
    uuid = $2, unsub_token_hash = $3, updated_at = now()
WHERE id = $1`

// Erase removes the personal data of the person with that address (GDPR
// art. 17) and keeps what must stay:
//
//   - the subscriber row stays, since deliveries refer to it, with the
//     address replaced by erased-<id>@invalid, the name emptied, the status
//     unsubscribed and a new UUID, so the links in old emails stop working;
//   - their confirmation and change-of-address tokens are deleted;
//   - the consent record stays, as proof of consent (art. 7(1), and
//     art. 17(3)(e)), holding only keyed hashes of addresses, with the IP
//     and user agent removed;
//   - every address the subscription had (the keyed hashes in its consent
//     record) goes on the suppression list, so an import can't silently
//     re-add the person; they can still sign up on the form themselves;
//   - what the delivery records quote of them goes (delivery.ForgetRecipient,
//     which owns those tables' meaning): the SMTP replies of their
//     deliveries, which servers often write the address into, and the
//     address in any edition's pause reason. The deliveries themselves stay
//     (edition, outcome, codes, times), naming the person only by id.
func (s *Store) Erase(ctx context.Context, email string, src Source) (*Erasure, error) {
	tx, err := s.DB.BeginTxx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("erase: begin: %w", err)
	}
	defer tx.Rollback()
	var sub Subscriber
	if err := tx.GetContext(ctx, &sub, lockSubscriberByEmail, LookupForm(email)); errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	} else if err != nil {
		return nil, fmt.Errorf("erase: find subscriber: %w", err)
	}
	res := &Erasure{SubscriberID: sub.ID}
	// The erase entry is written first, so that the suppression below
	// covers the current address even when nothing else recorded it.
	if err := s.recordConsent(ctx, tx, sub.ID, sub.Email, ActionErase, Source{Method: src.Method}, ""); err != nil {
		return nil, err
	}
	id := newUUID()
	if _, err := tx.ExecContext(ctx, eraseSubscriber, sub.ID, id, HashToken(s.Tokens.Unsubscribe(id))); err != nil {
		return nil, fmt.Errorf("erase subscriber %d: %w", sub.ID, err)
	}
	r, err := tx.ExecContext(ctx, `DELETE FROM subscriber_tokens WHERE subscriber_id = $1`, sub.ID)
	if err != nil {
		return nil, fmt.Errorf("erase subscriber %d: tokens: %w", sub.ID, err)
	}
	res.TokensDeleted, _ = r.RowsAffected()
	r, err = tx.ExecContext(ctx, `INSERT INTO suppressions (email_hash, reason)
		SELECT DISTINCT email_hash, 'erased' FROM consents WHERE subscriber_id = $1
		ON CONFLICT (email_hash) DO NOTHING`, sub.ID)
	if err != nil {
		return nil, fmt.Errorf("erase subscriber %d: suppress: %w", sub.ID, err)
	}
	res.SuppressedKeys, _ = r.RowsAffected()
	r, err = tx.ExecContext(ctx, `UPDATE consents SET ip = NULL, user_agent = '' WHERE subscriber_id = $1 OR email_hash = $2`, sub.ID, s.Tokens.AddressHash(sub.Email))
	if err != nil {
		return nil, fmt.Errorf("erase subscriber %d: strip consent record: %w", sub.ID, err)
	}
	res.ConsentsKept, _ = r.RowsAffected()
	f, err := delivery.ForgetRecipient(ctx, tx, sub.ID, sub.Email)
	if err != nil {
		return nil, fmt.Errorf("erase subscriber %d: %w", sub.ID, err)
	}
	res.RepliesRemoved, res.PauseReasons = f.Replies, f.PauseReasons
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("erase subscriber %d: commit: %w", sub.ID, err)
	}
	return res, nil
}

// Suppressed tells whether the address is on the suppression list.
func (s *Store) Suppressed(ctx context.Context, email string) (bool, error) {
	r, err := s.SuppressedFor(ctx, email)
	return r != "", err
}

// SuppressedFor tells why the address is on the suppression list, "" when
// it is not.
func (s *Store) SuppressedFor(ctx context.Context, email string) (Reason, error) {
	var r []Reason
	err := s.DB.SelectContext(ctx, &r, `SELECT reason FROM suppressions WHERE email_hash = ANY($1::bytea[]) ORDER BY created_at LIMIT 1`, pq.ByteaArray(s.suppressionKeys(LookupForm(email))))
	if err != nil {
		return "", fmt.Errorf("check suppression list: %w", err)
	}
	if len(r) == 0 {
		return "", nil
	}
	return r[0], nil
}
