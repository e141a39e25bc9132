package delivery

import (
	"context"
	"fmt"
	"time"
)

// RetryFailed puts an edition's temporary failures back in the queue with a
// fresh count of attempts; permanent refusals stay as they are. Subscribers
// who left since are skipped when their turn comes.
func (q *Queue) RetryFailed(ctx context.Context, editionID int64) (int64, error) {
	res, err := q.DB.ExecContext(ctx, `
		UPDATE deliveries SET status = 'queued', attempts = 0, next_attempt_at = now(), permanent = NULL, updated_at = now()
		WHERE `+ofEdition+` AND status = 'failed' AND NOT permanent`, editionID)
	if err != nil {
		return 0, fmt.Errorf("re-queue temporary failures: %w", err)
	}
	return res.RowsAffected()
}

// Undelivered is one recipient of an edition who has not (yet) got it.
type Undelivered struct {
	SubscriberID  int64      `db:"subscriber_id" json:"subscriber_id"`
	Email         string     `db:"email" json:"email"`
	Status        string     `db:"status" json:"status"`
	Permanent     *bool      `db:"permanent" json:"permanent,omitempty"`
	Attempts      int        `db:"attempts" json:"attempts"`
	Code          *int       `db:"smtp_code" json:"smtp_code,omitempty"`
	Enhanced      *string    `db:"smtp_enhanced" json:"smtp_enhanced,omitempty"`
	Reply         *string    `db:"smtp_reply" json:"reply,omitempty"`
	LastAttemptAt *time.Time `db:"last_attempt_at" json:"last_attempt_at,omitempty"`
	NextAttemptAt time.Time  `db:"next_attempt_at" json:"next_attempt_at"`
}

// EachUndelivered calls fn for every recipient of the edition not sent,
// with the reason, a page at a time in subscriber order.
func (q *Queue) EachUndelivered(ctx context.Context, editionID int64, fn func(Undelivered) error) error {
	var after int64
	for {
		var page []Undelivered
		err := q.DB.SelectContext(ctx, &page, `
			SELECT d.subscriber_id, s.email, d.status, d.permanent, d.attempts, d.smtp_code, d.smtp_enhanced,
			       d.smtp_reply, d.last_attempt_at, d.next_attempt_at
			FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
			WHERE d.`+ofEdition+` AND d.status <> 'sent' AND d.subscriber_id > $2
			ORDER BY d.subscriber_id LIMIT 1000`, editionID, after)
		if err != nil {
			return fmt.Errorf("list undelivered recipients: %w", err)
		}
		for _, u := range page {
			if err := fn(u); err != nil {
				return err
			}
		}
		if len(page) < 1000 {
			return nil
		}
		after = page[len(page)-1].SubscriberID
	}
}

// Finished counts the edition's deliveries given a final outcome (sent,
// failed, skipped) in the last window: a send's current rate, whichever
// workers run it.
func (q *Queue) Finished(ctx context.Context, editionID int64, window time.Duration) (int64, error) {
	var n int64
	err := q.DB.GetContext(ctx, &n, `
		SELECT count(*) FROM deliveries
		WHERE `+ofEdition+` AND status IN ('sent', 'failed', 'skipped') AND updated_at > now() - $2 * interval '1 microsecond'`,
		editionID, window.Microseconds())
	if err != nil {
		return 0, fmt.Errorf("count deliveries finished lately: %w", err)
	}
	return n, nil
}
