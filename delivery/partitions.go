package delivery

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// MonthsAhead is how many months after the current one have their
// deliveries partition made in advance (migration 0010): a process that
// runs for months without restarting still finds the month it sends in.
const MonthsAhead = 3

// EnsurePartitions makes the deliveries partitions of the month of now and
// of the MonthsAhead months after it, those that are missing; several
// processes may call it at once (deliveries_partition serialises them).
//
// Creating a partition locks the whole table for a moment, behind any
// statement on it still running (a large enqueue): lockWait bounds how long
// it waits for that lock (zero: as long as it takes), so that a process
// making months in advance gives up and tries again later rather than stall
// every send queued behind its request.
func (q *Queue) EnsurePartitions(ctx context.Context, now time.Time, lockWait time.Duration) error {
	first := time.Date(now.UTC().Year(), now.UTC().Month(), 1, 0, 0, 0, 0, time.UTC)
	for k := range MonthsAhead + 1 {
		if err := q.ensurePartition(ctx, first.AddDate(0, k, 0), lockWait); err != nil {
			return err
		}
	}
	return nil
}

// ensurePartition makes the partition of month's month unless it exists.
func (q *Queue) ensurePartition(ctx context.Context, month time.Time, lockWait time.Duration) error {
	day := month.Format(time.DateOnly)
	var exists bool
	// The common case costs one catalog look-up and no lock on the table.
	err := q.DB.GetContext(ctx, &exists, `SELECT to_regclass('deliveries_' || to_char($1::date, 'YYYY_MM')) IS NOT NULL`, day)
	if err != nil {
		return fmt.Errorf("look for the deliveries partition of %s: %w", month.Format("2006-01"), err)
	}
	if exists {
		return nil
	}
	tx, err := q.DB.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("create the deliveries partition of %s: %w", month.Format("2006-01"), err)
	}
	defer tx.Rollback()
	if lockWait > 0 {
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = %d`, lockWait.Milliseconds())); err != nil {
			return fmt.Errorf("create the deliveries partition of %s: %w", month.Format("2006-01"), err)
		}
	}
	if _, err := tx.ExecContext(ctx, `SELECT deliveries_partition($1::date)`, day); err != nil {
		return fmt.Errorf("create the deliveries partition of %s: %w", month.Format("2006-01"), err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create the deliveries partition of %s: commit: %w", month.Format("2006-01"), err)
	}
	return nil
}

// errNotStarted is what month returns for an edition whose send has not
// started: it has no deliveries, nor a partition.
var errNotStarted = errors.New("its send has not started")

// month is the partition key of the edition's deliveries (editions.send_month,
// fixed when its send started), as the statements take it: every statement
// on an edition's deliveries names it, so PostgreSQL reads that one
// partition. Asked once per edition and process: a send's statements run
// many times a second and the key never changes.
func (q *Queue) month(ctx context.Context, editionID int64) (string, error) {
	if m, ok := q.months.Load(editionID); ok {
		return m.(string), nil
	}
	var m sql.NullString
	err := q.DB.GetContext(ctx, &m, `SELECT send_month::text FROM editions WHERE id = $1`, editionID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("edition %d does not exist", editionID)
	}
	if err != nil {
		return "", fmt.Errorf("read the send month of edition %d: %w", editionID, err)
	}
	if !m.Valid {
		return "", fmt.Errorf("edition %d: %w", editionID, errNotStarted)
	}
	q.months.Store(editionID, m.String)
	return m.String, nil
}

// ofEdition limits a statement on deliveries to edition $1's partition,
// for statements not worth the Go side knowing the key: PostgreSQL reads
// the edition's row first and prunes the other partitions as it starts.
const ofEdition = `edition_id = $1 AND send_month = (SELECT send_month FROM editions WHERE id = $1)`
