package delivery

import (
	"context"
	"fmt"
	"strings"
	"unicode"

	"github.com/jmoiron/sqlx"
)

// ErasedReply replaces the SMTP replies kept with an erased person's
// deliveries: servers often quote the recipient's address in them
// ("550 5.1.1 <ann@example.com>: user unknown"). The reply code and
// enhanced code stay, so the record still says what happened.
const ErasedReply = "reply removed: the subscriber was erased"

// erasedAddress stands for the person's address where a text about more
// than them (an edition's pause reason) quoted it.
const erasedAddress = "[erased address]"

// Forgotten says what ForgetRecipient changed.
type Forgotten struct {
	Replies      int64 // deliveries whose SMTP reply was replaced
	PauseReasons int64 // editions whose pause reason quoted the address
}

// ForgetRecipient removes what the delivery records say about one person,
// for their erasure (GDPR art. 17), inside the caller's transaction so the
// erasure is all or nothing:
//
//   - the SMTP replies of their deliveries become ErasedReply;
//   - the address is cut out of any edition's pause reason, which quotes
//     the reply that made a send pause (editions belongs to package
//     edition, but the pause reasons are this package's words).
//
// The rest of a delivery (edition, status, attempts, times, codes) stays:
// it names the subscriber only by id, whose row the erasure empties.
func ForgetRecipient(ctx context.Context, ex sqlx.ExecerContext, subscriberID int64, email string) (Forgotten, error) {
	var f Forgotten
	r, err := ex.ExecContext(ctx, `UPDATE deliveries SET smtp_reply = $2, updated_at = now()
		WHERE subscriber_id = $1 AND smtp_reply IS NOT NULL AND smtp_reply <> $2`, subscriberID, ErasedReply)
	if err != nil {
		return f, fmt.Errorf("forget the SMTP replies of subscriber %d: %w", subscriberID, err)
	}
	f.Replies, _ = r.RowsAffected()
	if email == "" {
		return f, nil
	}
	r, err = ex.ExecContext(ctx, `UPDATE editions SET pause_reason = regexp_replace(pause_reason, $1, $2, 'gi')
		WHERE pause_reason ~* $1`, literalPattern(email), erasedAddress)
	if err != nil {
		return f, fmt.Errorf("forget subscriber %d in pause reasons: %w", subscriberID, err)
	}
	f.PauseReasons, _ = r.RowsAffected()
	return f, nil
}

// literalPattern is a PostgreSQL regular expression matching s literally: in
// an ARE, a backslash before a character that is not a letter or digit
// makes it stand for itself (PostgreSQL manual, "Regular Expression
// Escapes"), and letters and
// digits already do.
func literalPattern(s string) string {
	var b strings.Builder
	for _, r := range s {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
