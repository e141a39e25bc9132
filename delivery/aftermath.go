package delivery

import (
	"context"
	"fmt"
	"time"
)

// UnsubscribedAfter counts the edition's recipients who were sent it and
// unsubscribed within window of its send's start, however they did (a
// link, one-click, mailto, a complaint): the plainest sign of how an
// edition was received.
func (q *Queue) UnsubscribedAfter(ctx context.Context, editionID int64, window time.Duration) (int64, error) {
	var n int64
	err := q.DB.GetContext(ctx, &n, `
		SELECT count(DISTINCT c.subscriber_id)
		FROM editions e
		JOIN consents c ON c.action = 'unsubscribe'
		     AND c.created_at >= e.send_started_at
		     AND c.created_at < e.send_started_at + $2 * interval '1 microsecond'
		JOIN deliveries d ON d.subscriber_id = c.subscriber_id AND d.edition_id = e.id
		     AND d.send_month = e.send_month AND d.status = 'sent'
		WHERE e.id = $1`, editionID, window.Microseconds())
	if err != nil {
		return 0, fmt.Errorf("count unsubscribes after the send: %w", err)
	}
	return n, nil
}
