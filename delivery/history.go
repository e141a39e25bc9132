package delivery

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"
)

// Counts is how many deliveries of an edition are in each status.
type Counts struct {
	Queued, Sending, Sent, Failed, Skipped, Cancelled int64
	// FailedPermanent is the part of Failed the servers refused.
	FailedPermanent int64
}

// Total is the number of recipients the edition was queued for.
func (c Counts) Total() int64 {
	return c.Queued + c.Sending + c.Sent + c.Failed + c.Skipped + c.Cancelled
}

// Count tallies an edition's deliveries by status; once they are pruned
// (see Prune), the summary kept on the edition tells.
func (q *Queue) Count(ctx context.Context, editionID int64) (Counts, error) {
	var c Counts
	rows, err := q.DB.QueryContext(ctx, `
		SELECT status, coalesce(permanent, false), count(*) FROM deliveries
		WHERE `+ofEdition+` GROUP BY 1, 2`, editionID)
	if err != nil {
		return c, fmt.Errorf("count deliveries: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var st string
		var perm bool
		var n int64
		if err := rows.Scan(&st, &perm, &n); err != nil {
			return c, fmt.Errorf("count deliveries: %w", err)
		}
		switch st {
		case Queued:
			c.Queued += n
		case Sending:
			c.Sending += n
		case Sent:
			c.Sent += n
		case Failed:
			c.Failed += n
			if perm {
				c.FailedPermanent += n
			}
		case Skipped:
			c.Skipped += n
		case Cancelled:
			c.Cancelled += n
		}
	}
	if err := rows.Err(); err != nil {
		return c, fmt.Errorf("count deliveries: %w", err)
	}
	if c.Total() > 0 {
		return c, nil
	}
	s, err := q.Summary(ctx, editionID)
	if err != nil || s == nil {
		return c, err
	}
	return s.Counts, nil
}

// Failure is how many of an edition's deliveries failed with one SMTP reply
// code and enhanced status code (RFC 3463); the reply's text is not kept,
// since servers write the recipient's address into it.
type Failure struct {
	Code      int    `json:"code,omitempty"`
	Enhanced  string `json:"enhanced,omitempty"`
	Permanent bool   `json:"permanent"`
	Count     int64  `json:"count"`
}

// Summary is what an edition's send came to, kept when its deliveries are
// pruned.
type Summary struct {
	Counts
	Failures []Failure // the most frequent first, at most failuresKept
}

// failuresKept is how many kinds of failure a summary keeps.
const failuresKept = 20

// summarise writes the summary of every edition with deliveries in the
// partition named part (a name this package made), in the caller's
// transaction, replacing any earlier one.
const summarise = `
INSERT INTO delivery_summaries AS s (edition_id, queued, sending, sent, failed, failed_permanent, skipped, cancelled, failures)
SELECT c.edition_id, c.queued, c.sending, c.sent, c.failed, c.failed_permanent, c.skipped, c.cancelled,
       coalesce((SELECT jsonb_agg(jsonb_build_object('code', f.smtp_code, 'enhanced', f.smtp_enhanced,
                                                     'permanent', f.permanent, 'count', f.n) ORDER BY f.n DESC)
                 FROM (SELECT smtp_code, smtp_enhanced, coalesce(permanent, false) AS permanent, count(*) AS n
                       FROM %[1]s WHERE edition_id = c.edition_id AND status = 'failed'
                       GROUP BY 1, 2, 3 ORDER BY n DESC LIMIT %[2]d) f), '[]')
FROM (SELECT edition_id,
             count(*) FILTER (WHERE status = 'queued') AS queued,
             count(*) FILTER (WHERE status = 'sending') AS sending,
             count(*) FILTER (WHERE status = 'sent') AS sent,
             count(*) FILTER (WHERE status = 'failed') AS failed,
             count(*) FILTER (WHERE status = 'failed' AND permanent) AS failed_permanent,
             count(*) FILTER (WHERE status = 'skipped') AS skipped,
             count(*) FILTER (WHERE status = 'cancelled') AS cancelled
      FROM %[1]s GROUP BY edition_id) c
ON CONFLICT (edition_id) DO UPDATE SET queued = excluded.queued, sending = excluded.sending,
    sent = excluded.sent, failed = excluded.failed, failed_permanent = excluded.failed_permanent,
    skipped = excluded.skipped, cancelled = excluded.cancelled, failures = excluded.failures, summarised_at = now()`

// Summary returns the summary kept for the edition, nil if none: its
// deliveries are still there to tell.
func (q *Queue) Summary(ctx context.Context, editionID int64) (*Summary, error) {
	var r struct {
		Queued          int64  `db:"queued"`
		Sending         int64  `db:"sending"`
		Sent            int64  `db:"sent"`
		Failed          int64  `db:"failed"`
		FailedPermanent int64  `db:"failed_permanent"`
		Skipped         int64  `db:"skipped"`
		Cancelled       int64  `db:"cancelled"`
		Failures        []byte `db:"failures"`
	}
	err := q.DB.GetContext(ctx, &r, `
		SELECT queued, sending, sent, failed, failed_permanent, skipped, cancelled, failures
		FROM delivery_summaries WHERE edition_id = $1`, editionID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the delivery summary of edition %d: %w", editionID, err)
	}
	s := &Summary{Counts: Counts{Queued: r.Queued, Sending: r.Sending, Sent: r.Sent, Failed: r.Failed,
		FailedPermanent: r.FailedPermanent, Skipped: r.Skipped, Cancelled: r.Cancelled}}
	if err := json.Unmarshal(r.Failures, &s.Failures); err != nil {
		return nil, fmt.Errorf("read the delivery summary of edition %d: failures: %w", editionID, err)
	}
	return s, nil
}

// ErrPruned is what sending an edition again returns once its deliveries
// were pruned: with no record of who got it, everyone would get it twice.
var ErrPruned = errors.New("its deliveries were pruned (NEWSLETTER_RETENTION), so who got it is no longer known: it can't be sent again")

// refusePruned returns ErrPruned if the edition's deliveries were pruned:
// before the enqueue makes its month again, and in its transaction, which
// holds the edition's row lock that Prune also takes before dropping.
func refusePruned(ctx context.Context, tx sqlx.QueryerContext, editionID int64) error {
	var pruned bool
	err := sqlx.GetContext(ctx, tx, &pruned, `SELECT EXISTS (SELECT 1 FROM delivery_summaries WHERE edition_id = $1)`, editionID)
	if err != nil {
		return fmt.Errorf("look for a pruned history: %w", err)
	}
	if pruned {
		return ErrPruned
	}
	return nil
}

// partitionName is the deliveries partition of the month (YYYY-MM-01)
// (deliveries_partition in migration 0010 names them so).
func partitionName(month string) string {
	return "deliveries_" + month[:4] + "_" + month[5:7]
}
