package delivery

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// span is what Queue.Span tells of an edition's queued deliveries.
type span struct {
	N  int64 `db:"n"`
	Lo int64 `db:"lo"`
	Hi int64 `db:"hi"`
}

// Span counts an edition's queued deliveries and tells the lowest and the
// highest id among them, through the partial index of queued rows (so it
// costs what is queued, whatever the table holds): a Run's feed starts
// leasing at a random place among them (see newFeed).
func (q *Queue) Span(ctx context.Context, editionID int64) (span, error) {
	var s span
	month, err := q.month(ctx, editionID)
	if errors.Is(err, errNotStarted) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("span of the queued deliveries: %w", err)
	}
	tx, err := q.DB.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return s, fmt.Errorf("span of the queued deliveries: %w", err)
	}
	defer tx.Rollback()
	// Right after the enqueue the statistics say most of the table is
	// queued, and the planner would scan all of it (every edition kept).
	if _, err := tx.ExecContext(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
		return s, fmt.Errorf("span of the queued deliveries: %w", err)
	}
	err = tx.GetContext(ctx, &s, `
		SELECT count(*) AS n, coalesce(min(id), 0) AS lo, coalesce(max(id), 0) AS hi
		FROM deliveries WHERE edition_id = $1 AND send_month = $2::date AND status = 'queued'`, editionID, month)
	if err != nil {
		return s, fmt.Errorf("span of the queued deliveries: %w", err)
	}
	return s, nil
}

// leaseJobs takes up to $3 due deliveries of the edition (whose send month
// is $6, so that one partition is read) with ids above $5, unless its send
// is paused, that no other worker holds (SKIP
// LOCKED: workers never wait on each other), marks them held by $2 until the
// lease expires, and counts the attempt now, before anything is dialled, so
// a crash mid-send still counts.
//
// The update finds the picked rows by primary key (= ANY of their ids), and
// joins nothing: on a small table the planner would hash a join with the
// CTE, or with subscribers, against a full scan of deliveries, whose cost is
// the table's, not the lease's (TestLeasePlan). The addresses are joined to
// the rows it returned.
const leaseJobs = `
WITH picked AS (
    SELECT id FROM deliveries
    WHERE edition_id = $1 AND send_month = $6::date AND status = 'queued' AND id > $5
      AND next_attempt_at <= now()
      AND NOT EXISTS (SELECT 1 FROM editions WHERE id = $1 AND paused_at IS NOT NULL)
    ORDER BY id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
),
leased AS (
    UPDATE deliveries d
    SET status = 'sending', lease_holder = $2,
        lease_expires_at = now() + make_interval(secs => $4),
        attempts = d.attempts + 1, last_attempt_at = now(), updated_at = now()
    WHERE d.send_month = $6::date AND d.id = ANY(ARRAY(SELECT id FROM picked))
    RETURNING d.id, d.subscriber_id, d.edition_id, d.message_id, d.attempts
)
SELECT d.id, d.subscriber_id, ` + messageID + ` AS message_id, d.attempts, s.uuid, s.email, s.name, s.status AS subscriber_status
FROM leased d JOIN subscribers s ON s.id = d.subscriber_id JOIN editions e ON e.id = d.edition_id`

// Lease takes up to n due deliveries of the edition with ids above after
// for holder.
//
// after is the caller's cursor: the index of queued deliveries keeps entries
// for rows already sent until a vacuum, so a lease that always started from
// the lowest id would step over every one of them, and a send would slow
// down quadratically. Starting after the last id leased keeps each lease
// short; the caller starts again from 0 when nothing is left above, which
// also picks up retries and rescued leases.
func (q *Queue) Lease(ctx context.Context, editionID int64, holder string, n int, ttl time.Duration, after int64) ([]Job, error) {
	if err := q.prepare(ctx); err != nil {
		return nil, fmt.Errorf("lease deliveries: %w", err)
	}
	month, err := q.month(ctx, editionID)
	if err != nil {
		return nil, fmt.Errorf("lease deliveries: %w", err)
	}
	var jobs []Job
	if err := q.leaseStmt.SelectContext(ctx, &jobs, editionID, holder, n, ttl.Seconds(), after, month); err != nil {
		return nil, fmt.Errorf("lease deliveries: %w", err)
	}
	return jobs, nil
}
